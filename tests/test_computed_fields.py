"""Computed read-only fields: `column_property` and `hybrid_property` expressions of the
model and `@crudkit.computed` methods of the resource are served in `Out` and documented
read-only, refused in bodies; the SQL ones filter, order and page in SQL, in the one
SELECT of a list."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert

import crudkit
from crudkit.contrib.auth.models import User
from crudkit.contrib.auth.resources import UserResource
from crudkit.contrib.auth.testing import auth_headers, create_user
from crudkit.db import table_of
from crudkit.testing import client_for, count_queries, database
from tests.admin_support import login
from tests.conftest import Caller
from tests.models import Bottle, Crate
from tests.test_openapi import Conformance, assert_valid

CRATES = "/api/v1/crates"
ONE = CRATES + "/{id}"


class CrateResource(crudkit.Resource):
    public_read = True
    filter_fields = ["name", "bottle_count", "total"]
    ordering_fields = ["name", "bottle_count", "total"]

    @crudkit.computed
    def display_price(self, row: Any) -> str:
        return f"{row.price} EUR"


@pytest.fixture
async def crates_app(settings: crudkit.Settings) -> AsyncIterator[FastAPI]:
    registry = crudkit.Registry()
    registry.register(User, UserResource)
    registry.register(Crate, CrateResource)
    app = crudkit.create_app(settings, registry=registry)
    yield app
    await app.state.db.dispose()


@pytest.fixture
async def client(crates_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(crates_app) as test_client:
        yield test_client


@pytest.fixture
async def root(crates_app: FastAPI) -> Caller:
    user_id = await create_user(crates_app, "root", is_staff=True, is_superuser=True)
    return Caller(user_id, await auth_headers(crates_app, user_id))


async def seed(app: FastAPI, crates: list[tuple[str, str, int, int]]) -> list[int]:
    """Crates as (name, price, quantity, bottles); their ids, in order."""
    async with database(app).transaction() as conn:
        result = await conn.execute(
            insert(table_of(Crate)).returning(table_of(Crate).c.id),
            [{"name": n, "price": Decimal(p), "quantity": q} for n, p, q, _ in crates],
        )
        ids = [row[0] for row in result]
        bottles = [
            {"crate_id": crate_id}
            for crate_id, (*_, count) in zip(ids, crates, strict=True)
            for _ in range(count)
        ]
        if bottles:
            await conn.execute(insert(table_of(Bottle)), bottles)
    return ids


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


async def test_out_serves_computed_fields_on_every_response(
    crates_app: FastAPI, client: httpx.AsyncClient, root: Caller
) -> None:
    api = await Conformance.of(client)  # every answer matches the documented `CrateOut`
    created = await api.request(
        "POST", CRATES, json={"name": "oak", "price": "2.50", "quantity": 4}, headers=root.headers
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["bottle_count"] == 0
    assert Decimal(body["total"]) == Decimal("10")
    assert body["display_price"] == "2.50 EUR"
    assert "initial" not in body  # a hybrid without a SQL expression is not served

    async with database(crates_app).transaction() as conn:
        await conn.execute(insert(table_of(Bottle)), [{"crate_id": body["id"]}] * 3)
    url = created.headers["location"]
    retrieved = await api.request("GET", ONE, url)
    assert retrieved.json() == {**body, "bottle_count": 3}
    listed = await api.request("GET", CRATES)
    assert listed.json()["items"] == [retrieved.json()]

    # The ETag is the row's, whatever the computed values: one from a read fits a write.
    assert retrieved.headers["etag"] == created.headers["etag"]
    updated = await api.request(
        "PATCH",
        ONE,
        url,
        json={"quantity": 5},
        headers={**root.headers, "If-Match": retrieved.headers["etag"]},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["bottle_count"] == 3
    assert Decimal(updated.json()["total"]) == Decimal("12.5")
    assert updated.headers["etag"] == (await client.get(url)).headers["etag"]


@pytest.mark.parametrize(
    ("key", "value"), [("bottle_count", 1), ("total", "3.00"), ("display_price", "1 EUR")]
)
async def test_bodies_with_computed_fields_are_refused(
    crates_app: FastAPI, client: httpx.AsyncClient, root: Caller, key: str, value: Any
) -> None:
    [crate] = await seed(crates_app, [("oak", "1", 1, 0)])
    create = {"name": "pine", "price": "1", "quantity": 1, key: value}
    for response in (
        await client.post(CRATES, json=create, headers=root.headers),
        await client.patch(f"{CRATES}/{crate}", json={key: value}, headers=root.headers),
    ):
        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", key]
        assert error["type"] == "extra_forbidden"
    listed = (await client.get(CRATES)).json()
    assert [item["name"] for item in listed["items"]] == ["oak"]


async def test_sql_computed_fields_filter_and_order_in_sql(
    crates_app: FastAPI, client: httpx.AsyncClient
) -> None:
    await seed(
        crates_app,
        [("a", "1.00", 10, 2), ("b", "5.00", 1, 0), ("c", "2.50", 2, 5), ("d", "3.00", 1, 2)],
    )
    assert names(await client.get(CRATES, params={"bottle_count__gte": 2})) == ["a", "c", "d"]
    assert names(await client.get(CRATES, params={"bottle_count": 0})) == ["b"]
    assert names(await client.get(CRATES, params={"total__gt": "4.99"})) == ["a", "b", "c"]
    assert names(await client.get(CRATES, params={"total__in": "3,5"})) == ["b", "c", "d"]
    assert names(await client.get(CRATES, params={"ordering": "-bottle_count"})) == [
        "c", "a", "d", "b"
    ]  # fmt: skip
    assert names(await client.get(CRATES, params={"ordering": "total,-name"})) == [
        "d", "c", "b", "a"
    ]  # fmt: skip
    counted = (await client.get(CRATES, params={"bottle_count__lt": 3, "limit": 1})).json()
    assert counted["total"] == 3  # the count runs under the same SQL condition
    bad = await client.get(CRATES, params={"bottle_count": "many"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "bottle_count"]


@pytest.mark.parametrize("ordering", ["-bottle_count", "bottle_count", "total", "-total,name"])
async def test_keyset_pages_walk_an_ordering_by_a_computed_field(
    crates_app: FastAPI, client: httpx.AsyncClient, ordering: str
) -> None:
    crates = [(f"c{i}", str(i % 3), 1 + i % 2, i % 4) for i in range(11)]
    await seed(crates_app, crates)
    expected = names(await client.get(CRATES, params={"ordering": ordering, "limit": 100}))
    walked: list[str] = []
    params: dict[str, Any] = {"ordering": ordering, "limit": 3}
    while True:
        page = await client.get(CRATES, params=params)
        walked += names(page)
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
        params["cursor"] = cursor
    assert walked == expected
    assert sorted(walked) == sorted(name for name, *_ in crates)


async def test_a_list_with_computed_fields_is_one_statement(
    crates_app: FastAPI, client: httpx.AsyncClient
) -> None:
    crate_ids = await seed(crates_app, [(f"c{i}", "1", 1, i) for i in range(20)])
    with count_queries(crates_app) as log:
        page = (await client.get(CRATES, params={"limit": 50, "ordering": "bottle_count"})).json()
    assert [item["bottle_count"] for item in page["items"]] == list(range(20))
    assert len(log) == 1, log.statements  # the page reached the end: no count either
    with count_queries(crates_app) as log:
        page = (await client.get(CRATES, params={"limit": 5})).json()
    assert len(page["items"]) == 5
    assert page["total"] == 20
    assert len(log) == 2, log.statements  # the page and the count, as without them
    with count_queries(crates_app) as log:
        assert (await client.get(f"{CRATES}/{crate_ids[3]}")).json()["bottle_count"] == 3
    assert len(log) == 1, log.statements


async def test_openapi_marks_computed_fields_read_only(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert_valid(document)
    schemas = document["components"]["schemas"]
    out = schemas["CrateOut"]["properties"]
    for key in ("bottle_count", "total", "display_price"):
        assert out[key]["readOnly"] is True, out[key]
        assert key in schemas["CrateOut"]["required"]
        assert key not in schemas["CrateCreate"]["properties"]
        assert key not in schemas["CrateUpdate"]["properties"]
    assert out["display_price"]["type"] == "string"
    assert "readOnly" not in out["name"]
    parameters = {parameter["name"] for parameter in document["paths"][CRATES]["get"]["parameters"]}
    assert {"bottle_count__gte", "total__lt"} <= parameters
    assert "display_price" not in parameters


# Refused at start, naming the resource.


def _register(resource: type[crudkit.Resource]) -> None:
    crudkit.Registry().register(Crate, resource)


@pytest.mark.parametrize("option", ["filter_fields", "ordering_fields", "search_fields"])
def test_a_python_computed_field_cannot_be_queried(option: str) -> None:
    resource = type("PricedCrates", (CrateResource,), {option: ["display_price"]})
    with pytest.raises(crudkit.ImproperlyConfigured) as caught:
        _register(resource)
    message = str(caught.value)
    assert message.startswith(f"PricedCrates.{option} names 'display_price'")
    assert "computed in Python" in message


def test_a_computed_field_cannot_shadow_a_column() -> None:
    class ClashingCrates(crudkit.Resource):
        @crudkit.computed
        def price(self, row: Any) -> str:
            return "free"

    with pytest.raises(crudkit.ImproperlyConfigured, match=r"^ClashingCrates\.price: .*column"):
        _register(ClashingCrates)

    class ShadowingCrates(crudkit.Resource):
        @crudkit.computed
        def bottle_count(self, row: Any) -> int:
            return 0

    with pytest.raises(crudkit.ImproperlyConfigured, match=r"^ShadowingCrates\.bottle_count"):
        _register(ShadowingCrates)


def test_a_computed_field_needs_a_return_annotation() -> None:
    class UntypedCrates(crudkit.Resource):
        @crudkit.computed
        def label(self, row: Any):  # type: ignore[no-untyped-def]
            return row.name

    with pytest.raises(crudkit.ImproperlyConfigured, match=r"^UntypedCrates\.label: .*return"):
        _register(UntypedCrates)


def test_resources_without_computed_fields_keep_their_row_functions() -> None:
    from crudkit.queries import ResourceQueries, row_etag

    plain = ResourceQueries(crudkit.Resource(Bottle))
    assert plain.public == plain._public  # chosen once: no per-row check for computed fields
    assert plain.etag is row_etag
    assert plain.select() is plain._select_all


async def test_the_admin_filters_and_sorts_by_sql_computed_fields(
    crates_app: FastAPI, client: httpx.AsyncClient, root: Caller
) -> None:
    await seed(crates_app, [("alder", "1", 1, 2), ("birch", "1", 1, 0), ("cedar", "1", 1, 5)])
    assert (await login(client, "root")).status_code in (302, 303)
    listed = await client.get(
        "/admin/crate/list",
        params={"bottle_count": "1", "bottle_count_op": "gte", "sortBy": "bottle_count",
                "sort": "desc"},
    )  # fmt: skip
    assert listed.status_code == 200, listed.text
    assert listed.text.index("cedar") < listed.text.index("alder")
    assert "birch" not in listed.text
