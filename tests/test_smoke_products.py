from __future__ import annotations

import httpx

from crudkit.contrib.auth.testing import create_user, login


async def test_owner_creates_and_reads_product(app, client: httpx.AsyncClient) -> None:
    await create_user(app, "alice")
    headers = await login(client, "alice")
    response = await client.post(
        "/api/v1/products", json={"name": "Lamp", "price": "10.50"}, headers=headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["price"] == "10.50"
    listed = await client.get("/api/v1/products")
    assert listed.json()["total"] == 1
