"""Health endpoints for load balancers and orchestrators.

    GET /healthz   liveness: the database answers `SELECT 1` (503 otherwise, within 1 s)
    GET /readyz    readiness: the database answers, every migration is applied, and each
                   probe apps registered (Redis, when configured) passes

Both answer `{"status": "ok"}` or 503; `/readyz` names each check. A probe that returns
a string other than "ok" reports a service the app does without for now (Redis: logins
count in each worker's memory): 200 with status "degraded", as taking the app out of
rotation would not help. So is a read replica that is down or lags (reads go to the
primary): `/readyz` lists each with its state and lag.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

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
    failed: set[str] = set()
    try:
        pending = await asyncio.wait_for(_pending_migrations(app), TIMEOUT)
        checks["database"] = "ok"
        checks["migrations"] = "ok" if not pending else f"pending: {', '.join(pending)}"
        if pending:
            failed.add("migrations")
    except UNREACHABLE as exc:
        logger.warning("readiness: database unavailable: %s", exc)
        checks["database"] = "unavailable"
        failed.add("database")
    apps: Apps = app.state.apps
    for name, probe in apps.readiness_probes.items():
        try:
            result = await asyncio.wait_for(probe(app), TIMEOUT)
        except Exception as exc:  # any failure of a probe means "not ready"
            logger.warning("readiness: %s failed: %s", name, exc)
            checks[name] = "unavailable"
            failed.add(name)
        else:  # a string is the probe's own report; else it passed
            checks[name] = result if isinstance(result, str) else "ok"
    if failed:
        status = "unavailable"
    else:
        status = "ok" if all(value == "ok" for value in checks.values()) else "degraded"
    body: dict[str, Any] = {"status": status, "checks": checks}
    replicas = _db(request).replicas
    if replicas:
        # Reads skip a replica that is down or lags: the app does without it, still ready.
        body["replicas"] = replicas.status()
        if status == "ok" and any(r["state"] != "ok" for r in body["replicas"]):
            body["status"] = "degraded"
    return JSONResponse(body, status_code=503 if failed else 200)


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
