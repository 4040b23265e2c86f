"""The admin applies the resources' permissions: hidden models, refused writes, owned rows."""

from __future__ import annotations

import re
from decimal import Decimal

import httpx
from fastapi import FastAPI

from crudkit.contrib.auth.models import User
from crudkit.contrib.auth.testing import create_user
from shop.models import Category, Order, Product
from tests.admin_support import delete, insert, rows, staff, submit

MENU = re.compile(r'<span class="nav-link-title">([^<]+)</span>')


async def _menu(client: httpx.AsyncClient) -> list[str]:
    response = await client.get("/admin/")
    assert response.status_code == 200
    return MENU.findall(response.text)


async def _product(app: FastAPI, owner_id: int, name: str = "Lamp") -> int:
    return await insert(app, Product, name=name, price=Decimal("10.00"), owner_id=owner_id)


async def test_superuser_sees_every_model(app: FastAPI, client: httpx.AsyncClient) -> None:
    await staff(app, client, "root", superuser=True)

    assert await _menu(client) == [
        "Users",
        "Groups",
        "Permissions",
        "History",
        "Categories",
        "Tags",
        "Products",
        "Orders",
    ]


async def test_index_shows_only_what_the_user_may_see(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(app, client, "clerk", "shop.view_category")

    # Categories through the view permission, tags as public rows; products and orders
    # are owner-scoped, so every staff member has their own rows there. Nothing of auth.
    assert await _menu(client) == ["Categories", "Tags", "Products", "Orders"]
    for identity in ("user", "group", "permission"):
        for path in (f"/admin/{identity}/list", f"/admin/{identity}/create"):
            assert (await client.get(path)).status_code == 403, path


async def test_public_rows_are_listed_read_only(app: FastAPI, client: httpx.AsyncClient) -> None:
    # Categories are public in the API, so in the admin too; writing them needs the
    # model permissions, as through the API.
    await insert(app, Category, name="Lighting")
    await staff(app, client, "clerk")

    assert "Categories" in await _menu(client)
    listing = await client.get("/admin/category/list")
    assert listing.status_code == 200
    assert "Lighting" in listing.text
    assert "/admin/category/create" not in listing.text
    assert (await client.get("/admin/category/create")).status_code == 403
    assert (await submit(client, "/admin/category/create", {"name": "Desks"})).status_code == 403
    assert [row["name"] for row in await rows(app, Category)] == ["Lighting"]


async def test_without_the_view_permission_the_model_is_hidden(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # Groups are neither public nor owned: their pages need their model permissions.
    await staff(app, client, "clerk", "auth.add_group", "auth.change_group")

    assert "Groups" not in await _menu(client)
    assert (await client.get("/admin/group/create")).status_code == 403
    assert (await submit(client, "/admin/group/create", {"name": "Editors"})).status_code == 403


async def test_staff_write_exactly_where_the_api_would(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner = await create_user(app, "owner")
    product_id = await _product(app, owner)
    await staff(app, client, "viewer", "shop.view_product")
    before = await rows(app, Product, id=product_id)

    listing = await client.get("/admin/product/list")
    details = await client.get(f"/admin/product/details/{product_id}")
    assert listing.status_code == details.status_code == 200
    assert "Lamp" in listing.text
    # Someone else's row: read-only, as through the API.
    for page in (listing.text, details.text):
        assert f"/admin/product/edit/{product_id}" not in page
    assert (await client.get(f"/admin/product/edit/{product_id}")).status_code == 403
    edited = await submit(
        client, f"/admin/product/edit/{product_id}", {"name": "Changed", "price": "2.00"}
    )
    assert edited.status_code == 403
    assert (await delete(client, "product", product_id)).status_code == 403
    assert await rows(app, Product, id=product_id) == before

    # Products belong to whoever creates them: the API lets anyone signed in create one.
    assert "/admin/product/create" in listing.text
    created = await submit(client, "/admin/product/create", {"name": "New", "price": "1.00"})
    assert created.status_code == 302, created.text


async def test_an_owner_edits_their_row_without_model_permissions(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    bob = await create_user(app, "bob")
    bobs = await _product(app, bob, "Bob's lamp")
    alice = await staff(app, client, "alice")
    alices = await _product(app, alice, "Alice's lamp")
    before = await rows(app, Product, id=bobs)

    listing = await client.get("/admin/product/list")
    assert "Alice&#39;s lamp" in listing.text
    assert "Bob&#39;s lamp" in listing.text  # public rows, listed as the API lists them
    assert f"/admin/product/edit/{alices}" in listing.text
    assert f"/admin/product/edit/{bobs}" not in listing.text

    assert (await client.get(f"/admin/product/edit/{bobs}")).status_code == 403
    edited = await submit(
        client, f"/admin/product/edit/{bobs}", {"name": "Mine now", "price": "1.00"}
    )
    assert edited.status_code == 403
    assert (await delete(client, "product", bobs)).status_code == 403
    assert await rows(app, Product, id=bobs) == before

    # Her own row she changes, as through the API.
    assert (await client.get(f"/admin/product/edit/{alices}")).status_code == 200
    edited = await submit(
        client, f"/admin/product/edit/{alices}", {"name": "Alice's desk lamp", "price": "3.50"}
    )
    assert edited.status_code == 302, edited.text
    [row] = await rows(app, Product, id=alices)
    assert (row["name"], row["price"], row["owner_id"]) == (
        "Alice's desk lamp",
        Decimal("3.50"),
        alice,
    )


async def test_created_rows_belong_to_their_creator(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    category = await insert(app, Category, name="Lighting")
    alice = await staff(app, client, "alice", "shop.add_product", "shop.view_category")

    response = await submit(
        client,
        "/admin/product/create",
        {"name": "Lamp", "price": "12.50", "category_id": str(category), "in_stock": "y"},
    )

    assert response.status_code == 302, response.text
    [product] = await rows(app, Product)
    assert (product["owner_id"], product["category_id"]) == (alice, category)
    # The owner is not a form field: it cannot be set, or changed, from the form.
    form = await client.get("/admin/product/create")
    assert 'name="owner"' not in form.text
    assert 'name="owner_id"' not in form.text


async def test_orders_are_private_to_their_owners(app: FastAPI, client: httpx.AsyncClient) -> None:
    bob = await create_user(app, "bob")
    product = await _product(app, bob)
    order = await insert(app, Order, product_id=product, quantity=2, owner_id=bob)
    await staff(app, client, "clerk")

    assert (await client.get(f"/admin/order/details/{order}")).status_code == 404
    listing = await client.get("/admin/order/list")
    assert f"/admin/order/details/{order}" not in listing.text


async def test_delete_with_the_permission(app: FastAPI, client: httpx.AsyncClient) -> None:
    lighting = await insert(app, Category, name="Lighting")
    owner = await create_user(app, "owner")
    product = await insert(
        app, Product, name="Lamp", price=Decimal(1), owner_id=owner, category_id=lighting
    )
    await staff(app, client, "clerk", "shop.view_category", "shop.delete_category")

    response = await delete(client, "category", lighting)

    assert response.status_code == 200
    assert "error" not in response.text
    assert await rows(app, Category) == []
    # ON DELETE SET NULL, applied by the database.
    [row] = await rows(app, Product, id=product)
    assert row["category_id"] is None


async def test_unknown_and_malformed_urls(app: FastAPI, client: httpx.AsyncClient) -> None:
    await staff(app, client, "root", superuser=True)

    assert (await client.get("/admin/product/details/abc")).status_code == 404
    assert (await client.get("/admin/product/details/99999999999999999999")).status_code == 404
    assert (await client.get("/admin/product/edit/abc")).status_code == 404
    assert (await delete(client, "product", "abc")).status_code == 404
    assert (await client.get("/admin/nothing/list")).status_code == 404
    assert await rows(app, User, username="nobody") == []


async def test_a_delete_naming_too_many_rows_is_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    root = await staff(app, client, "root", superuser=True)
    product = await _product(app, root)
    limit = app.state.settings.page_size_max

    response = await delete(client, "product", product, *range(10**6, 10**6 + limit))

    assert response.status_code == 400
    assert [row["id"] for row in await rows(app, Product)] == [product]
