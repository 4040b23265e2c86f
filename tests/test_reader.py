"""Reads straight on asyncpg answer exactly what reads through SQLAlchemy answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, insert, select, text

from crudkit.db import table_of
from crudkit.reader import execute
from crudkit.testing import database
from shop.models import Category, Order, Product
from tests.conftest import Caller

pytestmark = pytest.mark.postgres

T = TypeVar("T")


async def seed(app: FastAPI, owner: int) -> None:
    start = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    async with database(app).transaction() as conn:
        await conn.execute(
            insert(table_of(Category)), [{"name": "Lamps"}, {"name": "Chairs ünicode"}]
        )
        await conn.execute(
            insert(table_of(Product)),
            [
                {
                    "name": f"lamp {i}" if i % 2 else f"chair {i}",
                    "description": None if i % 3 else f"nice ☃ {i}",
                    "price": Decimal(i * 7 % 40) + Decimal("0.05"),
                    "in_stock": i % 4 != 0,
                    "category_id": None if i % 5 == 0 else 1 + i % 2,
                    "owner_id": owner,
                    "created_at": start + timedelta(hours=i),
                    "updated_at": start + timedelta(hours=i, microseconds=i),
                }
                for i in range(1, 31)
            ],
        )
        await conn.execute(
            insert(table_of(Order)),
            [{"product_id": i, "quantity": i, "owner_id": owner} for i in range(1, 4)],
        )


READS = [
    "/api/v1/products/1",
    "/api/v1/products/5",
    "/api/v1/products/6?expand=category",
    "/api/v1/products/999",
    "/api/v1/products",
    "/api/v1/products?limit=7&offset=3",
    "/api/v1/products?limit=5&offset=100",
    "/api/v1/products?price__gte=10&ordering=-price&limit=8",
    "/api/v1/products?ordering=name,-created_at&limit=4",
    "/api/v1/products?search=LAMP&in_stock=false",
    "/api/v1/products?category_id__in=1,2&limit=6",
    "/api/v1/products?category_id__isnull=true",
    "/api/v1/products?created_at__gte=2026-01-02T10:00:00%2B00:00&limit=3",
    "/api/v1/products?price__lt=5.5&expand=category",
    "/api/v1/products?limit=5",
    "/api/v1/categories?expand=products",
    "/api/v1/categories/2",
    "/api/v1/orders",
    "/api/v1/orders/2?expand=product",
    # Beyond int4: refused by the driver, and answered the same on both paths.
    "/api/v1/products/1099511627776",
    "/api/v1/products?category_id=1099511627776",
]


async def answers(client: httpx.AsyncClient, headers: dict[str, str]) -> list[object]:
    answered: list[object] = []
    for url in READS:
        response = await client.get(url, headers=headers)
        answered.append((url, response.status_code, response.headers.get("etag"), response.content))
        cursor = response.json().get("next_cursor") if response.status_code == 200 else None
        if cursor:
            following = await client.get(url, params={"cursor": cursor}, headers=headers)
            answered.append(("cursor", following.status_code, following.content))
    return answered


async def on_both_paths(app: FastAPI, run: Callable[[], Awaitable[T]]) -> tuple[T, T, list[str]]:
    """`run()` on the driver, then through SQLAlchemy; the SQL the first sent the driver."""
    db = database(app)
    direct = db.statements
    assert direct is not None, "PostgreSQL statements run on the driver by default"
    ran: list[str] = []
    direct.listeners.append(ran.append)
    try:
        fast = await run()
    finally:
        direct.listeners.remove(ran.append)
    db.statements = None
    try:
        slow = await run()
    finally:
        db.statements = direct
    return fast, slow, ran


async def test_direct_reads_answer_byte_for_byte(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    await seed(app, alice.id)

    async def both() -> list[object]:
        return [await answers(client, {}), await answers(client, alice.headers)]

    fast, slow, ran = await on_both_paths(app, both)
    assert any("FROM shop_product" in sql for sql in ran)
    assert any("auth_user" in sql for sql in ran)  # the caller, too
    assert fast == slow
    assert any(b'"price":"7.05"' in answer[-1] for answer in fast[0] if isinstance(answer, tuple))


async def test_not_modified_and_not_found(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    await seed(app, alice.id)
    first = await client.get("/api/v1/products/3")
    again = await client.get("/api/v1/products/3", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert (await client.get("/api/v1/orders/1")).status_code == 401
    assert (await client.get("/api/v1/products/abc")).status_code == 422


async def writes(client: httpx.AsyncClient, caller: Caller) -> list[object]:
    """A run of writes, good and bad; each answer without the values a run makes new."""
    answered: list[object] = []

    def keep(response: httpx.Response) -> None:
        body = response.json() if response.content else None
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if k not in {"id", "created_at", "updated_at"}}
        answered.append((response.status_code, body))

    created = await client.post(
        "/api/v1/products",
        json={"name": "desk ☃", "price": "12.50", "category_id": 1},
        headers=caller.headers,
    )
    keep(created)
    url = created.headers["location"]
    etag = created.headers["etag"]
    keep(await client.patch(url, json={"price": "13.00"}, headers=caller.headers))
    stale = {**caller.headers, "If-Match": etag}
    keep(await client.patch(url, json={"price": "14.00"}, headers=stale))
    keep(
        await client.post(
            "/api/v1/products",
            json={"name": "x", "price": "1", "category_id": 999},
            headers=caller.headers,
        )
    )
    keep(await client.patch(url, json={"category_id": 999}, headers=caller.headers))
    keep(await client.post("/api/v1/categories", json={"name": "Lamps"}, headers=caller.headers))
    keep(await client.patch(url, json={}, headers=caller.headers))
    keep(await client.delete(url, headers=stale))
    keep(await client.delete(url, headers=caller.headers))
    keep(await client.delete(url, headers=caller.headers))
    return answered


async def test_direct_writes_answer_as_sqlalchemy_does(
    app: FastAPI, client: httpx.AsyncClient, superuser: Caller
) -> None:
    await seed(app, superuser.id)
    fast, slow, ran = await on_both_paths(app, lambda: writes(client, superuser))
    assert any(sql.startswith("INSERT INTO shop_product") for sql in ran)
    assert any(sql.startswith("INSERT INTO crudkit_log_entry") for sql in ran)  # the hook too
    assert fast == slow
    assert [status for status, _ in fast] == [201, 200, 412, 422, 422, 409, 200, 412, 204, 404]
    async with database(app).read() as conn:
        history = (
            await conn.execute(
                text(
                    "SELECT action, changes FROM crudkit_log_entry "
                    "WHERE model = 'product' ORDER BY id"
                )
            )
        ).all()
    assert [action for action, _ in history] == ["create", "update", "delete"] * 2
    recorded = [
        {
            key: value
            for key, value in changes.items()
            if key not in {"id", "created_at", "updated_at"}
        }
        for _, changes in history
    ]
    assert recorded[:3] == recorded[3:]
    assert recorded[1] == {"price": ["12.50", "13.00"]}


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
            await reader._through_sqlalchemy(select(categories.c.id), None)
            assert reader.autocommit
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
            (b"host", b"test"),
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
