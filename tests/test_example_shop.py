"""The example shop's own rules, through its API: tags, the spam rule, product stats,
the categories' product counts, and orders' status with the `cancel` action."""

from __future__ import annotations

from decimal import Decimal

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from crudkit.contrib.admin.models import LogEntry
from crudkit.contrib.auth.testing import create_user
from crudkit.db import table_of
from crudkit.testing import database
from shop.models import Category, Order, Product, Tag, product_tags
from tests.admin_support import ORIGIN, insert, page_token, rows, staff, submit
from tests.conftest import ANONYMOUS, Caller, make_caller

PRODUCTS = "/api/v1/products"
ORDERS = "/api/v1/orders"


async def add_product(client: httpx.AsyncClient, caller: Caller, **values: object) -> dict:
    body = {"name": "Lamp", "price": "10.00", **values}
    created = await client.post(PRODUCTS, json=body, headers=caller.headers)
    assert created.status_code == 201, created.text
    return created.json()


async def test_tags_are_public_to_read_and_need_permissions_to_write(
    client: httpx.AsyncClient, alice: Caller, superuser: Caller
) -> None:
    refused = await client.post("/api/v1/tags", json={"name": "new"}, headers=alice.headers)
    assert refused.status_code == 403
    created = await client.post("/api/v1/tags", json={"name": "new"}, headers=superuser.headers)
    assert created.status_code == 201, created.text
    listed = await client.get("/api/v1/tags", headers=ANONYMOUS)
    assert [tag["name"] for tag in listed.json()["items"]] == ["new"]
    taken = await client.post("/api/v1/tags", json={"name": "new"}, headers=superuser.headers)
    assert taken.status_code == 409


async def test_products_carry_tags_and_filter_by_them(
    client: httpx.AsyncClient, alice: Caller, superuser: Caller
) -> None:
    tags = [
        (await client.post("/api/v1/tags", json={"name": n}, headers=superuser.headers)).json()
        for n in ("gift", "new")
    ]
    gift, new = tags[0]["id"], tags[1]["id"]
    lamp = await add_product(client, alice, name="Lamp", tags=[gift, new])
    await add_product(client, alice, name="Desk", tags=[new])
    assert lamp["tags"] == [gift, new]

    gifts = (await client.get(PRODUCTS, params={"tags": gift})).json()["items"]
    assert [item["name"] for item in gifts] == ["Lamp"]
    either = (await client.get(PRODUCTS, params={"tags__in": f"{gift},{new}"})).json()
    assert either["total"] == 2

    patched = await client.patch(
        f"{PRODUCTS}/{lamp['id']}", json={"tags": [new]}, headers=alice.headers
    )
    assert patched.json()["tags"] == [new]
    missing = await client.patch(
        f"{PRODUCTS}/{lamp['id']}", json={"tags": [new, 999]}, headers=alice.headers
    )
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "tags", 1]
    expanded = await client.get(f"{PRODUCTS}/{lamp['id']}", params={"expand": "tags"})
    assert expanded.json()["tags"] == [{"id": new, "name": "new"}]


async def test_spam_is_refused_on_create_and_update(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    refused = await client.post(
        PRODUCTS, json={"name": "Cheap SPAM", "price": "1"}, headers=alice.headers
    )
    assert refused.status_code == 422
    assert refused.json()["detail"] == [
        {
            "loc": ["body", "name"],
            "msg": "Product names may not contain 'spam'.",
            "type": "value_error",
        }
    ]
    lamp = await add_product(client, alice)
    renamed = await client.patch(
        f"{PRODUCTS}/{lamp['id']}", json={"name": "spam lamp"}, headers=alice.headers
    )
    assert renamed.status_code == 422
    assert (await client.get(f"{PRODUCTS}/{lamp['id']}")).json()["name"] == "Lamp"
    # A change that leaves the name alone is not refused by it.
    priced = await client.patch(
        f"{PRODUCTS}/{lamp['id']}", json={"price": "12.00"}, headers=alice.headers
    )
    assert priced.status_code == 200


async def test_stats_cover_the_products_the_caller_may_read(
    client: httpx.AsyncClient, alice: Caller, bob: Caller
) -> None:
    empty = await client.get(f"{PRODUCTS}/stats", headers=ANONYMOUS)
    assert empty.status_code == 200
    assert empty.json() == {"count": 0, "average_price": None}
    await add_product(client, alice, price="10.00")
    await add_product(client, bob, price="15.00")
    await add_product(client, bob, price="20.50")

    stats = await client.get(f"{PRODUCTS}/stats", headers=ANONYMOUS)

    assert stats.json() == {"count": 3, "average_price": "15.17"}
    schema = (await client.get("/openapi.json")).json()
    assert schema["paths"][f"{PRODUCTS}/stats"]["get"]["operationId"] == "products_stats"


async def test_categories_count_their_products_and_order_by_the_count(
    client: httpx.AsyncClient, alice: Caller, superuser: Caller
) -> None:
    ids = {}
    for name in ("Books", "Garden", "Kitchen"):
        created = await client.post(
            "/api/v1/categories", json={"name": name}, headers=superuser.headers
        )
        ids[name] = created.json()["id"]
    for category, count in (("Books", 2), ("Garden", 0), ("Kitchen", 1)):
        for i in range(count):
            await add_product(client, alice, name=f"{category} {i}", category_id=ids[category])

    listed = await client.get("/api/v1/categories", params={"ordering": "-product_count"})

    assert [(c["name"], c["product_count"]) for c in listed.json()["items"]] == [
        ("Books", 2),
        ("Kitchen", 1),
        ("Garden", 0),
    ]
    refused = await client.patch(
        f"/api/v1/categories/{ids['Books']}",
        json={"product_count": 5},
        headers=superuser.headers,
    )
    assert refused.status_code == 422
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert schema["CategoryOut"]["properties"]["product_count"]["readOnly"] is True


async def test_orders_start_pending_and_cancel_once(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller, bob: Caller
) -> None:
    product = await add_product(client, alice)
    created = await client.post(
        ORDERS, json={"product_id": product["id"], "quantity": 2}, headers=alice.headers
    )
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["status"] == "pending"
    url = f"{ORDERS}/{order['id']}/cancel"

    assert (await client.post(url, headers=ANONYMOUS)).status_code == 401
    assert (await client.post(url, headers=bob.headers)).status_code == 404  # not bob's
    cancelled = await client.post(url, headers=alice.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    [entry] = await rows(app, LogEntry, model="order", action="update")
    assert (entry["channel"], entry["user_id"]) == ("api", alice.id)
    again = await client.post(url, headers=alice.headers)
    assert again.status_code == 409
    assert again.json() == {"detail": "This order is already cancelled."}
    reopened = await client.patch(
        f"{ORDERS}/{order['id']}", json={"status": "paid"}, headers=alice.headers
    )
    assert reopened.status_code == 422
    assert reopened.json()["detail"][0]["loc"] == ["body", "status"]
    async with database(app).reader() as reader:
        status = await reader.scalar(select(table_of(Order).c.status))
    assert status == "cancelled"


async def test_order_status_takes_only_its_values(client: httpx.AsyncClient, alice: Caller) -> None:
    product = await add_product(client, alice)
    refused = await client.post(
        ORDERS,
        json={"product_id": product["id"], "quantity": 1, "status": "shipped"},
        headers=alice.headers,
    )
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "status"]
    paid = await client.post(
        ORDERS,
        json={"product_id": product["id"], "quantity": 1, "status": "paid"},
        headers=alice.headers,
    )
    assert paid.json()["status"] == "paid"
    assert (await client.get(ORDERS, params={"status": "paid"}, headers=alice.headers)).json()[
        "total"
    ] == 1


async def test_cancel_needs_the_change_permission_on_the_row(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    product = await add_product(client, alice)
    order = (
        await client.post(
            ORDERS, json={"product_id": product["id"], "quantity": 1}, headers=alice.headers
        )
    ).json()
    viewer = await make_caller(app, "viewer", is_staff=True, permissions=["shop.view_order"])
    url = f"{ORDERS}/{order['id']}/cancel"
    assert (await client.get(f"{ORDERS}/{order['id']}", headers=viewer.headers)).status_code == 200
    assert (await client.post(url, headers=viewer.headers)).status_code == 403
    editor = await make_caller(
        app, "editor", is_staff=True, permissions=["shop.view_order", "shop.change_order"]
    )
    assert (await client.post(url, headers=editor.headers)).status_code == 200


# The same rules in the admin.


async def admin_order(app: FastAPI, owner: int, status: str = "pending") -> int:
    product = await insert(app, Product, name="Lamp", price=Decimal("10.00"), owner_id=owner)
    return await insert(app, Order, product_id=product, quantity=1, owner_id=owner, status=status)


async def run_cancel(client: httpx.AsyncClient, *pks: int) -> httpx.Response:
    token = await page_token(client, "/admin/order/list")
    return await client.post(
        "/admin/order/action/cancel",
        params={"pks": ",".join(map(str, pks))},
        data={"csrf_token": token},
        headers={"Origin": ORIGIN},
    )


async def test_the_admin_cancels_orders_as_the_api_does(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    root = await staff(app, client, "root", superuser=True)
    first, second = await admin_order(app, root), await admin_order(app, root)
    details = await client.get(f"/admin/order/details/{first}")
    assert "/admin/order/action/cancel?pks=" in details.text

    done = await run_cancel(client, first)

    assert done.status_code == 302
    assert [row["status"] for row in await rows(app, Order)] == ["cancelled", "pending"]
    entries = await rows(app, LogEntry, model="order")
    assert [(e["object_id"], e["action"], e["channel"]) for e in entries] == [
        (str(first), "update", "admin")
    ]

    # Several rows, one already cancelled: a 409 for that one, nothing written.
    refused = await run_cancel(client, second, first)
    assert refused.status_code == 302
    message = (await client.get(refused.headers["location"])).text
    assert "This order is already cancelled." in message
    assert [row["status"] for row in await rows(app, Order)] == ["cancelled", "pending"]


async def test_the_admin_offers_cancel_only_where_the_api_allows_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner = await create_user(app, "owner")
    theirs = await admin_order(app, owner)
    await staff(app, client, "viewer", "shop.view_order")

    details = await client.get(f"/admin/order/details/{theirs}")
    assert details.status_code == 200
    assert "/admin/order/action/cancel?pks=" not in details.text
    refused = await run_cancel(client, theirs)
    assert refused.status_code == 302  # back, with why
    page = (await client.get(refused.headers["location"])).text
    assert f"Cancel was not done on order #{theirs}" in page
    assert [row["status"] for row in await rows(app, Order)] == ["pending"]


async def test_the_admin_refuses_spam_on_the_name_field(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(app, client, "root", superuser=True)

    response = await submit(
        client, "/admin/product/create", {"name": "Spam fritters", "price": "3.00"}
    )

    assert response.status_code == 400
    assert "Product names may not contain &#39;spam&#39;." in response.text
    assert await rows(app, Product) == []


async def test_the_admin_shows_product_counts_and_edits_tags(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    root = await staff(app, client, "root", superuser=True)
    books = await insert(app, Category, name="Books")
    gift = await insert(app, Tag, name="gift")
    await insert(app, Product, name="Novel", price=Decimal(1), owner_id=root, category_id=books)

    listed = await client.get("/admin/category/list")
    assert "Product count" in listed.text

    created = await submit(
        client,
        "/admin/product/create",
        {"name": "Atlas", "price": "30.00", "category_id": str(books), "tags": str(gift)},
    )
    assert created.status_code == 302, created.text
    product = next(row for row in await rows(app, Product) if row["name"] == "Atlas")
    async with app.state.db.read() as conn:
        linked = (await conn.execute(select(product_tags.c.tag_id))).all()
    assert [tuple(row) for row in linked] == [(gift,)]
    assert product["category_id"] == books


async def test_other_methods_on_a_list_action_are_405(
    client: httpx.AsyncClient, alice: Caller
) -> None:
    # `/products/stats` is not taken for a product's id by PATCH or DELETE.
    for method in ("PATCH", "DELETE", "POST", "PUT"):
        answer = await client.request(method, f"{PRODUCTS}/stats", headers=alice.headers)
        assert answer.status_code == 405, (method, answer.text)
        assert answer.headers["allow"] == "GET"
    product = await add_product(client, alice)
    assert (await client.get(f"{PRODUCTS}/{product['id']}")).status_code == 200
