"""Admin exports: text a spreadsheet would run as a formula is quoted with `'`; numbers stay."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import crudkit
from crudkit.contrib.auth.models import User
from crudkit.contrib.auth.resources import UserResource
from crudkit.testing import client_for
from shop.models import Category, Product
from tests.admin_support import insert, staff
from tests.models import Gadget

FORMULAS = ['=HYPERLINK("http://evil.example")', "+1", "-1+1", "@SUM(A1)", "\tx", "\rx"]
HARMLESS = ["Lamp", "1+1", "a=b", " =1"]


def exported_csv(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text, newline="")))


async def test_csv_export_quotes_formulas(app: FastAPI, client: httpx.AsyncClient) -> None:
    root = await staff(app, client, "root", superuser=True)
    for name in FORMULAS + HARMLESS:
        await insert(app, Product, name=name, price=Decimal("1.50"), owner_id=root)

    exported = exported_csv(await client.get("/admin/product/export/csv"))

    names = sorted(row["name"] for row in exported)
    assert names == sorted([f"'{name}" for name in FORMULAS] + HARMLESS)
    assert {row["price"] for row in exported} == {"1.50"}


async def test_json_export_quotes_formulas(app: FastAPI, client: httpx.AsyncClient) -> None:
    root = await staff(app, client, "root", superuser=True)
    for name in FORMULAS:
        await insert(app, Product, name=name, price=Decimal("1.50"), owner_id=root)

    response = await client.get("/admin/product/export/json")

    assert response.status_code == 200, response.text
    assert sorted(row["name"] for row in response.json()) == sorted(f"'{n}" for n in FORMULAS)


@pytest.fixture
async def gadgets(settings: crudkit.Settings) -> AsyncIterator[FastAPI]:
    """An app serving `Gadget`: a column of each type, negative numbers allowed."""
    registry = crudkit.Registry()
    registry.register(User, UserResource)

    @registry.register(Gadget)
    class GadgetResource(crudkit.Resource):
        owner_field = "owner_id"
        public_read = True

    app = crudkit.create_app(settings, registry=registry)
    yield app
    await app.state.db.dispose()


async def test_negative_numbers_stay_numbers(gadgets: FastAPI) -> None:
    async with client_for(gadgets) as client:
        await staff(gadgets, client, "root", superuser=True)
        values: dict[str, Any] = {
            "count": -5,
            "small": -1,
            "weight": Decimal("-1.500"),
            "ratio": -0.5,
        }
        await insert(gadgets, Gadget, name="-5", notes="=1+1", **values)

        [row] = exported_csv(await client.get("/admin/gadget/export/csv"))
        [item] = (await client.get("/admin/gadget/export/json")).json()

    # Text is quoted, even when it reads as a number; numbers are not.
    assert (row["name"], row["notes"]) == ("'-5", "'=1+1")
    assert (row["count"], row["small"], row["weight"], row["ratio"]) == (
        "-5",
        "-1",
        "-1.500",
        "-0.5",
    )
    assert (item["name"], item["notes"]) == ("'-5", "'=1+1")
    assert (item["count"], item["small"], item["weight"], item["ratio"]) == (-5, -1, -1.5, -0.5)


async def test_exports_follow_the_lists_search_and_filters(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    root = await staff(app, client, "root", superuser=True)
    lamps = await insert(app, Category, name="Lamps")
    await insert(
        app, Product, name="Desk lamp", price=Decimal("30"), owner_id=root, category_id=lamps
    )
    await insert(
        app, Product, name="Floor lamp", price=Decimal("80"), owner_id=root, category_id=lamps
    )
    await insert(app, Product, name="Lamp oil", price=Decimal("5"), owner_id=root)
    await insert(app, Product, name="Chair", price=Decimal("40"), owner_id=root, category_id=lamps)
    query = "search=lamp&category_id=" + str(lamps) + "&category_id_op=exact&price=50&price_op=lt"

    # The list page's export links carry its search and filters ...
    page = await client.get(f"/admin/product/list?{query}&page=1")
    assert page.status_code == 200, page.text
    links = set(re.findall(r'href="([^"]*/export/[^"]*)"', page.text))
    assert {html.unescape(link) for link in links} == {
        f"http://testserver/admin/product/export/{kind}?{query}" for kind in ("csv", "json")
    }

    # ... and the export writes only the rows the list shows.
    exported = exported_csv(await client.get(f"/admin/product/export/csv?{query}"))
    assert [row["name"] for row in exported] == ["Desk lamp"]
    response = await client.get(f"/admin/product/export/json?{query}")
    assert [row["name"] for row in response.json()] == ["Desk lamp"]
    everything = exported_csv(await client.get("/admin/product/export/csv"))
    assert len(everything) == 4


async def test_exports_write_empty_values_as_empty(app: FastAPI, client: httpx.AsyncClient) -> None:
    root = await staff(app, client, "root", superuser=True)
    await insert(app, Product, name="Lamp", price=Decimal("1"), owner_id=root)

    [row] = exported_csv(await client.get("/admin/product/export/csv"))
    [item] = (await client.get("/admin/product/export/json")).json()

    assert (row["description"], row["category_id"]) == ("", "")
    assert (item["description"], item["category_id"]) == (None, None)


async def test_export_refuses_a_bad_filter(app: FastAPI, client: httpx.AsyncClient) -> None:
    await staff(app, client, "root", superuser=True)

    response = await client.get("/admin/product/export/csv?price=abc&price_op=exact")

    assert response.status_code == 400
