"""`create_app(settings)`: the app factory.

    app = crudkit.create_app()                      # settings from CRUDKIT_SETTINGS_MODULE / env
    app = crudkit.create_app(Settings(debug=True))  # tests build their own

It loads the installed apps, serves every registered resource under
`api_prefix`, lets apps mount what they bring (the admin), and owns the engine
for the app's lifetime. Nothing is created at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.routing import Match

from crudkit import apidocs, health, hosts, metrics
from crudkit._fastapi import served_routes
from crudkit.actions import add_action_routes
from crudkit.apps import Apps
from crudkit.bulk import add_bulk_route
from crudkit.conf import Settings, load_settings
from crudkit.db import Database
from crudkit.exceptions import (
    HTTPError,
    Invalid,
    ServiceUnavailable,
    limit_errors,
    translate_db_error,
)
from crudkit.logs import configure_logging
from crudkit.middleware import BodySizeLimitMiddleware, InFlight, RequestContextMiddleware
from crudkit.openapi import install_openapi
from crudkit.pagination import CursorCodec
from crudkit.registry import Registry
from crudkit.replicas import ReadYourWritesMiddleware
from crudkit.routers import ResourceEndpoints, ResourceRoute, link_expansions
from crudkit.writes import WritePipeline

logger = logging.getLogger("crudkit")


def create_app(
    settings: Settings | None = None,
    *,
    registry: Registry | None = None,
    apps: Apps | None = None,
    dependencies: Sequence[params.Depends] | None = None,
) -> FastAPI:
    """Build the FastAPI app for `settings` (default: `load_settings()`).

    `dependencies` are the app's, as `FastAPI(dependencies=...)`: they run on every
    route, generated endpoints included.
    """
    settings = settings or (apps.settings if apps else load_settings())
    allowed_hosts = hosts.host_patterns(settings)  # before anything is built: none, no app
    apps = (apps or Apps(settings, registry)).populate()
    configure_logging(settings.debug)
    db = Database(settings)
    in_flight = InFlight()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await db.replicas.start()  # a replica that does not answer is logged now
            yield
        finally:
            # Requests the server gave up on (`shutdown_timeout`) unwind first: their
            # rollbacks still need the pool.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await in_flight.drained()
            try:
                for hook in apps.shutdown_hooks:
                    await hook()
            finally:
                await db.dispose()

    docs = settings.docs_url
    app = FastAPI(
        title="crudkit API",
        version=_version(),
        debug=False,  # tracebacks go to the log, never to the client
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load their scripts from a CDN: `apidocs` serves them
        redoc_url=None,
        openapi_url=apidocs.OPENAPI_URL if docs else None,
        swagger_ui_parameters={"persistAuthorization": True},
        dependencies=dependencies,
    )
    app.state.settings = settings
    app.state.apps = apps
    app.state.db = db
    app.state.writes = writes = WritePipeline(db, apps)
    for resource in apps.resources:
        writes.writes_for(resource).refuse_unsupported()
    app.state.cursor_codec = CursorCodec(settings.secret_key)

    _install_error_handlers(app)
    app.include_router(health.router)
    if docs:
        apidocs.install(app, docs)
    install_api(app, apps, settings)
    for hook in apps.app_hooks:
        hook(app)

    if settings.cors_origins:
        wildcard = settings.cors_origins == ["*"]
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=not wildcard,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "Location", "X-Request-ID", "Retry-After"],
        )
    if settings.metrics_enabled:
        metrics.install(app)
    serve_resources_first(app)
    # Our own limit rather than FastAPI's `max_body_size`, whose 413 is plain text.
    app.add_middleware(BodySizeLimitMiddleware, max_size=settings.max_body_size)
    hosts.install(app, allowed_hosts)  # inside the request context: a 400 is logged, tagged
    app.add_middleware(
        RequestContextMiddleware, https_only=settings.https_only, in_flight=in_flight
    )
    if db.replicas:
        app.add_middleware(ReadYourWritesMiddleware)  # a request's reads after its writes
    # The password flow of /docs points where the authenticating app said tokens come from.
    install_openapi(app, apps.token_url or "")
    return app


def install_api(app: FastAPI, apps: Apps, settings: Settings) -> None:
    """Serve every resource, plus the routers apps contributed, under `api_prefix`."""
    codec = CursorCodec(settings.secret_key)
    endpoints = {
        resource.model: ResourceEndpoints(resource, settings, codec)
        for resource in apps.resources
        if resource.api
    }
    link_expansions(endpoints)
    for extra in apps.routers:
        app.include_router(extra, prefix=settings.api_prefix)
    bodies = []
    for resource_endpoints in endpoints.values():
        # Added to the app's own router: an included router builds every route twice.
        # Actions first: `/<path>/<name>` is theirs, not a retrieve of id `<name>`.
        bodies += add_action_routes(resource_endpoints, app.router, settings.api_prefix)
        bodies += add_bulk_route(resource_endpoints, app.router, settings.api_prefix)
        resource_endpoints.add_routes(app.router, settings.api_prefix)
    app.state.openapi_bodies = bodies  # request bodies of actions and bulk, for `install_openapi`


def serve_resources_first(app: FastAPI) -> None:
    """Match the generated endpoints before every other route.

    They are the hot paths, and the router tries routes in order: passing over an
    included router costs FastAPI tens of microseconds per request. A route of the
    project whose path a request also matches still serves it, whenever it was added:
    the generated route steps aside (`ResourceRoute.matches`).
    """
    routes = app.router.routes
    resource_routes = [route for route in routes if isinstance(route, ResourceRoute)]
    others = [route for route in routes if not isinstance(route, ResourceRoute)]
    routes[:] = [*resource_routes, *others]


def internal_error(request: Request) -> JSONResponse:
    """A 500 naming the request, so a report can be matched with the logged traceback."""
    request_id: str | None = getattr(request.state, "request_id", None)
    headers = {"X-Request-ID": request_id} if request_id else None
    return JSONResponse(
        {"detail": "Internal server error.", "request_id": request_id}, 500, headers=headers
    )


def _install_error_handlers(app: FastAPI) -> None:
    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPError)
        detail = limit_errors(exc.detail) if isinstance(exc, Invalid) else exc.detail
        return JSONResponse({"detail": detail}, exc.status_code, headers=exc.headers)

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, DBAPIError):
            try:
                error = translate_db_error(exc)
            except DBAPIError:
                logger.exception("unexpected database error")
                return internal_error(request)
        else:
            logger.warning("database unavailable: %s", exc)
            error = ServiceUnavailable()
        return await http_error(request, error)

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette answers this one outside every middleware: the request id is the
        # request's own, bound to the log line and the answer here.
        request_id = getattr(request.state, "request_id", None)
        logger.exception("unhandled error", exc_info=exc, extra={"request_id": request_id})
        return internal_error(request)

    async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
        # Starlette answers with the methods of the first route matching the path only;
        # list every method the path accepts.
        methods: set[str] = set()
        for _, route in served_routes(request.app.router):  # included routers' too
            # A generated route steps aside (no match) for a project route of the path.
            if route.matches(request.scope)[0] is not Match.NONE:
                methods |= getattr(route, "methods", None) or set()
        return JSONResponse(
            {"detail": "Method Not Allowed"},
            405,
            headers={"Allow": ", ".join(sorted(methods))},
        )

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        # FastAPI's shape without echoing `input`: it may hold a password, and a NaN or
        # a lone surrogate in it could not even be rendered as JSON.
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"detail": limit_errors(exc.errors())}, 422)

    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(405, method_not_allowed)
    app.add_exception_handler(HTTPError, http_error)
    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(PoolTimeout, database_error)
    # A refused, reset or timed-out connection (to the database, or Redis) is a 503.
    app.add_exception_handler(OSError, database_error)
    app.add_exception_handler(TimeoutError, database_error)
    app.add_exception_handler(Exception, server_error)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crudkit")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"
