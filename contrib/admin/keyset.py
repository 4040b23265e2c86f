"""Keyset pages of a list: the page after (or before) a row, found by the row's sort key.

A page by number skips `(page - 1) * page_size` rows (OFFSET), which the
database still reads: page 500,000 of a table of ten million reads five million
rows. Past `keyset_from` rows (`ResourceView.keyset_from`), the list's "next"
and "previous" links carry the sort key of the last (first) row shown instead,
`?page=3001&after=<key>`, and that page is

    WHERE (price, id) > (:price, :id) ORDER BY price, id LIMIT 10

an index range scan that costs the same at any depth. The page number still
names the page ("Showing 30,001 to 30,010"); numbered links that would skip
that far are not offered around such a page.

A key is kept only while the rest of the query string is the one it was made
for: a key carried into another sort, filter, search or page size (the list's
links keep the query string) is ignored, and the page is found by its number.
A list sorted on a nullable column or a computed field, or on columns in
mixed directions, has no key: it pages by number only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python
from sqlalchemy import ColumnElement, bindparam, tuple_
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException

from crudkit.resources import Resource

AFTER = "after"
BEFORE = "before"
SEEK_PARAMS = ("page", AFTER, BEFORE)
"""What changes from one page of a list to the next; the key is made for the rest."""
DEFAULT_KEYSET_FROM = 1_000
"""Lists page by key from this many rows on."""


@dataclass(frozen=True)
class SortKey:
    """The columns a list is sorted on, the primary key last, all in one direction."""

    fields: tuple[str, ...]
    columns: tuple[ColumnElement[Any], ...]
    descending: bool
    adapters: tuple[TypeAdapter[Any], ...]

    def of(self, row: Any) -> list[Any]:
        """The key of one row of the list."""
        return [getattr(row, field) for field in self.fields]

    def condition(self, values: Sequence[Any], *, after: bool, inclusive: bool = False) -> Any:
        """Rows after (or before) the row whose key is `values`, in the list's order."""
        pairs = zip(self.columns, values, strict=True)
        bound = tuple_(*(bindparam(None, value, type_=col.type) for col, value in pairs))
        columns = tuple_(*self.columns)
        if after != self.descending:
            return columns >= bound if inclusive else columns > bound
        return columns <= bound if inclusive else columns < bound

    def order(self, *, reverse: bool = False) -> list[Any]:
        descending = self.descending != reverse
        return [col.desc() if descending else col.asc() for col in self.columns]


def sort_key(resource: Resource, sort: Sequence[tuple[str, bool]]) -> SortKey | None:
    """The key of a list sorted on `sort` (field, descending), with the primary key as
    the tiebreak in the same direction; None when the list cannot be paged by key."""
    pk = resource.pk_info.key
    fields = [field for field, _ in sort if field != pk]
    directions = {descending for _, descending in sort}
    if len(directions) > 1:
        return None
    for field in fields:
        info = resource.columns.get(field)
        if info is None or info.nullable:  # NULLs are outside a row comparison
            return None
    fields.append(pk)
    infos = [resource.columns[field] for field in fields]
    return SortKey(
        fields=tuple(fields),
        columns=tuple(getattr(resource.model, field) for field in fields),
        descending=directions == {True},
        adapters=tuple(TypeAdapter(info.python_type) for info in infos),
    )


def fingerprint(params: QueryParams) -> str:
    """What a key is made for: the query string but for the page and the key itself."""
    kept = sorted((k, v) for k, v in params.multi_items() if k not in SEEK_PARAMS)
    return hashlib.sha256(urlencode(kept).encode()).hexdigest()[:12]


def encode(key: SortKey, values: Sequence[Any], params: QueryParams) -> str:
    """A key as it goes in a URL."""
    payload = json.dumps([fingerprint(params), to_jsonable_python(list(values))])
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode(key: SortKey, raw: str, params: QueryParams) -> list[Any] | None:
    """The key values in a URL; None for a key made for another query string. 400 when
    it is not a key of this list."""
    try:
        padded = raw + "=" * (-len(raw) % 4)
        made_for, values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError, binascii.Error):
        raise HTTPException(400, "Invalid page key.") from None
    if made_for != fingerprint(params):
        return None
    if not isinstance(values, list) or len(values) != len(key.fields):
        raise HTTPException(400, "Invalid page key.")
    try:
        return [adapter.validate_python(v) for adapter, v in zip(key.adapters, values, strict=True)]
    except ValidationError:
        raise HTTPException(400, "Invalid page key.") from None
