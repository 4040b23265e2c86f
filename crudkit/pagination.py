"""Offset and keyset pagination of list endpoints.

Offset pages count (`total`) and may skip; keyset pages continue after the last
row of the previous page through an opaque `cursor`, so deep pages cost as much
as the first and no count runs. Every page that has rows after it returns a
`next_cursor`, so a keyset walk can start from any list call.

A cursor holds the ordering it was made for and the sort values of the last row
it returned, signed with the secret key: an edited cursor is a 422, never a
wrong page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import to_json
from sqlalchemy import ColumnElement, and_, false, or_, tuple_

from crudkit.exceptions import Invalid
from crudkit.fields import ColumnInfo
from crudkit.filters import query_adapter

T = TypeVar("T")

Ordering = list[tuple[str, bool]]


class Page(BaseModel, Generic[T]):
    """One page of a list: `total` is null when not counted (cursor pages)."""

    items: list[T]
    total: int | None
    next_cursor: str | None


class CursorCodec:
    """Signs and checks cursors; one per app, keyed by its secret."""

    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(b"crudkit.cursor:" + secret_key.encode()).digest()

    def _sign(self, payload: bytes) -> str:
        digest = hmac.digest(self._key, payload, "sha256")[:16]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def encode(self, ordering: Ordering, values: Sequence[Any]) -> str:
        spec = ",".join(("-" if desc else "") + field for field, desc in ordering)
        payload = to_json([spec, list(values)])
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{body}.{self._sign(payload)}"

    def decode(
        self, cursor: str, ordering: Ordering, columns: Mapping[str, ColumnInfo]
    ) -> list[Any]:
        """The last row's sort values, typed by their columns; 422 if the cursor is bad."""
        bad = Invalid.single(["query", "cursor"], "invalid or tampered cursor", "cursor")
        body, _, signature = cursor.partition(".")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (ValueError, TypeError):
            raise bad from None
        if not signature or not hmac.compare_digest(signature, self._sign(payload)):
            raise bad
        try:
            spec, raw_values = json.loads(payload)
        except (ValueError, TypeError):
            raise bad from None
        expected = ",".join(("-" if desc else "") + field for field, desc in ordering)
        if spec != expected:
            raise Invalid.single(
                ["query", "cursor"],
                f"this cursor was made for ordering={spec!r}; repeat the same ordering",
                "cursor",
            )
        if not isinstance(raw_values, list) or len(raw_values) != len(ordering):
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
        return values


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
