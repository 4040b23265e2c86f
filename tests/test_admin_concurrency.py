"""Optimistic concurrency: saving a form over a row changed since it was opened writes nothing."""

from __future__ import annotations

from decimal import Decimal

import httpx
from fastapi import FastAPI

from shop.models import Category, Product
from tests.admin_support import form_version, history, insert, rows, staff, submit
from tests.conftest import Caller


async def test_the_form_carries_the_apis_etag(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    product = await insert(app, Product, name="Lamp", price=Decimal("12.50"), owner_id=alice.id)
    api = await client.get(f"/api/v1/products/{product}")
    await staff(app, client, "root", superuser=True)

    assert await form_version(client, f"/admin/product/edit/{product}") == api.headers["etag"]


async def test_a_stale_form_is_refused(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    product = await insert(app, Product, name="Lamp", price=Decimal("12.50"), owner_id=alice.id)
    await staff(app, client, "root", superuser=True)
    path = f"/admin/product/edit/{product}"
    version = await form_version(client, path)

    # Someone else saves first, through the API.
    changed = await client.patch(
        f"/api/v1/products/{product}", json={"price": "20"}, headers=alice.headers
    )
    assert changed.status_code == 200
    after_them = await rows(app, Product, id=product)
    entries = await history(app)

    response = await submit(
        client, path, {"name": "Desk lamp", "price": "13.00", "crudkit_version": version}
    )

    assert response.status_code == 400
    assert "Someone else changed this product after you opened the form" in response.text
    assert await rows(app, Product, id=product) == after_them
    assert await history(app) == entries


async def test_a_current_form_saves(app: FastAPI, client: httpx.AsyncClient) -> None:
    category = await insert(app, Category, name="Lighting")
    await staff(app, client, "root", superuser=True)
    path = f"/admin/category/edit/{category}"
    version = await form_version(client, path)

    first = await submit(client, path, {"name": "Lamps", "crudkit_version": version})
    second = await submit(client, path, {"name": "Lights", "crudkit_version": version})

    assert first.status_code == 302, first.text
    assert second.status_code == 400  # the same version again: the row changed since
    assert [row["name"] for row in await rows(app, Category)] == ["Lamps"]
    fresh = await form_version(client, path)
    assert fresh != version
    third = await submit(client, path, {"name": "Lights", "crudkit_version": fresh})
    assert third.status_code == 302, third.text
    assert [row["name"] for row in await rows(app, Category)] == ["Lights"]


async def test_create_forms_carry_no_version(app: FastAPI, client: httpx.AsyncClient) -> None:
    await staff(app, client, "root", superuser=True)

    form = await client.get("/admin/category/create")

    assert "crudkit_version" not in form.text
