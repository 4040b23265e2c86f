"""List pages of large tables: counted only up to a limit, shown as approximate above it."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert as sql_insert
from sqlalchemy import text

from crudkit.contrib.admin import counting
from crudkit.contrib.admin.counting import ApproximateCount
from crudkit.contrib.admin.views import ResourceView
from crudkit.db import table_of
from crudkit.testing import count_queries
from shop.models import Product
from tests.admin_support import staff


@pytest.fixture
def limit(monkeypatch: pytest.MonkeyPatch) -> int:
    """Count exactly up to 5 rows, or to the end of the page after the one shown."""
    monkeypatch.setattr(ResourceView, "exact_count_limit", 5)
    monkeypatch.setattr(counting, "PAGES_AHEAD", 1)
    return 5


async def _products(app: FastAPI, owner: int, count: int) -> None:
    rows = [
        {"name": f"Lamp {n:02d}", "price": Decimal(n), "owner_id": owner, "in_stock": n % 2 == 0}
        for n in range(count)
    ]
    async with app.state.db.transaction() as conn:
        await conn.execute(sql_insert(table_of(Product)), rows)


def test_an_approximate_count_is_an_int_that_says_so() -> None:
    count = ApproximateCount(1_000_000, "about 1,000,000")

    assert count == 1_000_000
    assert count + 1 == 1_000_001
    assert f"{count}" == str(count) == "about 1,000,000"


async def test_small_lists_are_counted_exactly(
    app: FastAPI, client: httpx.AsyncClient, limit: int
) -> None:
    root = await staff(app, client, "root", superuser=True)
    await _products(app, root, limit)

    page = await client.get("/admin/product/list")

    assert "Showing 1 to 5 of 5 items" in page.text


async def test_large_lists_are_not_counted_in_full(
    app: FastAPI, client: httpx.AsyncClient, limit: int, is_postgres: bool
) -> None:
    root = await staff(app, client, "root", superuser=True)
    await _products(app, root, 25)
    if is_postgres:
        async with app.state.db.read() as conn:
            await conn.execute(text("ANALYZE shop_product"))

    with count_queries(app) as log:
        first = await client.get("/admin/product/list", params={"pageSize": 10})
    counts = [s for s in log.on("shop_product") if "count(" in s.lower()]
    assert counts
    assert all("LIMIT" in statement.upper() for statement in counts)
    if is_postgres:  # the planner's estimate of the whole table
        assert "Showing 1 to 10 of about 25 items" in first.text
    else:
        assert "Showing 1 to 10 of more than 20 items" in first.text
    assert "Lamp 09" in first.text
    # Further on, the count reaches the end of the table: exact again.
    third = await client.get("/admin/product/list", params={"pageSize": 10, "page": 3})
    assert "Showing 21 to 25 of 25 items" in third.text
    assert "Lamp 24" in third.text

    # A filtered list has no estimate: it says what it knows.
    filtered = await client.get("/admin/product/list", params={"in_stock": "true", "pageSize": 5})
    assert "Showing 1 to 5 of more than 10 items" in filtered.text
