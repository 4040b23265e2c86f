"""Concurrent writers: If-Match lets exactly one of many win; concurrent creates all land."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from crudkit.db import table_of
from crudkit.testing import database
from shop.models import Product
from tests.conftest import Caller

PRODUCTS = "/api/v1/products"


async def test_concurrent_patches_with_one_etag_have_one_winner(
    client: httpx.AsyncClient, alice: Caller
) -> None:
    created = await client.post(
        PRODUCTS, json={"name": "Lamp", "price": "1.00"}, headers=alice.headers
    )
    url = f"{PRODUCTS}/{created.json()['id']}"
    etag = created.headers["etag"]
    responses = await asyncio.gather(
        *(
            client.patch(
                url, json={"price": f"{i + 2}.00"}, headers={**alice.headers, "If-Match": etag}
            )
            for i in range(20)
        )
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [412] * 19
    winner = next(response for response in responses if response.status_code == 200)
    final = await client.get(url)
    assert final.json()["price"] == winner.json()["price"]  # no lost update
    assert final.headers["etag"] == winner.headers["etag"]


async def test_concurrent_creates_all_land(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    responses = await asyncio.gather(
        *(
            client.post(PRODUCTS, json={"name": f"p{i}", "price": "1"}, headers=alice.headers)
            for i in range(100)
        )
    )
    assert [response.status_code for response in responses] == [201] * 100
    assert len({response.json()["id"] for response in responses}) == 100
    async with database(app).read() as conn:
        count = (await conn.execute(select(func.count()).select_from(table_of(Product)))).scalar()
    assert count == 100


async def test_concurrent_patches_without_etag_all_apply_in_some_order(
    client: httpx.AsyncClient, alice: Caller
) -> None:
    created = await client.post(
        PRODUCTS, json={"name": "Lamp", "price": "1.00"}, headers=alice.headers
    )
    url = f"{PRODUCTS}/{created.json()['id']}"
    responses = await asyncio.gather(
        *(client.patch(url, json={"price": f"{i}.00"}, headers=alice.headers) for i in range(20))
    )
    assert {response.status_code for response in responses} == {200}
