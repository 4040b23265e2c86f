"""`POST /<path>/bulk`: many writes in one request, each checked and recorded as if
sent alone, with the example shop's products, tags and orders."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import crudkit
from crudkit.contrib.admin.models import LogEntry
from crudkit.exceptions import Conflict
from crudkit.testing import count_queries
from crudkit.writes import WritePipeline
from shop.models import Order, Product, Tag
from tests.admin_support import rows
from tests.conftest import ANONYMOUS, Caller

PRODUCTS = "/api/v1/products"
BULK = f"{PRODUCTS}/bulk"


async def add_product(client: httpx.AsyncClient, caller: Caller, **values: object) -> dict:
    body = {"name": "Lamp", "price": "10.00", **values}
    created = await client.post(PRODUCTS, json=body, headers=caller.headers)
    assert created.status_code == 201, created.text
    return created.json()


def outcomes(answer: httpx.Response) -> list[tuple[str, int, int]]:
    return [(r["op"], r["index"], r["status"]) for r in answer.json()["results"]]


async def test_mixed_operations_each_get_their_own_status(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    lamp = await add_product(client, alice, name="Lamp")
    desk = await add_product(client, alice, name="Desk")
    gone = await add_product(client, alice, name="Gone")

    answer = await client.post(
        BULK,
        json={
            "create": [
                {"name": "Chair", "price": "5.00"},
                {"name": "Cheap spam", "price": "1.00"},  # the resource's own rule
                {"price": "1.00"},  # the Create schema: no name
            ],
            "update": [{"id": lamp["id"], "price": "12.00"}, {"id": 999, "price": "1.00"}],
            "delete": [gone["id"], 998],
        },
        headers=alice.headers,
    )

    assert answer.status_code == 200, answer.text
    assert outcomes(answer) == [
        ("create", 0, 201),
        ("create", 1, 422),
        ("create", 2, 422),
        ("update", 0, 200),
        ("update", 1, 404),
        ("delete", 0, 204),
        ("delete", 1, 404),
    ]
    results = answer.json()["results"]
    assert results[0]["item"]["name"] == "Chair"
    assert results[0]["item"]["owner_id"] == alice.id
    assert results[0]["item"]["tags"] == []
    assert results[1]["detail"] == [
        {
            "loc": ["body", "name"],
            "msg": "Product names may not contain 'spam'.",
            "type": "value_error",
        }
    ]
    assert results[2]["detail"][0]["loc"] == ["body", "name"]
    assert results[3]["item"]["price"] == "12.00"
    assert results[4]["detail"] == "Not found."
    assert set(results[5]) == {"op", "index", "status"}
    names = sorted(row["name"] for row in await rows(app, Product))
    assert names == ["Chair", "Desk", "Lamp"]
    assert (await client.get(f"{PRODUCTS}/{desk['id']}")).json()["price"] == "10.00"
    # One history row per write, as the single endpoints record them.
    entries = await rows(app, LogEntry, model="product")
    made = [(e["action"], e["object_id"]) for e in entries[3:]]  # after the three setups
    assert made == [
        ("create", str(results[0]["item"]["id"])),
        ("update", str(lamp["id"])),
        ("delete", str(gone["id"])),
    ]
    assert {(e["channel"], e["user_id"]) for e in entries} == {("api", alice.id)}
    assert entries[4]["changes"]["price"] == ["10.00", "12.00"]


async def test_atomic_writes_nothing_when_one_operation_fails(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    lamp = await add_product(client, alice)
    before = await rows(app, LogEntry)

    answer = await client.post(
        BULK,
        json={
            "create": [{"name": "Chair", "price": "5.00"}],
            "update": [{"id": lamp["id"], "name": "spam lamp"}],
            "delete": [lamp["id"] + 1],
            "atomic": True,
        },
        headers=alice.headers,
    )

    assert answer.status_code == 422, answer.text
    # Up to the failure, which is the last one reported; nothing of it was written.
    assert outcomes(answer) == [("create", 0, 201), ("update", 0, 422)]
    assert "item" not in answer.json()["results"][0]
    assert answer.json()["results"][1]["detail"][0]["loc"] == ["body", "name"]
    assert [row["name"] for row in await rows(app, Product)] == ["Lamp"]
    assert await rows(app, LogEntry) == before


async def test_atomic_answers_the_status_of_its_failure(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    lamp = await add_product(client, alice)
    answer = await client.post(
        BULK,
        json={"update": [{"id": lamp["id"], "price": "3.00"}], "delete": [999], "atomic": True},
        headers=alice.headers,
    )
    assert answer.status_code == 404
    assert outcomes(answer) == [("update", 0, 200), ("delete", 0, 404)]
    assert (await client.get(f"{PRODUCTS}/{lamp['id']}")).json()["price"] == "10.00"

    done = await client.post(
        BULK,
        json={"create": [{"name": "Chair", "price": "5.00"}], "delete": [lamp["id"]],
              "atomic": True},
        headers=alice.headers,
    )  # fmt: skip
    assert done.status_code == 200, done.text
    assert outcomes(done) == [("create", 0, 201), ("delete", 0, 204)]
    assert [row["name"] for row in await rows(app, Product)] == ["Chair"]


async def test_rows_of_others_are_not_found_and_not_leaked(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller, bob: Caller
) -> None:
    product = await add_product(client, alice)
    order = await client.post(
        "/api/v1/orders", json={"product_id": product["id"], "quantity": 2}, headers=alice.headers
    )
    order_id = order.json()["id"]
    missing = order_id + 100

    answer = await client.post(
        "/api/v1/orders/bulk",
        json={"update": [{"id": order_id, "quantity": 5}, {"id": missing, "quantity": 5}]},
        headers=bob.headers,
    )

    assert answer.status_code == 200
    results = answer.json()["results"]
    # Alice's order and one that does not exist get the same answer.
    assert [(r["status"], r["detail"]) for r in results] == [(404, "Not found.")] * 2
    assert [row["quantity"] for row in await rows(app, Order)] == [2]
    deleted = await client.post(
        "/api/v1/orders/bulk", json={"delete": [order_id]}, headers=bob.headers
    )
    assert outcomes(deleted) == [("delete", 0, 404)]
    assert len(await rows(app, Order)) == 1


async def test_many_to_many_keys_are_checked_per_operation(
    client: httpx.AsyncClient, alice: Caller, superuser: Caller
) -> None:
    tag = await client.post("/api/v1/tags", json={"name": "gift"}, headers=superuser.headers)
    gift = tag.json()["id"]
    lamp = await add_product(client, alice)

    answer = await client.post(
        BULK,
        json={
            "create": [{"name": "Desk", "price": "1", "tags": [gift]},
                       {"name": "Bed", "price": "1", "tags": [gift, 999]}],
            "update": [{"id": lamp["id"], "tags": [gift]}],
        },
        headers=alice.headers,
    )  # fmt: skip

    assert outcomes(answer) == [("create", 0, 201), ("create", 1, 422), ("update", 0, 200)]
    results = answer.json()["results"]
    assert results[0]["item"]["tags"] == [gift]
    assert results[1]["detail"][0]["loc"] == ["body", "tags", 1]
    assert results[2]["item"]["tags"] == [gift]
    assert (await client.get(f"{PRODUCTS}/{lamp['id']}")).json()["tags"] == [gift]


async def test_the_request_is_refused_as_a_whole(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    lamp = await add_product(client, alice)
    create = {"name": "Chair", "price": "5.00"}

    empty = await client.post(BULK, json={}, headers=alice.headers)
    assert empty.status_code == 422
    assert empty.json()["detail"][0]["loc"] == ["body"]

    too_many = await client.post(
        BULK,
        json={"create": [create] * 1000, "delete": [lamp["id"]]},
        headers=alice.headers,
    )
    assert too_many.status_code == 422
    assert too_many.json()["detail"][0]["loc"] == ["body"]
    assert "1000" in too_many.json()["detail"][0]["msg"]

    twice = await client.post(
        BULK,
        json={"create": [create], "update": [{"id": lamp["id"], "price": "1"}],
              "delete": [lamp["id"]]},
        headers=alice.headers,
    )  # fmt: skip
    assert twice.status_code == 422
    assert twice.json()["detail"][0]["loc"] == ["body", "delete", 0]
    assert str(lamp["id"]) in twice.json()["detail"][0]["msg"]

    unknown = await client.post(
        BULK, json={"create": [create], "upsert": []}, headers=alice.headers
    )
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "upsert"]

    bad_ids = await client.post(
        BULK,
        json={"create": [create], "update": [{"price": "1"}], "delete": ["x", 2**40]},
        headers=alice.headers,
    )
    assert bad_ids.status_code == 422
    assert [error["loc"] for error in bad_ids.json()["detail"]] == [
        ["body", "delete", 0],
        ["body", "delete", 1],
    ]
    no_id = await client.post(BULK, json={"update": [{"price": "1"}]}, headers=alice.headers)
    assert no_id.status_code == 422
    assert no_id.json()["detail"][0]["loc"] == ["body", "update", 0, "id"]

    huge = await client.post(
        BULK,
        content=b'{"create": [{"name": "' + b"x" * (app.state.settings.max_body_size) + b'"}]}',
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert huge.status_code == 413

    anonymous = await client.post(BULK, json={"create": [create]}, headers=ANONYMOUS)
    assert anonymous.status_code == 401
    # Nothing of any of them was written.
    assert [row["name"] for row in await rows(app, Product)] == ["Lamp"]


async def test_an_action_the_caller_may_not_do_refuses_the_request(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller, superuser: Caller
) -> None:
    answer = await client.post(
        "/api/v1/tags/bulk", json={"create": [{"name": "gift"}]}, headers=alice.headers
    )
    assert answer.status_code == 403
    allowed = await client.post(
        "/api/v1/tags/bulk",
        json={"create": [{"name": "gift"}, {"name": "gift"}]},
        headers=superuser.headers,
    )
    assert outcomes(allowed) == [("create", 0, 201), ("create", 1, 409)]
    assert isinstance(allowed.json()["results"][1]["detail"], str)


async def test_bulk_is_not_taken_for_an_id(client: httpx.AsyncClient, alice: Caller) -> None:
    assert (await client.get(BULK)).status_code == 405
    assert (await client.patch(BULK, json={}, headers=alice.headers)).status_code == 405
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"][BULK]["post"]
    assert operation["operationId"] == "products_bulk"
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body == "#/components/schemas/ProductBulk"
    assert "ProductBulkResults" in schema["components"]["schemas"]


async def test_creates_are_written_in_batches(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller, backend: str
) -> None:
    body = {"create": [{"name": f"p{i}", "price": "1.00"} for i in range(100)]}
    with count_queries(app) as log:
        answer = await client.post(BULK, json=body, headers=alice.headers)
    assert answer.status_code == 200, answer.text
    items = [result["item"] for result in answer.json()["results"]]
    assert [item["name"] for item in items] == [f"p{i}" for i in range(100)]
    ids = [item["id"] for item in items]
    assert ids == sorted(ids)  # inserted in the order sent
    assert {row["id"]: row["name"] for row in await rows(app, Product)} == {
        item["id"]: item["name"] for item in items
    }
    entries = await rows(app, LogEntry, model="product")
    assert sorted(int(entry["object_id"]) for entry in entries) == ids
    assert {(entry["action"], entry["channel"]) for entry in entries} == {("create", "api")}
    # The caller's lookup, the rows' INSERT, their history rows' INSERT, then the tags
    # of every row written, read at once. SQLite cannot return the rows of one INSERT in
    # the order they were sent, so SQLAlchemy sends them one by one there.
    inserts = 1 if backend == "postgresql" else 100
    assert len(log.on("INSERT INTO shop_product (")) == inserts
    assert len(log.statements) == 1 + inserts + 1 + 1, log.statements[-3:]
    assert len(log.on("crudkit_log_entry")) == 1
    assert len(log.on("shop_product_tags")) == 1


async def test_a_resource_may_write_its_creates_one_by_one(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    resource = app.state.apps.registry[Product]
    monkeypatch.setattr(type(resource), "bulk_batches", False)
    body = {"create": [{"name": f"p{i}", "price": "1.00"} for i in range(20)]}
    with count_queries(app) as log:
        answer = await client.post(BULK, json=body, headers=alice.headers)
    assert answer.status_code == 200, answer.text
    # The caller's lookup; each create alone: its INSERT and its history row; the tags.
    assert len(log.statements) == 1 + 2 * 20 + 1, log.statements[-3:]


async def test_batched_creates_keep_their_links_and_checks(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller, superuser: Caller
) -> None:
    gift = await client.post("/api/v1/tags", json={"name": "gift"}, headers=superuser.headers)
    new = await client.post("/api/v1/tags", json={"name": "new"}, headers=superuser.headers)
    keys = [gift.json()["id"], new.json()["id"]]
    body = {
        "create": [
            {"name": "Desk", "price": "1", "tags": keys},
            {"name": "Bed", "price": "1", "tags": [keys[1], 999]},  # no tag 999
            {"name": "Spam can", "price": "1"},  # the resource's own rule
            {"name": "Chair", "price": "1", "tags": [keys[1], keys[1]]},
            {"name": "Lamp", "price": "1"},
        ]
    }
    with count_queries(app) as log:
        answer = await client.post(BULK, json=body, headers=alice.headers)

    assert answer.status_code == 200, answer.text
    assert outcomes(answer) == [
        ("create", 0, 201),
        ("create", 1, 422),
        ("create", 2, 422),
        ("create", 3, 201),
        ("create", 4, 201),
    ]
    results = answer.json()["results"]
    assert results[1]["detail"] == [
        {"loc": ["body", "tags", 1], "msg": "no tags item with key 999", "type": "value_error"}
    ]
    assert results[2]["detail"][0]["loc"] == ["body", "name"]
    assert [results[i]["item"]["tags"] for i in (0, 3, 4)] == [keys, [keys[1]], []]
    for i in (0, 3, 4):
        stored = await client.get(f"{PRODUCTS}/{results[i]['item']['id']}")
        assert stored.json()["tags"] == results[i]["item"]["tags"]
    assert sorted(row["name"] for row in await rows(app, Product)) == ["Chair", "Desk", "Lamp"]
    # One check of the keys sent, one INSERT of the links (read back once for the answer).
    assert len(log.on("shop_tag")) == 1
    assert len([s for s in log.on("shop_product_tags") if s.startswith("INSERT")]) == 1
    entries = await rows(app, LogEntry, model="product")
    assert sorted(entry["object_repr"] for entry in entries) == ["Chair", "Desk", "Lamp"]


async def test_a_batch_the_database_refuses_is_written_one_by_one(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    # A category that does not exist: only the database can tell, and it refuses the
    # whole INSERT. Each create is then written alone, so only that one fails.
    body = {
        "create": [
            {"name": "Desk", "price": "1"},
            {"name": "Bed", "price": "1", "category_id": 999},
            {"name": "Lamp", "price": "1"},
        ]
    }
    answer = await client.post(BULK, json=body, headers=alice.headers)
    assert answer.status_code == 200, answer.text
    assert outcomes(answer) == [("create", 0, 201), ("create", 1, 422), ("create", 2, 201)]
    assert answer.json()["results"][1]["detail"][0]["loc"] == ["body", "category_id"]
    assert sorted(row["name"] for row in await rows(app, Product)) == ["Desk", "Lamp"]
    assert len(await rows(app, LogEntry, model="product")) == 2

    atomic = await client.post(BULK, json={**body, "atomic": True}, headers=alice.headers)
    assert atomic.status_code == 422, atomic.text
    assert outcomes(atomic) == [("create", 0, 201), ("create", 1, 422)]
    assert sorted(row["name"] for row in await rows(app, Product)) == ["Desk", "Lamp"]
    assert len(await rows(app, LogEntry, model="product")) == 2


async def test_an_atomic_batch_stops_at_its_first_refused_create(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    lamp = await add_product(client, alice)
    body = {
        "create": [
            {"name": "Desk", "price": "1"},
            {"price": "1"},  # refused by the Create schema
            {"name": "Spam can", "price": "1"},
        ],
        "delete": [lamp["id"]],
        "atomic": True,
    }
    answer = await client.post(BULK, json=body, headers=alice.headers)
    assert answer.status_code == 422, answer.text
    assert outcomes(answer) == [("create", 0, 201), ("create", 1, 422)]
    body["create"] = [{"name": "Desk", "price": "1"}, {"name": "Spam can", "price": "1"}]
    answer = await client.post(BULK, json=body, headers=alice.headers)
    assert outcomes(answer) == [("create", 0, 201), ("create", 1, 422)]
    assert [row["name"] for row in await rows(app, Product)] == ["Lamp"]

    body["create"] = [{"name": "Desk", "price": "1"}, {"name": "Bed", "price": "1"}]
    done = await client.post(BULK, json=body, headers=alice.headers)
    assert done.status_code == 200, done.text
    assert outcomes(done) == [("create", 0, 201), ("create", 1, 201), ("delete", 0, 204)]
    assert sorted(row["name"] for row in await rows(app, Product)) == ["Bed", "Desk"]


async def test_computed_fields_of_the_rows_written_are_read_at_once(
    app: FastAPI, client: httpx.AsyncClient, superuser: Caller, backend: str
) -> None:
    # Categories have a SQL-backed `product_count`: one query reads it for every row.
    body = {"create": [{"name": f"c{i}"} for i in range(20)]}
    with count_queries(app) as log:
        answer = await client.post("/api/v1/categories/bulk", json=body, headers=superuser.headers)
    assert answer.status_code == 200, answer.text
    items = [result["item"] for result in answer.json()["results"]]
    assert [item["product_count"] for item in items] == [0] * 20
    assert [item["name"] for item in items] == [f"c{i}" for i in range(20)]
    # The caller's lookup, the INSERT (20 on SQLite), the history rows, one read of the
    # counts.
    inserts = 1 if backend == "postgresql" else 20
    assert len(log.statements) == 1 + inserts + 1 + 1, log.statements[-3:]


async def test_a_batch_whose_after_create_refuses_a_row_is_written_one_by_one(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    resource = app.state.apps.registry[Product]

    async def after_create(self: object, request: object, row: Any) -> None:
        if row.name == "Bad":
            raise Conflict("Not this one.")

    monkeypatch.setattr(type(resource), "after_create", after_create)
    # A fresh pipeline, so the overridden hook is seen (app.state is no plain object:
    # monkeypatch would delete the attribute at the end instead of restoring it).
    pipeline = app.state.writes
    app.state.writes = WritePipeline(app.state.db, app.state.apps)
    try:
        await check_after_create_refusals(app, client, alice)
    finally:
        app.state.writes = pipeline


async def check_after_create_refusals(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    body: dict[str, Any] = {
        "create": [{"name": name, "price": "1"} for name in ("Desk", "Bad", "Lamp")]
    }
    answer = await client.post(BULK, json=body, headers=alice.headers)
    assert answer.status_code == 200, answer.text
    assert outcomes(answer) == [("create", 0, 201), ("create", 1, 409), ("create", 2, 201)]
    assert answer.json()["results"][1]["detail"] == "Not this one."
    assert sorted(row["name"] for row in await rows(app, Product)) == ["Desk", "Lamp"]
    assert len(await rows(app, LogEntry, model="product")) == 2

    atomic = await client.post(BULK, json={**body, "atomic": True}, headers=alice.headers)
    assert atomic.status_code == 409, atomic.text
    assert outcomes(atomic) == [("create", 0, 201), ("create", 1, 409)]
    assert len(await rows(app, Product)) == 2
    assert len(await rows(app, LogEntry, model="product")) == 2


async def test_what_a_refusing_before_create_wrote_is_rolled_back(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    resource = app.state.apps.registry[Product]

    async def before_create(self: object, request: Any, values: dict[str, Any]) -> Any:
        # Writes first (a tag named after the product), then refuses one product.
        await crudkit.create(Tag, {"name": f"for {values['name']}"}, check=False, request=request)
        if values["name"] == "Bad":
            raise Conflict("Not this one.")
        return values

    monkeypatch.setattr(type(resource), "before_create", before_create)
    body: dict[str, Any] = {
        "create": [{"name": name, "price": "1"} for name in ("Desk", "Bad", "Lamp")]
    }
    answer = await client.post(BULK, json=body, headers=alice.headers)
    assert answer.status_code == 200, answer.text
    assert outcomes(answer) == [("create", 0, 201), ("create", 1, 409), ("create", 2, 201)]
    assert sorted(row["name"] for row in await rows(app, Product)) == ["Desk", "Lamp"]
    # The refused product's tag went with it; those of the others were kept.
    assert sorted(row["name"] for row in await rows(app, Tag)) == ["for Desk", "for Lamp"]
