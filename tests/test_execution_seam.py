"""What users hook into SQLAlchemy keeps working on every path a statement takes.

On PostgreSQL the generated endpoints run their statements straight on asyncpg;
engine events, OpenTelemetry's instrumentation, error handlers and `default=`
callables that read the execution context must see what they see on SQLite,
where every statement goes through SQLAlchemy.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

import crudkit
from crudkit.testing import client_for, database
from tests.conftest import Caller
from tests.models import Stamp

PRODUCTS = "/api/v1/products"


@dataclass
class Executed:
    """One statement as the engine's cursor events saw it."""

    statement: str
    parameters: Any
    conn: Any
    cursor: Any
    context: Any
    executemany: bool
    finished: bool = False


@dataclass
class Listener:
    """Every cursor event and error of an engine, as a user's listener receives them."""

    executed: list[Executed] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)

    def before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:  # fmt: skip
        context.seam_test_statement = statement  # as tracers keep their span on the context
        self.executed.append(Executed(statement, parameters, conn, cursor, context, executemany))

    def after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              executemany: bool) -> None:  # fmt: skip
        last = self.executed[-1]
        assert (last.statement, last.parameters, last.context) == (statement, parameters, context)
        last.finished = True

    def error(self, exception_context: Any) -> None:
        self.errors.append(exception_context)

    def statements(self) -> list[str]:
        return [executed.statement for executed in self.executed]


@contextmanager
def listening(app: FastAPI) -> Iterator[Listener]:
    engine = database(app).engine.sync_engine
    listener = Listener()
    hooks = [
        ("before_cursor_execute", listener.before),
        ("after_cursor_execute", listener.after),
        ("handle_error", listener.error),
    ]
    for name, hook in hooks:
        event.listen(engine, name, hook)
    try:
        yield listener
    finally:
        for name, hook in hooks:
            event.remove(engine, name, hook)


def test_the_driver_path_serves_postgresql(app: FastAPI, is_postgres: bool) -> None:
    assert database(app).connections.direct is is_postgres


async def test_a_listener_sees_every_statement_of_a_create_and_a_list(
    app: FastAPI, client: httpx.AsyncClient, superuser: Caller
) -> None:
    with listening(app) as create:
        created = await client.post(
            PRODUCTS, json={"name": "Lamp ☃", "price": "3.50"}, headers=superuser.headers
        )
    assert created.status_code == 201
    user, product, history, tags = create.executed
    assert "FROM auth_user" in user.statement
    assert superuser.id in user.parameters
    assert product.statement.startswith("INSERT INTO shop_product")
    assert "Lamp ☃" in product.parameters
    assert history.statement.startswith("INSERT INTO crudkit_log_entry")
    assert "create" in history.parameters
    assert "product" in history.parameters
    assert "FROM shop_product_tags" in tags.statement  # the answer's tags
    for executed in create.executed:
        assert executed.finished
        assert isinstance(executed.conn, Connection)
        assert isinstance(executed.parameters, tuple)
        assert executed.cursor is not None
        assert executed.executemany is False
        assert executed.context.seam_test_statement == executed.statement
    assert product.context.isinsert
    assert product.context.compiled.statement.table.name == "shop_product"

    await client.post(PRODUCTS, json={"name": "Desk", "price": "9"}, headers=superuser.headers)
    with listening(app) as listed:
        page = await client.get(PRODUCTS, params={"limit": 1}, headers=superuser.headers)
    assert page.json()["total"] == 2
    user, rows, count, tags = listed.executed
    assert "FROM auth_user" in user.statement
    assert rows.statement.startswith("SELECT")
    assert "FROM shop_product" in rows.statement
    assert 2 in rows.parameters  # the limit, one more than asked for
    assert "count(*)" in count.statement
    assert "FROM shop_product_tags" in tags.statement
    assert all(executed.finished for executed in listed.executed)
    assert not create.errors
    assert not listed.errors


async def test_a_listener_may_change_what_runs(
    app: FastAPI, client: httpx.AsyncClient, superuser: Caller
) -> None:
    # A `retval=True` listener's statement and parameters are the ones executed.
    engine = database(app).engine.sync_engine

    def rewrite(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> Any:
        if statement.startswith("INSERT INTO shop_product"):
            parameters = tuple("Lamp (traced)" if p == "Lamp" else p for p in parameters)
            statement = f"{statement} /* traced */"
        return statement, parameters

    event.listen(engine, "before_cursor_execute", rewrite, retval=True)
    try:
        with listening(app) as seen:
            created = await client.post(
                PRODUCTS, json={"name": "Lamp", "price": "1"}, headers=superuser.headers
            )
    finally:
        event.remove(engine, "before_cursor_execute", rewrite)
    assert created.json()["name"] == "Lamp (traced)"
    assert any(statement.endswith("/* traced */") for statement in seen.statements())


async def test_handle_error_fires_for_a_failing_statement(
    app: FastAPI, client: httpx.AsyncClient, superuser: Caller
) -> None:
    first = await client.post(
        "/api/v1/categories", json={"name": "Lamps"}, headers=superuser.headers
    )
    assert first.status_code == 201
    with listening(app) as seen:
        again = await client.post(
            "/api/v1/categories", json={"name": "Lamps"}, headers=superuser.headers
        )
    assert again.status_code == 409
    (error,) = seen.errors
    assert error.statement.startswith("INSERT INTO shop_category")
    assert isinstance(error.sqlalchemy_exception, IntegrityError)
    assert error.execution_context is not None
    assert error.execution_context.seam_test_statement == error.statement
    assert not error.is_disconnect
    failed = seen.executed[-1]
    assert failed.statement == error.statement
    assert not failed.finished


async def test_statements_sqlalchemy_must_run_itself_fire_every_event(
    app: FastAPI, client: httpx.AsyncClient, superuser: Caller
) -> None:
    # A `before_execute` listener may swap the statement object: only SQLAlchemy's
    # own execution can honour that, so the driver path hands its statements over.
    engine = database(app).engine.sync_engine
    seen: list[Any] = []

    def before_execute(conn: Any, clauseelement: Any, *args: Any) -> None:
        seen.append(clauseelement)

    event.listen(engine, "before_execute", before_execute)
    try:
        with listening(app) as cursor_events:
            created = await client.post(
                PRODUCTS, json={"name": "Lamp", "price": "1"}, headers=superuser.headers
            )
            listed = await client.get(PRODUCTS, headers=superuser.headers)
    finally:
        event.remove(engine, "before_execute", before_execute)
    assert created.status_code == 201
    assert listed.json()["items"][0]["name"] == "Lamp"
    assert len(seen) == len(cursor_events.executed) == 7


async def test_query_logging_sees_every_statement(
    app: FastAPI,
    client: httpx.AsyncClient,
    superuser: Caller,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # SQLAlchemy's statement log (`echo`, or its logger at INFO) is written by its own
    # execution: with it on, the driver path hands statements over.
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine.Engine")
    created = await client.post(
        PRODUCTS, json={"name": "Lamp", "price": "1"}, headers=superuser.headers
    )
    assert created.status_code == 201
    logged = [
        record.getMessage()
        for record in caplog.records
        if record.name == "sqlalchemy.engine.Engine"
    ]
    assert any("FROM auth_user" in message for message in logged)
    assert any(message.startswith("INSERT INTO shop_product") for message in logged)
    assert any(message.startswith("INSERT INTO crudkit_log_entry") for message in logged)


async def test_opentelemetry_records_a_span_per_statement(
    app: FastAPI, client: httpx.AsyncClient, superuser: Caller
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = SQLAlchemyInstrumentor()
    instrumentor.instrument(
        engine=database(app).engine.sync_engine,
        tracer_provider=provider,
        enable_commenter=True,
        enable_attribute_commenter=True,
        skip_dep_check=True,  # it names the SQLAlchemy versions it was released against
    )
    try:
        with listening(app) as seen:
            created = await client.post(
                PRODUCTS, json={"name": "Lamp", "price": "2"}, headers=superuser.headers
            )
            await client.get(PRODUCTS, headers=superuser.headers)
            await client.post("/api/v1/categories", json={"name": "a"}, headers=superuser.headers)
            conflict = await client.post(
                "/api/v1/categories", json={"name": "a"}, headers=superuser.headers
            )
    finally:
        instrumentor.uninstrument()
    assert created.status_code == 201
    assert conflict.status_code == 409
    # One span per statement (the instrumentation also times `Engine.connect()`).
    spans = [span for span in exporter.get_finished_spans() if span.name != "connect"]
    # The instrumentation comments each statement (sqlcommenter): what the listener
    # after it saw is what ran, and what the span records.
    assert [span.attributes["db.statement"] for span in spans] == seen.statements()  # type: ignore[index]
    assert all("/*db_driver=" in statement for statement in seen.statements())
    assert [span.name.split()[0] for span in spans] == [
        "SELECT", "INSERT", "INSERT", "SELECT",  # the caller, the product, history, tags
        "SELECT", "SELECT", "SELECT",  # the caller, the page (the last: no count), tags
        "SELECT", "INSERT", "INSERT", "SELECT",  # a category: then its product count
        "SELECT", "INSERT",  # the conflict
    ]  # fmt: skip
    assert [span.status.status_code for span in spans][-1] is StatusCode.ERROR
    assert all(span.status.status_code is StatusCode.UNSET for span in spans[:-1])


@pytest.fixture(scope="session")
def _stamp_app(_base_settings: crudkit.Settings) -> FastAPI:
    registry = crudkit.Registry()

    @registry.register(Stamp)
    class StampResource(crudkit.Resource):
        public_read = True

    return crudkit.create_app(_base_settings, registry=registry)


@pytest.fixture
async def stamps(_stamp_app: FastAPI, app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app serving `Stamp`, on the test database."""
    async with client_for(_stamp_app) as client:
        yield client
    await database(_stamp_app).dispose()


async def test_defaults_get_the_execution_context(
    stamps: httpx.AsyncClient, superuser: Caller, is_postgres: bool
) -> None:
    first = await stamps.post(
        "/api/v1/stamps", json={"label": "Big Lamp"}, headers=superuser.headers
    )
    second = await stamps.post("/api/v1/stamps", json={"label": "Desk"}, headers=superuser.headers)
    assert first.status_code == 201, first.text
    assert (first.json()["slug"], first.json()["serial"]) == ("big-lamp", 1)
    assert (second.json()["slug"], second.json()["serial"]) == ("desk", 2)
    assert first.json()["edited"] is None
    patched = await stamps.patch(
        first.headers["location"], json={"label": "Lamp"}, headers=superuser.headers
    )
    backend = "postgresql" if is_postgres else "sqlite"
    assert patched.json()["edited"] == f"{backend}: Lamp"
    assert patched.json()["slug"] == "big-lamp"


# Defaults computed in Python, as SQLAlchemy computes them: on a table of its own.
calls: list[str] = []


def _revision() -> int:
    calls.append("revision")
    return len(calls)


def _slug(context: Any) -> str:
    return str(context.get_current_parameters()["name"]).lower().replace(" ", "-")


items = Table(
    "test_seam_item",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False),
    Column("slug", String(50), default=_slug),
    Column("kind", String(10), default="plain"),
    Column("revision", Integer, default=_revision, onupdate=_revision),
    Column("label", String(20), default=func.upper("x")),
)


@pytest.fixture
async def item_table(app: FastAPI) -> AsyncIterator[None]:
    engine = database(app).engine
    async with engine.begin() as conn:
        await conn.run_sync(items.metadata.create_all)
    yield
    async with engine.begin() as conn:
        await conn.run_sync(items.metadata.drop_all)


async def test_python_defaults_as_sqlalchemy_computes_them(app: FastAPI, item_table: None) -> None:
    db = database(app)
    calls.clear()
    async with db.writer() as writer:
        big = await writer.first(insert(items).returning(items), {"name": "Big Lamp"})
        given = await writer.first(
            insert(items).returning(items), {"name": "A", "slug": "given", "kind": "k"}
        )
        changed = await writer.first(
            update(items).where(items.c.id == 1).returning(items), {"name": "B"}
        )
    assert big is not None
    assert given is not None
    assert changed is not None
    assert tuple(big) == (1, "Big Lamp", "big-lamp", "plain", 1, "X")
    assert tuple(given) == (2, "A", "given", "k", 2, "X")
    assert tuple(changed) == (1, "B", "big-lamp", "plain", 3, "X")  # onupdate ran once more
    async with db.reader() as reader:
        assert await reader.scalar(select(func.count()).select_from(items)) == 2
