"""Self-contained cursors: a `next_cursor` carries its ordering, filters, search and page
size, so `?cursor=` alone continues the walk; a parameter sent along with it must be
the cursor's (422 otherwise), except `limit`."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert

from crudkit.db import table_of
from crudkit.requests import MAX_CURSOR
from crudkit.testing import database
from shop.models import Product, Tag, product_tags
from tests.conftest import Caller

PRODUCTS = "/api/v1/products"


async def seed(app: FastAPI, owner: int, count: int) -> dict[str, int]:
    """`count` products "lamp 00".. (every third a "desk"), prices 0..4, tagged: even
    ones `gift`, multiples of three `new`. Returns the tags' ids."""
    async with database(app).transaction() as conn:
        tags = await conn.execute(
            insert(table_of(Tag)).returning(table_of(Tag).c.id, table_of(Tag).c.name),
            [{"name": "gift"}, {"name": "new"}],
        )
        tag_ids = {name: id for id, name in tags}
        products = await conn.execute(
            insert(table_of(Product)).returning(table_of(Product).c.id),
            [
                {
                    "name": f"{'desk' if i % 3 == 0 else 'lamp'} {i:02}",
                    "price": Decimal(i % 5),
                    "in_stock": i % 4 != 0,
                    "owner_id": owner,
                }
                for i in range(count)
            ],
        )
        links = []
        for i, (product_id,) in enumerate(products):
            if i % 2 == 0:
                links.append({"product_id": product_id, "tag_id": tag_ids["gift"]})
            if i % 3 == 0:
                links.append({"product_id": product_id, "tag_id": tag_ids["new"]})
        await conn.execute(insert(product_tags), links)
    return tag_ids


def ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def walk(client: httpx.AsyncClient, params: dict[str, Any], **along: Any) -> list[int]:
    """Every row of the list: the first page with `params`, then `?cursor=` (and `along`)."""
    first = await client.get(PRODUCTS, params=params)
    seen = ids(first)
    cursor = first.json()["next_cursor"]
    while cursor:
        page = await client.get(PRODUCTS, params={**along, "cursor": cursor})
        seen += ids(page)
        assert page.json()["total"] is None
        cursor = page.json()["next_cursor"]
    return seen


def error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert len(detail) == 1
    first: dict[str, Any] = detail[0]
    return first


FILTERED = {
    "ordering": "-price,name",
    "search": "lamp",
    "price__gte": "1",
    "in_stock": "true",
    "tags__in": "",  # replaced by the gift tag's id
}


@pytest.fixture
async def tags(app: FastAPI, alice: Caller) -> dict[str, int]:
    return await seed(app, alice.id, 40)


def filtered(tags: dict[str, int], limit: int = 3) -> dict[str, Any]:
    return {**FILTERED, "tags__in": str(tags["gift"]), "limit": limit}


async def test_cursor_alone_walks_a_filtered_ordered_searched_list(
    client: httpx.AsyncClient, tags: dict[str, int]
) -> None:
    params = filtered(tags)
    expected = ids(await client.get(PRODUCTS, params={**params, "limit": 100}))
    assert 4 < len(expected) < 40  # the filters, search and tag filter all narrowed it
    seen = await walk(client, params)
    assert seen == expected  # every row once, in order
    # The same parameters sent along with the cursor: the same walk.
    assert await walk(client, params, **params) == expected
    # The page size may change from page to page; without `limit`, the cursor's.
    assert await walk(client, params, limit=1) == expected
    first = (await client.get(PRODUCTS, params=params)).json()
    following = await client.get(PRODUCTS, params={"cursor": first["next_cursor"]})
    assert len(ids(following)) == 3


async def test_many_to_many_filter_is_carried(
    client: httpx.AsyncClient, tags: dict[str, int]
) -> None:
    params = {"tags": tags["new"], "limit": 2}
    expected = ids(await client.get(PRODUCTS, params={**params, "limit": 100}))
    assert len(expected) == 14  # 0, 3, ..., 39
    assert await walk(client, params) == expected


async def test_parameters_left_out_keep_the_cursors(
    client: httpx.AsyncClient, tags: dict[str, int]
) -> None:
    params = filtered(tags)
    expected = ids(await client.get(PRODUCTS, params={**params, "limit": 100}))
    # Some of the cursor's filters sent, the others left out: those still apply.
    along = {"price__gte": "1", "ordering": "-price,name"}
    assert await walk(client, params, **along) == expected


@pytest.mark.parametrize(
    ("along", "loc", "message"),
    [
        ({"ordering": "price"}, "ordering", "ordering=-price,name,id; drop ordering"),
        ({"ordering": ""}, "ordering", "ordering=-price,name,id"),  # the default one
        ({"price__gte": "2"}, "price__gte", "price__gte=1; drop price__gte"),
        ({"price__gte": "1.0"}, "price__gte", "price__gte=1"),  # the same value, as sent
        ({"category_id": "1"}, "category_id", "without category_id"),
        ({"tags": "1"}, "tags", "without tags"),
        ({"search": "desk"}, "search", "search=lamp; drop search"),
        ({"search": ""}, "search", "search=lamp"),
    ],
)
async def test_parameter_other_than_the_cursors_is_422(
    client: httpx.AsyncClient,
    tags: dict[str, int],
    along: dict[str, str],
    loc: str,
    message: str,
) -> None:
    cursor = (await client.get(PRODUCTS, params=filtered(tags))).json()["next_cursor"]
    refused = error(await client.get(PRODUCTS, params={**along, "cursor": cursor}))
    assert refused["loc"] == ["query", loc]
    assert message in refused["msg"]


async def test_search_added_to_a_cursor_without_one_is_422(
    client: httpx.AsyncClient, tags: dict[str, int]
) -> None:
    cursor = (await client.get(PRODUCTS, params={"limit": 2})).json()["next_cursor"]
    refused = error(await client.get(PRODUCTS, params={"cursor": cursor, "search": "lamp"}))
    assert refused["loc"] == ["query", "search"]
    assert "without search" in refused["msg"]
    # An empty ordering is the default one: the cursor's.
    same = await client.get(PRODUCTS, params={"cursor": cursor, "ordering": ""})
    assert same.status_code == 200, same.text


def _payload(cursor: str) -> list[Any]:
    body = cursor.split(".")[0]
    payload: list[Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return payload


def _forge(payload: Any, signature: str) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    return f"{body}.{signature}"


async def test_edited_or_old_cursor_is_422(client: httpx.AsyncClient, tags: dict[str, int]) -> None:
    cursor = (await client.get(PRODUCTS, params=filtered(tags))).json()["next_cursor"]
    signature = cursor.split(".")[1]
    payload = _payload(cursor)
    assert payload[3]["price__gte"] == "1"
    dropped = [*payload[:3], {}, *payload[4:]]  # the filters removed
    old = payload[:2]  # the shape cursors had before they carried their filters
    non_ascii = cursor.split(".")[0] + ".é" + signature[1:]  # never a 500
    forgeries = (_forge(dropped, signature), _forge(old, signature), cursor + "x", "a.b", non_ascii)
    for forged in forgeries:
        refused = error(await client.get(PRODUCTS, params={"cursor": forged}))
        assert refused["loc"] == ["query", "cursor"]
    too_long = error(await client.get(PRODUCTS, params={"cursor": "a" * (MAX_CURSOR + 1)}))
    assert too_long["loc"] == ["query", "cursor"]


async def test_cursor_with_offset_stays_422(
    client: httpx.AsyncClient, tags: dict[str, int]
) -> None:
    cursor = (await client.get(PRODUCTS, params=filtered(tags))).json()["next_cursor"]
    refused = error(await client.get(PRODUCTS, params={"cursor": cursor, "offset": 0}))
    assert refused["loc"] == ["query", "cursor"]


async def test_filters_too_long_to_carry_are_repeated(
    client: httpx.AsyncClient, tags: dict[str, int]
) -> None:
    # 1,000 ids: a cursor carrying them would pass `MAX_CURSOR`; it carries their digest.
    params: dict[str, Any] = {"price__in": ",".join(str(n) for n in range(1, 1000)), "limit": 2}
    expected = ids(await client.get(PRODUCTS, params={**params, "limit": 100}))
    assert len(expected) == 32  # prices 1..4
    first = (await client.get(PRODUCTS, params=params)).json()
    assert len(first["next_cursor"]) <= MAX_CURSOR
    refused = error(await client.get(PRODUCTS, params={"cursor": first["next_cursor"]}))
    assert refused["loc"] == ["query", "cursor"]
    assert "send the same filters" in refused["msg"]
    other = {**params, "price__in": "1"}
    error(await client.get(PRODUCTS, params={**other, "cursor": first["next_cursor"]}))
    assert await walk(client, params, **params) == expected
