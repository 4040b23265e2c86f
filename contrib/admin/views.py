"""One sqladmin `ModelView` per registered resource, generated from the resource's options.

    view = view_for(resource)       # a ResourceView subclass
    admin.add_view(view)

What the resource declares, the view follows (`options.py` translates its
options), and the owner of a new row is the user creating it. Every query the
view runs is narrowed by the resource's permissions (`AdminPolicy.scope`), and
every save runs the resource's `before_*` hooks and its API schema's
validation, so the admin cannot write what the API would refuse.

Foreign keys are edited as searchable selects scoped by the target's read
policy (`lookups.py`); saves run in one transaction with their history and a
version check (`writes.py`); list pages count large tables approximately
(`counting.py`) and page deep into them by key (`keyset.py`); each row has a
History page.

`view_for(resource, base=MyView)` builds the view on another base class;
`crudkit.contrib.admin.users` does so for the user model.
"""

from __future__ import annotations

import builtins
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar
from urllib.parse import urlencode

from pydantic import Field, TypeAdapter, ValidationError
from sqladmin import ModelView, expose
from sqladmin.authorization import Action as AdminAction
from sqladmin.forms import WTFORMS_ATTRS
from sqladmin.pagination import PageControl, Pagination
from sqlalchemy import Select, func, select
from sqlalchemy.orm import RelationshipProperty, selectinload
from starlette.datastructures import URL
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from crudkit.actions import ResourceAction
from crudkit.apps import Apps
from crudkit.contrib.admin._sqladmin import (
    action_url,
    column_labels,
    form_prop_names,
    list_prop_names,
    list_relations,
    set_ajax_lookups,
)
from crudkit.contrib.admin.actions import refuse_on_row
from crudkit.contrib.admin.context import current_request
from crudkit.contrib.admin.counting import (
    DEFAULT_LIMIT,
    PAGES_AHEAD,
    ApproximateCount,
    count_from,
    count_limit,
    count_rows,
    counted_select,
)
from crudkit.contrib.admin.errors import (
    FormError,
)
from crudkit.contrib.admin.exports import ExportRow
from crudkit.contrib.admin.filters import EXACT, ForeignKeyFilter
from crudkit.contrib.admin.forms import VERSION_FIELD, AdminForm
from crudkit.contrib.admin.keyset import (
    AFTER,
    BEFORE,
    DEFAULT_KEYSET_FROM,
    SEEK_PARAMS,
    SortKey,
    decode,
    encode,
    sort_key,
)
from crudkit.contrib.admin.lookups import ResourceLoader, loaders_for
from crudkit.contrib.admin.options import capfirst, view_attributes
from crudkit.contrib.admin.permissions import AdminPolicy
from crudkit.contrib.admin.writes import RowWriter, object_version
from crudkit.exceptions import ImproperlyConfigured
from crudkit.filters import FilterSet
from crudkit.permissions import Action
from crudkit.resources import Resource

HISTORY_TEMPLATE = "crudkit_admin/object_history.html"
LIST_ONLY_PARAMS = frozenset({*SEEK_PARAMS, "pageSize"})
"""List query parameters an export ignores: it writes every matching row."""
HISTORY_LIMIT = 200
"""Entries shown on a row's History page, newest first."""


class LastPage(int):
    """The number of a list's last page, shown as the link to it."""

    def __str__(self) -> str:
        return f"Last ({int(self)})"


@dataclass
class ListPagination(Pagination):
    """sqladmin's page links, with a link to the last page when the count is exact
    (an `ApproximateCount` has no last page to link to), and keyed links (`keyset.py`)
    to the pages past `keyset_from` rows."""

    keyset_from: int = DEFAULT_KEYSET_FROM
    first_key: str | None = None
    """The key of the first row shown, for the previous page; None to page by number."""
    last_key: str | None = None
    """The key of the last row shown, for the next page."""

    def add_pagination_urls(self, base_url: URL) -> None:
        base_url = base_url.remove_query_params([AFTER, BEFORE])
        super().add_pagination_urls(base_url)
        if self.last_key is not None:
            self._key_links(base_url)
        if isinstance(self.count, ApproximateCount):
            return
        last = self.max_page(self.count, self.page_size)
        if all(control.number < last for control in self.page_controls):
            url = str(base_url.include_query_params(page=last))
            self.page_controls.append(PageControl(number=LastPage(last), url=url))

    def _key_links(self, base_url: URL) -> None:
        """Past `keyset_from` rows, the next and previous pages by key, and no numbered
        link that would skip as far."""
        kept = []
        for control in self.page_controls:
            deep = (control.number - 1) * self.page_size >= self.keyset_from
            if deep and control.number == self.page + 1:
                control.url = str(
                    base_url.include_query_params(page=control.number, after=self.last_key)
                )
            elif deep and control.number == self.page - 1 and self.first_key is not None:
                control.url = str(
                    base_url.include_query_params(page=control.number, before=self.first_key)
                )
            elif deep and control.number != self.page:
                continue
            kept.append(control)
        self.page_controls = kept


class ResourceView(ModelView):
    """The admin of one resource; `view_for` makes a subclass per resource."""

    resource: ClassVar[Resource]
    """The resource this view serves."""
    policy: ClassVar[AdminPolicy]
    """Its permissions, as the admin asks them."""
    apps: ClassVar[Apps]
    """The project's apps, told about every write (set when the view is added)."""
    exact_count_limit: ClassVar[int] = DEFAULT_LIMIT
    """List pages count rows exactly up to this many, approximately above."""
    keyset_from: ClassVar[int] = DEFAULT_KEYSET_FROM
    """The list's next and previous links page by key past this many rows (`keyset.py`)."""
    admin_actions: ClassVar[tuple[str, ...]] = ()
    """The resource's `@crudkit.action(admin=True)` methods, by name (see `actions.py`)."""
    admin_action_items: ClassVar[tuple[ResourceAction, ...]] = ()
    """The same actions, as the API serves them."""

    can_import = False
    save_as = False

    def __init__(self) -> None:
        super().__init__()
        resource = self.resource
        pk = resource.pk_info
        pk_type: Any = Annotated[pk.python_type, Field(**pk.type_constraints)]
        self._pk_adapter: TypeAdapter[Any] = TypeAdapter(pk_type)
        self._search = FilterSet(resource.queryable, [], list(resource.search_fields), [])
        self.form_links: list[RelationshipProperty[Any]] = [
            prop for prop in resource.mapper.relationships if prop.key in form_prop_names(self)
        ]
        """The many-to-many relationships on the form."""
        self.lookups: dict[str, ResourceLoader] = loaders_for(self, form_prop_names(self))
        """The form fields that choose rows of another resource, by name."""
        self.link_loaders: dict[str, ResourceLoader] = loaders_for(self, resource.many_to_many)
        """The many-to-many relationships, which the History names (`history_view.py`)."""
        set_ajax_lookups(self, dict(self.lookups))
        self.filter_lookups: dict[str, ResourceLoader] = loaders_for(
            self, [f.parameter_name for f in self.get_filters() if isinstance(f, ForeignKeyFilter)]
        )
        """The foreign-key filters, whose choices `filter_lookup` serves."""
        self.references: dict[str, ResourceLoader] = loaders_for(self, list_prop_names(self))
        """The listed foreign keys, shown by the name of the row they refer to."""
        self.writer = RowWriter(self)

    def is_accessible(self, request: Request) -> bool:
        # Without the read permission the model is hidden, and every one
        # of its URLs refused, even where another permission (`add`) is held.
        return self.has_permission(request, AdminAction.LIST)

    def action_urls(self, request: Request) -> list[str]:
        """The URLs of the admin actions, which the admin's script sends as POST."""
        return [action_url(request, self.identity, name) for name in self.admin_actions]

    def export_url(self, request: Request, export_type: str) -> str:
        """The export of the list page `request` shows: its search, filters and order."""
        url = request.url_for("admin:export", identity=self.identity, export_type=export_type)
        kept = [(k, v) for k, v in request.query_params.multi_items() if k not in LIST_ONLY_PARAMS]
        return str(url.replace(query=urlencode(kept))) if kept else str(url)

    def parse_pk(self, raw: str) -> Any:
        """The primary key in a URL; 404 when it cannot be one."""
        try:
            return self._pk_adapter.validate_python(raw)
        except ValidationError:
            raise HTTPException(404) from None

    # Forms.

    @classmethod
    def get_form_exclusions(cls, request: Request) -> set[str]:
        """Form fields `request`'s user may not write; none by default."""
        return set()

    @classmethod
    def get_optional_on_edit(cls) -> set[str]:
        """Form fields left blank on edit to keep their value: write-only ones."""
        return set(cls.resource.write_only_fields)

    async def get_form_data_for_edit(self, obj: Any) -> dict[str, Any]:
        # sqladmin's version looks related rows up again, unscoped; here the row's own
        # foreign-key values are the data, and the lookups show them (`format_by_pk`).
        data = {WTFORMS_ATTRS.get(name, name): getattr(obj, name) for name in form_prop_names(self)}
        for key in self.resource.write_only_fields:
            data[key] = None  # never sent back to the browser
        data[VERSION_FIELD] = object_version(self.resource, obj)
        return data

    # Queries, narrowed to the rows the user may see.

    async def list(self, request: Request) -> Pagination:
        key = self.list_sort_key(request)
        params = request.query_params
        seek = None
        if key is not None and (params.get(AFTER) or params.get(BEFORE)):
            raw, after = (params[AFTER], True) if params.get(AFTER) else (params[BEFORE], False)
            values = decode(key, raw, params)
            seek = None if values is None else (values, after)
        if key is None or seek is None:
            found = await super().list(request)
        else:
            found = await self._keyed_page(request, key, *seek)
        await self._name_references(request, found.rows)
        await self._name_filter_choices(request)
        pagination = ListPagination(
            rows=found.rows,
            page=found.page,
            page_size=found.page_size,
            count=found.count,
            keyset_from=self.keyset_from,
        )
        if key is not None and found.rows:
            pagination.first_key = encode(key, key.of(found.rows[0]), params)
            pagination.last_key = encode(key, key.of(found.rows[-1]), params)
        return pagination

    def list_sort(self, request: Request) -> builtins.list[tuple[str, bool]]:
        """The fields the list in `request` is sorted on (name, descending), as sqladmin
        sorts it, before the primary key."""
        sort_by = request.query_params.get("sortBy")
        if sort_by:
            return [(sort_by, request.query_params.get("sort", "asc") == "desc")]
        default: Any = self.column_default_sort
        if isinstance(default, tuple):
            default = [default]
        elif isinstance(default, str):
            default = [(default, False)]
        return list(default) or [(self.resource.pk_info.key, False)]

    def list_sort_key(self, request: Request) -> SortKey | None:
        """The key the list in `request` pages by past `keyset_from` rows, if it has one."""
        sort_by = request.query_params.get("sortBy")
        if sort_by and sort_by not in self.resource.ordering_fields:
            return None  # sqladmin refuses it
        return sort_key(self.resource, self.list_sort(request))

    async def _keyed_page(
        self, request: Request, key: SortKey, values: builtins.list[Any], after: bool
    ) -> Pagination:
        """The page after (or before) the row whose key is `values` (`keyset.py`)."""
        params = request.query_params
        page = self.validate_page_number(params.get("page"), 1)
        size = self.validate_page_number(params.get("pageSize"), self.page_size)
        size = min(size, max(self.page_size_options))
        stmt = await self.filter_query(self.list_query(request), request)
        search = params.get("search")
        if search:
            stmt = self.search_query(stmt, search)
        page_stmt = (
            stmt.where(key.condition(values, after=after))
            .order_by(*key.order(reverse=not after))
            .limit(size)
            .options(*(selectinload(relation) for relation in list_relations(self)))
        )
        rows = list(await self._run_query(page_stmt))
        if not after:
            rows.reverse()
        shown_before = (page - 1) * size
        limit = PAGES_AHEAD * size
        async with self.session_maker() as session:
            if rows:
                start = key.condition(key.of(rows[0]), after=True, inclusive=True)
                count = await count_from(session, stmt, start, shown_before, limit)
            else:
                count = shown_before
        return Pagination(rows=rows, page=page, page_size=size, count=count)

    async def _name_references(self, request: Request, rows: Sequence[Any]) -> None:
        """Name the rows the foreign keys of `rows` refer to, for `foreign_key_link`: one
        query per foreign key, within the user's read scope of its target."""
        names: dict[str, dict[Any, str]] = {}
        for key, loader in self.references.items():
            found = await loader.visible(request, {getattr(row, key) for row in rows})
            names[key] = {pk: loader.label(row) for pk, row in found.items()}
        request.state.crudkit_references = names

    async def get_model_objects(
        self, request: Request, limit: int | None = 0
    ) -> builtins.list[Any]:
        # The rows an export writes: those the list shows with the same query string
        # (its search and filters), in its order; sqladmin's own ignores both.
        stmt = await self.filter_query(self.list_query(request), request)
        search = request.query_params.get("search")
        if search:
            stmt = self.search_query(stmt, search)
        stmt = self.sort_query(stmt, request).options(
            *(selectinload(relation) for relation in list_relations(self))
        )
        if limit:
            stmt = stmt.limit(limit)
        rows: builtins.list[Any] = await self._run_query(stmt)
        return rows

    async def filter_query(self, stmt: Select[Any], request: Request) -> Select[Any]:
        """`stmt` narrowed by the list filters in `request`'s query string, as sqladmin's
        list page applies them."""
        params = request.query_params
        found: Any
        for found in self.get_filters():
            value = params.get(found.parameter_name)
            if not value:
                continue
            if getattr(found, "has_operator", False):
                operation = params.get(f"{found.parameter_name}_op")
                if operation:
                    stmt = await found.get_filtered_query(stmt, operation, value, self.model)
            else:
                stmt = await found.get_filtered_query(stmt, value, self.model)
        return stmt

    async def _name_filter_choices(self, request: Request) -> None:
        """The rows the foreign-key filters in `request` chose, as their selects show them."""
        chosen: dict[str, dict[str, Any]] = {}
        params = request.query_params
        for name, loader in self.filter_lookups.items():
            key = loader.parse(params.get(name, ""))
            if key is None or params.get(f"{name}_op") != EXACT:
                continue
            found = await loader.visible(request, [key])
            if key in found:
                chosen[name] = loader.format(found[key])
            else:
                chosen[name] = {"id": str(key), "text": f"{capfirst(loader.target.name)} #{key}"}
        request.state.crudkit_filter_choices = chosen

    def filter_choice(self, request: Request, name: str) -> dict[str, Any] | None:
        """The row foreign-key filter `name` has chosen on this list page, if any."""
        choices: dict[str, dict[str, Any]] = getattr(request.state, "crudkit_filter_choices", {})
        return choices.get(name)

    def filter_lookup_url(self, request: Request) -> str:
        return str(request.url_for(f"admin:view-{self.identity}-filter_lookup"))

    @expose("/filter/lookup")
    async def filter_lookup(self, request: Request) -> Response:
        """The choices of a foreign-key filter (`?name=<field>&term=<text>`): rows of its
        target the user may read, as sqladmin's form lookups answer."""
        loader = self.filter_lookups.get(request.query_params.get("name", ""))
        if loader is None:
            raise HTTPException(404)
        rows = await loader.matching(request, request.query_params.get("term", ""))
        return JSONResponse({"results": [loader.format(row) for row in rows]})

    def list_query(self, request: Request) -> Select[Any]:
        return self.policy.scope(select(self.model), request, Action.LIST)

    def count_query(self, request: Request) -> Select[Any]:
        stmt = select(func.count()).select_from(self.model)
        return self.policy.scope(stmt, request, Action.LIST)

    async def count(self, request: Request, stmt: Select[Any] | None = None) -> int:
        listed = counted_select(stmt) if stmt is not None else None
        if listed is None:
            return int(await super().count(request, stmt))
        params = request.query_params
        page = self.validate_page_number(params.get("page"), 1)
        size = self.validate_page_number(params.get("pageSize"), self.page_size)
        limit = count_limit(self.exact_count_limit, page, min(size, max(self.page_size_options)))
        async with self.session_maker() as session:
            return await count_rows(session, listed, limit)

    def search_query(self, stmt: Select[Any], term: str) -> Select[Any]:
        if "\x00" in term:  # PostgreSQL cannot compare text with NUL in it
            raise HTTPException(400, "The search must not contain NUL characters.")
        condition = self._search.search(term)
        return stmt if condition is None else stmt.where(condition)

    def sort_query(self, stmt: Select[Any], request: Request) -> Select[Any]:
        # The primary key breaks ties, so pages never repeat or skip rows; in the direction
        # of the last sort field, so one index on (field, key) serves either direction.
        descending = self.list_sort(request)[-1][1]
        pk = self.resource.pk
        return super().sort_query(stmt, request).order_by(pk.desc() if descending else pk)

    def form_details_query(self, request: Request) -> Select[Any]:
        # Details, and the row sqladmin checks before an edit or a delete.
        self.parse_pk(request.path_params["pk"])
        return self.policy.scope(super().form_details_query(request), request, Action.RETRIEVE)

    def form_edit_query(self, request: Request) -> Select[Any]:
        key = self.parse_pk(request.path_params["pk"])
        stmt: Select[Any] = select(self.model).where(self.resource.pk == key)
        stmt = stmt.options(*(selectinload(getattr(self.model, p.key)) for p in self.form_links))
        return self.policy.scope(stmt, request, Action.UPDATE)

    async def get_object_for_delete(self, value: Any) -> Any:
        stmt: Select[Any] = select(self.model).where(self.resource.pk == self.parse_pk(str(value)))
        stmt = self.policy.scope(stmt, current_request(), Action.DELETE)
        async with self.session_maker(expire_on_commit=False) as session:
            return (await session.execute(stmt)).scalars().first()

    async def export_data(
        self, data: Sequence[Any], export_type: str = "csv", request: Request | None = None
    ) -> StreamingResponse:
        # Every format reads the rows' values through `ExportRow`: no cell starts a formula.
        null = "" if export_type == "csv" else None
        rows = [ExportRow(row, null=null) for row in data]
        return await super().export_data(rows, export_type, request)

    # Row checks: a row out of scope is 404, as in the API.

    @staticmethod
    def _found(model: Any) -> None:
        if model is None:
            raise HTTPException(404)

    async def check_can_view_details(self, request: Request, model: Any) -> bool:
        self._found(model)
        return await super().check_can_view_details(request, model)

    async def check_can_edit(self, request: Request, model: Any) -> bool:
        self._found(model)
        return await super().check_can_edit(request, model)

    async def check_can_delete(self, request: Request, model: Any) -> bool:
        self._found(model)
        return await super().check_can_delete(request, model)

    # Saving: through the write pipeline (`writes.py`), errors as form messages.

    async def _check_choices(
        self, request: Request, data: dict[str, Any], model: Any, is_created: bool
    ) -> None:
        """Turn the lookups' form values into keys, each one a row the user may read
        (many-to-many keys are checked by the write pipeline, as on every channel)."""
        for name, loader in self.lookups.items():
            if name not in data:
                continue
            label = column_labels(self).get(name, name)
            if name in self.resource.columns:  # a foreign key
                raw = data[name]
                key = None if raw in (None, "", "__None") else loader.parse(raw)
                if raw not in (None, "", "__None") and key is None:
                    raise FormError(f"{label}: not a valid choice.")
                data[name] = key
                unchanged = not is_created and key == getattr(model, name)
                chosen = set() if unchanged else {key}
            else:  # a many-to-many link: the write pipeline checks the keys, as for the API
                keys = {loader.parse(raw) for raw in data[name] or ()}
                if None in keys:
                    raise FormError(f"{label}: not a valid choice.")
                data[name] = sorted(keys)
                continue
            chosen.discard(None)
            if chosen and len(await loader.visible(request, chosen)) != len(chosen):
                raise FormError(f"{label}: not a valid choice.")

    async def on_model_change(
        self, data: dict[str, Any], model: Any, is_created: bool, request: Request
    ) -> None:
        """Before a save: blank write-only fields keep their value on edit, and the rows
        chosen in lookups become keys, each one a row the user may read. Validation and
        the resource's hooks run in the write pipeline."""
        if not is_created:
            for key in self.get_optional_on_edit():
                if not data.get(key):
                    data.pop(key, None)
        await self._check_choices(request, data, model, is_created)

    async def insert_model(self, request: Request, data: dict[str, Any]) -> Any:
        return await self.writer.insert(request, data)

    async def update_model(self, request: Request, pk: str, data: dict[str, Any]) -> Any:
        return await self.writer.update(request, pk, data)

    async def delete_model(self, request: Request, pk: Any) -> None:
        obj = await self.get_object_for_delete(pk)
        self._found(obj)
        if not self.policy.has_object_permission(request, Action.DELETE, obj):
            raise HTTPException(403)
        await self.on_model_delete(obj, request)
        await self.writer.delete(request, pk, obj)

    # History.

    def history_url(self, request: Request, pk: Any) -> str:
        return str(request.url_for(f"admin:view-{self.identity}-object_history", pk=str(pk)))

    async def details_context(self, request: Request) -> dict[str, Any]:
        model = await self.get_object_for_details(request)
        await self._name_references(request, [model])
        if self.admin_action_items:
            await refuse_on_row(self, request, self.parse_pk(request.path_params["pk"]))
        return {"history_url": self.history_url(request, request.path_params["pk"])}

    async def edit_context(self, request: Request) -> dict[str, Any]:
        return {"history_url": self.history_url(request, request.path_params["pk"])}

    @expose("/history/{pk:path}")
    async def object_history(self, request: Request) -> Response:
        """The History page of one row: every change recorded for it, newest first."""
        from crudkit.contrib.admin.history_view import entries_of, link_names

        model = await self.get_object_for_details(request)
        if not await self.check_can_view_details(request, model):
            raise HTTPException(403)
        object_id = str(self.parse_pk(request.path_params["pk"]))
        async with self.session_maker() as session:
            entries = await entries_of(session, self.resource, object_id, HISTORY_LIMIT)
        context = {
            "model_view": self,
            "obj": model,
            "entries": entries,
            "link_names": await link_names(self, request, (entry.changes for entry in entries)),
            "title": f"History: {model}",
            "details_url": request.url_for("admin:details", identity=self.identity, pk=object_id),
        }
        return await self.templates.TemplateResponse(request, HISTORY_TEMPLATE, context)


def view_for(resource: Resource, *, base: type[ResourceView] = ResourceView) -> type[ResourceView]:
    """A subclass of `base` serving `resource`."""
    attrs = view_attributes(resource)
    view: type[ResourceView] = types.new_class(
        f"{resource.model.__name__}Admin",
        (base,),
        {"model": resource.model},
        lambda namespace: namespace.update(attrs),
    )
    view.form_base_class = types.new_class(
        f"{resource.model.__name__}AdminForm",
        (AdminForm,),
        {},
        lambda namespace: namespace.update(view_class=view),
    )
    return view


def identities(views: Sequence[type[ResourceView]]) -> dict[str, type[ResourceView]]:
    """Views by URL identity; two models with one class name would share a URL."""
    found: dict[str, type[ResourceView]] = {}
    for view in views:
        if view.identity in found:
            other = found[view.identity].model
            raise ImproperlyConfigured(
                f"the admin would serve {view.model.__module__}.{view.model.__name__} and "
                f"{other.__module__}.{other.__name__} at the same URL /{view.identity}/; "
                "set `admin = False` on one of their resources"
            )
        found[view.identity] = view
    return found
