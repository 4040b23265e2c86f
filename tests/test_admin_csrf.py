"""CSRF: every state-changing admin request needs the session's token and this site's origin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from crudkit.contrib.auth.testing import create_user
from shop.models import Category
from tests.admin_support import ORIGIN, PASSWORD, delete, insert, page_token, rows, staff


@pytest.fixture
async def clerk(app: FastAPI, client: httpx.AsyncClient) -> int:
    return await staff(
        app, client, "clerk", "shop.view_category", "shop.add_category", "shop.delete_category"
    )


async def test_post_without_token_is_refused(
    app: FastAPI, client: httpx.AsyncClient, clerk: int
) -> None:
    response = await client.post(
        "/admin/category/create", data={"name": "Lighting"}, headers={"Origin": ORIGIN}
    )

    assert response.status_code == 403
    assert "CSRF token" in response.text
    assert await rows(app, Category) == []


async def test_post_with_a_wrong_token_is_refused(
    app: FastAPI, client: httpx.AsyncClient, clerk: int
) -> None:
    response = await client.post(
        "/admin/category/create",
        data={"name": "Lighting", "csrf_token": "guessed"},
        headers={"Origin": ORIGIN},
    )

    assert response.status_code == 403
    assert await rows(app, Category) == []


async def test_token_of_another_session_is_refused(
    app: FastAPI, client: httpx.AsyncClient, clerk: int
) -> None:
    # An attacker's own session token, planted in a form the victim submits.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=ORIGIN
    ) as attacker:
        foreign_token = await page_token(attacker)

    response = await client.post(
        "/admin/category/create",
        data={"name": "Lighting", "csrf_token": foreign_token},
        headers={"Origin": ORIGIN},
    )

    assert response.status_code == 403
    assert await rows(app, Category) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver.evil.example"},
        {"Referer": "https://evil.example/page"},
    ],
    ids=["origin", "null-origin", "lookalike-origin", "referer"],
)
async def test_foreign_origin_is_refused_even_with_the_token(
    app: FastAPI, client: httpx.AsyncClient, clerk: int, headers: dict[str, str]
) -> None:
    token = await page_token(client, "/admin/category/create")

    response = await client.post(
        "/admin/category/create",
        data={"name": "Lighting", "csrf_token": token},
        headers=headers,
    )

    assert response.status_code == 403
    assert "does not match" in response.text
    assert await rows(app, Category) == []


async def test_same_origin_with_the_token_is_accepted(
    app: FastAPI, client: httpx.AsyncClient, clerk: int
) -> None:
    token = await page_token(client, "/admin/category/create")

    response = await client.post(
        "/admin/category/create",
        data={"name": "Lighting", "csrf_token": token},
        headers={"Origin": ORIGIN, "Referer": f"{ORIGIN}/admin/category/create"},
    )

    assert response.status_code == 302, response.text
    assert [row["name"] for row in await rows(app, Category)] == ["Lighting"]


async def test_delete_needs_the_token_header(
    app: FastAPI, client: httpx.AsyncClient, clerk: int
) -> None:
    category = await insert(app, Category, name="Lighting")

    refused = await client.delete(
        "/admin/category/delete", params={"pks": category}, headers={"Origin": ORIGIN}
    )
    foreign = await client.delete(
        "/admin/category/delete",
        params={"pks": category},
        headers={"Origin": "https://evil.example", "X-CSRF-Token": await page_token(client)},
    )
    assert refused.status_code == foreign.status_code == 403
    assert len(await rows(app, Category)) == 1

    assert (await delete(client, "category", category)).status_code == 200
    assert await rows(app, Category) == []


async def test_login_and_logout_need_the_token(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create_user(app, "clerk", is_staff=True)

    login = await client.post(
        "/admin/login",
        data={"username": "clerk", "password": PASSWORD},
        headers={"Origin": ORIGIN},
    )
    assert login.status_code == 403

    await staff(app, client, "other")
    logout = await client.post("/admin/logout", headers={"Origin": ORIGIN})
    assert logout.status_code == 403
    assert (await client.get("/admin/")).status_code == 200  # still logged in


async def test_pages_carry_the_token(app: FastAPI, client: httpx.AsyncClient, clerk: int) -> None:
    token = await page_token(client, "/admin/")

    form = await client.get("/admin/category/create")

    assert f'<input type="hidden" name="csrf_token" value="{token}">' in form.text
    assert f'<meta name="csrf-token" content="{token}">' in form.text
    script = await client.get("/admin/statics/js/crudkit-admin.js")
    assert script.status_code == 200
    assert "X-CSRF-Token" in script.text


async def test_oversized_body_is_413(app: FastAPI, client: httpx.AsyncClient, clerk: int) -> None:
    limit = app.state.settings.max_body_size

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(limit // 65536 + 2):
            yield b"a" * 65536

    streamed = await client.post(
        "/admin/category/create",
        content=chunks(),
        headers={"Origin": ORIGIN, "Content-Type": "application/x-www-form-urlencoded"},
    )
    declared = await client.post(
        "/admin/category/create", data={"name": "x" * limit}, headers={"Origin": ORIGIN}
    )

    assert streamed.status_code == declared.status_code == 413
    assert await rows(app, Category) == []
