"""The guide `docs/extending.md`, run: its blog example (`docs/examples/extending.py`:
the model's `@validates`, a computed field, hooks with `on_commit` and `current_caller`,
the resource's dependencies) and the answers it shows from the example shop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy.engine import Row

import crudkit
from crudkit.contrib.auth.testing import auth_headers, create_user
from crudkit.testing import client_for, create_tables
from docs.examples.extending import Post, PostResource, outbox
from shop.models import Product
from tests.conftest import Caller

POSTS = "/api/v1/posts"
PRODUCTS = "/api/v1/products"
ORDERS = "/api/v1/orders"
CLIENT = {"X-Client": "tests"}


class ImportingPostResource(PostResource):
    """The guide's resource, with an action that fails after its write."""

    @crudkit.action(detail=False, methods=["POST"], permission="add")
    async def import_broken(self, request: Request) -> Post:
        await crudkit.create(Post, {"title": "Imported", "slug": "imported"}, request=request)
        raise crudkit.Conflict("The import stopped half-way.")


@pytest.fixture(autouse=True)
def _empty_outbox() -> Iterator[None]:
    outbox.clear()
    yield
    outbox.clear()


@pytest.fixture
async def blog(settings: crudkit.Settings) -> AsyncIterator[FastAPI]:
    registry = crudkit.Registry()
    registry.register(Post, ImportingPostResource)
    app = crudkit.create_app(settings, registry=registry)
    await create_tables(app)
    yield app
    await app.state.db.dispose()


@pytest.fixture
async def blog_client(blog: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(blog) as test_client:
        yield test_client


@pytest.fixture
async def writer(blog: FastAPI) -> dict[str, str]:
    return {**await auth_headers(blog, await create_user(blog, "alice")), **CLIENT}


async def test_the_dependency_runs_on_every_api_endpoint(
    blog_client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    body = {"title": "Hello", "slug": "hello"}
    headers = {k: v for k, v in writer.items() if k != "X-Client"}
    refused = await blog_client.post(POSTS, json=body, headers=headers)
    assert refused.status_code == 400
    assert refused.json() == {"detail": "Send an X-Client header naming your application."}
    assert (await blog_client.get(POSTS)).status_code == 400
    assert (await blog_client.post(f"{POSTS}/import_broken", headers=headers)).status_code == 400
    assert (await blog_client.get(POSTS, headers=CLIENT)).json()["total"] == 0


async def test_validates_normalises_and_refuses_on_every_channel(
    blog: FastAPI, blog_client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    created = await blog_client.post(
        POSTS, json={"title": "  Hello  ", "slug": " Hello-World "}, headers=writer
    )
    assert created.status_code == 201, created.text
    assert created.json() == {
        "id": 1,
        "title": "Hello",
        "slug": "hello-world",
        "body": "",
        "owner_id": created.json()["owner_id"],
        "reading_minutes": 1,
    }
    refused = await blog_client.patch(f"{POSTS}/1", json={"slug": "no spaces"}, headers=writer)
    assert refused.status_code == 422
    assert refused.json() == {
        "detail": [
            {
                "loc": ["body", "slug"],
                "msg": "Use letters, digits and single hyphens.",
                "type": "value_error",
            }
        ]
    }
    with pytest.raises(crudkit.ValidationError) as script:
        await crudkit.create(Post, {"title": "T", "slug": "a--b"}, app=blog, check=False)
    assert script.value.detail[0]["loc"] == ["body", "slug"]


async def test_the_computed_field_is_read_only_and_follows_the_row(
    blog_client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    words = " ".join(["word"] * 650)
    created = await blog_client.post(
        POSTS, json={"title": "Long", "slug": "long", "body": words}, headers=writer
    )
    assert created.json()["reading_minutes"] == 3
    sparse = await blog_client.get(POSTS, params={"fields": "slug,reading_minutes"}, headers=CLIENT)
    assert sparse.json()["items"] == [{"slug": "long", "reading_minutes": 3}]
    refused = await blog_client.patch(f"{POSTS}/1", json={"reading_minutes": 1}, headers=writer)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["type"] == "extra_forbidden"
    ordered = await blog_client.get(POSTS, params={"ordering": "reading_minutes"}, headers=CLIENT)
    assert ordered.status_code == 422


async def test_mail_is_sent_after_the_commit_and_not_for_trusted_imports(
    blog: FastAPI, blog_client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    created = await blog_client.post(
        POSTS, json={"title": "Hello", "slug": "hello"}, headers=writer
    )
    assert created.status_code == 201
    assert outbox == ["New post: Hello"]

    owner = created.json()["owner_id"]
    row: Row[Any] = await crudkit.create(
        Post, {"title": "From 2019", "slug": "old", "owner_id": owner}, app=blog, check=False
    )
    assert row.slug == "old"
    assert outbox == ["New post: Hello"]  # a trusted caller: no mail


async def test_a_rolled_back_write_sends_nothing(
    blog_client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    failed = await blog_client.post(f"{POSTS}/import_broken", headers=writer)
    assert failed.status_code == 409
    assert failed.json() == {"detail": "The import stopped half-way."}
    assert (await blog_client.get(POSTS, headers=CLIENT)).json()["total"] == 0
    assert outbox == []


# The example shop's answers the guide shows, in the order it shows them.


def answered(response: httpx.Response, status: int, body: Any = ...) -> None:
    assert response.status_code == status, response.text
    if body is not ...:
        assert response.json() == body


async def test_the_shop_answers_as_the_guide_shows(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller, bob: Caller, superuser: Caller
) -> None:
    for name in ("gift", "new"):
        answered(
            await client.post("/api/v1/tags", json={"name": name}, headers=superuser.headers), 201
        )
    for name in ("Lighting", "Garden"):
        answered(
            await client.post("/api/v1/categories", json={"name": name}, headers=superuser.headers),
            201,
        )
    lamp = {"name": "Lamp", "price": "10.00", "category_id": 1, "tags": [1, 2]}
    created = await client.post(PRODUCTS, json=lamp, headers=alice.headers)
    answered(created, 201)
    assert created.json() == {
        "id": 1,
        "description": None,
        "in_stock": True,
        "owner_id": alice.id,
        "created_at": created.json()["created_at"],
        "updated_at": created.json()["updated_at"],
        **lamp,
    }
    desk = {"name": "Desk lamp", "price": "15.00", "category_id": 1, "tags": [2]}
    answered(await client.post(PRODUCTS, json=desk, headers=bob.headers), 201)

    # Validation.
    spam = await client.post(
        PRODUCTS, json={"name": "Cheap SPAM", "price": "1"}, headers=alice.headers
    )
    answered(spam, 422, {"detail": [value_error("name", "Product names may not contain 'spam'.")]})

    # Computed fields.
    answered(
        await client.get("/api/v1/categories?ordering=-product_count&fields=name,product_count"),
        200,
        {
            "items": [
                {"name": "Lighting", "product_count": 2},
                {"name": "Garden", "product_count": 0},
            ],
            "total": 2,
            "next_cursor": None,
        },
    )
    count = await client.patch(
        "/api/v1/categories/1", json={"product_count": 5}, headers=superuser.headers
    )
    extra = {"msg": "Extra inputs are not permitted", "type": "extra_forbidden"}
    answered(count, 422, {"detail": [{"loc": ["body", "product_count"], **extra}]})

    # Sparse fieldsets.
    answered(
        await client.get(f"{PRODUCTS}?fields=name,price&ordering=price"),
        200,
        {
            "items": [{"name": "Lamp", "price": "10.00"}, {"name": "Desk lamp", "price": "15.00"}],
            "total": 2,
            "next_cursor": None,
        },
    )
    unknown = await client.get(f"{PRODUCTS}?fields=name,secret")
    allowed = "id, name, description, price, in_stock, category_id, owner_id, created_at, "
    message = f"unknown field 'secret'; allowed: {allowed}updated_at, tags"
    answered(
        unknown,
        422,
        {"detail": [{"loc": ["query", "fields"], "msg": message, "type": "value_error"}]},
    )

    # Many-to-many.
    missing = await client.patch(f"{PRODUCTS}/1", json={"tags": [2, 99]}, headers=alice.headers)
    error = {"loc": ["body", "tags", 1], "msg": "no tags item with key 99", "type": "value_error"}
    answered(missing, 422, {"detail": [error]})
    answered(await client.patch(f"{PRODUCTS}/1", json={"tags": [2]}, headers=alice.headers), 200)
    expanded = await client.get(f"{PRODUCTS}/1?expand=tags")
    assert expanded.json()["tags"] == [{"id": 2, "name": "new"}]

    # Actions.
    answered(await client.get(f"{PRODUCTS}/stats"), 200, {"count": 2, "average_price": "12.50"})
    order = {"product_id": 1, "quantity": 2}
    answered(await client.post(ORDERS, json=order, headers=alice.headers), 201)
    cancel = f"{ORDERS}/1/cancel"
    answered(await client.post(cancel), 401, {"detail": "Not authenticated."})
    answered(await client.post(cancel, headers=bob.headers), 404, {"detail": "Not found."})
    cancelled = await client.post(cancel, headers=alice.headers)
    answered(cancelled, 200)
    assert cancelled.json() == {
        "id": 1,
        **order,
        "note": None,
        "status": "cancelled",
        "owner_id": alice.id,
        "created_at": cancelled.json()["created_at"],
    }
    again = await client.post(cancel, headers=alice.headers)
    answered(again, 409, {"detail": "This order is already cancelled."})
    reopened = await client.patch(f"{ORDERS}/1", json={"status": "paid"}, headers=alice.headers)
    answered(
        reopened, 422, {"detail": [value_error("status", "A cancelled order stays cancelled.")]}
    )

    # The Python write API: a trusted caller skips the policy, not validation.
    with pytest.raises(crudkit.ValidationError) as refused:
        await crudkit.create(Product, {"name": "spam", "price": "1"}, app=app, check=False)
    assert refused.value.detail == [value_error("name", "Product names may not contain 'spam'.")]


def value_error(field: str, message: str) -> dict[str, Any]:
    return {"loc": ["body", field], "msg": message, "type": "value_error"}
