"""`fields=`: sparse fieldsets on list and retrieve.

Only the named keys are answered (the primary key too only when named); unknown
and write-only names are a 422 at `["query", "fields"]`; `expand=` adds its keys;
cursors and ETags work as without it; a list selects only the columns it needs,
in as many statements as without it; the document describes the parameter and
the sparse answers.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert

import crudkit
from crudkit.contrib.auth.testing import auth_headers, create_user
from crudkit.db import table_of
from crudkit.testing import client_for, count_queries, create_tables, database
from shop.models import Category, Product
from tests.conftest import Caller
from tests.models import Bottle, Crate, Gadget
from tests.test_openapi import Conformance, assert_valid

PRODUCTS = "/api/v1/products"
GADGETS = "/api/v1/gadgets"
CRATES = "/api/v1/crates"


async def seed(app: FastAPI, owner: int, count: int) -> None:
    async with database(app).transaction() as conn:
        categories = await conn.execute(
            insert(table_of(Category)).returning(table_of(Category).c.id),
            [{"name": f"c{i}"} for i in range(3)],
        )
        ids = [row[0] for row in categories]
        await conn.execute(
            insert(table_of(Product)),
            [
                {
                    "name": f"p{i}",
                    "description": f"long text {i}",
                    "price": Decimal(i % 4),
                    "owner_id": owner,
                    "category_id": ids[i % 3],
                }
                for i in range(count)
            ],
        )


def selected_columns(statement: str) -> set[str]:
    """The column names a `SELECT ... FROM` reads (`table.column AS label` items)."""
    head = statement.split(" FROM ", 1)[0]
    return set(re.findall(r"\.(\w+) AS ", head))


def assert_fields_error(response: httpx.Response, *named: str) -> str:
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "fields"]
    for name in named:
        assert repr(name) in error["msg"]
    return str(error["msg"])


async def test_list_answers_only_the_fields_named(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    await seed(app, alice.id, 5)
    page = (await client.get(PRODUCTS, params={"fields": "price,name"})).json()
    assert page["total"] == 5
    assert [list(item) for item in page["items"]] == [["name", "price"]] * 5
    assert [item["name"] for item in page["items"]] == [f"p{i}" for i in range(5)]
    assert page["items"][1]["price"] == "1.00"
    # The primary key is a field like any other: answered when named.
    items = (await client.get(PRODUCTS, params={"fields": "id,name,id"})).json()["items"]
    assert items[0] == {"id": 1, "name": "p0"}


async def test_list_selects_only_the_columns_it_needs(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    await seed(app, alice.id, 5)
    with count_queries(app) as full:
        assert (await client.get(PRODUCTS, params={"limit": 2})).status_code == 200
    with count_queries(app) as sparse:
        response = await client.get(PRODUCTS, params={"limit": 2, "fields": "name"})
    assert response.status_code == 200
    assert response.json()["total"] == 5
    # The same statements (the page and the count), the page reading fewer columns.
    # The full page reads the products' tags too; `fields=name` does not need them.
    assert len(full.statements) == 3, full.statements
    assert len(sparse.statements) == 2, sparse.statements
    assert "description" in selected_columns(full.statements[0])
    # `name`, and the primary key: the ordering's tiebreak, of which the next cursor is made.
    assert selected_columns(sparse.statements[0]) == {"name", "id"}
    with count_queries(app) as ordered:
        response = await client.get(PRODUCTS, params={"ordering": "-price", "fields": "name"})
    assert selected_columns(ordered.statements[0]) == {"name", "price", "id"}
    assert all(list(item) == ["name"] for item in response.json()["items"])


async def test_retrieve_answers_only_the_fields_named_with_the_rows_etag(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    await seed(app, alice.id, 1)
    full = await client.get(f"{PRODUCTS}/1")
    with count_queries(app) as log:
        sparse = await client.get(f"{PRODUCTS}/1", params={"fields": "price,name"})
    assert sparse.status_code == 200
    assert sparse.json() == {"name": "p0", "price": "0.00"}
    assert len(log.statements) == 1
    # The ETag is the row's: a conditional request or an If-Match made from it works.
    assert sparse.headers["etag"] == full.headers["etag"]
    cached = await client.get(
        f"{PRODUCTS}/1",
        params={"fields": "name"},
        headers={"If-None-Match": sparse.headers["etag"]},
    )
    assert cached.status_code == 304
    updated = await client.patch(
        f"{PRODUCTS}/1",
        json={"name": "renamed"},
        headers={**alice.headers, "If-Match": sparse.headers["etag"]},
    )
    assert updated.status_code == 200, updated.text


@pytest.mark.parametrize("path", [PRODUCTS, f"{PRODUCTS}/1"])
async def test_unknown_fields_are_refused_naming_them(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller, path: str
) -> None:
    await seed(app, alice.id, 1)
    response = await client.get(path, params={"fields": "name,nope,bogus,nope"})
    message = assert_fields_error(response, "nope", "bogus")
    assert "allowed: id, name, description, price" in message
    # A relation is not a field (expand= adds it), nor is an empty or padded name.
    for value in ("category", "", "name,", " name", "Name"):
        assert_fields_error(await client.get(path, params={"fields": value}))
    too_long = await client.get(path, params={"fields": ",".join(["name"] * 300)})
    assert too_long.status_code == 422
    assert too_long.json()["detail"][0]["loc"] == ["query", "fields"]


async def test_expand_adds_its_relation_to_the_fields_named(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    await seed(app, alice.id, 4)
    params = {"fields": "name", "expand": "category"}
    with count_queries(app) as log:
        items = (await client.get(PRODUCTS, params=params)).json()["items"]
    assert len(log.statements) == 2  # the page, then the categories: no N+1
    # The relation's key is read for the expansion, not answered.
    assert selected_columns(log.statements[0]) == {"name", "id", "category_id"}
    assert items[0] == {"name": "p0", "category": {"id": 1, "name": "c0", "product_count": 2}}
    assert [item["category"]["name"] for item in items] == ["c0", "c1", "c2", "c0"]
    one = (await client.get(f"{PRODUCTS}/2", params=params)).json()
    assert one == {"name": "p1", "category": {"id": 2, "name": "c1", "product_count": 1}}


async def test_cursor_pages_walk_every_row_once(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    await seed(app, alice.id, 7)
    params: dict[str, Any] = {"fields": "name", "ordering": "-price,name", "limit": 2}
    names: list[str] = []
    page = (await client.get(PRODUCTS, params=params)).json()
    while True:
        assert all(list(item) == ["name"] for item in page["items"])
        names += [item["name"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        with count_queries(app) as log:
            response = await client.get(PRODUCTS, params={**params, "cursor": page["next_cursor"]})
        assert response.status_code == 200, response.text
        assert len(log.statements) == 1  # no count on a cursor page, as without fields=
        page = response.json()
    assert page["total"] is None
    full = (await client.get(PRODUCTS, params={"ordering": "-price,name"})).json()["items"]
    assert names == [item["name"] for item in full]


async def test_document_describes_the_parameter_and_the_sparse_answers(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    await seed(app, alice.id, 3)
    conformance = await Conformance.of(client)
    document = conformance.document
    assert_valid(document)
    out = list(document["components"]["schemas"]["ProductOut"]["properties"])
    for template in (PRODUCTS, PRODUCTS + "/{id}"):
        parameters = document["paths"][template]["get"]["parameters"]
        (fields,) = [p for p in parameters if p["name"] == "fields"]
        assert fields["schema"]["items"]["enum"] == out
        assert (fields["style"], fields["explode"]) == ("form", False)
    params = {"fields": "name,price", "expand": "category"}
    await conformance.request("GET", PRODUCTS, params=params)
    await conformance.request("GET", PRODUCTS + "/{id}", f"{PRODUCTS}/1", params=params)
    await conformance.request("GET", PRODUCTS, params={"fields": "nope"})  # its 422


# A resource with a write-only field.


@pytest.fixture
async def gadget_app(settings: crudkit.Settings) -> AsyncIterator[FastAPI]:
    registry = crudkit.Registry()

    @registry.register(Gadget)
    class GadgetResource(crudkit.Resource):
        owner_field = "owner_id"
        public_read = True
        write_only_fields = ["secret"]

    app = crudkit.create_app(settings, registry=registry)
    await create_tables(app)
    yield app
    await app.state.db.dispose()


async def test_write_only_fields_are_never_selectable(gadget_app: FastAPI) -> None:
    owner = await create_user(gadget_app, "alice")
    async with client_for(gadget_app) as client:
        headers = await auth_headers(gadget_app, owner)
        created = await client.post(
            GADGETS, json={"name": "widget", "secret": "hunter2"}, headers=headers
        )
        assert created.status_code == 201, created.text
        for path in (GADGETS, f"{GADGETS}/{created.json()['id']}"):
            for value in ("secret", "name,secret"):
                response = await client.get(path, params={"fields": value})
                message = assert_fields_error(response, "secret")
                assert "secret" not in message.split("allowed:", 1)[1]
                assert "hunter2" not in response.text
        item = (await client.get(GADGETS, params={"fields": "name,notes"})).json()["items"][0]
        assert item == {"name": "widget", "notes": None}
        document = (await client.get("/openapi.json")).json()
        parameters = document["paths"][GADGETS]["get"]["parameters"]
        (fields,) = [p for p in parameters if p["name"] == "fields"]
        assert "secret" not in fields["schema"]["items"]["enum"]
        assert "name" in fields["schema"]["items"]["enum"]


# Computed fields.


@pytest.fixture
async def crates_app(settings: crudkit.Settings) -> AsyncIterator[FastAPI]:
    registry = crudkit.Registry()

    @registry.register(Crate)
    class CrateResource(crudkit.Resource):
        public_read = True
        ordering_fields = ["name", "bottle_count"]

        @crudkit.computed
        def display_price(self, row: Any) -> str:
            return f"{row.price} EUR"

    app = crudkit.create_app(settings, registry=registry)
    await create_tables(app)
    async with database(app).transaction() as conn:
        await conn.execute(
            insert(table_of(Crate)),
            [{"name": f"k{i}", "price": Decimal(i), "quantity": 2} for i in range(3)],
        )
        await conn.execute(insert(table_of(Bottle)), [{"crate_id": 2}, {"crate_id": 2}])
    yield app
    await app.state.db.dispose()


async def test_computed_fields_are_selectable(crates_app: FastAPI) -> None:
    async with client_for(crates_app) as client:
        params = {"fields": "bottle_count,name", "ordering": "-bottle_count"}
        with count_queries(crates_app) as log:
            page = (await client.get(CRATES, params=params)).json()
        assert page["items"][0] == {"name": "k1", "bottle_count": 2}
        assert len(log.statements) == 1
        # The SQL expression is selected; the other columns are not.
        head = log.statements[0].split(" FROM test_crate", 1)[0]
        assert "AS bottle_count" in head
        assert "quantity" not in head
        assert "price" not in head
        # A field computed in Python may read any column: the whole row is read for it.
        items = (await client.get(CRATES, params={"fields": "display_price"})).json()["items"]
        assert items == [{"display_price": f"{i}.00 EUR"} for i in range(3)]
        one = (await client.get(f"{CRATES}/3", params={"fields": "total,display_price"})).json()
        assert one == {"total": "4.00", "display_price": "2.00 EUR"}
