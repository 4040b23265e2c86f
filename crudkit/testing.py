"""Helpers for testing crudkit projects: an HTTP client, the database, a query counter.

    async with client_for(app) as client:
        with count_queries(app) as log:
            response = await client.get("/api/v1/products/1")
        assert len(log) == 1  # one statement per retrieve

Users, tokens and the permission matrix need the auth app, and live with it in
`crudkit.contrib.auth.testing`.

The client calls the app as `http://testserver`: test settings with `debug` off
list that host, `allowed_hosts=["testserver"]`, as they would list the real ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import event

from crudkit import hosts
from crudkit.conf import Settings
from crudkit.db import Database, Model
from crudkit.exceptions import ImproperlyConfigured
from crudkit.extras import install_hint

try:
    import httpx
except ModuleNotFoundError as exc:  # a test dependency, not one of the app's
    if exc.name != "httpx":
        raise
    raise ModuleNotFoundError(install_hint("httpx"), name="httpx") from exc

TEST_HOST = "testserver"


@asynccontextmanager
async def client_for(app: FastAPI, base_url: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An `httpx.AsyncClient` calling `app` in-process, inside its lifespan.

    Without `base_url` it calls `http://testserver`, after checking that the app
    answers that host (else every request would be a 400).
    """
    if base_url is None:
        base_url = f"http://{TEST_HOST}"
        settings = getattr(app.state, "settings", None)
        if isinstance(settings, Settings) and not hosts.is_allowed(settings, TEST_HOST):
            raise ImproperlyConfigured(
                f"the app answers 400 to host {TEST_HOST!r}: add it to allowed_hosts in the "
                f"test settings (allowed_hosts=[{TEST_HOST!r}]), or pass base_url"
            )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


def database(app: FastAPI) -> Database:
    db: Database = app.state.db
    return db


async def create_tables(app: FastAPI) -> None:
    """Create every model's table (tests; projects use `manage.py migrate`)."""
    async with database(app).engine.begin() as conn:
        await conn.run_sync(Model.metadata.create_all)


class QueryLog:
    """SQL statements an app ran, collected by `count_queries`."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __len__(self) -> int:
        return len(self.statements)

    def on(self, table: str) -> list[str]:
        """The statements that mention `table`."""
        return [statement for statement in self.statements if table in statement]


@contextmanager
def count_queries(app: FastAPI) -> Iterator[QueryLog]:
    """Record every statement the app's engine executes inside the block (N+1 tests).

    An ordinary `before_cursor_execute` listener: the engine fires it for every
    statement, on the driver path as on SQLAlchemy's.
    """
    log = QueryLog()
    engine = database(app).engine.sync_engine

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(("PRAGMA", "BEGIN", "COMMIT", "ROLLBACK")):
            log.statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield log
    finally:
        event.remove(engine, "before_cursor_execute", record)
