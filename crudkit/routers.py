"""A `Resource` served as five REST endpoints on an `APIRouter`.

    GET    /products          list: filters, search, ordering, offset or cursor pages
    POST   /products          create -> 201, Location, ETag
    GET    /products/{id}     retrieve -> ETag; If-None-Match -> 304
    PATCH  /products/{id}     update; stale If-Match -> 412
    DELETE /products/{id}     delete -> 204; stale If-Match -> 412

Every endpoint asks the resource's policy first (`has_permission`), reads rows only
through the policy's query filter (what the caller may not see is 404), and asks
`has_object_permission` on the row before changing it. Bodies are validated once
by the generated schemas; rows are serialised straight to JSON bytes.
"""

from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from pydantic_core import to_json
from sqlalchemy import ColumnElement, Integer, Row, Select, bindparam
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from crudkit.apps import Apps
from crudkit.authentication import UserLike, resolve_user
from crudkit.conf import Settings
from crudkit.db import Database
from crudkit.events import WriteEvent
from crudkit.exceptions import (
    Conflict,
    HTTPError,
    Invalid,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    translate_db_error,
)
from crudkit.expansion import Expansion, parse_expand
from crudkit.filters import FilterSet, order_by_clauses
from crudkit.openapi import ResourceDocs, error_responses
from crudkit.pagination import CursorCodec, Page, keyset_condition
from crudkit.permissions import Action, BasePermission, has_model_permission
from crudkit.queries import ResourceQueries, etag_matches, row_etag
from crudkit.requests import (
    PathId,
    list_params_model,
    parse_body,
    parse_expand_only,
    parse_query,
)
from crudkit.resources import Resource


def json_response(content: Any, status_code: int = 200, **headers: str) -> Response:
    return Response(to_json(content), status_code, headers, media_type="application/json")


class ResourceRoute(APIRoute):
    """A generated endpoint: described to OpenAPI by FastAPI, served without it.

    The endpoint takes the bare request and returns a response, so FastAPI's request
    handler (dependency solving, exit stacks, response validation) would only add
    cost. Errors propagate to the app's exception handlers, as from any route.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        super().__init__(path, endpoint, **options)
        self.app = _serve(endpoint)


_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_PAGE_LIMIT = bindparam("crudkit_limit", type_=Integer())
_PAGE_OFFSET = bindparam("crudkit_offset", type_=Integer())


def _serve(endpoint: Callable[[Request], Awaitable[Response]]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        db: Database = request.app.state.db
        if scope["method"] in _WITH_BODY:
            await request.body()  # from the client before a pooled connection is held
        # The caller's lookup and the endpoint's statements share one pooled
        # connection, back in the pool before the response is sent.
        async with db.request_connection():
            response = await endpoint(request)
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
            resource.columns,
            list(resource.filter_fields),
            list(resource.search_fields),
            list(resource.ordering_fields),
        )
        self.expansions: dict[str, Expansion] = {}
        self.pk_key = resource.pk_info.key
        self._path_id = PathId(resource.pk_info)
        self._list_params = list_params_model(settings.page_size_default, settings.page_size_max)
        self._item_path: str | None = None
        self._plain_pages: dict[tuple[tuple[str, bool], ...], Select[Any]] = {}

    # Policy.

    @contextmanager
    def serving(self, request: Request) -> Iterator[BasePermission]:
        """Point `request.state.resource` at this resource while its policy is asked."""
        previous = getattr(request.state, "resource", None)
        request.state.resource = self.resource
        try:
            yield self.resource.get_permissions()
        finally:
            request.state.resource = previous

    async def authorize(self, request: Request, action: Action) -> ColumnElement[bool] | None:
        """Authenticate the caller, then `check` them: refusals come before any parsing."""
        await resolve_user(request)
        return self.check(request, action)

    def check(self, request: Request, action: Action) -> ColumnElement[bool] | None:
        """Refuse the request (401/403) or return the caller's row filter for `action`."""
        request.state.resource = self.resource
        policy = self.resource.get_permissions()
        if not policy.has_permission(request, action):
            user: UserLike = request.scope["user"]
            if not user.is_authenticated:
                raise NotAuthenticated()
            raise PermissionDenied()
        return policy.get_query_filter(request, action)

    def can_read(self, request: Request) -> bool:
        with self.serving(request) as policy:
            return policy.has_permission(request, Action.LIST)

    def read_filter(self, request: Request) -> ColumnElement[bool] | None:
        with self.serving(request) as policy:
            return policy.get_query_filter(request, Action.LIST)

    def check_object(self, request: Request, action: Action, row: Row[Any]) -> None:
        if not self.resource.get_permissions().has_object_permission(request, action, row):
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

    async def notify(
        self,
        request: Request,
        conn: AsyncConnection,
        action: Action,
        before: Row[Any] | None,
        after: Row[Any] | None,
    ) -> None:
        """Tell installed apps (the history) about a write, inside its transaction."""
        apps: Apps = request.app.state.apps
        if not apps.write_hooks:
            return
        row = after if after is not None else before
        assert row is not None
        await apps.notify_write(
            conn,
            WriteEvent(
                resource=self.resource,
                action=action,
                channel="api",
                user=request.scope.get("user"),
                request_id=getattr(request.state, "request_id", None),
                object_id=row._mapping[self.pk_key],
                before=None if before is None else dict(before._mapping),
                after=None if after is None else dict(after._mapping),
            ),
        )

    def check_owner_change(
        self, request: Request, row: Row[Any], values: Mapping[str, Any]
    ) -> None:
        """Only holders of the change permission give a row to another owner."""
        owner = self.resource.owner_field
        if owner is None or owner not in values or values[owner] == row._mapping[owner]:
            return
        with self.serving(request):
            if not has_model_permission(request, Action.UPDATE):
                raise PermissionDenied(
                    f"Changing {owner} needs the "
                    f"{self.resource.get_permission_codename('change')} permission."
                )

    def check_if_match(self, request: Request, row: Row[Any]) -> bool:
        """Refuse a stale `If-Match` (412); whether the write must be compare-and-swap."""
        header = request.headers.get("if-match")
        if header is None:
            return False
        if not etag_matches(header, row_etag(row)):
            raise PreconditionFailed()
        return True

    async def write_error(
        self, request: Request, exc: DBAPIError, values: Mapping[str, Any]
    ) -> HTTPError:
        """The HTTP error a failed write means, naming the field when the database did not."""
        error = translate_db_error(exc, self.resource.table)
        if isinstance(error, Invalid) and error.detail[0]["type"] == "foreign_key":
            loc = error.detail[0]["loc"]
            if loc[-1] not in self.resource.columns:
                async with self.db(request).read() as conn:
                    field = await self.queries.missing_reference(conn, values)
                if field is not None:
                    error = Invalid.single(
                        ["body", field],
                        f"{field} refers to a row that does not exist.",
                        "foreign_key",
                    )
        return error

    def _reject_unknown_params(self, request: Request, allowed: set[str]) -> None:
        unknown = [name for name in request.query_params if name not in allowed]
        if unknown:
            names = ", ".join(sorted(allowed))
            raise Invalid(
                [
                    {
                        "loc": ["query", name],
                        "msg": f"unknown query parameter {name!r}; allowed: {names}",
                        "type": "extra_forbidden",
                    }
                    for name in unknown
                ]
            )

    def _page(
        self, stmt: Select[Any], order: list[tuple[str, bool]], *, offset: bool
    ) -> Select[Any]:
        """`stmt` ordered, with limit (and offset) bound: `_PAGE_LIMIT`, `_PAGE_OFFSET`."""
        page = stmt.order_by(*order_by_clauses(self.resource.columns, order)).limit(_PAGE_LIMIT)
        return page.offset(_PAGE_OFFSET) if offset else page

    def _plain_page(self, order: list[tuple[str, bool]]) -> Select[Any]:
        """The page of a list without filters or scope, built once per ordering: the
        statement and its cache key are then reused."""
        key = tuple(order)
        page = self._plain_pages.get(key)
        if page is None:
            page = self._page(self.queries.select(None), order, offset=True)
            if len(self._plain_pages) >= 64:
                self._plain_pages.clear()  # orderings are few; a bound all the same
            self._plain_pages[key] = page
        return page

    @property
    def allowed_params(self) -> set[str]:
        """Query parameters of the list endpoint."""
        standard = {"limit", "offset", "cursor", "ordering"}
        if self.filters.search_columns:
            standard.add("search")
        if self.expansions:
            standard.add("expand")
        return standard | set(self.filters.params)

    @property
    def retrieve_params(self) -> set[str]:
        return {"expand"} if self.expansions else set()

    # Endpoints.

    async def list(self, request: Request) -> Response:
        scope = await self.authorize(request, Action.LIST)
        self._reject_unknown_params(request, self.allowed_params)
        params = parse_query(self._list_params, request)
        limit, offset, cursor = params.limit, params.offset, params.cursor
        ordering, search, expand = params.ordering, params.search, params.expand
        if cursor is not None and "offset" in request.query_params:
            raise Invalid.single(["query", "cursor"], "use either cursor or offset, not both")
        conditions = self.filters.conditions(request.query_params)
        if search and (matched := self.filters.search(search)) is not None:
            conditions.append(matched)
        order = self.filters.ordering(ordering, list(self.resource.default_ordering))
        if all(field != self.pk_key for field, _ in order):
            order.append((self.pk_key, False))
        expansions = parse_expand(expand, self.expansions)
        after = self.codec.decode(cursor, order, self.resource.columns) if cursor else None

        base = self.queries.select(scope).where(*conditions)
        if scope is None and not conditions and after is None:
            page = self._plain_page(order)
        elif after is None:
            page = self._page(base, order, offset=bool(offset))
        else:
            keyset = keyset_condition(self.resource.columns, order, after)
            page = self._page(base.where(keyset), order, offset=False)
        page_params = {_PAGE_LIMIT.key: limit + 1, _PAGE_OFFSET.key: offset}
        async with self.db(request).reader() as reader:
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
        items = []
        for row in rows:
            item = self.queries.public(row)
            for expansion, related in loaded:
                expansion.attach(item, row, related)
            items.append(item)
        next_cursor = None
        if more:
            last = rows[-1]._mapping
            next_cursor = self.codec.encode(order, [last[field] for field, _ in order])
        return json_response({"items": items, "total": total, "next_cursor": next_cursor})

    async def retrieve(self, request: Request) -> Response:
        scope = await self.authorize(request, Action.RETRIEVE)
        pk = self._path_id(request)
        self._reject_unknown_params(request, self.retrieve_params)
        expansions = parse_expand(parse_expand_only(request), self.expansions)
        async with self.db(request).reader() as reader:
            row = await self.queries.get(reader, pk, scope)
            if row is None:
                raise NotFound()
            self.check_object(request, Action.RETRIEVE, row)
            loaded = [(e, await e.load(reader, request, [row])) for e in expansions]
        etag = row_etag(row)
        if_none_match = request.headers.get("if-none-match")
        if if_none_match is not None and etag_matches(if_none_match, etag):
            return Response(status_code=304, headers={"ETag": etag})
        item = self.queries.public(row)
        for expansion, related in loaded:
            expansion.attach(item, row, related)
        return json_response(item, ETag=etag)

    async def create(self, request: Request) -> Response:
        await self.authorize(request, Action.CREATE)
        self._reject_unknown_params(request, set())
        body = await parse_body(self.resource.create_schema, request)
        values: dict[str, Any] = body.model_dump(exclude_unset=True)
        resource = self.resource
        if resource.owner_field is not None:
            values[resource.owner_field] = request.scope["user"].id
        values = await resource.before_create(request, values)
        try:
            async with self.db(request).writer() as writer:
                row = await self.queries.insert(writer, values)
                await self.notify(request, writer.connection, Action.CREATE, None, row)
        except DBAPIError as exc:
            raise await self.write_error(request, exc, values) from exc
        return json_response(
            self.queries.public(row),
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
        try:
            async with self.db(request).writer() as writer:
                row = await self.queries.get(writer, pk, scope)
                if row is None:
                    raise NotFound()
                self.check_object(request, Action.UPDATE, row)
                self.check_owner_change(request, row, values)
                conditional = self.check_if_match(request, row)
                values = await self.resource.before_update(request, row, values)
                if values:
                    updated = await self.queries.update(
                        writer, row, values, if_unchanged=conditional
                    )
                    if updated is None:
                        raise PreconditionFailed() if conditional else NotFound()
                    await self.notify(request, writer.connection, Action.UPDATE, row, updated)
                    row = updated
        except DBAPIError as exc:
            raise await self.write_error(request, exc, values) from exc
        return json_response(self.queries.public(row), ETag=row_etag(row))

    async def delete(self, request: Request) -> Response:
        scope = await self.authorize(request, Action.DELETE)
        pk = self._path_id(request)
        self._reject_unknown_params(request, set())
        try:
            async with self.db(request).writer() as writer:
                row = await self.queries.get(writer, pk, scope)
                if row is None:
                    raise NotFound()
                self.check_object(request, Action.DELETE, row)
                conditional = self.check_if_match(request, row)
                await self.resource.before_delete(request, row)
                if not await self.queries.delete(writer, row, if_unchanged=conditional):
                    raise PreconditionFailed() if conditional else NotFound()
                await self.notify(request, writer.connection, Action.DELETE, row, None)
        except DBAPIError as exc:
            error = translate_db_error(exc, self.resource.table)
            if isinstance(error, Invalid) and error.detail[0]["type"] == "foreign_key":
                error = Conflict("Other rows still refer to this one; delete or change them first.")
            raise error from exc
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
        docs = ResourceDocs(self)
        routes: list[tuple[str, Callable[..., Any], str, str, dict[str, Any]]] = [
            (base, self.list, "GET", f"List {resource.name_plural}", {
                "response_model": Page[out],  # type: ignore[valid-type]
                "responses": error_responses(401, 403, 422),
                "openapi_extra": docs.list_operation(),
            }),
            (base, self.create, "POST", f"Create a {resource.name}", {
                "status_code": 201,
                "response_model": out,
                "responses": error_responses(401, 403, 409, 413, 422, created=True),
                "openapi_extra": docs.write_operation(resource.create_schema),
            }),
            (one, self.retrieve, "GET", f"Retrieve a {resource.name}", {
                "response_model": out,
                "responses": error_responses(304, 401, 403, 404, 422, etag=True),
                "openapi_extra": docs.retrieve_operation(),
            }),
            (one, self.update, "PATCH", f"Update a {resource.name}", {
                "response_model": out,
                "responses": error_responses(401, 403, 404, 409, 412, 413, 422, etag=True),
                "openapi_extra": docs.write_operation(resource.update_schema, with_id=True),
            }),
            (one, self.delete, "DELETE", f"Delete a {resource.name}", {
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
                **options,
            )


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
