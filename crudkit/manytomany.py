"""Many-to-many relationships in the API: lists of keys in `Out`, checked keys in bodies,
and `?expand=`.

Each item holds, under the relationship's name, the primary keys of its related rows,
loaded for a whole page with one query of the link table per relationship. The keys a
body sends are checked by the write pipeline (`crudkit.writes`), on every channel:
each must name a row the caller may read. `expand=` replaces the keys with the
related items the caller may read, with one more query.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Column, ColumnElement, Row, Table, select
from sqlalchemy.orm import RelationshipProperty
from starlette.requests import Request

from crudkit.db import Reader
from crudkit.expansion import Expansion, ExpansionTarget
from crudkit.fields import describe_column
from crudkit.filters import FilterParam, FilterSet, param_name
from crudkit.queries import keys_of
from crudkit.resources import Resource

LINK_OPERATORS = ("", "in")
"""`?tags=3`: rows linked to 3; `?tags__in=1,2`: rows linked to 1 or 2."""


def add_link_filters(filters: FilterSet, resource: Resource) -> None:
    """The filters of the many-to-many relationships in `resource.filter_fields`: a row
    matches when one of its link rows does (a subquery, so a row is never repeated)."""
    for key in resource.filter_fields:
        if key not in resource.many_to_many:
            continue
        prop = resource.mapper.relationships[key]
        (parent, local), (_, remote) = (
            prop.synchronize_pairs[0],
            prop.secondary_synchronize_pairs[0],  # type: ignore[index]
        )
        assert isinstance(remote, Column)
        info = describe_column(key, remote)

        def within(
            condition: ColumnElement[bool], parent: Any = parent, local: Any = local
        ) -> ColumnElement[bool]:
            return parent.in_(select(local).where(condition))  # type: ignore[no-any-return]

        for op in LINK_OPERATORS:
            name = param_name(key, op)
            filters.params[name] = FilterParam(name, info, op, within)


class ManyToMany:
    """One many-to-many relationship of a served resource, through its link table."""

    def __init__(
        self, resource: Resource, prop: RelationshipProperty[Any], target: ExpansionTarget | None
    ) -> None:
        assert isinstance(prop.secondary, Table)  # `Resource.many_to_many` chose it so
        assert prop.secondary_synchronize_pairs
        (parent, local), (related, remote) = (
            prop.synchronize_pairs[0],
            prop.secondary_synchronize_pairs[0],
        )
        self.key = prop.key
        self.parent = parent
        """Our model's column the link refers to."""
        self.local = local
        """The link table's column holding our row's key."""
        self.remote = remote
        """The link table's column holding the related row's key."""
        self.related = related
        """The related model's primary key column."""
        self.local_field = resource.mapper.get_property_by_column(parent).key
        self.target = target
        """The related resource's endpoints; None when the API does not serve it."""

    async def load(self, reader: Reader, rows: Sequence[Row[Any]]) -> dict[Any, list[Any]]:
        """The related keys of each of `rows`, by our key: one query."""
        owners = keys_of(rows, self.local_field)
        if not owners:
            return {}
        stmt = (
            select(self.local, self.remote)
            .where(self.local.in_(owners))
            .order_by(self.local, self.remote)
        )
        grouped: dict[Any, list[Any]] = defaultdict(list)
        for row in await reader.rows(stmt):
            own, other = tuple(row)
            grouped[own].append(other)
        return grouped


class ManyToManyExpansion(Expansion):
    """`expand=<relationship>`: the related items the caller may read, in key order."""

    def __init__(self, link: ManyToMany, target: ExpansionTarget) -> None:
        self.key = link.key
        self.many = True
        self.target = target
        self.link = link
        self.local_field = link.local_field
        self.remote_field = target.resource.pk_info.key

    async def load(self, reader: Reader, request: Request, rows: list[Row[Any]]) -> dict[Any, Any]:
        keys = await self.link.load(reader, rows)
        target = self.target
        wanted = {other for others in keys.values() for other in others}
        if not wanted or not target.can_read(request):
            return {}
        stmt = target.queries.select(target.read_filter(request)).where(
            self.link.related.in_(wanted)
        )
        items = {
            row._mapping[self.remote_field]: target.queries.public(row)
            for row in await reader.rows(stmt)
        }
        return {
            own: [items[other] for other in others if other in items]
            for own, others in keys.items()
        }


class Links:
    """The many-to-many relationships a resource serves, and what its endpoints do with
    them (set up only for resources that have some)."""

    def __init__(self, links: Sequence[ManyToMany]) -> None:
        self.links = {link.key: link for link in links}

    def needed(self, shown: Collection[str]) -> list[str]:
        """The fields of a row that the keys `shown` (by `fields=`) are loaded by."""
        return [link.local_field for key, link in self.links.items() if key in shown]

    async def load(
        self,
        reader: Reader,
        rows: Sequence[Row[Any]],
        skip: Sequence[Expansion] = (),
        shown: Collection[str] | None = None,
    ) -> list[tuple[ManyToMany, dict[Any, list[Any]]]]:
        """The keys of `rows` for each relationship (those `shown` only, when a sparse
        fieldset names the fields), but those expanded instead."""
        expanded = {expansion.key for expansion in skip}
        return [
            (link, await link.load(reader, rows))
            for key, link in self.links.items()
            if key not in expanded and (shown is None or key in shown)
        ]

    @staticmethod
    def attach(
        item: dict[str, Any], row: Row[Any], loaded: list[tuple[ManyToMany, dict[Any, list[Any]]]]
    ) -> None:
        for link, keys in loaded:
            item[link.key] = keys.get(row._mapping[link.local_field], [])
