"""Foreign keys in admin forms: searchable selects filled by query, within the target's read scope.

Every foreign-key column of a form (with a relationship or without one) and
every many-to-many relationship is edited through sqladmin's ajax select: the
browser asks `<admin>/<view>/ajax/lookup?name=<field>&term=<text>` and gets at
most `LOOKUP_LIMIT` rows back, so a large table is never loaded whole.

`ResourceLoader` is sqladmin's `QueryAjaxModelLoader` with crudkit's rules:

- rows match on the target resource's `search_fields` (case-insensitive
  substring, LIKE wildcards taken literally) or on its primary key;
- the target is read as the admin reads it (`AdminPolicy`): without its read
  permission the lookup is refused (403), and its query filter scopes the
  choices, so a staff member who sees only their own rows of an owner-scoped
  model in its list sees only those in another form's select too;
- a value chosen on save is checked against the same scope (`visible`), so a
  crafted POST cannot link to a row its sender may not read;
- a current value its viewer may not read is shown by its id alone;
- rows are named by `str(row)` without their SQL computed fields
  (`column_property` subqueries), which would cost a query each, over the whole
  table, per row named: a target's `__str__` that reads one is shown by its key.

sqladmin's lookup endpoint already checks that the user may create or edit
rows of the form's own model; the loader adds the target's check, and refuses
fields the user's form does not have (the user form's privileged fields).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError
from sqladmin.ajax import QueryAjaxModelLoader
from sqlalchemy import Select, false, or_, select
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import ColumnProperty, RelationshipDirection, defer
from starlette.exceptions import HTTPException
from starlette.requests import Request

from crudkit.contrib.admin.context import current_request
from crudkit.contrib.admin.permissions import AdminPolicy
from crudkit.filters import FilterSet, order_by_clauses
from crudkit.permissions import Action

if TYPE_CHECKING:
    from crudkit.contrib.admin.views import ResourceView
    from crudkit.resources import Resource

LOOKUP_LIMIT = 20
"""Rows one lookup returns: enough to choose from, never a whole table."""


class ResourceLoader(QueryAjaxModelLoader):
    """The choices of one form field that refers to rows of `target`."""

    def __init__(self, name: str, view: ResourceView, target: Resource) -> None:
        fields = list(target.search_fields) or [target.pk_info.key]
        super().__init__(name, target.model, view, fields=fields, limit=LOOKUP_LIMIT)
        self.view = view
        self.target = target
        self.policy = AdminPolicy(target)
        pk = target.pk_info
        pk_type: Any = Annotated[pk.python_type, Field(**pk.type_constraints)]
        self._pk: TypeAdapter[Any] = TypeAdapter(pk_type)
        self._search = FilterSet(target.queryable, [], list(target.search_fields), [])
        ordering = [(field.lstrip("-"), field.startswith("-")) for field in target.default_ordering]
        self._order = [*order_by_clauses(target.queryable, ordering), target.pk]
        computed = target.mapper.column_attrs
        self._deferred = [
            defer(getattr(target.model, prop.key), raiseload=True)
            for prop in computed
            if isinstance(prop, ColumnProperty) and prop.key in target.sql_computed
        ]

    def parse(self, raw: Any) -> Any:
        """The primary key value `raw` (form text) stands for, or None if it is not one."""
        try:
            return self._pk.validate_python(raw.strip() if isinstance(raw, str) else raw)
        except ValidationError:
            return None

    def _select(self) -> Select[Any]:
        """The target's rows, without their SQL computed fields."""
        return select(self.model).options(*self._deferred)

    def label(self, model: Any) -> str:
        """How a row is named: `str(model)`, or by its key when that needs a deferred field."""
        try:
            return str(model)
        except InvalidRequestError:
            return f"{self.target.name} #{getattr(model, self.target.pk_info.key)}"

    def _scoped(self, request: Request, stmt: Select[Any]) -> Select[Any] | None:
        """`stmt` narrowed to the target rows the user may read; None if they may read none."""
        if not self.policy.has_permission(request, Action.LIST):
            return None
        return self.policy.scope(stmt, request, Action.LIST)

    async def get_list(self, request: Request, term: str) -> list[Any]:
        """The rows matching `term`; 403 for a field not on the user's form, or a target
        they may not read."""
        if self.name in self.view.get_form_exclusions(request):
            raise HTTPException(403, "This field is not on your form.")
        return await self.matching(request, term)

    async def matching(self, request: Request, term: str) -> list[Any]:
        """The rows matching `term` the user may read; 403 for a target they may not read."""
        if "\x00" in term:  # PostgreSQL cannot compare text with NUL in it
            raise HTTPException(400, "The search must not contain NUL characters.")
        matches = []
        if (found := self._search.search(term)) is not None:
            matches.append(found)
        if (key := self.parse(term)) is not None:
            matches.append(self.target.pk == key)
        stmt = self._scoped(request, self._select().where(or_(false(), *matches)))
        if stmt is None:
            raise HTTPException(403, f"You may not view {self.target.name_plural}.")
        if not matches:
            return []
        stmt = stmt.order_by(*self._order).limit(self.limit)
        async with self.view.session_maker() as session:
            return list((await session.execute(stmt)).scalars())

    async def visible(self, request: Request, keys: Iterable[Any]) -> dict[Any, Any]:
        """The rows among `keys` the user may read, by key (none without the permission)."""
        wanted = {key for key in keys if key is not None}
        stmt = self._scoped(request, self._select().where(self.target.pk.in_(wanted)))
        if not wanted or stmt is None:
            return {}
        async with self.view.session_maker() as session:
            rows = (await session.execute(stmt)).scalars()
            return {getattr(row, self.target.pk_info.key): row for row in rows}

    def format(self, model: Any) -> dict[str, Any]:
        if model is None:
            return {}
        if not isinstance(model, self.model):
            # A bare key (a form's current value): the widget then asks format_by_pk.
            raise TypeError(f"{model!r} is not a {self.model.__name__}")
        return {"id": str(getattr(model, self.target.pk_info.key)), "text": self.label(model)}

    async def format_by_pk(self, pk: Any) -> dict[str, Any]:
        key = self.parse(pk)
        if key is None:
            return {}
        found = await self.visible(current_request(), [key])
        if key in found:
            return self.format(found[key])
        return {"id": str(key), "text": f"{self.target.name} #{key}"}


def _target_of_column(resource: Resource, key: str) -> Resource | None:
    """The resource a foreign-key column points at (through its primary key), if registered."""
    registry = resource.registry
    column = resource.columns[key].column
    if registry is None or len(column.foreign_keys) != 1:
        return None
    referred = next(iter(column.foreign_keys)).column
    for candidate in registry:
        if candidate.pk is referred:
            return candidate
    return None


def _target_of_relation(resource: Resource, name: str) -> Resource | None:
    prop = resource.mapper.relationships.get(name)
    if prop is None or prop.direction is not RelationshipDirection.MANYTOMANY:
        return None
    registry = resource.registry
    return None if registry is None else registry.get(prop.mapper.class_)


def lookup_target(resource: Resource, name: str) -> Resource | None:
    """The resource whose rows form field `name` chooses, or None for an ordinary field."""
    if name in resource.columns:
        return _target_of_column(resource, name)
    return _target_of_relation(resource, name)


def loaders_for(view: ResourceView, names: Iterable[str]) -> dict[str, ResourceLoader]:
    """A loader for each of the form fields `names` that refers to another resource's rows."""
    loaders = {}
    for name in names:
        target = lookup_target(view.resource, name)
        if target is not None:
            loaders[name] = ResourceLoader(name, view, target)
    return loaders
