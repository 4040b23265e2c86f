"""The admin never shows a raw database error: a refused write is a message, on its field
when the database names one, above the form otherwise.

The schemas catch most bad values before the database sees them, so these
tests plant values the way a resource's hook can: `before_create` and
`before_update` change what is written after the form was validated.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from starlette.requests import Request

import crudkit
from crudkit.contrib.auth.models import User
from crudkit.contrib.auth.resources import UserResource
from crudkit.testing import client_for
from shop.models import Category, Product
from tests.admin_support import delete, form_version, insert, rows, staff, submit

LEAKS = ("[SQL:", "sqlalchemy", "asyncpg", "sqlite3", "psycopg", "Traceback", "INSERT", "UPDATE")

PLANTED: dict[str, dict[str, Any]] = {
    "foreign-key": {"category_id": 987_654},
    "check": {"price": Decimal("-5")},
    "too-long": {"name": "x" * 300},
    "nul": {"description": "a\x00b"},
    "numeric-overflow": {"price": Decimal("123456789012.50")},
    "int-overflow": {"category_id": 2**40},
    "huge-int": {"category_id": 2**70},
    "wrong-type": {"price": "cheap"},
}
"""What the hooks below write instead, by the product name the form sends."""


class PlantingProductResource(crudkit.Resource):
    """Products whose hooks write `PLANTED[name]` over the form's values."""

    owner_field = "owner_id"
    public_read = True

    async def before_create(self, request: Request, values: dict[str, Any]) -> dict[str, Any]:
        return {**values, **PLANTED.get(values.get("name", ""), {})}

    async def before_update(
        self, request: Request, obj: Any, values: dict[str, Any]
    ) -> dict[str, Any]:
        return {**values, **PLANTED.get(values.get("name", ""), {})}

    async def before_delete(self, request: Request, obj: Any) -> None:
        if obj.name == "broken-delete":  # a hook whose own SQL is wrong
            async with request.app.state.db.read() as conn:
                await conn.execute(text("SELECT :missing"))


@pytest.fixture
async def planted(settings: crudkit.Settings) -> AsyncIterator[FastAPI]:
    registry = crudkit.Registry()
    registry.register(User, UserResource)
    registry.register(Category)
    registry.register(Product, PlantingProductResource)
    app = crudkit.create_app(settings, registry=registry)
    yield app
    await app.state.db.dispose()


@pytest.fixture
async def planted_client(planted: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(planted) as client:
        await staff(planted, client, "root", superuser=True)
        yield client


def assert_readable(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    for leak in LEAKS:
        assert leak not in response.text, (leak, response.text[-3000:])


def form_error(response: httpx.Response) -> str:
    """The message shown above the form."""
    match = re.search(r'class="alert alert-danger[^"]*"[^>]*>(.*?)</div>', response.text, re.S)
    return re.sub(r"<[^>]+>|\s+", " ", match.group(1)).strip() if match else ""


def field_errors(response: httpx.Response, name: str) -> str:
    """The messages shown under the field `name`."""
    match = re.search(
        rf'name="{name}"(?:(?!name=")[\s\S])*?<div class="invalid-feedback">(.*?)</div>',
        response.text,
    )
    return re.sub(r"<[^>]+>|\s+", " ", match.group(1)).strip() if match else ""


@pytest.mark.parametrize("case", sorted(PLANTED))
async def test_a_refused_create_is_a_message(
    planted: FastAPI, planted_client: httpx.AsyncClient, case: str
) -> None:
    response = await submit(planted_client, "/admin/product/create", {"name": case, "price": "1"})

    assert_readable(response)
    if response.status_code != 302:  # SQLite takes some of these as they are
        assert response.status_code == 400
        assert form_error(response), response.text
        assert await rows(planted, Product) == []


@pytest.mark.parametrize("case", sorted(PLANTED))
async def test_a_refused_edit_is_a_message(
    planted: FastAPI, planted_client: httpx.AsyncClient, case: str
) -> None:
    [root] = await rows(planted, User)
    product = await insert(planted, Product, name="Lamp", price=Decimal(1), owner_id=root["id"])
    before = await rows(planted, Product)
    path = f"/admin/product/edit/{product}"
    version = await form_version(planted_client, path)

    response = await submit(
        planted_client, path, {"name": case, "price": "1", "crudkit_version": version}
    )

    assert_readable(response)
    if response.status_code != 302:
        assert response.status_code == 400
        assert form_error(response), response.text
        assert await rows(planted, Product) == before


@pytest.mark.parametrize(
    ("case", "field", "message"),
    [
        ("foreign-key", "category_id", "refers to a row that does not exist"),
        ("check", "price", "price_non_negative"),
    ],
)
async def test_a_refusal_the_database_names_a_column_for_is_on_its_field(
    planted: FastAPI, planted_client: httpx.AsyncClient, case: str, field: str, message: str
) -> None:
    response = await submit(planted_client, "/admin/product/create", {"name": case, "price": "1"})

    assert response.status_code == 400
    assert message in field_errors(response, field), response.text


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("too-long", "too long"),
        ("nul", "character"),
        ("numeric-overflow", "out of range"),
        ("int-overflow", "out of range"),
    ],
)
async def test_postgresql_data_errors_say_what_is_wrong(
    planted: FastAPI, planted_client: httpx.AsyncClient, case: str, message: str
) -> None:
    response = await submit(planted_client, "/admin/product/create", {"name": case, "price": "1"})

    assert response.status_code == 400
    assert message in form_error(response), response.text


async def test_a_duplicate_is_on_the_field(app: FastAPI, client: httpx.AsyncClient) -> None:
    await staff(app, client, "root", superuser=True)
    await insert(app, Category, name="Lighting")

    response = await submit(client, "/admin/category/create", {"name": "Lighting"})

    assert response.status_code == 400
    assert "A row with this name already exists." in field_errors(response, "name")
    assert_readable(response)


async def test_a_failed_delete_is_a_message(
    planted: FastAPI, planted_client: httpx.AsyncClient
) -> None:
    [root] = await rows(planted, User)
    product = await insert(
        planted, Product, name="broken-delete", price=Decimal(1), owner_id=root["id"]
    )

    response = await delete(planted_client, "product", product)

    assert response.status_code == 200  # the list URL to go to, with the error to show
    listing = await planted_client.get(response.text.removeprefix("http://testserver"))
    assert_readable(listing)
    assert "The database refused this change" in listing.text
    assert len(await rows(planted, Product)) == 1
