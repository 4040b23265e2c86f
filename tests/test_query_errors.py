"""422 bodies stay small whatever the request, and a bad query value is refused by the
name of its parameter, alike on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import crudkit
from crudkit.testing import client_for
from tests.conftest import Caller
from tests.models import Reading
from tests.test_api_list import PRODUCTS, names, seed

MAX_BODY = 16 * 1024


def small_422(response: httpx.Response) -> list[dict[str, Any]]:
    """The items of a 422 in FastAPI's shape, checking the body's size."""
    assert response.status_code == 422, response.text[:300]
    assert len(response.content) < MAX_BODY, len(response.content)
    detail: list[dict[str, Any]] = response.json()["detail"]
    assert all(set(error) == {"loc", "msg", "type"} for error in detail)
    return detail


async def test_thousands_of_unknown_parameters_name_ten_and_list_the_allowed_once(
    client: httpx.AsyncClient,
) -> None:
    params = {f"unknown{i}": "1" for i in range(2000)}
    assert len(str(httpx.QueryParams(params))) > 15_000

    detail = small_422(await client.get(PRODUCTS, params=params))

    named = [error for error in detail if len(error["loc"]) == 2]
    assert [error["loc"] for error in named] == [["query", f"unknown{i}"] for i in range(10)]
    assert all(error["type"] == "extra_forbidden" for error in detail)
    assert "price__gte" in detail[0]["msg"]
    assert sum("price__gte" in error["msg"] for error in detail) == 1
    assert detail[-1] == {
        "loc": ["query"],
        "msg": "and 1990 more unknown query parameters",
        "type": "extra_forbidden",
    }


async def test_an_unknown_parameter_with_a_huge_name_is_a_small_422(
    client: httpx.AsyncClient, alice: Caller
) -> None:
    for name in ("n" * 20_000, "\x01" * 5_000, "\U0001f525" * 3_000):
        detail = small_422(await client.get(PRODUCTS, params={name: "1"}))
        assert detail[0]["loc"][0] == "query"
        assert "price__gte" in detail[0]["msg"]
        detail = small_422(await client.get(f"{PRODUCTS}/1", params={name: "1"}))
        assert "allowed: expand" in detail[0]["msg"]


async def test_every_bad_filter_value_is_reported_within_the_bound(
    client: httpx.AsyncClient,
) -> None:
    bad = {
        "price": "x" * 10_000,
        "price__gt": "\x00" * 5_000,
        "category_id__in": ",".join(["nope"] * 2000),
        "in_stock": "maybe",
        "category_id": "1" * 5000,
    }
    detail = small_422(await client.get(PRODUCTS, params=bad))
    assert {error["loc"][1] for error in detail} == set(bad)


async def test_a_body_with_ten_thousand_bad_keys_is_a_small_422(
    client: httpx.AsyncClient, alice: Caller
) -> None:
    body = {"name": "Lamp", "price": "1", **{f"extra{i}": i for i in range(10_000)}}
    detail = small_422(await client.post(PRODUCTS, json=body, headers=alice.headers))
    assert detail[0]["loc"] == ["body", "extra0"]
    assert detail[-1]["type"] == "too_many_errors"
    shown = len(detail) - 1
    assert detail[-1]["msg"] == f"{10_000 - shown} more errors not shown"


@pytest.fixture
async def numbers_client(settings: crudkit.Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An app with a route of the project's own, validated by FastAPI."""
    app: FastAPI = crudkit.create_app(settings, registry=crudkit.Registry())

    @app.post("/numbers")
    async def add(numbers: list[int]) -> int:
        return sum(numbers)

    async with client_for(app) as client:
        yield client
    await app.state.db.dispose()


async def test_fastapi_validation_errors_are_bounded_too(
    numbers_client: httpx.AsyncClient,
) -> None:
    ok = await numbers_client.post("/numbers", json=[1, 2])
    assert ok.json() == 3
    detail = small_422(await numbers_client.post("/numbers", json=["x" * 50] * 10_000))
    assert detail[0] == {
        "loc": ["body", 0],
        "msg": "Input should be a valid integer, unable to parse string as an integer",
        "type": "int_parsing",
    }
    assert detail[-1]["type"] == "too_many_errors"
    assert json.loads(json.dumps(detail)) == detail


# Query values PostgreSQL cannot take: each one accepted, or refused by its name, alike
# on both databases (never a 422 at ["body"] from the database's own error).


@pytest.mark.parametrize("offset", [2**31, 2**62])
async def test_offsets_up_to_the_documented_bound_are_accepted(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller, offset: int
) -> None:
    await seed(app, alice.id, [{"name": "Lamp", "price": 1}])
    response = await client.get(PRODUCTS, params={"offset": offset})
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "total": 1, "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"offset": str(2**62 + 1)}, "offset"),
        ({"search": "a\x00"}, "search"),
        ({"ordering": "name\x00"}, "ordering"),
        ({"cursor": "\x00"}, "cursor"),
        ({"price": "1e-999999999"}, "price"),
        ({"price__lt": "1e-16384"}, "price__lt"),
        ({"price__in": "1,1e-999999999"}, "price__in"),
    ],
)
async def test_query_values_out_of_range_name_their_parameter(
    app: FastAPI,
    client: httpx.AsyncClient,
    alice: Caller,
    params: dict[str, str],
    name: str,
) -> None:
    await seed(app, alice.id, [{"name": "Lamp", "price": 1}])
    detail = small_422(await client.get(PRODUCTS, params=params))
    assert [error["loc"] for error in detail] == [["query", name]]


async def test_decimals_finer_than_the_column_are_refused_on_every_database(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    # PostgreSQL would round 0.001 to the column's 0.00 (and find the free lamp), SQLite not.
    await seed(app, alice.id, [{"name": "Free", "price": 0}, {"name": "Lamp", "price": 1}])
    for params in ({"price__lt": "0.001"}, {"price": "0.004"}, {"price__gt": "1e-16383"}):
        detail = small_422(await client.get(PRODUCTS, params=params))
        assert detail[0]["loc"] == ["query", *params]
        assert detail[0]["type"] == "decimal_max_places"
    assert names(await client.get(PRODUCTS, params={"price__lt": "0.01"})) == ["Free"]
    assert names(await client.get(PRODUCTS, params={"price__gt": "0.00"})) == ["Lamp"]


@pytest.fixture
async def readings(settings: crudkit.Settings) -> AsyncIterator[httpx.AsyncClient]:
    registry = crudkit.Registry()

    @registry.register(Reading)
    class ReadingResource(crudkit.Resource):
        public_read = True
        filter_fields = ["value"]

    app = crudkit.create_app(settings, registry=registry)
    async with client_for(app) as client:
        yield client
    await app.state.db.dispose()


async def test_a_decimal_column_without_precision_takes_what_the_database_holds(
    readings: httpx.AsyncClient, superuser: Caller
) -> None:
    created = await readings.post(
        "/api/v1/readings", json={"value": "1e-16383"}, headers=superuser.headers
    )
    assert created.status_code == 201, created.text
    for value in ("1e-16384", "1e-999999999", "1e999999999"):
        refused = await readings.post(
            "/api/v1/readings", json={"value": value}, headers=superuser.headers
        )
        assert [error["loc"] for error in small_422(refused)] == [["body", "value"]]
        detail = small_422(await readings.get("/api/v1/readings", params={"value__gt": value}))
        assert [error["loc"] for error in detail] == [["query", "value__gt"]]
    found = await readings.get("/api/v1/readings", params={"value__gte": "-1e-16383"})
    assert [item["id"] for item in found.json()["items"]] == [created.json()["id"]]
