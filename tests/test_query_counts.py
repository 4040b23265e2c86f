"""SQL statements per request: constant, whatever the page size (no N+1).

A product has tags (many-to-many): one more statement per page reads the tags
of all its rows from the link table, unless `fields=` leaves them out."""

from __future__ import annotations

from decimal import Decimal

import httpx
from fastapi import FastAPI
from sqlalchemy import insert

from crudkit.db import table_of
from crudkit.testing import count_queries, database
from shop.models import Category, Product
from tests.conftest import Caller

PRODUCTS = "/api/v1/products"
TAGS = "shop_product_tags"


async def seed(app: FastAPI, owner: int, count: int) -> None:
    async with database(app).transaction() as conn:
        categories = await conn.execute(
            insert(table_of(Category)).returning(table_of(Category).c.id),
            [{"name": f"c{i}"} for i in range(5)],
        )
        ids = [row[0] for row in categories]
        await conn.execute(
            insert(table_of(Product)),
            [
                {"name": f"p{i}", "price": Decimal(i), "owner_id": owner, "category_id": ids[i % 5]}
                for i in range(count)
            ],
        )


async def test_retrieve_is_one_statement(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    await seed(app, alice.id, 3)
    with count_queries(app) as log:
        assert (await client.get(f"{PRODUCTS}/1")).status_code == 200
    assert len(log) == 2
    assert len(log.on(TAGS)) == 1
    with count_queries(app) as log:
        assert (await client.get(f"{PRODUCTS}/1", params={"fields": "name"})).status_code == 200
    assert len(log) == 1


async def test_offset_list_is_page_plus_count(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    await seed(app, alice.id, 120)
    for limit in (10, 100):
        with count_queries(app) as log:
            page = (await client.get(PRODUCTS, params={"limit": limit})).json()
        assert len(page["items"]) == limit
        assert page["total"] == 120
        assert len(log) == 3, log.statements  # page, count, the page's tags
        assert len(log.on(TAGS)) == 1


async def test_last_offset_page_needs_no_count(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    await seed(app, alice.id, 30)
    with count_queries(app) as log:
        page = (await client.get(PRODUCTS, params={"limit": 50})).json()
    assert page["total"] == 30
    assert len(log) == 2  # page, its tags


async def test_cursor_page_is_one_statement(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    await seed(app, alice.id, 120)
    cursor = (await client.get(PRODUCTS, params={"limit": 10})).json()["next_cursor"]
    with count_queries(app) as log:
        page = (await client.get(PRODUCTS, params={"limit": 10, "cursor": cursor})).json()
    assert page["total"] is None
    assert len(log) == 2  # page, its tags
    assert "count" not in log.statements[0].lower()
    with count_queries(app) as log:
        params = {"limit": 10, "cursor": cursor, "fields": "id,name"}
        page = (await client.get(PRODUCTS, params=params)).json()
    assert len(page["items"]) == 10
    assert len(log) == 1


async def test_expand_adds_one_statement_per_relation(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    await seed(app, alice.id, 120)
    for limit in (5, 100):
        with count_queries(app) as log:
            page = (
                await client.get(PRODUCTS, params={"limit": limit, "expand": "category"})
            ).json()
        assert all(item["category"]["name"].startswith("c") for item in page["items"])
        assert len(log) == 4  # page + count + tags + categories
    with count_queries(app) as log:
        category = (await client.get("/api/v1/categories/1", params={"expand": "products"})).json()
    assert len(category["products"]) == 24
    assert len(log) == 2


async def test_writes(app: FastAPI, client: httpx.AsyncClient, superuser: Caller) -> None:
    # A superuser's permissions need no lookup: one statement authenticates.
    with count_queries(app) as log:
        created = await client.post(
            PRODUCTS, json={"name": "Lamp", "price": "1"}, headers=superuser.headers
        )
    assert created.status_code == 201
    assert len(log.on("shop_product")) - len(log.on(TAGS)) == 1
    assert len(log.on("crudkit_log_entry")) == 1  # the history row, same transaction
    # The caller, INSERT ... RETURNING, the history row, the answer's tags.
    assert len(log) == 4
    url = f"{PRODUCTS}/{created.json()['id']}"
    with count_queries(app) as log:
        assert (
            await client.patch(url, json={"price": "2"}, headers=superuser.headers)
        ).status_code == 200
    # SELECT (scope, permissions), UPDATE ... RETURNING; then the answer's tags.
    assert len(log.on("shop_product")) - len(log.on(TAGS)) == 2
    with count_queries(app) as log:
        assert (await client.delete(url, headers=superuser.headers)).status_code == 204
    # SELECT, DELETE; the history row records the tags the product had.
    assert len(log.on("shop_product")) - len(log.on(TAGS)) == 2


async def test_authenticated_user_costs_one_statement(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    with count_queries(app) as log:
        assert (await client.get(PRODUCTS, headers=alice.headers)).status_code == 200
    assert len(log.on("auth_user")) == 1  # the user and every permission they hold
    assert len(log) == 2  # an empty page has no tags to read
