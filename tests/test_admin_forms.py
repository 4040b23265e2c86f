"""Admin forms: bad input and database refusals are messages on the page, never a 500."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

from crudkit.contrib.auth.testing import create_user
from shop.models import Category, Order, Product
from tests.admin_support import delete, insert, rows, staff, submit


@pytest.fixture
async def root(app: FastAPI, client: httpx.AsyncClient) -> int:
    return await staff(app, client, "root", superuser=True)


async def test_duplicate_name_is_a_form_error(
    app: FastAPI, client: httpx.AsyncClient, root: int
) -> None:
    await insert(app, Category, name="Lighting")

    response = await submit(client, "/admin/category/create", {"name": "Lighting"})

    assert response.status_code == 400
    assert "A row with this name already exists." in response.text
    assert "INSERT" not in response.text
    assert len(await rows(app, Category)) == 1


async def test_duplicate_name_on_edit_is_a_form_error(
    app: FastAPI, client: httpx.AsyncClient, root: int
) -> None:
    await insert(app, Category, name="Lighting")
    desks = await insert(app, Category, name="Desks")

    response = await submit(client, f"/admin/category/edit/{desks}", {"name": "Lighting"})

    assert response.status_code == 400
    assert "already exists" in response.text
    assert "UPDATE" not in response.text
    assert [row["name"] for row in await rows(app, Category, id=desks)] == ["Desks"]


@pytest.mark.parametrize(
    ("price", "message"),
    [
        ("-1", "greater than or equal to 0"),
        ("12.345", "decimal places"),
        ("123456789.00", "digits"),
        ("cheap", "Not a valid decimal value"),
        ("", "This field is required"),
    ],
)
async def test_the_apis_constraints_apply(
    app: FastAPI, client: httpx.AsyncClient, root: int, price: str, message: str
) -> None:
    response = await submit(client, "/admin/product/create", {"name": "Lamp", "price": price})

    assert response.status_code == 400
    assert message in response.text
    assert await rows(app, Product) == []


async def test_quantity_range_on_orders(app: FastAPI, client: httpx.AsyncClient, root: int) -> None:
    product = await insert(app, Product, name="Lamp", price=Decimal(1), owner_id=root)

    response = await submit(
        client, "/admin/order/create", {"product_id": str(product), "quantity": "5000"}
    )

    assert response.status_code == 400
    assert "less than or equal to 1000" in response.text
    assert await rows(app, Order) == []


async def test_too_long_name(app: FastAPI, client: httpx.AsyncClient, root: int) -> None:
    response = await submit(client, "/admin/category/create", {"name": "x" * 101})

    assert response.status_code == 400
    assert "100" in response.text
    assert await rows(app, Category) == []


async def test_delete_of_a_referenced_row_is_an_error_message(
    app: FastAPI, client: httpx.AsyncClient, root: int
) -> None:
    owner = await create_user(app, "owner")
    product = await insert(app, Product, name="Lamp", price=Decimal(1), owner_id=owner)
    await insert(app, Order, product_id=product, quantity=1, owner_id=owner)

    response = await delete(client, "product", product)

    assert response.status_code == 200
    assert "still+referred+to" in response.text  # the list URL, with the error to show
    assert len(await rows(app, Product)) == 1
    listing = await client.get(response.text.removeprefix("http://testserver"))
    assert "still referred to by other rows" in listing.text


async def test_list_search_filter_and_sort(
    app: FastAPI, client: httpx.AsyncClient, root: int
) -> None:
    for name, price in (("Desk lamp", "30"), ("100% wool rug", "80"), ("Lamp shade", "5")):
        await insert(app, Product, name=name, price=Decimal(price), owner_id=root)

    searched = await client.get("/admin/product/list", params={"search": "lamp"})
    assert "Desk lamp" in searched.text
    assert "Lamp shade" in searched.text
    assert "wool rug" not in searched.text
    # LIKE wildcards match literally.
    literal = await client.get("/admin/product/list", params={"search": "0%"})
    assert "wool rug" in literal.text
    assert "Desk lamp" not in literal.text

    filtered = await client.get(
        "/admin/product/list", params={"price": "10", "price_op": "gte", "sortBy": "price"}
    )
    assert filtered.status_code == 200
    assert filtered.text.index("Desk lamp") < filtered.text.index("wool rug")
    assert "Lamp shade" not in filtered.text

    stocked = await client.get("/admin/product/list", params={"in_stock": "false"})
    assert stocked.status_code == 200
    assert "Desk lamp" not in stocked.text


@pytest.mark.parametrize(
    ("identity", "params"),
    [
        ("product", {"price": "cheap", "price_op": "gte"}),
        ("product", {"price": "1", "price_op": "drop table"}),
        ("product", {"category_id": "99999999999999999999", "category_id_op": "exact"}),
        ("product", {"sortBy": "description"}),
        ("product", {"search": "nul\x00byte"}),
        ("permission", {"app_label": "nul\x00byte", "app_label_op": "exact"}),
    ],
    ids=["bad-value", "bad-operation", "out-of-range", "unsortable", "nul-search", "nul-filter"],
)
async def test_bad_list_parameters_are_400(
    client: httpx.AsyncClient, root: int, identity: str, params: dict[str, str]
) -> None:
    response = await client.get(f"/admin/{identity}/list", params=params)

    assert response.status_code == 400
