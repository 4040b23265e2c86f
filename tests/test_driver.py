"""The driver path on PostgreSQL: one connection per request, transactions, and no
cost for what nobody listens to. (Its answers are compared with SQLAlchemy's in
`test_parity.py`; what listeners see, in `test_execution_seam.py`.)"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, insert, select

import crudkit._sqla.driver
from crudkit.db import execute, table_of
from crudkit.testing import database
from shop.models import Category
from tests.conftest import Caller

pytestmark = pytest.mark.postgres


async def test_not_modified_and_not_found(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    created = await client.post(
        "/api/v1/products", json={"name": "lamp", "price": "3"}, headers=alice.headers
    )
    url = created.headers["location"]
    first = await client.get(url)
    again = await client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert (await client.get("/api/v1/orders/1")).status_code == 401
    assert (await client.get("/api/v1/products/abc")).status_code == 422


async def test_no_listener_no_execution_context(
    app: FastAPI,
    client: httpx.AsyncClient,
    alice: Caller,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The plain driver path builds no SQLAlchemy execution context: only listeners
    # (or a default taking the context) pay for one.
    contexts: list[object] = []
    run_in_context = crudkit._sqla.driver.run_in_context

    def counted(*args: Any) -> Any:
        contexts.append(args)
        return run_in_context(*args)

    monkeypatch.setattr(crudkit._sqla.driver, "run_in_context", counted)

    async def requests() -> None:
        created = await client.post(  # `created_at` and `updated_at` default to `utcnow`
            "/api/v1/products", json={"name": "lamp", "price": "3"}, headers=alice.headers
        )
        assert created.status_code == 201
        url = created.headers["location"]
        assert (await client.patch(url, json={"price": "4"}, headers=alice.headers)).is_success
        assert (await client.get("/api/v1/products", headers=alice.headers)).is_success

    await requests()
    assert contexts == []
    engine = database(app).engine.sync_engine

    def listener(*args: Any) -> None:
        pass

    event.listen(engine, "before_cursor_execute", listener)
    try:
        await requests()
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    # The caller and the statement(s) of each request, history too, and the tags of
    # the answer's products.
    assert len(contexts) == 12
    contexts.clear()
    await requests()  # once the listener is gone, so is the cost
    assert contexts == []


async def test_a_request_checks_out_one_connection(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    # The caller's lookup and the endpoint's statements share one pooled connection.
    checkouts: list[object] = []
    engine = database(app).engine.sync_engine

    def count(*_: object) -> None:
        checkouts.append(_)

    event.listen(engine, "checkout", count)
    try:
        created = await client.post(
            "/api/v1/products", json={"name": "lamp", "price": "3"}, headers=alice.headers
        )
        assert created.status_code == 201
        assert len(checkouts) == 1
        url = created.headers["location"]
        for answer in (
            await client.get(url, headers=alice.headers),
            await client.patch(url, json={"price": "4"}, headers=alice.headers),
            await client.get("/api/v1/products?expand=category", headers=alice.headers),
            await client.delete(url, headers=alice.headers),
        ):
            assert answer.status_code < 300
        assert len(checkouts) == 5
    finally:
        event.remove(engine, "checkout", count)


async def test_a_write_after_an_autocommit_read_is_one_transaction(app: FastAPI) -> None:
    db = database(app)
    categories = table_of(Category)

    class Undo(Exception):
        pass

    async with db.request_connection():
        async with db.reader() as reader:
            # Execution options are SQLAlchemy's to honour: this read goes through it,
            # in autocommit, on the connection the request shares.
            await reader.rows(select(categories.c.id).execution_options(crudkit_test=True))
            assert reader.autocommit  # type: ignore[attr-defined]
        with pytest.raises(Undo):  # noqa: PT012 - the block is the transaction under test
            async with db.writer() as writer:
                await writer.rows(insert(categories).returning(categories.c.id), {"name": "a"})
                await execute(writer.connection, insert(categories), {"name": "b"})
                raise Undo
    async with db.reader() as reader:
        assert await reader.rows(select(categories.c.id)) == []


async def test_a_slow_body_holds_no_pooled_connection(app: FastAPI, alice: Caller) -> None:
    # The body is read from the client before the request takes its connection: a
    # client trickling its body in cannot hold the pool.
    pool: Any = database(app).engine.sync_engine.pool
    arrived = asyncio.Event()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await arrived.wait()
        return {"type": "http.request", "body": b'{"name": "x", "price": "1"}', "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/products",
        "raw_path": b"/api/v1/products",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"authorization", alice.headers["Authorization"].encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    request = asyncio.create_task(app(scope, receive, send))
    await asyncio.sleep(0.2)
    assert pool.checkedout() == 0
    arrived.set()
    await request
    assert sent[0]["status"] == 201
    assert pool.checkedout() == 0


async def test_a_read_inside_a_write_joins_its_transaction(app: FastAPI) -> None:
    # A hook that reads while its write is open (the request's one connection) sees
    # the write's rows, and leaves the write to commit.
    db = database(app)
    categories = table_of(Category)

    async with db.request_connection(), db.writer() as writer:
        await writer.rows(insert(categories).returning(categories.c.id), {"name": "a"})
        async with db.reader() as reader:
            assert len(await reader.rows(select(categories.c.id))) == 1
        await writer.rows(insert(categories).returning(categories.c.id), {"name": "b"})
    async with db.reader() as reader:
        assert len(await reader.rows(select(categories.c.id))) == 2
