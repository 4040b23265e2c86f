"""List endpoints: pagination, ordering, search, filters, expand, and their 422s."""

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
from crudkit.testing import database
from shop.models import Category, Product
from tests.conftest import Caller

PRODUCTS = "/api/v1/products"


async def seed(app: FastAPI, owner: int, rows: list[dict[str, Any]]) -> None:
    async with database(app).transaction() as conn:
        await conn.execute(insert(table_of(Product)), [{"owner_id": owner, **row} for row in rows])


async def add_categories(app: FastAPI, *names: str) -> list[int]:
    async with database(app).transaction() as conn:
        result = await conn.execute(
            insert(table_of(Category)).returning(table_of(Category).c.id),
            [{"name": name} for name in names],
        )
        return [row[0] for row in result]


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


async def test_limit_offset_and_total(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    await seed(app, alice.id, [{"name": f"p{i:02}", "price": i} for i in range(30)])
    page = (await client.get(PRODUCTS, params={"limit": 10, "offset": 5})).json()
    assert page["total"] == 30
    assert [item["name"] for item in page["items"]] == [f"p{i:02}" for i in range(5, 15)]
    assert page["next_cursor"]
    last = (await client.get(PRODUCTS, params={"limit": 10, "offset": 25})).json()
    assert len(last["items"]) == 5
    assert last["total"] == 30
    assert last["next_cursor"] is None
    beyond = (await client.get(PRODUCTS, params={"offset": 100})).json()
    assert beyond == {"items": [], "total": 30, "next_cursor": None}


async def test_default_limit_is_the_setting(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    await seed(app, alice.id, [{"name": f"p{i:03}", "price": 1} for i in range(60)])
    page = (await client.get(PRODUCTS)).json()
    assert len(page["items"]) == 50
    assert page["total"] == 60


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 1001},
        {"limit": 0},
        {"limit": "ten"},
        {"offset": -1},
        {"offset": "x"},
        {"cursor": "garbage"},
        {"ordering": "owner_id"},
        {"ordering": "-description"},
        {"price": "cheap"},
        {"price__gte": "1e400000"},
        {"price__in": "1,x"},
        {"in_stock": "perhaps"},
        {"in_stock__gt": "true"},  # booleans have no order
        {"category_id": "99999999999999999999"},
        {"category_id__isnull": "sometimes"},
        {"expand": "owner"},
        {"expand": "nothing"},
        {"name": "Lamp"},  # not a filter field
        {"pirce": "10"},  # a typo must not silently return everything
        {"price__between": "1,2"},
    ],
)
async def test_bad_query_is_422_in_fastapi_shape(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    response = await client.get(PRODUCTS, params=params)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert all({"loc", "msg", "type"} <= set(error) for error in detail)


async def test_unknown_parameter_names_the_allowed_ones(client: httpx.AsyncClient) -> None:
    response = await client.get(PRODUCTS, params={"pirce": 1})
    error = response.json()["detail"][0]
    assert error["loc"] == ["query", "pirce"]
    assert "price__gte" in error["msg"]
    assert "ordering" in error["msg"]


async def test_cursor_with_offset_is_422(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    await seed(app, alice.id, [{"name": f"p{i}", "price": 1} for i in range(3)])
    cursor = (await client.get(PRODUCTS, params={"limit": 1})).json()["next_cursor"]
    response = await client.get(PRODUCTS, params={"cursor": cursor, "offset": 0})
    assert response.status_code == 422


async def test_edited_cursor_is_422(app: FastAPI, client: httpx.AsyncClient, alice: Caller) -> None:
    await seed(app, alice.id, [{"name": f"p{i}", "price": 1} for i in range(3)])
    cursor = (await client.get(PRODUCTS, params={"limit": 1})).json()["next_cursor"]
    body, signature = cursor.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload[1][-1] = 0  # rewind to the start
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    response = await client.get(PRODUCTS, params={"limit": 1, "cursor": f"{forged}.{signature}"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


async def test_cursor_made_for_another_ordering_is_422(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    await seed(app, alice.id, [{"name": f"p{i}", "price": i} for i in range(3)])
    cursor = (await client.get(PRODUCTS, params={"limit": 1, "ordering": "price"})).json()[
        "next_cursor"
    ]
    response = await client.get(PRODUCTS, params={"cursor": cursor, "ordering": "-price"})
    assert response.status_code == 422


@pytest.mark.parametrize(
    "ordering", [None, "price", "-price", "name,-price", "-name", "price,-name"]
)
async def test_cursor_walk_visits_every_row_once(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller, ordering: str | None
) -> None:
    # Many ties in price and name, so the primary key has to break them.
    rows = [{"name": f"n{i % 4}", "price": Decimal(i % 3)} for i in range(23)]
    await seed(app, alice.id, rows)
    params: dict[str, Any] = {"limit": 5}
    if ordering:
        params["ordering"] = ordering
    seen: list[int] = []
    first = (await client.get(PRODUCTS, params=params)).json()
    seen += [item["id"] for item in first["items"]]
    cursor = first["next_cursor"]
    pages = 1
    while cursor:
        page = (await client.get(PRODUCTS, params={**params, "cursor": cursor})).json()
        assert page["total"] is None  # no count with a cursor
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        pages += 1
    assert sorted(seen) == list(range(1, 24))
    assert len(seen) == 23
    assert pages == 5
    offset_order = [
        item["id"]
        for item in (await client.get(PRODUCTS, params={**params, "limit": 100})).json()["items"]
    ]
    assert seen == offset_order


async def test_ordering(app: FastAPI, client: httpx.AsyncClient, alice: Caller) -> None:
    await seed(
        app,
        alice.id,
        [{"name": "b", "price": 2}, {"name": "a", "price": 3}, {"name": "c", "price": 1}],
    )
    assert names(await client.get(PRODUCTS, params={"ordering": "price"})) == ["c", "b", "a"]
    assert names(await client.get(PRODUCTS, params={"ordering": "-price"})) == ["a", "b", "c"]
    assert names(await client.get(PRODUCTS, params={"ordering": "name"})) == ["a", "b", "c"]
    assert names(await client.get(PRODUCTS)) == ["b", "a", "c"]  # primary key


async def test_search_is_case_insensitive_substring(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    await seed(
        app,
        alice.id,
        [
            {"name": "Desk Lamp", "price": 1},
            {"name": "LAMPSHADE", "price": 1},
            {"name": "Chair", "price": 1},
        ],
    )
    assert names(await client.get(PRODUCTS, params={"search": "lamp"})) == [
        "Desk Lamp",
        "LAMPSHADE",
    ]
    assert names(await client.get(PRODUCTS, params={"search": "k la"})) == ["Desk Lamp"]
    assert names(await client.get(PRODUCTS, params={"search": "sofa"})) == []


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("%", ["100% wool"]),
        ("_", ["snake_case"]),
        ("\\", ["back\\slash"]),
        ("'", ["it's"]),
        ("' OR 1=1 --", []),
        ('"; DROP TABLE shop_product; --', []),
    ],
)
async def test_search_matches_wildcards_and_quotes_literally(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller, term: str, expected: list[str]
) -> None:
    await seed(
        app,
        alice.id,
        [
            {"name": name, "price": 1}
            for name in ("100% wool", "snake_case", "back\\slash", "it's", "plain")
        ],
    )
    assert names(await client.get(PRODUCTS, params={"search": term})) == expected
    assert len(names(await client.get(PRODUCTS))) == 5


async def test_filters(app: FastAPI, client: httpx.AsyncClient, alice: Caller) -> None:
    lamps, desks = await add_categories(app, "Lamps", "Desks")
    await seed(
        app,
        alice.id,
        [
            {"name": "a", "price": Decimal("5.00"), "category_id": lamps, "in_stock": True},
            {"name": "b", "price": Decimal("10.00"), "category_id": lamps, "in_stock": False},
            {"name": "c", "price": Decimal("15.50"), "category_id": desks, "in_stock": True},
            {"name": "d", "price": Decimal("20.00"), "category_id": None, "in_stock": True},
        ],
    )

    async def filtered(**params: Any) -> list[str]:
        return names(await client.get(PRODUCTS, params=params))

    assert await filtered(price="10") == ["b"]
    assert await filtered(price__gt="10") == ["c", "d"]
    assert await filtered(price__gte="10") == ["b", "c", "d"]
    assert await filtered(price__lt="10") == ["a"]
    assert await filtered(price__lte="10.00") == ["a", "b"]
    assert await filtered(price__ne="10") == ["a", "c", "d"]
    assert await filtered(category_id__in=f"{lamps},{desks}") == ["a", "b", "c"]
    assert await filtered(category_id__isnull="true") == ["d"]
    assert await filtered(category_id__isnull="false") == ["a", "b", "c"]
    assert await filtered(in_stock="false") == ["b"]
    assert await filtered(category_id=lamps, in_stock="true") == ["a"]
    total = (await client.get(PRODUCTS, params={"price__gte": 10})).json()["total"]
    assert total == 3


async def test_expand_many_to_one_and_one_to_many(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    (lamps,) = await add_categories(app, "Lamps")
    await seed(
        app,
        alice.id,
        [
            {"name": "a", "price": 1, "category_id": lamps},
            {"name": "b", "price": 1, "category_id": None},
        ],
    )
    items = (await client.get(PRODUCTS, params={"expand": "category"})).json()["items"]
    assert items[0]["category"] == {"id": lamps, "name": "Lamps", "product_count": 1}
    assert items[1]["category"] is None
    category = (
        await client.get(f"/api/v1/categories/{lamps}", params={"expand": "products"})
    ).json()
    assert [product["name"] for product in category["products"]] == ["a"]


async def test_a_parameter_given_twice_is_refused_not_half_read(
    client: httpx.AsyncClient, alice: Caller
) -> None:
    # A client sending `fields=id&fields=name` means both: taking the last one would
    # silently answer less than asked, so it is a 422 naming the parameter.
    for query in (
        "fields=id&fields=name",
        "ordering=price&ordering=-name",
        "price__gte=1&price__gte=2",
    ):
        answer = await client.get(f"{PRODUCTS}?{query}")
        assert answer.status_code == 422, query
        [error] = answer.json()["detail"]
        assert error["loc"] == ["query", query.split("=")[0]]
        assert "more than once" in error["msg"]
    assert (await client.get(f"{PRODUCTS}?fields=id,name&ordering=price,-name")).status_code == 200
    assert (await client.get(f"{PRODUCTS}/1?fields=id&fields=name")).status_code == 422
