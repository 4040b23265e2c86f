"""Custom endpoints of a resource, as DRF's `@action`::

    @crudkit.register(Product)
    class ProductResource(crudkit.Resource):
        extra_permissions = [("publish", "Can publish")]

        @crudkit.action(detail=True, methods=["POST"], permission="publish")
        async def publish(self, request, obj, body: PublishIn) -> ProductOut:
            return await crudkit.update(Product, obj.id, {"published": True}, request=request)

        @crudkit.action(detail=False, methods=["GET"], permission="view")
        async def stats(self, request) -> StatsOut: ...

`detail=True` serves `/<path>/{id}/<name>`, `detail=False` serves `/<path>/<name>`.
The caller is authenticated and checked as on generated endpoints (the policy's
`has_permission`, its row scope, then `has_object_permission` on the row, which is
looked up as a retrieve is: out of scope is 404). `permission` names the model
action checked (`view`, `add`, `change`, `delete`) or one of the resource's
`extra_permissions`, which needs that model permission and the read scope.

The method gets the request, the row (detail actions: as hooks get it) and, when
it declares a third parameter typed by a pydantic model, the JSON body parsed by
it (422 at `["body", ...]`). Its return annotation types the answer: a pydantic
model or any type pydantic serialises; the model class itself (or no annotation)
for the resource's `Out`, from a row returned by the write functions; `None` for
a 204. An action other than GET runs in one transaction, which the writes it makes
through the pipeline join: raising after a write leaves nothing written.
Declarations are checked when the app is built: a mistake fails at start
with a message naming the resource.

`admin=True` also offers a detail action in the admin, on one row (its details
page) or on the rows ticked in the list, after the same checks; it takes no body,
as the admin has no form for it.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, TypeAdapter
from sqlalchemy import ColumnElement, Row

from crudkit.authentication import resolve_user
from crudkit.conf import Settings
from crudkit.exceptions import ImproperlyConfigured, NotAuthenticated, NotFound, PermissionDenied
from crudkit.openapi import ResourceDocs, error_responses, with_article
from crudkit.pagination import CursorCodec
from crudkit.permissions import Action, has_model_permission
from crudkit.requests import parse_body
from crudkit.resources import Resource
from crudkit.routers import ResourceEndpoints, ResourceRoute, json_response
from crudkit.writes import WritePipeline

F = TypeVar("F", bound=Callable[..., Any])

_ACTION = "__crudkit_action__"
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_STANDARD = {
    # permission: (action checked by a detail action, by a list-level action)
    "view": (Action.RETRIEVE, Action.LIST),
    "add": (Action.CREATE, Action.CREATE),
    "change": (Action.UPDATE, Action.UPDATE),
    "delete": (Action.DELETE, Action.DELETE),
}
# Paths generated (or reserved) under a resource: an action may not take them.
_RESERVED_DETAIL = frozenset({"history", "revert", "restore"})
_RESERVED_LIST = frozenset({"bulk", "trash"})


@dataclass(frozen=True)
class ActionOptions:
    detail: bool
    methods: tuple[str, ...]
    permission: str
    admin: bool = False


def action(
    *,
    detail: bool,
    methods: Sequence[str] = ("POST",),
    permission: str = "change",
    admin: bool = False,
) -> Callable[[F], F]:
    """Serve an async `Resource` method as an endpoint of the resource (see the module);
    with `admin=True`, also as an action of its admin pages."""
    for option, value in (("detail", detail), ("admin", admin)):
        if not isinstance(value, bool):
            raise ImproperlyConfigured(
                f"@crudkit.action({option}=...) must be True or False, got {value!r}"
            )
    if isinstance(methods, str) or not methods:
        raise ImproperlyConfigured(
            f"@crudkit.action(methods=...) must be a list such as ['POST'], got {methods!r}"
        )
    upper = tuple(dict.fromkeys(str(method).upper() for method in methods))
    if unknown := [method for method in upper if method not in _METHODS]:
        raise ImproperlyConfigured(
            f"@crudkit.action(methods=...): {', '.join(unknown)} not one of "
            f"{', '.join(sorted(_METHODS))}"
        )
    options = ActionOptions(detail, upper, permission, admin)

    def mark(method: F) -> F:
        if not inspect.iscoroutinefunction(method):
            raise ImproperlyConfigured(
                f"@crudkit.action: {getattr(method, '__qualname__', method)!r} must be an "
                "async method"
            )
        setattr(method, _ACTION, options)
        return method

    return mark


class ResourceAction:
    """One `@action` method of a resource, checked, and served as an endpoint."""

    def __init__(self, endpoints: ResourceEndpoints, key: str, options: ActionOptions) -> None:
        resource = endpoints.resource
        label = f"{resource._label()}.{key}"
        self.endpoints = endpoints
        self.key = key
        self.options = options
        self.method: Callable[..., Any] = getattr(resource, key)
        reserved = _RESERVED_DETAIL if options.detail else _RESERVED_LIST
        if key in reserved:
            raise ImproperlyConfigured(
                f"{label}: the action's path collides with the generated route "
                f"{resource.path_segment}{'/{id}' if options.detail else ''}/{key}; rename it"
            )
        extra = {codename for codename, _ in resource.extra_permissions}
        permission = options.permission
        if permission not in _STANDARD and permission not in extra:
            raise ImproperlyConfigured(
                f"{label}: permission={permission!r} is neither view, add, change or delete "
                f"nor one of {resource._label()}.extra_permissions "
                f"({', '.join(sorted(extra)) or 'none'})"
            )
        self.standard: Action | None = (
            _STANDARD[permission][0 if options.detail else 1] if permission in _STANDARD else None
        )
        self.object_action = self.standard or Action.RETRIEVE
        try:
            hints = typing.get_type_hints(self.method)
        except Exception as exc:
            raise ImproperlyConfigured(f"{label}: cannot resolve the annotations: {exc}") from exc
        parameters = list(inspect.signature(self.method).parameters.values())
        fixed = 2 if options.detail else 1
        shape = "(self, request, obj[, body])" if options.detail else "(self, request[, body])"
        if len(parameters) < fixed or len(parameters) > fixed + 1:
            raise ImproperlyConfigured(f"{label}: an action takes {shape}")
        self.body: type[BaseModel] | None = None
        if len(parameters) > fixed:
            hint = hints.get(parameters[fixed].name)
            if not (inspect.isclass(hint) and issubclass(hint, BaseModel)):
                raise ImproperlyConfigured(
                    f"{label}: the body parameter {parameters[fixed].name!r} must be annotated "
                    "with a pydantic model"
                )
            if not set(options.methods) <= _WITH_BODY:
                raise ImproperlyConfigured(
                    f"{label}: a body needs methods among POST, PUT and PATCH"
                )
            self.body = hint
        if options.admin and not options.detail:
            raise ImproperlyConfigured(
                f"{label}: admin=True needs detail=True (the admin runs an action on rows)"
            )
        if options.admin and self.body is not None:
            raise ImproperlyConfigured(
                f"{label}: admin=True takes no body parameter (the admin has no form for it)"
            )
        returns = hints.get("return", resource.model)
        self.no_content = returns is type(None)
        self.as_out = returns is resource.model or returns is resource.out_schema
        self.response_model: Any = resource.out_schema if self.as_out else returns
        self.adapter: TypeAdapter[Any] | None = (
            None if self.no_content or self.as_out else TypeAdapter(returns)
        )

    async def authorize(self, request: Request) -> ColumnElement[bool] | None:
        """The generated endpoints' check for a standard permission; for an extra one,
        an authenticated caller holding it, within the read scope."""
        endpoints = self.endpoints
        if self.standard is not None:
            return await endpoints.authorize(request, self.standard)
        await resolve_user(request)
        if not request.scope["user"].is_authenticated:
            raise NotAuthenticated()
        if not has_model_permission(request, endpoints.resource, self.options.permission):
            raise PermissionDenied()
        return endpoints.check(request, Action.RETRIEVE if self.options.detail else Action.LIST)

    def has_permission(self, request: Request) -> bool:
        """Whether `authorize` lets the request's user in (no I/O: the user is known)."""
        resource = self.endpoints.resource
        policy = resource.policy
        if self.standard is not None:
            return policy.has_permission(request, resource, self.standard)
        return has_model_permission(
            request, resource, self.options.permission
        ) and policy.has_permission(
            request, resource, Action.RETRIEVE if self.options.detail else Action.LIST
        )

    async def get_row(
        self, request: Request, pk: Any, scope: ColumnElement[bool] | None
    ) -> Row[Any]:
        """The row a detail action runs on, looked up as a retrieve is (404 out of
        `scope`), then checked by the policy's `has_object_permission`."""
        endpoints = self.endpoints
        async with endpoints.db(request).reader() as reader:
            row = await endpoints.queries.read(reader, pk, scope)
        if row is None:
            raise NotFound()
        endpoints.check_object(request, self.object_action, row)
        return row

    async def serve(self, request: Request) -> Response:
        endpoints = self.endpoints
        scope = await self.authorize(request)
        arguments: list[Any] = [request]
        if self.options.detail:
            arguments.append(await self.get_row(request, endpoints._path_id(request), scope))
        if self.body is not None:
            arguments.append(await parse_body(self.body, request))
        if request.method in {"GET", "HEAD"}:
            result = await self.method(*arguments)
        else:
            # One transaction for the whole action: writes made through the pipeline
            # join it, so an action that fails after a write leaves nothing written.
            async with WritePipeline.of(request.app).transaction():
                # The result is checked before the commit: one the action cannot
                # answer with fails it too, leaving nothing written.
                result = self.checked(await self.method(*arguments))
        return await self.answer(request, result)

    def checked(self, result: Any) -> Any:
        """`result` checked against the return annotation: a response, or a row for
        the resource's `Out` (read again by `answer`)."""
        if isinstance(result, Response) or self.no_content:
            return result
        if self.adapter is None:
            if not isinstance(result, Row):
                raise TypeError(
                    f"{self.endpoints.resource._label()}.{self.key} must return a row "
                    f"(crudkit.create/update give one), got {type(result).__name__}"
                )
            return result
        value = self.adapter.validate_python(result, from_attributes=True)
        return json_response(self.adapter.dump_python(value, mode="json"))

    async def answer(self, request: Request, result: Any) -> Response:
        result = self.checked(result)
        if isinstance(result, Response):
            return result
        if self.no_content:
            return Response(status_code=204)
        endpoints = self.endpoints
        return json_response(await endpoints.queries.written(endpoints.db(request), result))


def _marked(resource: Resource) -> dict[str, ActionOptions]:
    """The `@action` methods of a resource by name (overridden ones left out)."""
    marked: dict[str, ActionOptions] = {}
    for klass in reversed(type(resource).__mro__):
        for key, value in vars(klass).items():
            options = getattr(value, _ACTION, None)
            if isinstance(options, ActionOptions):
                marked[key] = options
            else:
                marked.pop(key, None)
    return marked


def actions_of(endpoints: ResourceEndpoints) -> list[ResourceAction]:
    """The checked `@action` methods of a resource (overridden ones left out)."""
    marked = _marked(endpoints.resource)
    return [ResourceAction(endpoints, key, options) for key, options in marked.items()]


def admin_actions(resource: Resource, settings: Settings) -> list[ResourceAction]:
    """The checked `@action(admin=True)` methods of a resource, for its admin pages."""
    marked = _marked(resource)
    if not any(options.admin for options in marked.values()):
        return []
    endpoints = ResourceEndpoints(resource, settings, CursorCodec(settings.secret_key))
    return [item for item in actions_of(endpoints) if item.options.admin]


def add_action_routes(
    endpoints: ResourceEndpoints, router: APIRouter, prefix: str = ""
) -> list[type[BaseModel]]:
    """Add the resource's action routes to `router`; the body models OpenAPI must list.

    Added before the generated routes, so `/<path>/<name>` is not taken for an id.
    """
    resource = endpoints.resource
    found = actions_of(endpoints)
    if not found:
        return []
    tags: list[str | Enum] = [resource.name_plural.capitalize()]
    docs = ResourceDocs(
        resource, endpoints.settings, endpoints.filters, expansions=(), list_params=()
    )
    base = prefix + resource.path_segment
    bodies: list[type[BaseModel]] = []
    for item in found:
        options = item.options
        path = f"{base}/{{id}}/{item.key}" if options.detail else f"{base}/{item.key}"
        statuses = [401, 403, *([404] if options.detail else []), 409, 422]
        if item.body is not None:
            bodies.append(item.body)
            statuses.insert(-1, 413)
        for method in options.methods:
            name = item.key if len(options.methods) == 1 else f"{item.key}_{method.lower()}"
            if item.body is not None:
                extra = docs.write_operation(item.body, with_id=options.detail, action=name)
            else:
                extra = {
                    "operationId": docs.operation_id(name),
                    "parameters": [docs.id_parameter] if options.detail else [],
                    "security": docs.security,
                }
            answer: dict[str, Any] = (
                {"status_code": 204, "response_class": Response}
                if item.no_content
                else {"response_model": item.response_model}
            )
            router.add_api_route(
                path,
                item.serve,
                route_class_override=ResourceRoute,
                methods=[method],
                name=endpoints.route_name(name),
                summary=f"{item.key.replace('_', ' ').capitalize()} "
                + (with_article(resource.name) if options.detail else resource.name_plural),
                tags=tags,
                dependencies=list(resource.dependencies),
                responses=error_responses(*statuses),
                openapi_extra=extra,
                **answer,
            )
            route = router.routes[-1]
            assert isinstance(route, ResourceRoute)
            route.router = router
            route.named = not options.detail
            if route.solver.authenticates:
                route.openapi_extra = {
                    k: v for k, v in (route.openapi_extra or {}).items() if k != "security"
                }
    return bodies
