"""A `Resource` served as five REST endpoints on an `APIRouter`.

    GET    /products          list: filters, search, ordering, offset or cursor pages
    POST   /products          create -> 201, Location, ETag
    GET    /products/{id}     retrieve -> ETag; If-None-Match -> 304
    PATCH  /products/{id}     update; stale If-Match -> 412
    DELETE /products/{id}     delete -> 204; stale If-Match -> 412

Every endpoint asks the resource's policy first (`has_permission`), before the
body is read; reads go through the policy's query filter (what the caller may not
see is 404); writes go through the one write pipeline (`crudkit.writes`), which
checks the row, validates, runs the hooks and records the history. Bodies are
validated once by the generated schemas; rows are serialised straight to JSON bytes.
"""

from collections.abc import Awaitable, Callable, Mapping
from enum import Enum
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from pydantic import create_model
from pydantic_core import to_json
from sqlalchemy import BigInteger, ColumnElement, Integer, Row, Select, bindparam
from starlette.convertors import PathConvertor
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from crudkit._fastapi import EndpointDependencies, RouteTable
from crudkit.authentication import UserLike, resolve_user
from crudkit.conf import Settings
from crudkit.db import Database
from crudkit.exceptions import (
    Invalid,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
)
from crudkit.expansion import Expansion, parse_expand
from crudkit.fieldsets import Fieldset, Fieldsets, project, sparse_schema
from crudkit.filters import FilterSet, order_by_clauses
from crudkit.manytomany import Links, ManyToMany, ManyToManyExpansion, add_link_filters
from crudkit.openapi import ResourceDocs, error_responses, with_article
from crudkit.pagination import CursorCodec, Page, keyset_condition
from crudkit.permissions import Action, can_read, read_filter
from crudkit.queries import ResourceQueries, etag_matches, row_etag
from crudkit.requests import (
    PathId,
    list_params_model,
    parse_body,
    parse_expand_only,
    parse_query,
    repeated_parameters,
    unknown_parameters,
)
from crudkit.resources import Resource
from crudkit.writes import Caller, WritePipeline


def json_response(content: Any, status_code: int = 200, **headers: str) -> Response:
    return Response(to_json(content), status_code, headers, media_type="application/json")


class ResourceRoute(APIRoute):
    """A generated endpoint: described to OpenAPI by FastAPI, served without it.

    The endpoint takes the bare request and returns a response, so FastAPI's request
    handler (body parsing, response validation) would only add cost. Its contract
    holds all the same:

    - Dependencies (the app's, the router's, the resource's) run as FastAPI runs
      them, `app.dependency_overrides` applied, on the routes that declare some;
      and an override of `get_user` gives every generated endpoint its caller.
      A route without either solves nothing (`crudkit._fastapi`).
    - Generated routes are matched before the others (`serve_resources_first`), yet
      a route of the project whose path also matches the request serves it, however
      and whenever it was added: this route then steps aside (no match), so the
      router goes on to it (a 405 if only its method differs). Catch-alls (mounts,
      `{path:path}` routes) above the resource's path, such as a single-page app's
      fallback, come after generated routes, as their authors mean them to.

    Errors propagate to the app's exception handlers, as from any route.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        super().__init__(path, endpoint, **options)
        self.solver = EndpointDependencies(self)
        self.app = _serve(endpoint, self.solver)
        self.router: APIRouter | None = None
        """The router serving this route (set by `add_routes`): its other routes go first."""
        self._literal = self.path_format.split("{", 1)[0]
        self.named = False
        """A list action's fixed path (`/products/stats`): the resource's routes whose
        `{id}` would take it step aside, so another method there is a 405."""
        self._table: RouteTable | None = None
        self._others: list[Any] = []
        self._version = -1

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = APIRoute.matches(self, scope)
        if match is Match.NONE or self.router is None or not self._taken(scope):
            return match, child_scope
        return Match.NONE, {}

    def _taken(self, scope: Scope) -> bool:
        """Whether another route of the router matches the request (by path at least)."""
        table = self._table
        if table is None:
            assert self.router is not None
            table = self._table = RouteTable(self.router)
        elif not table.current():
            table.refresh()  # a route was added or a router included: look again
        if self._version != table.version:
            self._others = [
                route for original, route in table.routes if self._may_take(original, route)
            ]
            self._version = table.version
        others = self._others
        return bool(others) and any(route.matches(scope)[0] is not Match.NONE for route in others)

    def _may_take(self, original: BaseRoute, route: Any) -> bool:
        """Whether `route` could match a path of this route and is meant to serve it."""
        if isinstance(original, ResourceRoute) and (self.named or not original.named):
            return False
        path_format = getattr(route, "path_format", None)
        if not isinstance(path_format, str):
            return False  # matched by host (`Host`), not by path
        literal = path_format.split("{", 1)[0]
        # Two paths both match only if one route's literal start begins the other's.
        if not (literal.startswith(self._literal) or self._literal.startswith(literal)):
            return False
        convertors = getattr(route, "param_convertors", {}).values()
        catch_all = any(isinstance(convertor, PathConvertor) for convertor in convertors)
        return not catch_all or len(literal) >= len(self._literal)


_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_PAGE_LIMIT = bindparam("crudkit_limit", type_=Integer())
# Offsets go up to `MAX_OFFSET` (2**62): a bigint, which PostgreSQL's OFFSET takes.
_PAGE_OFFSET = bindparam("crudkit_offset", type_=BigInteger())


def _serve(
    endpoint: Callable[[Request], Awaitable[Response]], dependencies: EndpointDependencies
) -> ASGIApp:
    async def respond(request: Request) -> Response:
        # The caller's lookup and the endpoint's statements share one pooled
        # connection, back in the pool before the response is sent.
        db: Database = request.app.state.db
        async with db.request_connection():
            return await endpoint(request)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        if scope["method"] in _WITH_BODY:
            await request.body()  # from the client before a pooled connection is held
        if dependencies.needed():
            # Dependencies run before the connection is leased: a yield dependency's
            # exit outlives the endpoint, and may hold its own.
            await dependencies.serve(request, respond, send)
            return
        response = await respond(request)
        await response(scope, receive, send)

    return app


class ResourceEndpoints:
    """The endpoints of one resource, and the request-level policy checks they share."""

    def __init__(self, resource: Resource, settings: Settings, codec: CursorCodec) -> None:
        self.resource = resource
        self.settings = settings
        self.codec = codec
        self.queries = ResourceQueries(resource)
        self.filters = FilterSet(
            resource.queryable,
            [field for field in resource.filter_fields if field not in resource.many_to_many],
            list(resource.search_fields),
            list(resource.ordering_fields),
        )
        if resource.many_to_many:
            add_link_filters(self.filters, resource)
        self.expansions: dict[str, Expansion] = {}
        self.fieldsets = Fieldsets(resource, self.queries)
        self.pk_key = resource.pk_info.key
        self._path_id = PathId(resource.pk_info)
        self._list_params = list_params_model(settings.page_size_default, settings.page_size_max)
        self._item_path: str | None = None
        self._dependency_params: frozenset[str] = frozenset()
        self._plain_pages: dict[tuple[tuple[str, bool], ...], Select[Any]] = {}
        self.links: Links | None = None
        """The many-to-many relationships served (None for a resource without any)."""

    # Policy.

    async def authorize(self, request: Request, action: Action) -> ColumnElement[bool] | None:
        """Authenticate the caller, then `check` them: refusals come before any parsing."""
        await resolve_user(request)
        return self.check(request, action)

    def check(self, request: Request, action: Action) -> ColumnElement[bool] | None:
        """Refuse the request (401/403) or return the caller's row filter for `action`."""
        resource = self.resource
        policy = resource.policy
        if not policy.has_permission(request, resource, action):
            user: UserLike = request.scope["user"]
            if not user.is_authenticated:
                raise NotAuthenticated()
            raise PermissionDenied()
        return policy.get_query_filter(request, resource, action)

    def can_read(self, request: Request) -> bool:
        return can_read(request, self.resource)

    def read_filter(self, request: Request) -> ColumnElement[bool] | None:
        return read_filter(request, self.resource)

    def check_object(self, request: Request, action: Action, row: Row[Any]) -> None:
        resource = self.resource
        if not resource.policy.has_object_permission(request, resource, action, row):
            if action.is_read:
                raise NotFound()
            raise PermissionDenied()

    # Helpers.

    @staticmethod
    def db(request: Request) -> Database:
        db: Database = request.app.state.db
        return db

    def location(self, request: Request, row: Row[Any]) -> str:
        pk = row._mapping[self.pk_key]
        if self._item_path is not None:  # what `url_path_for` answers, without the search
            return f"{self._item_path}{pk}"
        path: str = request.app.url_path_for(self.route_name("retrieve"), id=str(pk))
        return path

    def route_name(self, action: str) -> str:
        return f"{self.resource.app_label}.{self.resource.model_name}-{action}"

    def _reject_unknown_params(self, request: Request, allowed: set[str]) -> None:
        if self._dependency_params:
            allowed = allowed | self._dependency_params  # read by the route's dependencies
        params = request.query_params
        unknown = [name for name in params if name not in allowed]
        if unknown:
            raise unknown_parameters(unknown, allowed)
        if len(params.multi_items()) != len(params):  # a name given twice: never drop one
            own = allowed - self._dependency_params
            repeated = [name for name in params if name in own and len(params.getlist(name)) > 1]
            if repeated:
                raise repeated_parameters(repeated)

    def _page(
        self, stmt: Select[Any], order: list[tuple[str, bool]], *, offset: bool
    ) -> Select[Any]:
        """`stmt` ordered, with limit (and offset) bound: `_PAGE_LIMIT`, `_PAGE_OFFSET`."""
        page = stmt.order_by(*order_by_clauses(self.resource.queryable, order)).limit(_PAGE_LIMIT)
        return page.offset(_PAGE_OFFSET) if offset else page

    def _plain_page(
        self, order: list[tuple[str, bool]], fieldset: Fieldset | None = None
    ) -> Select[Any]:
        """The page of a list without filters or scope, built once per ordering (and
        fieldset): the statement and its cache key are then reused."""
        key = tuple(order)
        pages = self._plain_pages if fieldset is None else fieldset.pages
        page = pages.get(key)
        if page is None:
            source = self.queries if fieldset is None else fieldset
            page = self._page(source.select(None), order, offset=True)
            if len(pages) >= 64:
                pages.clear()  # orderings are few; a bound all the same
            pages[key] = page
        return page

    def _order(self, ordering: str | None) -> list[tuple[str, bool]]:
        """The requested ordering, ended by the primary key so that it is total."""
        order = self.filters.ordering(ordering, list(self.resource.default_ordering))
        if all(field != self.pk_key for field, _ in order):
            order.append((self.pk_key, False))
        return order

    @property
    def allowed_params(self) -> set[str]:
        """Query parameters of the list endpoint."""
        standard = {"limit", "offset", "cursor", "ordering", "fields"}
        if self.filters.search_columns:
            standard.add("search")
        if self.expansions:
            standard.add("expand")
        return standard | set(self.filters.params)

    @property
    def retrieve_params(self) -> set[str]:
        return {"expand", "fields"} if self.expansions else {"fields"}

    # Endpoints.

    async def list(self, request: Request) -> Response:
        scope = await self.authorize(request, Action.LIST)
        self._reject_unknown_params(request, self.allowed_params)
        params = parse_query(self._list_params, request)
        limit, offset, cursor = params.limit, params.offset, params.cursor
        query = request.query_params
        filters: Mapping[str, str] = {
            name: raw for name, raw in query.items() if name in self.filters.params
        }
        search = params.search if params.search and params.search.strip() else None
        if cursor is not None and "offset" in query:
            raise Invalid.single(["query", "cursor"], "use either cursor or offset, not both")
        after = None
        if cursor:
            # The cursor carries what the walk lists; what is sent along must agree.
            carried = self.codec.decode(cursor, self.resource.queryable, self.filters.params)
            if "ordering" in query:
                carried.check_ordering(self._order(params.ordering))
            order, after = carried.ordering, carried.values
            filters, search = carried.selection(filters, search, "search" in query)
            if "limit" not in query:
                limit = min(carried.limit, self.settings.page_size_max)
        else:
            order = self._order(params.ordering)
        conditions = self.filters.conditions(filters)
        if search and (matched := self.filters.search(search)) is not None:
            conditions.append(matched)
        expansions = parse_expand(params.expand, self.expansions)
        fieldset = None
        shown = None
        if params.fields is not None:  # a sparse fieldset: only the columns the page needs
            shown = self.fieldsets.parse(params.fields)
            needed = [*(field for field, _ in order), *(e.local_field for e in expansions)]
            if self.links is not None:
                needed += self.links.needed(shown)
            fieldset = self.fieldsets.for_list(shown, needed)

        base = (self.queries if fieldset is None else fieldset).select(scope).where(*conditions)
        if scope is None and not conditions and after is None:
            page = self._plain_page(order, fieldset)
        elif after is None:
            page = self._page(base, order, offset=bool(offset))
        else:
            keyset = keyset_condition(self.resource.queryable, order, after)
            page = self._page(base.where(keyset), order, offset=False)
        page_params = {_PAGE_LIMIT.key: limit + 1, _PAGE_OFFSET.key: offset}
        async with self.db(request).replica_reader() as reader:
            rows = await reader.rows(page, page_params)
            more = len(rows) > limit
            rows = rows[:limit]
            total: int | None = None
            if after is None:
                if not more and (rows or not offset):
                    total = offset + len(rows)  # the page reached the end: no count needed
                else:
                    total = await self.queries.count(reader, base, self.resource.count)
            loaded = [(e, await e.load(reader, request, rows)) for e in expansions]
            linked = []
            if self.links is not None:
                linked = await self.links.load(reader, rows, expansions, shown)
        items = []
        public = self.queries.public if fieldset is None else fieldset.public
        for row in rows:
            item = public(row)
            for expansion, related in loaded:
                expansion.attach(item, row, related)
            items.append(item)
        if linked:
            for item, row in zip(items, rows, strict=True):
                Links.attach(item, row, linked)
        next_cursor = None
        if more:
            last = rows[-1]._mapping
            values = [last[field] for field, _ in order]
            next_cursor = self.codec.encode(order, values, limit, filters, search)
        return json_response({"items": items, "total": total, "next_cursor": next_cursor})

    async def retrieve(self, request: Request) -> Response:
        scope = await self.authorize(request, Action.RETRIEVE)
        pk = self._path_id(request)
        self._reject_unknown_params(request, self.retrieve_params)
        expansions = parse_expand(parse_expand_only(request), self.expansions)
        fields = request.query_params.get("fields")
        shown = None if fields is None else self.fieldsets.parse(fields)
        async with self.db(request).replica_reader() as reader:
            row = await self.queries.read(reader, pk, scope)
            if row is None:
                raise NotFound()
            self.check_object(request, Action.RETRIEVE, row)
            loaded = [(e, await e.load(reader, request, [row])) for e in expansions]
            linked = []
            if self.links is not None:
                linked = await self.links.load(reader, [row], expansions, shown)
        etag = self.queries.etag(row)
        if_none_match = request.headers.get("if-none-match")
        if if_none_match is not None and etag_matches(if_none_match, etag):
            return Response(status_code=304, headers={"ETag": etag})
        item = self.queries.public(row)
        if shown is not None:
            item = project(item, shown)
        for expansion, related in loaded:
            expansion.attach(item, row, related)
        if linked:
            Links.attach(item, row, linked)
        return json_response(item, ETag=etag)

    async def create(self, request: Request) -> Response:
        await self.authorize(request, Action.CREATE)
        self._reject_unknown_params(request, set())
        body = await parse_body(self.resource.create_schema, request)
        values: dict[str, Any] = body.model_dump(exclude_unset=True)
        row = await WritePipeline.of(request.app).create(
            self.resource, values, Caller(request), authorized=True
        )
        return json_response(
            await self._written(request, row),
            201,
            Location=self.location(request, row),
            ETag=row_etag(row),
        )

    async def update(self, request: Request) -> Response:
        scope = await self.authorize(request, Action.UPDATE)
        pk = self._path_id(request)
        self._reject_unknown_params(request, set())
        body = await parse_body(self.resource.update_schema, request)
        values: dict[str, Any] = body.model_dump(exclude_unset=True)
        row = await WritePipeline.of(request.app).update(
            self.resource,
            pk,
            values,
            Caller(request),
            scope=scope,
            if_match=request.headers.get("if-match"),
        )
        return json_response(await self._written(request, row), ETag=row_etag(row))

    async def _written(self, request: Request, row: Row[Any]) -> dict[str, Any]:
        """The item of a row just written, with its many-to-many keys."""
        item = await self.queries.written(self.db(request), row)
        if self.links is not None:
            async with self.db(request).reader() as reader:
                Links.attach(item, row, await self.links.load(reader, [row]))
        return item

    async def delete(self, request: Request) -> Response:
        scope = await self.authorize(request, Action.DELETE)
        pk = self._path_id(request)
        self._reject_unknown_params(request, set())
        await WritePipeline.of(request.app).delete(
            self.resource,
            pk,
            Caller(request),
            scope=scope,
            if_match=request.headers.get("if-match"),
        )
        return Response(status_code=204)

    # The router.

    def add_routes(self, router: APIRouter, prefix: str = "") -> None:
        """Add the five routes to `router`, under `prefix` + the resource's path.

        The endpoints take the bare request (see `crudkit.requests`); their parameters
        and bodies are described to OpenAPI by `crudkit.openapi`.
        """
        resource = self.resource
        tags: list[str | Enum] = [resource.name_plural.capitalize()]
        base = prefix + resource.path_segment
        one = base + "/{id}"
        self._item_path = base + "/"
        out = resource.out_schema
        # Answers to `fields=` hold some keys of `Out` only: documented as either.
        answer: Any = out | sparse_schema(f"{resource.model.__name__}Fields", out)
        page = create_model(f"Page[{out.__name__}]", __base__=Page[answer])
        docs = ResourceDocs(
            resource,
            self.settings,
            self.filters,
            expansions=self.expansions,
            list_params=self.allowed_params,
            fields=self.fieldsets.names,
        )
        routes: list[tuple[str, Callable[..., Any], str, str, dict[str, Any]]] = [
            (base, self.list, "GET", f"List {resource.name_plural}", {
                "response_model": page,
                "responses": error_responses(401, 403, 422),
                "openapi_extra": docs.list_operation(),
            }),
            (base, self.create, "POST", f"Create {with_article(resource.name)}", {
                "status_code": 201,
                "response_model": out,
                "responses": error_responses(401, 403, 409, 413, 422, created=True),
                "openapi_extra": docs.write_operation(resource.create_schema),
            }),
            (one, self.retrieve, "GET", f"Retrieve {with_article(resource.name)}", {
                "response_model": answer,
                "responses": error_responses(304, 401, 403, 404, 422, etag=True),
                "openapi_extra": docs.retrieve_operation(),
            }),
            (one, self.update, "PATCH", f"Update {with_article(resource.name)}", {
                "response_model": out,
                "responses": error_responses(401, 403, 404, 409, 412, 413, 422, etag=True),
                "openapi_extra": docs.write_operation(resource.update_schema, with_id=True),
            }),
            (one, self.delete, "DELETE", f"Delete {with_article(resource.name)}", {
                "status_code": 204,
                "response_class": Response,
                "responses": error_responses(401, 403, 404, 409, 412, 422),
                "openapi_extra": docs.delete_operation(),
            }),
        ]  # fmt: skip
        for path, endpoint, method, summary, options in routes:
            router.add_api_route(
                path,
                endpoint,
                route_class_override=ResourceRoute,
                methods=[method],
                name=self.route_name(endpoint.__name__),
                summary=summary,
                tags=tags,
                dependencies=list(resource.dependencies),
                **options,
            )
            route = router.routes[-1]
            assert isinstance(route, ResourceRoute)
            route.router = router
            declared = route.solver.parameters
            if declared or route.solver.authenticates:
                # What the dependencies read FastAPI documents from the dependant (their
                # parameters, the bearer scheme); the endpoint accepts their query
                # parameters; the hand-written description keeps the rest, so nothing
                # is listed twice.
                self._dependency_params |= {name for where, name in declared if where == "query"}
                extra = dict(route.openapi_extra or {})
                extra["parameters"] = [
                    parameter
                    for parameter in extra.get("parameters", [])
                    if (parameter["in"], parameter["name"]) not in declared
                ]
                if route.solver.authenticates:
                    extra.pop("security", None)
                route.openapi_extra = extra


def link_expansions(endpoints: Mapping[type[Any], ResourceEndpoints]) -> None:
    """Give each resource the relations it may expand: those to other served models."""
    for owner in endpoints.values():
        for key, prop in owner.resource.relations.items():
            target = endpoints.get(prop.mapper.class_)
            if target is None or not target.resource.api:
                continue
            try:
                owner.expansions[key] = Expansion(key, prop, target)
            except ValueError:
                continue
        _link_many_to_many(owner, endpoints)


def _link_many_to_many(
    owner: ResourceEndpoints, endpoints: Mapping[type[Any], ResourceEndpoints]
) -> None:
    """Serve `owner`'s many-to-many relationships; expandable when the other side is served
    (and the resource does not restrict `expand_fields`)."""
    resource = owner.resource
    if not resource.many_to_many:
        return
    links = []
    for key in resource.many_to_many:
        prop = resource.mapper.relationships[key]
        target = endpoints.get(prop.mapper.class_)
        if target is not None and not target.resource.api:
            target = None
        link = ManyToMany(resource, prop, target)
        links.append(link)
        if target is not None and resource.expand_fields is None:
            owner.expansions[key] = ManyToManyExpansion(link, target)
    owner.links = Links(links)
