"""Health endpoints for load balancers and orchestrators.

    GET /healthz   liveness: the database answers `SELECT 1` (503 otherwise, within 1 s)
    GET /readyz    readiness: the database answers, every migration is applied, and each
                   probe apps registered (Redis, when configured) passes

Both answer `{"status": "ok"}` or 503; `/readyz` names each check.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from crudkit.apps import Apps
from crudkit.db import Database

logger = logging.getLogger("crudkit")

TIMEOUT = 1.0
"""Seconds a check may take before it counts as failed."""

UNREACHABLE = (TimeoutError, OSError, DBAPIError, PoolTimeout)

router = APIRouter(tags=["Operations"])


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


@router.get(
    "/healthz",
    summary="Liveness: the database answers",
    responses={503: {"description": "The database is unreachable."}},
)
async def healthz(request: Request) -> JSONResponse:
    try:
        await asyncio.wait_for(_db(request).ping(), TIMEOUT)
    except UNREACHABLE as exc:
        logger.warning("health check failed: %s", exc)
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    summary="Readiness: database, migrations and backing services",
    responses={503: {"description": "A check failed; the body names it."}},
)
async def readyz(request: Request) -> JSONResponse:
    app: FastAPI = request.app
    checks: dict[str, str] = {}
    try:
        pending = await asyncio.wait_for(_pending_migrations(app), TIMEOUT)
        checks["database"] = "ok"
        checks["migrations"] = "ok" if not pending else f"pending: {', '.join(pending)}"
    except UNREACHABLE as exc:
        logger.warning("readiness: database unavailable: %s", exc)
        checks["database"] = "unavailable"
    apps: Apps = app.state.apps
    for name, probe in apps.readiness_probes.items():
        try:
            await asyncio.wait_for(probe(app), TIMEOUT)
            checks[name] = "ok"
        except Exception as exc:  # any failure of a probe means "not ready"
            logger.warning("readiness: %s failed: %s", name, exc)
            checks[name] = "unavailable"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


async def _pending_migrations(app: FastAPI) -> list[str]:
    """The apps' latest migrations the database has not reached (one query)."""
    # Alembic is loaded by the first probe rather than when the app starts.
    from crudkit.migrator import Migrations

    migrations: Migrations | None = getattr(app.state, "migrations", None)
    if migrations is None:
        migrations = Migrations(app.state.apps)
        app.state.migrations = migrations
        app.state.migration_heads = set(await asyncio.to_thread(migrations.script().get_heads))
    expected: set[str] = app.state.migration_heads
    db: Database = app.state.db
    async with db.read() as conn:
        heads = await conn.run_sync(migrations.heads)
    # Heads are recorded per branch; an app another one depends on is applied implicitly.
    applied = await asyncio.to_thread(migrations.applied_at, heads)
    return sorted(expected - applied)
