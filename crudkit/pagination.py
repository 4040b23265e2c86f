"""Offset and keyset pagination of list endpoints.

Offset pages count (`total`) and may skip; keyset pages continue after the last
row of the previous page through an opaque `cursor`, so deep pages cost as much
as the first and no count runs. Every page that has rows after it returns a
`next_cursor`, so a keyset walk can start from any list call.

A cursor is self-contained: it holds the ordering, the filter parameters, the
search and the page size it was made for, and the sort values of the last row it
returned, signed with the secret key: an edited cursor is a 422, never a wrong
page. `?cursor=` alone continues the walk; a parameter sent along with it must
be the one the cursor carries (422 otherwise), except `limit`, which may change
from page to page. Filters and search too long to fit in `MAX_CURSOR` are
carried as a digest instead: such a cursor needs them repeated.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import to_json
from sqlalchemy import ColumnElement, and_, false, or_, tuple_

from crudkit.exceptions import Invalid
from crudkit.fields import ColumnInfo
from crudkit.filters import query_adapter
from crudkit.requests import MAX_CURSOR

T = TypeVar("T")

Ordering = list[tuple[str, bool]]


class Page(BaseModel, Generic[T]):
    """One page of a list: `total` is null when not counted (cursor pages)."""

    items: list[T]
    total: int | None
    next_cursor: str | None


def _spec(ordering: Ordering) -> str:
    return ",".join(("-" if desc else "") + field for field, desc in ordering)


def _shown(value: str) -> str:
    return value if len(value) <= 100 else value[:100] + "..."


@dataclass(frozen=True)
class Cursor:
    """What a cursor carries: where the walk is and what it walks."""

    ordering: Ordering
    values: list[Any]
    """The last row's sort values, typed by their columns."""
    limit: int
    filters: Mapping[str, str] | None
    """The raw filter parameters; None when carried as `digest` only."""
    search: str | None
    digest: str | None = None

    def check_ordering(self, requested: Ordering) -> None:
        """422 unless `requested` (the `ordering` sent with the cursor) is the cursor's."""
        if requested != self.ordering:
            raise Invalid.single(
                ["query", "ordering"],
                f"The cursor was made for ordering={_spec(self.ordering)}; "
                "drop ordering or send the same one.",
            )

    def selection(
        self, filters: Mapping[str, str], search: str | None, search_sent: bool
    ) -> tuple[Mapping[str, str], str | None]:
        """The filters and search of the page: the cursor's, each one sent along with it
        equal to the cursor's (422 otherwise)."""
        if self.filters is None:
            # Too long to carry: the client repeats them all, checked against the digest.
            if selection_digest(filters, search) != self.digest:
                raise Invalid.single(
                    ["query", "cursor"],
                    "The cursor was made for filters too long to carry; "
                    "send the same filters and search with it.",
                )
            return filters, search
        for name, raw in filters.items():
            carried = self.filters.get(name)
            if carried is None:
                raise Invalid.single(
                    ["query", name],
                    f"The cursor was made without {_shown(name)}; drop it, or start a new "
                    "walk without cursor.",
                )
            if raw != carried:
                raise Invalid.single(
                    ["query", name],
                    f"The cursor was made for {_shown(name)}={_shown(carried)}; "
                    f"drop {_shown(name)} or send the same value.",
                )
        if search_sent and search != self.search:
            made_for = (
                "without search" if self.search is None else f"for search={_shown(self.search)}"
            )
            raise Invalid.single(
                ["query", "search"],
                f"The cursor was made {made_for}; drop search or send the same one.",
            )
        return self.filters, self.search


def _filters_of(carried: Any, filter_params: Collection[str]) -> bool:
    """Whether `carried` is a mapping of raw values of filters the resource has."""
    return isinstance(carried, dict) and all(
        name in filter_params and isinstance(raw, str) for name, raw in carried.items()
    )


def selection_digest(filters: Mapping[str, str], search: str | None) -> str:
    payload = to_json([sorted(filters.items()), search])
    return base64.urlsafe_b64encode(hashlib.sha256(payload).digest()[:16]).decode().rstrip("=")


class CursorCodec:
    """Signs and checks cursors; one per app, keyed by its secret.

    The signed payload is `[ordering, values, limit, filters, search]`, `filters` a
    mapping of the raw filter parameters, or the digest of filters and search (then
    `search` is null) when they would make the cursor longer than `MAX_CURSOR`.
    """

    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(b"crudkit.cursor:" + secret_key.encode()).digest()

    def _sign(self, payload: bytes) -> str:
        digest = hmac.digest(self._key, payload, "sha256")[:16]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _token(self, payload: bytes) -> str:
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{body}.{self._sign(payload)}"

    def encode(
        self,
        ordering: Ordering,
        values: Sequence[Any],
        limit: int,
        filters: Mapping[str, str],
        search: str | None,
    ) -> str:
        spec, last = _spec(ordering), list(values)
        token = self._token(to_json([spec, last, limit, dict(filters), search]))
        if len(token) <= MAX_CURSOR:
            return token
        return self._token(to_json([spec, last, limit, selection_digest(filters, search), None]))

    def decode(
        self, cursor: str, columns: Mapping[str, ColumnInfo], filter_params: Collection[str]
    ) -> Cursor:
        """What `cursor` carries, its values typed by their columns; 422 if it is bad
        (or names a column or filter the resource no longer has)."""
        bad = Invalid.single(["query", "cursor"], "invalid or tampered cursor", "cursor")
        body, _, signature = cursor.partition(".")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (ValueError, TypeError):
            raise bad from None
        expected = self._sign(payload).encode()
        # Bytes: compare_digest refuses str holding anything but ASCII (a forged cursor may).
        if not signature or not hmac.compare_digest(signature.encode(), expected):
            raise bad
        try:
            spec, raw_values, limit, filters, search = json.loads(payload)
        except (ValueError, TypeError):
            raise bad from None  # not ours, or made before cursors carried their filters
        ordering: Ordering = []
        for item in spec.split(",") if isinstance(spec, str) and spec else ():
            field = item.removeprefix("-")
            if field not in columns:  # the resource has changed since
                raise bad
            ordering.append((field, item.startswith("-")))
        if (
            not ordering
            or not isinstance(raw_values, list)
            or len(raw_values) != len(ordering)
            or not isinstance(limit, int)
            or limit < 1
            or not (
                (isinstance(filters, str) and search is None) or _filters_of(filters, filter_params)
            )
            or not (search is None or isinstance(search, str))
        ):
            raise bad
        values: list[Any] = []
        for (field, _), raw in zip(ordering, raw_values, strict=True):
            info = columns[field]
            if raw is None:
                values.append(None)
                continue
            try:
                values.append(query_adapter(info.python_type, ()).validate_python(raw))
            except ValidationError:
                raise bad from None
        if isinstance(filters, str):
            return Cursor(ordering, values, limit, None, None, filters)
        return Cursor(ordering, values, limit, filters, search)


def keyset_condition(
    columns: Mapping[str, ColumnInfo], ordering: Ordering, values: Sequence[Any]
) -> ColumnElement[bool]:
    """Rows strictly after `values` in `ordering` (NULLs last ascending, first descending).

    The ordering ends with the primary key, so it is total and every row is walked
    exactly once, ties included.
    """
    infos = [columns[field] for field, _ in ordering]
    directions = {descending for _, descending in ordering}
    if len(directions) == 1 and not any(info.nullable for info in infos):
        # One direction, no NULLs: a row-value comparison an index can serve.
        key = tuple_(*(info.column for info in infos))
        beyond: ColumnElement[bool] = (
            key < tuple_(*values) if directions == {True} else key > tuple_(*values)
        )
        return beyond
    alternatives = []
    for index, (info, (_, descending)) in enumerate(zip(infos, ordering, strict=True)):
        equal_prefix = [
            _equal(prev.column, value)
            for prev, value in zip(infos[:index], values[:index], strict=True)
        ]
        after = _after(info, values[index], descending)
        if after is not None:
            alternatives.append(and_(*equal_prefix, after))
    if not alternatives:
        return false()
    condition: ColumnElement[bool] = or_(*alternatives)
    return condition


def _equal(column: Any, value: Any) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = column.is_(None) if value is None else column == value
    return condition


def _after(info: ColumnInfo, value: Any, descending: bool) -> ColumnElement[bool] | None:
    column = info.column
    if descending:  # NULLs first, then large to small
        return column.is_not(None) if value is None else column < value
    if value is None:  # NULLs come last ascending: nothing after them in this column
        return None
    return or_(column > value, column.is_(None)) if info.nullable else column > value
