"""What generated endpoints borrow from FastAPI's request handling, in one place.

Generated endpoints are served without FastAPI's request handler (see
`crudkit.routers.ResourceRoute`), yet keep its contract: their dependencies (the
app's, the router's, the resource's) are solved by FastAPI's own
`solve_dependencies`, with `app.dependency_overrides` applied and the exit stacks
its handler sets up; and a route the project adds is found among the app's
routes however it was added (included routers are kept whole by FastAPI).

Both use FastAPI internals that are not public API: they live here alone, and
pyproject caps FastAPI below the next minor release for this module's sake.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant, get_flat_params, solve_dependencies
from fastapi.exceptions import FastAPIError, RequestValidationError
from fastapi.routing import APIRoute, APIRouter
from starlette.routing import BaseRoute
from starlette.types import Send

from crudkit.authentication import ANONYMOUS, UserLike, bearer_scheme, get_user
from crudkit.exceptions import ImproperlyConfigured

# The scope keys FastAPI's `request_response` sets for `solve_dependencies`: yield
# dependencies of scope "request" exit after the response is sent, those of scope
# "function" right after the endpoint returns.
_REQUEST_STACK = "fastapi_inner_astack"
_FUNCTION_STACK = "fastapi_function_astack"
_CALLER = "crudkit_caller"


def _caller(crudkit_caller: Annotated[UserLike, Depends(get_user)]) -> None:
    """Stands for an endpoint taking `CurrentUser`: solving it resolves the caller
    through `get_user`, or through its override."""


class EndpointDependencies:
    """The dependencies FastAPI would solve before a generated endpoint.

    `declared` is decided once, when the route is built; a route without
    dependencies solves nothing unless `app.dependency_overrides` overrides
    `get_user`, the one dependency every generated endpoint stands on.
    """

    def __init__(self, route: APIRoute) -> None:
        if route.body_field is not None:
            raise ImproperlyConfigured(
                f"a dependency of {route.path} reads the request body; generated endpoints "
                "parse their own bodies (use Header, Query or the Request instead)"
            )
        self.declared = bool(route.dependencies)
        self._dependant = route.dependant
        self._provider: Any = route.dependency_overrides_provider
        self._path = route.path_format
        self._with_caller: Dependant | None = None
        self.parameters: list[tuple[str, str]] = [
            (field.field_info.in_.value, field.alias)  # type: ignore[attr-defined]
            for field in get_flat_params(route.dependant)
        ]
        """(location, name) of the parameters the dependencies read, as OpenAPI shows them."""
        self.authenticates = _uses(route.dependant, bearer_scheme)
        """Whether a dependency reads the bearer token: OpenAPI then shows its security."""

    def needed(self) -> bool:
        """Whether this request solves dependencies: declared, or `get_user` overridden."""
        if self.declared:
            return True
        overrides = self._overrides()
        return overrides is not None and get_user in overrides

    def _overrides(self) -> dict[Any, Any] | None:
        """`app.dependency_overrides`, or None when there are none."""
        provider = self._provider
        overrides: dict[Any, Any] | None = getattr(provider, "dependency_overrides", None)
        return overrides or None

    def _dependant_for(self, overrides: dict[Any, Any] | None) -> Dependant:
        if overrides is None or get_user not in overrides:
            return self._dependant
        if self._with_caller is None:
            # The route's dependencies first, then the caller, as FastAPI orders a
            # route's `dependencies` before its endpoint's parameters.
            dependant = get_dependant(path=self._path, call=_caller)
            dependant.dependencies[:0] = self._dependant.dependencies
            self._with_caller = dependant
        return self._with_caller

    async def serve(
        self,
        request: Request,
        respond: Callable[[Request], Awaitable[Response]],
        send: Send,
    ) -> None:
        """Solve the dependencies, call `respond`, send its response: what FastAPI's
        `request_response` and request handler do around an endpoint."""
        scope = request.scope
        dependant = self._dependant_for(self._overrides())
        sent = False
        async with AsyncExitStack() as request_stack:
            scope[_REQUEST_STACK] = request_stack
            async with AsyncExitStack() as function_stack:
                scope[_FUNCTION_STACK] = function_stack
                solved = await solve_dependencies(
                    request=request,
                    dependant=dependant,
                    dependency_overrides_provider=self._provider,
                    async_exit_stack=request_stack,
                    embed_body_fields=False,
                )
                if solved.errors:
                    raise RequestValidationError(solved.errors)
                if _CALLER in solved.values:
                    user = solved.values[_CALLER]
                    # `resolve_user` answers from here: the endpoints see this caller.
                    scope["user"] = ANONYMOUS if user is None else user
                response = await respond(request)
            if response.background is None:
                response.background = solved.background_tasks
            await response(scope, request.receive, send)
            sent = True
        if not sent:
            raise FastAPIError(
                "Response not awaited: a dependency with yield caught the endpoint's "
                "exception without raising it again."
            )


def _uses(dependant: Dependant, call: Any) -> bool:
    return any(sub.call is call or _uses(sub, call) for sub in dependant.dependencies)


def _router_of(route: BaseRoute) -> APIRouter | None:
    """The router an included-router entry stands for (FastAPI keeps it whole)."""
    router = getattr(route, "original_router", None)
    return router if isinstance(router, APIRouter) else None


def _served(route: BaseRoute) -> Iterator[tuple[BaseRoute, Any]]:
    """(original route, what matches a request for it) for `route`, included routers
    flattened as FastAPI matches them: their routes under the inclusion's prefix."""
    contexts = getattr(route, "effective_route_contexts", None)
    if contexts is None:
        yield route, route
        return
    for context in contexts():
        yield context.original_route, context.starlette_route or context


def served_routes(router: APIRouter) -> list[tuple[BaseRoute, Any]]:
    """(original route, what matches a request for it) for every route of `router`."""
    return [served for route in router.routes for served in _served(route)]


class RouteTable:
    """Every route a router serves, included routers flattened, and a cheap test of
    whether any route list changed since (a route added or a router included later).

    `version` counts the refreshes, so users of `routes` know when to look again.
    """

    def __init__(self, router: APIRouter) -> None:
        self.router = router
        self.version = 0
        self.routes: list[tuple[BaseRoute, Any]] = []
        self._watched: list[tuple[APIRouter, int, BaseRoute | None]] = []
        self.refresh()

    def refresh(self) -> None:
        watched: list[tuple[APIRouter, int, BaseRoute | None]] = []
        seen: set[int] = set()

        def watch(router: APIRouter) -> None:
            if id(router) in seen:
                return
            seen.add(id(router))
            listed = router.routes
            watched.append((router, len(listed), listed[-1] if listed else None))
            for route in listed:
                included = _router_of(route)
                if included is not None:
                    watch(included)

        watch(self.router)
        self.routes, self._watched = served_routes(self.router), watched
        self.version += 1

    def current(self) -> bool:
        """Whether no route list changed (by length or last route) since `refresh`."""
        for router, length, last in self._watched:
            listed = router.routes
            if len(listed) != length or (length and listed[-1] is not last):
                return False
        return True
