"""The driver path answers exactly what SQLAlchemy's path answers.

The same requests go to the example project twice, on the same fresh database:
once as configured (PostgreSQL statements straight on asyncpg) and once with
`db_direct_reads` off (every statement through SQLAlchemy's asyncio adapter).
Both must give the same response bytes, the same history rows, the same engine
events (statement, parameters, errors) and the same errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, insert, text

import crudkit
import crudkit.contrib.admin.models
import shop.models
from crudkit.contrib.auth.deps import AuthServices
from crudkit.db import table_of
from crudkit.testing import client_for, database
from shop.models import Category, Order, Product
from tests.conftest import Caller, SuiteDatabase, make_caller

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


class _FrozenDatetime(datetime):
    """`datetime` whose `now()` is always `NOW`: the defaults of new rows match."""

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return NOW if tz is not None else NOW.replace(tzinfo=None)


@pytest.fixture(autouse=True)
def frozen_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shop.models, "datetime", _FrozenDatetime)
    monkeypatch.setattr(crudkit.contrib.admin.models, "datetime", _FrozenDatetime)


@pytest.fixture(scope="session")
def _plain_app(_base_settings: crudkit.Settings) -> FastAPI:
    return crudkit.create_app(_base_settings.model_copy(update={"db_direct_reads": False}))


@pytest.fixture
async def plain_app(
    _plain_app: FastAPI, app: FastAPI, settings: crudkit.Settings
) -> AsyncIterator[FastAPI]:
    """The example project with every statement through SQLAlchemy, on the same database."""
    _plain_app.state.auth = AuthServices.from_settings(settings)
    try:
        yield _plain_app
    finally:
        await _plain_app.state.auth.close()
        await database(_plain_app).dispose()


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


@dataclass
class Events:
    """What the engine's listeners heard: each statement, its parameters, each error."""

    heard: list[tuple[Any, ...]] = field(default_factory=list)
    executed_by_adapter: list[str] = field(default_factory=list)
    """Statements whose cursor ran them: those that went through SQLAlchemy."""

    def before(self, conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        self.heard.append(("execute", statement, parameters))

    def after(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        self.heard.append(("done", statement))
        if cursor.rowcount >= 0:
            self.executed_by_adapter.append(statement)

    def error(self, context: Any) -> None:
        self.heard.append(
            (
                "error",
                context.statement,
                context.parameters,
                str(context.sqlalchemy_exception),
                context.execution_context is not None,
            )
        )


Scenario = Callable[[httpx.AsyncClient, Caller], Awaitable[list[object]]]


@dataclass
class Run:
    answers: list[object]
    events: Events
    history: list[tuple[Any, ...]]


async def run(app: FastAPI, test_database: SuiteDatabase, scenario: Scenario) -> Run:
    """`scenario` on a fresh database, with what the engine's listeners heard."""
    await test_database.reset()
    caller = await make_caller(app, "root", is_staff=True, is_superuser=True)
    await seed(app, caller.id)
    engine = database(app).engine.sync_engine
    events = Events()
    hooks = [
        ("before_cursor_execute", events.before),
        ("after_cursor_execute", events.after),
        ("handle_error", events.error),
    ]
    for name, hook in hooks:
        event.listen(engine, name, hook)
    try:
        async with client_for(app) as client:
            answers = await scenario(client, caller)
    finally:
        for name, hook in hooks:
            event.remove(engine, name, hook)
    async with database(app).read() as conn:
        history = await conn.execute(text("SELECT * FROM crudkit_log_entry ORDER BY id"))
        return Run(answers, events, [tuple(row) for row in history])


async def on_both_paths(
    app: FastAPI, plain_app: FastAPI, test_database: SuiteDatabase, scenario: Scenario
) -> tuple[Run, Run]:
    assert database(app).connections.direct
    assert not database(plain_app).connections.direct
    return await run(app, test_database, scenario), await run(plain_app, test_database, scenario)


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


async def reads(client: httpx.AsyncClient, caller: Caller) -> list[object]:
    answered: list[object] = []
    for headers in ({}, caller.headers):
        for url in READS:
            response = await client.get(url, headers=headers)
            answered.append(
                (url, response.status_code, response.headers.get("etag"), response.content)
            )
            cursor = response.json().get("next_cursor") if response.status_code == 200 else None
            if cursor:
                following = await client.get(url, params={"cursor": cursor}, headers=headers)
                answered.append(("cursor", following.status_code, following.content))
    return answered


async def test_reads_answer_byte_for_byte(
    app: FastAPI, plain_app: FastAPI, test_database: SuiteDatabase
) -> None:
    direct, plain = await on_both_paths(app, plain_app, test_database, reads)
    assert direct.answers == plain.answers
    assert any(b'"price":"7.05"' in answer[-1] for answer in direct.answers)  # type: ignore[index]
    assert direct.events.heard == plain.events.heard
    statements = [heard[1] for heard in direct.events.heard if heard[0] == "execute"]
    assert any("FROM shop_product" in statement for statement in statements)
    assert any("auth_user" in statement for statement in statements)  # the caller, too
    # On the driver path the adapter's cursor runs none of them.
    assert direct.events.executed_by_adapter == []
    assert len(plain.events.executed_by_adapter) == len(statements)


async def writes(client: httpx.AsyncClient, caller: Caller) -> list[object]:
    """A run of writes, good and bad."""
    answered: list[object] = []
    number = 0

    async def send(method: str, url: str, **options: Any) -> httpx.Response:
        nonlocal number
        number += 1
        headers = {
            **caller.headers,
            "X-Request-ID": f"parity-{number}",
            **options.pop("headers", {}),
        }
        response = await client.request(method, url, headers=headers, **options)
        answered.append((response.status_code, response.headers.get("etag"), response.content))
        return response

    created = await send(
        "POST", "/api/v1/products", json={"name": "desk ☃", "price": "12.50", "category_id": 1}
    )
    url = created.headers["location"]
    stale = {"If-Match": created.headers["etag"]}
    await send("PATCH", url, json={"price": "13.00"})
    await send("PATCH", url, json={"price": "14.00"}, headers=stale)
    await send("POST", "/api/v1/products", json={"name": "x", "price": "1", "category_id": 999})
    await send("PATCH", url, json={"category_id": 999})
    await send("POST", "/api/v1/categories", json={"name": "Lamps"})
    await send("PATCH", url, json={})
    await send("DELETE", url, headers=stale)
    await send("DELETE", url)
    await send("DELETE", url)
    await send("DELETE", "/api/v1/products/1")  # an order still refers to it
    return answered


async def test_writes_answer_as_sqlalchemy_does(
    app: FastAPI, plain_app: FastAPI, test_database: SuiteDatabase
) -> None:
    direct, plain = await on_both_paths(app, plain_app, test_database, writes)
    assert direct.answers == plain.answers
    statuses = [answer[0] for answer in direct.answers]  # type: ignore[index]
    assert statuses == [201, 200, 412, 422, 422, 409, 200, 412, 204, 404, 409]
    assert direct.history == plain.history
    assert [row[9] for row in direct.history] == ["create", "update", "delete"]
    assert direct.events.heard == plain.events.heard
    errors = [heard for heard in direct.events.heard if heard[0] == "error"]
    assert len(errors) == 4  # two missing categories, a taken name, a row still referred to
    assert all(heard[-1] for heard in errors)  # each with its execution context
    # PostgreSQL names the column of a failed foreign key: no lookup, every statement
    # of the run went to the driver.
    assert direct.events.executed_by_adapter == []
