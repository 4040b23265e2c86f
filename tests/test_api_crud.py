"""The five generated endpoints: success codes, headers, and every error they answer."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from crudkit.db import table_of
from crudkit.testing import database
from shop.models import Category, Order, Product
from tests.conftest import Caller, make_caller

PRODUCTS = "/api/v1/products"


async def count_rows(app: FastAPI, model: type[Any]) -> int:
    async with database(app).read() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(table_of(model)))).scalar_one()
        )


async def make_product(client: httpx.AsyncClient, caller: Caller, **values: Any) -> dict[str, Any]:
    body = {"name": "Lamp", "price": "10.50", **values}
    response = await client.post(PRODUCTS, json=body, headers=caller.headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def test_create_returns_201_location_etag_and_sets_owner(
    client: httpx.AsyncClient, alice: Caller
) -> None:
    response = await client.post(
        PRODUCTS,
        json={"name": "Desk lamp", "price": "19.90", "description": "Warm light"},
        headers=alice.headers,
    )
    assert response.status_code == 201
    product = response.json()
    assert response.headers["location"] == f"{PRODUCTS}/{product['id']}"
    assert response.headers["etag"].startswith('"')
    assert product["owner_id"] == alice.id
    assert product["price"] == "19.90"
    assert product["in_stock"] is True  # the model's default
    assert product["created_at"].endswith("Z")


async def test_retrieve_returns_row_with_etag(client: httpx.AsyncClient, alice: Caller) -> None:
    product = await make_product(client, alice)
    response = await client.get(f"{PRODUCTS}/{product['id']}")
    assert response.status_code == 200
    assert response.json() == product
    assert response.headers["etag"]


async def test_retrieve_with_current_etag_is_304(client: httpx.AsyncClient, alice: Caller) -> None:
    product = await make_product(client, alice)
    etag = (await client.get(f"{PRODUCTS}/{product['id']}")).headers["etag"]
    response = await client.get(f"{PRODUCTS}/{product['id']}", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.headers["etag"] == etag


async def test_patch_changes_only_sent_fields_and_returns_new_etag(
    client: httpx.AsyncClient, alice: Caller
) -> None:
    product = await make_product(client, alice, description="Keep me")
    url = f"{PRODUCTS}/{product['id']}"
    before = (await client.get(url)).headers["etag"]
    response = await client.patch(url, json={"price": "12"}, headers=alice.headers)
    assert response.status_code == 200
    changed = response.json()
    assert changed["price"] == "12.00"
    assert changed["description"] == "Keep me"
    assert changed["name"] == "Lamp"
    assert response.headers["etag"] != before
    assert (await client.get(url)).json() == changed


async def test_patch_with_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, alice: Caller
) -> None:
    product = await make_product(client, alice)
    url = f"{PRODUCTS}/{product['id']}"
    stale = (await client.get(url)).headers["etag"]
    await client.patch(url, json={"name": "Renamed"}, headers=alice.headers)
    response = await client.patch(
        url, json={"name": "Lost update"}, headers={**alice.headers, "If-Match": stale}
    )
    assert response.status_code == 412
    assert (await client.get(url)).json()["name"] == "Renamed"


async def test_patch_with_current_if_match_succeeds(
    client: httpx.AsyncClient, alice: Caller
) -> None:
    product = await make_product(client, alice)
    url = f"{PRODUCTS}/{product['id']}"
    etag = (await client.get(url)).headers["etag"]
    response = await client.patch(
        url, json={"name": "Renamed"}, headers={**alice.headers, "If-Match": etag}
    )
    assert response.status_code == 200


async def test_delete_is_204_then_404(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    product = await make_product(client, alice)
    url = f"{PRODUCTS}/{product['id']}"
    response = await client.delete(url, headers=alice.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(url)).status_code == 404
    assert await count_rows(app, Product) == 0


async def test_delete_with_stale_if_match_is_412(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    product = await make_product(client, alice)
    url = f"{PRODUCTS}/{product['id']}"
    response = await client.delete(url, headers={**alice.headers, "If-Match": '"stale"'})
    assert response.status_code == 412
    assert await count_rows(app, Product) == 1


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_missing_row_is_404(client: httpx.AsyncClient, alice: Caller, method: str) -> None:
    response = await client.request(
        method,
        f"{PRODUCTS}/999",
        json={"name": "x"} if method == "PATCH" else None,
        headers=alice.headers,
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


@pytest.mark.parametrize("bad_id", ["abc", "1.5", "99999999999999999999", "-99999999999"])
async def test_malformed_id_is_422_not_500(
    client: httpx.AsyncClient, alice: Caller, bad_id: str
) -> None:
    response = await client.get(f"{PRODUCTS}/{bad_id}", headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price": "1.00"}, "name"),  # required
        ({"name": "x" * 201, "price": "1"}, "name"),  # String(200)
        ({"name": "Lamp", "price": "-1"}, "price"),  # >= 0
        ({"name": "Lamp", "price": "1.234"}, "price"),  # Numeric(10, 2)
        ({"name": "Lamp", "price": "123456789.00"}, "price"),  # 10 digits in all
        ({"name": "Lamp", "price": "NaN"}, "price"),
        ({"name": "Lamp", "price": "1", "in_stock": "maybe"}, "in_stock"),
        ({"name": "Lamp", "price": "1", "category_id": "x"}, "category_id"),
        ({"name": "nul\u0000byte", "price": "1"}, "name"),
        ({"name": "Lamp", "price": "1", "owner_id": 2}, "owner_id"),  # never writable
        ({"name": "Lamp", "price": "1", "id": 7}, "id"),
        ({"name": "Lamp", "price": "1", "created_at": "2020-01-01T00:00:00Z"}, "created_at"),
        ({"name": "Lamp", "price": "1", "colour": "red"}, "colour"),  # unknown key
    ],
)
async def test_invalid_create_body_is_422_naming_the_field(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller, body: dict[str, Any], field: str
) -> None:
    response = await client.post(PRODUCTS, json=body, headers=alice.headers)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(error["loc"][-1] == field for error in errors), errors
    assert all({"loc", "msg", "type"} <= set(error) for error in errors)
    assert await count_rows(app, Product) == 0


async def test_malformed_json_is_422(client: httpx.AsyncClient, alice: Caller) -> None:
    response = await client.post(
        PRODUCTS,
        content=b'{"name": "Lamp", "price":',
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422


async def test_patch_null_on_required_field_is_422(
    client: httpx.AsyncClient, alice: Caller
) -> None:
    product = await make_product(client, alice)
    response = await client.patch(
        f"{PRODUCTS}/{product['id']}", json={"name": None}, headers=alice.headers
    )
    assert response.status_code == 422
    ok = await client.patch(
        f"{PRODUCTS}/{product['id']}", json={"description": None}, headers=alice.headers
    )
    assert ok.status_code == 200


async def test_patch_cannot_set_id_or_server_fields(
    client: httpx.AsyncClient, alice: Caller
) -> None:
    product = await make_product(client, alice)
    url = f"{PRODUCTS}/{product['id']}"
    for body in ({"id": 42}, {"created_at": "2020-01-01T00:00:00Z"}, {"updated_at": None}):
        response = await client.patch(url, json=body, headers=alice.headers)
        assert response.status_code == 422, body
    assert (await client.get(url)).json() == product


async def test_only_the_change_permission_reassigns_the_owner(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller, bob: Caller
) -> None:
    product = await make_product(client, alice)
    url = f"{PRODUCTS}/{product['id']}"
    refused = await client.patch(url, json={"owner_id": bob.id}, headers=alice.headers)
    assert refused.status_code == 403
    assert "shop.change_product" in refused.json()["detail"]
    same = await client.patch(url, json={"owner_id": alice.id}, headers=alice.headers)
    assert same.status_code == 200
    manager = await make_caller(app, "manager", permissions=["shop.change_product"])
    moved = await client.patch(url, json={"owner_id": bob.id}, headers=manager.headers)
    assert moved.status_code == 200
    assert moved.json()["owner_id"] == bob.id


async def test_unique_violation_is_409_and_leaves_one_row(
    app: FastAPI, client: httpx.AsyncClient, superuser: Caller
) -> None:
    first = await client.post(
        "/api/v1/categories", json={"name": "Lamps"}, headers=superuser.headers
    )
    assert first.status_code == 201
    second = await client.post(
        "/api/v1/categories", json={"name": "Lamps"}, headers=superuser.headers
    )
    assert second.status_code == 409
    assert "name" in second.json()["detail"]
    assert await count_rows(app, Category) == 1


async def test_unique_violation_on_patch_is_409(
    client: httpx.AsyncClient, superuser: Caller
) -> None:
    await client.post("/api/v1/categories", json={"name": "Lamps"}, headers=superuser.headers)
    other = await client.post(
        "/api/v1/categories", json={"name": "Desks"}, headers=superuser.headers
    )
    response = await client.patch(
        f"/api/v1/categories/{other.json()['id']}",
        json={"name": "Lamps"},
        headers=superuser.headers,
    )
    assert response.status_code == 409


async def test_foreign_key_to_missing_row_is_422_naming_the_field(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    response = await client.post(
        "/api/v1/orders", json={"product_id": 12345, "quantity": 1}, headers=alice.headers
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "product_id"]
    product = await make_product(client, alice)
    response = await client.patch(
        f"{PRODUCTS}/{product['id']}", json={"category_id": 777}, headers=alice.headers
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "category_id"]
    assert await count_rows(app, Order) == 0


async def test_order_quantity_range(client: httpx.AsyncClient, alice: Caller) -> None:
    product = await make_product(client, alice)
    for quantity, status in ((0, 422), (1001, 422), (1, 201), (1000, 201)):
        response = await client.post(
            "/api/v1/orders",
            json={"product_id": product["id"], "quantity": quantity},
            headers=alice.headers,
        )
        assert response.status_code == status, (quantity, response.text)


async def test_anonymous_write_is_401_with_bearer_challenge(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    for method, url in (
        ("POST", PRODUCTS),
        ("PATCH", f"{PRODUCTS}/1"),
        ("DELETE", f"{PRODUCTS}/1"),
    ):
        response = await client.request(method, url, json={"name": "x", "price": "1"})
        assert response.status_code == 401, (method, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
    # Even an invalid body: the refusal comes before validation.
    response = await client.post(PRODUCTS, json={})
    assert response.status_code == 401
    assert await count_rows(app, Product) == 0


async def test_bad_credentials_are_401(client: httpx.AsyncClient) -> None:
    for header in ("Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer", "Token abc"):
        response = await client.get(PRODUCTS, headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.headers["www-authenticate"] == "Bearer"


async def test_authenticated_without_permission_is_403(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    response = await client.post(
        "/api/v1/categories", json={"name": "Lamps"}, headers=alice.headers
    )
    assert response.status_code == 403
    assert await count_rows(app, Category) == 0


async def test_openapi_documents_generated_schemas(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    create = components["ProductCreate"]
    assert set(create["properties"]) == {
        "name",
        "description",
        "price",
        "in_stock",
        "category_id",
        "tags",
    }
    assert create["required"] == ["name", "price"]
    assert create["additionalProperties"] is False
    assert create["properties"]["name"]["maxLength"] == 200
    assert "required" not in components["ProductUpdate"]
    assert "owner_id" in components["ProductOut"]["properties"]
    paths = schema["paths"]
    assert set(paths[PRODUCTS]) == {"get", "post"}
    assert set(paths[f"{PRODUCTS}/{{id}}"]) == {"get", "patch", "delete"}
    assert "price__gte" in {p["name"] for p in paths[PRODUCTS]["get"]["parameters"]}


async def test_deleting_a_referenced_row_is_409(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller, superuser: Caller
) -> None:
    product = await make_product(client, alice)
    order = await client.post(
        "/api/v1/orders", json={"product_id": product["id"], "quantity": 1}, headers=alice.headers
    )
    assert order.status_code == 201
    response = await client.delete(f"{PRODUCTS}/{product['id']}", headers=superuser.headers)
    assert response.status_code == 409
    assert await count_rows(app, Product) == 1
