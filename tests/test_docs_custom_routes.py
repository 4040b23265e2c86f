"""The guide `docs/custom-routes.md`, run: its example (`docs/examples/custom_routes.py`)
installed in the example shop, its routes called over HTTP as the guide shows them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

import crudkit
from crudkit.contrib.admin.models import LogEntry
from crudkit.contrib.auth.testing import auth_headers, create_user
from crudkit.db import table_of
from crudkit.testing import client_for, database
from docs.examples.custom_routes import add_checkout

PRODUCTS = "/api/v1/products"
ORDERS = "/api/v1/orders"


@pytest.fixture
async def shop(settings: crudkit.Settings) -> AsyncIterator[FastAPI]:
    apps = [*settings.installed_apps, "docs.examples.custom_routes.ReportsConfig"]
    app = crudkit.create_app(settings.model_copy(update={"installed_apps": apps}))
    add_checkout(app)
    yield app
    await app.state.db.dispose()


@pytest.fixture
async def client(shop: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(shop) as test_client:
        yield test_client


async def caller(app: FastAPI, username: str, **options: Any) -> dict[str, str]:
    return await auth_headers(app, await create_user(app, username, **options))


async def orders(client: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]) -> None:
    """Alice orders twice and cancels her first order; Bob orders once."""
    lamp = await client.post(PRODUCTS, json={"name": "Lamp", "price": "10"}, headers=alice)
    assert lamp.status_code == 201, lamp.text
    for quantity, headers in ((1, alice), (2, alice), (3, bob)):
        order = {"product_id": lamp.json()["id"], "quantity": quantity}
        assert (await client.post(ORDERS, json=order, headers=headers)).status_code == 201
    assert (await client.post(f"{ORDERS}/1/cancel", headers=alice)).status_code == 200


async def test_the_router_is_served_beside_the_generated_routes(
    shop: FastAPI, client: httpx.AsyncClient
) -> None:
    alice, bob = await caller(shop, "alice"), await caller(shop, "bob")
    clerk = await caller(shop, "clerk", permissions=["shop.view_order"])
    await orders(client, alice, bob)

    # `/orders/{id}` exists, yet the project's route serves `/orders/export`.
    export = f"{ORDERS}/export"
    anonymous = await client.get(export)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"detail": "Not authenticated."}
    own = await client.get(export, headers=alice)
    assert own.status_code == 200
    assert own.headers["content-type"].startswith("text/plain")
    assert own.text == "id,product_id,quantity,status\n1,1,1,cancelled\n2,1,2,pending\n"
    assert (await client.get(export, headers=bob)).text.splitlines()[1:] == ["3,1,3,pending"]
    every = await client.get(export, headers=clerk)
    assert len(every.text.splitlines()) == 4
    # Generated routes answer as before.
    assert (await client.get(f"{ORDERS}/2", headers=alice)).json()["quantity"] == 2
    assert (await client.get(f"{ORDERS}/3", headers=alice)).status_code == 404
    assert "/api/v1/orders/export" in shop.openapi()["paths"]
    # Only the method differs: the project's route answers 405, naming its method.
    wrong = await client.post(export, headers=alice)
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET"
    # Bad credentials are refused before the route runs.
    forged = await client.get(export, headers={"Authorization": "Bearer forged"})
    assert forged.status_code == 401


async def test_a_report_needs_the_model_permission(
    shop: FastAPI, client: httpx.AsyncClient
) -> None:
    alice, bob = await caller(shop, "alice"), await caller(shop, "bob")
    clerk = await caller(shop, "clerk", permissions=["shop.view_order"])
    root = await caller(shop, "root", is_staff=True, is_superuser=True)
    await orders(client, alice, bob)

    report = "/api/v1/reports/orders"
    assert (await client.get(report)).status_code == 401
    refused = await client.get(report, headers=alice)
    assert refused.status_code == 403
    assert refused.json() == {"detail": "You do not have permission to perform this action."}
    for headers in (clerk, root):
        answered = await client.get(report, headers=headers)
        assert answered.json() == {"cancelled": 1, "pending": 2}


async def test_checkout_writes_through_the_pipeline(
    shop: FastAPI, client: httpx.AsyncClient
) -> None:
    alice = await caller(shop, "alice")
    lamp = {"name": "Lamp", "price": "1"}
    await client.post(PRODUCTS, json=lamp, headers=alice)
    await client.post(PRODUCTS, json={**lamp, "in_stock": False}, headers=alice)
    checkout = "/api/v1/checkout"

    anonymous = await client.post(checkout, json={"product_id": 1})
    assert anonymous.status_code == 401
    assert anonymous.json() == {"detail": "Not authenticated."}
    too_many = await client.post(checkout, json={"product_id": 1, "quantity": 0}, headers=alice)
    assert too_many.status_code == 422
    assert too_many.json()["detail"][0]["loc"] == ["body", "quantity"]
    sold_out = await client.post(checkout, json={"product_id": 2}, headers=alice)
    assert sold_out.status_code == 409
    assert sold_out.json() == {"detail": "This product is not in stock."}
    assert (await client.post(checkout, json={"product_id": 9}, headers=alice)).status_code == 404

    ordered = await client.post(checkout, json={"product_id": 1, "quantity": 2}, headers=alice)
    assert ordered.status_code == 201, ordered.text
    assert ordered.json() == {"order_id": 1, "status": "pending"}
    order = (await client.get(f"{ORDERS}/1", headers=alice)).json()
    assert (order["quantity"], order["product_id"]) == (2, 1)

    log = table_of(LogEntry)
    async with database(shop).read() as conn:
        history = (
            await conn.execute(
                select(log.c.username, log.c.channel, log.c.action).where(log.c.model == "order")
            )
        ).all()
    assert [tuple(row) for row in history] == [("alice", "api", "create")]
