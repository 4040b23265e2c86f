"""`create_app(settings)`: the app factory.

    app = crudkit.create_app()                      # settings from CRUDKIT_SETTINGS_MODULE / env
    app = crudkit.create_app(Settings(debug=True))  # tests build their own

It loads the installed apps, serves every registered resource under
`api_prefix`, lets apps mount what they bring (the admin), and owns the engine
for the app's lifetime. Nothing is created at import time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from crudkit.apps import Apps
from crudkit.conf import Settings, load_settings
from crudkit.db import Database
from crudkit.exceptions import HTTPError, ServiceUnavailable, translate_db_error
from crudkit.logs import configure_logging
from crudkit.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from crudkit.openapi import install_openapi
from crudkit.pagination import CursorCodec
from crudkit.registry import Registry
from crudkit.routers import ResourceEndpoints, link_expansions

logger = logging.getLogger("crudkit")

HEALTH_TIMEOUT = 1.0


def create_app(
    settings: Settings | None = None,
    *,
    registry: Registry | None = None,
    apps: Apps | None = None,
) -> FastAPI:
    """Build the FastAPI app for `settings` (default: `load_settings()`)."""
    settings = settings or (apps.settings if apps else load_settings())
    apps = (apps or Apps(settings, registry)).populate()
    configure_logging(settings.debug)
    db = Database(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for hook in apps.shutdown_hooks:
                await hook()
            await db.dispose()

    docs = settings.docs_enabled
    app = FastAPI(
        title="crudkit API",
        version=_version(),
        debug=False,  # tracebacks go to the log, never to the client
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        swagger_ui_parameters={"persistAuthorization": True},
    )
    app.state.settings = settings
    app.state.apps = apps
    app.state.db = db
    app.state.cursor_codec = CursorCodec(settings.secret_key)

    _install_error_handlers(app)
    app.include_router(_health_router())
    app.include_router(build_api_router(apps, settings), prefix=settings.api_prefix)
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
    app.add_middleware(BodySizeLimitMiddleware, max_size=settings.max_body_size)
    app.add_middleware(
        RequestContextMiddleware, admin_path=settings.admin_path, https_only=settings.https_only
    )
    install_openapi(app, f"{settings.api_prefix}/auth/token")
    return app


def build_api_router(apps: Apps, settings: Settings) -> APIRouter:
    """Every served resource's routes, plus the routers apps contributed."""
    router = APIRouter()
    codec = CursorCodec(settings.secret_key)
    endpoints = {
        resource.model: ResourceEndpoints(resource, settings, codec)
        for resource in apps.resources
        if resource.api
    }
    link_expansions(endpoints)
    for extra in apps.routers:
        router.include_router(extra)
    for resource_endpoints in endpoints.values():
        router.include_router(resource_endpoints.build_router())
    return router


def _health_router() -> APIRouter:
    router = APIRouter(tags=["Operations"])

    @router.get(
        "/healthz",
        summary="Liveness: the database answers",
        responses={503: {"description": "The database is unreachable."}},
    )
    async def healthz(request: Request) -> JSONResponse:
        db: Database = request.app.state.db
        try:
            await asyncio.wait_for(db.ping(), HEALTH_TIMEOUT)
        except (TimeoutError, OSError, DBAPIError, PoolTimeout) as exc:
            logger.warning("health check failed: %s", exc)
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    return router


def _install_error_handlers(app: FastAPI) -> None:
    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPError)
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, DBAPIError):
            try:
                error = translate_db_error(exc)
            except DBAPIError:
                logger.exception("unexpected database error")
                return JSONResponse({"detail": "Internal server error."}, 500)
        else:
            logger.warning("database unavailable: %s", exc)
            error = ServiceUnavailable()
        return await http_error(request, error)

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return JSONResponse({"detail": "Internal server error."}, 500)

    app.add_exception_handler(HTTPError, http_error)
    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(PoolTimeout, database_error)
    app.add_exception_handler(ConnectionError, database_error)
    app.add_exception_handler(Exception, server_error)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crudkit")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"
