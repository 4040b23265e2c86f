"""`?expand=category,orders`: related rows loaded with one query per relation.

Many-to-one relations become an object (or null), one-to-many a list. Related
rows go through the related resource's own read policy, so expanding never shows
a row its resource would hide; relations to models that are not served by the
API cannot be expanded.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Row
from sqlalchemy.orm import RelationshipDirection, RelationshipProperty
from starlette.requests import Request

from crudkit.db import Reader
from crudkit.exceptions import Invalid
from crudkit.queries import ResourceQueries, keys_of
from crudkit.resources import Resource


class ExpansionTarget(Protocol):
    """What expanding a relation needs of the related resource's endpoints: its
    statements, and its read policy applied to the caller."""

    @property
    def resource(self) -> Resource: ...

    @property
    def queries(self) -> ResourceQueries: ...

    def can_read(self, request: Request) -> bool: ...

    def read_filter(self, request: Request) -> ColumnElement[bool] | None: ...


def _attribute_for(prop: RelationshipProperty[Any], column: Any, *, remote: bool) -> str:
    mapper = prop.mapper if remote else prop.parent
    for column_prop in mapper.column_attrs:
        if column in column_prop.columns:
            return column_prop.key
    raise ValueError(f"no attribute of {mapper.class_.__name__} maps {column}")


class Expansion:
    """One expandable relation: which of our fields matches which of theirs."""

    def __init__(self, key: str, prop: RelationshipProperty[Any], target: ExpansionTarget) -> None:
        pairs = prop.local_remote_pairs or []
        if len(pairs) != 1:
            raise ValueError(f"{key}: only single-column relationships can be expanded")
        local, remote = pairs[0]
        self.key = key
        self.many = prop.direction is RelationshipDirection.ONETOMANY
        self.target = target
        self.remote_column = remote
        self.local_field = _attribute_for(prop, local, remote=False)
        self.remote_field = _attribute_for(prop, remote, remote=True)

    async def load(self, reader: Reader, request: Request, rows: list[Row[Any]]) -> dict[Any, Any]:
        """Related items keyed by the value of our `local_field`: one query."""
        keys = keys_of(rows, self.local_field)
        target = self.target
        if not keys or not target.can_read(request):
            return {}
        condition = target.read_filter(request)
        stmt = target.queries.select(condition).where(self.remote_column.in_(keys))
        if self.many:
            stmt = stmt.order_by(target.resource.pk)
        related = await reader.rows(stmt)
        if self.many:
            grouped: dict[Any, list[dict[str, Any]]] = defaultdict(list)
            for row in related:
                grouped[row._mapping[self.remote_field]].append(target.queries.public(row))
            return grouped
        return {row._mapping[self.remote_field]: target.queries.public(row) for row in related}

    def attach(self, item: dict[str, Any], row: Row[Any], loaded: dict[Any, Any]) -> None:
        value = row._mapping[self.local_field]
        item[self.key] = loaded.get(value, []) if self.many else loaded.get(value)


def parse_expand(raw: str | None, available: dict[str, Expansion]) -> list[Expansion]:
    """The relations named in `?expand=`; an unknown one is a 422 listing the allowed."""
    if not raw:
        return []
    chosen = []
    for name in dict.fromkeys(part.strip() for part in raw.split(",")):
        if not name:
            continue
        if name not in available:
            allowed = ", ".join(available) or "none"
            raise Invalid.single(["query", "expand"], f"cannot expand {name!r}; allowed: {allowed}")
        chosen.append(available[name])
    return chosen
