"""The README's default policy, every cell, on the example project's three resources.

`list` cells: `200+` means the row of the owner is listed, `200-` that it is filtered out.
The matrix helper also checks that every refused write changed nothing.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
from fastapi import FastAPI
from sqlalchemy import insert

from crudkit.contrib.auth.testing import create_user, permission_matrix
from crudkit.db import table_of
from crudkit.testing import database
from shop.models import Category, Order, Product


def row(list_: str, retrieve: str, create: str, update: str, delete: str) -> dict[str, str]:
    return {
        "list": list_,
        "retrieve": retrieve,
        "create": create,
        "update": update,
        "delete": delete,
    }


async def test_products_owned_and_public(app: FastAPI, client: httpx.AsyncClient) -> None:
    matrix = await permission_matrix(
        app,
        client,
        Product,
        row={"name": "Lamp", "price": Decimal("9.99")},
        create={"name": "Desk", "price": "120.00"},
        update={"price": "10.99"},
    )
    assert matrix.as_dict() == {
        "anonymous": row("200+", "200", "401", "401", "401"),
        "owner": row("200+", "200", "201", "200", "204"),
        "other": row("200+", "200", "201", "403", "403"),
        "view perm": row("200+", "200", "201", "403", "403"),
        "add perm": row("200+", "200", "201", "403", "403"),
        "change perm": row("200+", "200", "201", "200", "403"),
        "delete perm": row("200+", "200", "201", "403", "204"),
        "staff": row("200+", "200", "201", "403", "403"),
        "superuser": row("200+", "200", "201", "200", "204"),
    }, str(matrix)


async def test_orders_owned_and_private(app: FastAPI, client: httpx.AsyncClient) -> None:
    seller = await create_user(app, "seller")
    async with database(app).transaction() as conn:
        product_id = (
            await conn.execute(
                insert(table_of(Product))
                .values(name="Lamp", price=Decimal(1), owner_id=seller)
                .returning(table_of(Product).c.id)
            )
        ).scalar_one()
    matrix = await permission_matrix(
        app,
        client,
        Order,
        row={"product_id": product_id, "quantity": 1},
        create={"product_id": product_id, "quantity": 2},
        update={"quantity": 3},
    )
    assert matrix.as_dict() == {
        "anonymous": row("401", "401", "401", "401", "401"),
        "owner": row("200+", "200", "201", "200", "204"),
        "other": row("200-", "404", "201", "404", "404"),
        "view perm": row("200+", "200", "201", "403", "403"),
        "add perm": row("200-", "404", "201", "404", "404"),
        "change perm": row("200-", "404", "201", "200", "404"),
        "delete perm": row("200-", "404", "201", "404", "204"),
        "staff": row("200-", "404", "201", "404", "404"),
        "superuser": row("200+", "200", "201", "200", "204"),
    }, str(matrix)


async def test_categories_without_owner(app: FastAPI, client: httpx.AsyncClient) -> None:
    matrix = await permission_matrix(
        app,
        client,
        Category,
        row={"name": "Lamps"},
        create={"name": "Desks"},
        update={"name": "Lights"},
    )
    cells = matrix.as_dict()
    assert cells == {
        "anonymous": row("200+", "200", "401", "401", "401"),
        "owner": row("200+", "200", "403", "403", "403"),
        "other": row("200+", "200", "403", "403", "403"),
        "view perm": row("200+", "200", "403", "403", "403"),
        "add perm": row("200+", "200", "201", "403", "403"),
        "change perm": row("200+", "200", "403", "200", "403"),
        "delete perm": row("200+", "200", "403", "403", "204"),
        "staff": row("200+", "200", "403", "403", "403"),
        "superuser": row("200+", "200", "201", "200", "204"),
    }, str(matrix)
