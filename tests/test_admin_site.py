"""The admin site: its index, its look, its error pages, and what hooks see of the app."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request

import crudkit
from crudkit.db import Database
from shop.models import Category, Product
from tests.admin_support import history, insert, rows, staff, submit

CARD = re.compile(r'<div class="card" id="app-(\w+)">(.*?)</table>', re.DOTALL)
LINK = re.compile(r'<a href="[^"]*/admin/([\w-]+)/(list|create)"')


def index_cards(html: str) -> dict[str, list[tuple[str, str]]]:
    """Each app card of the index page: its (view, link) pairs."""
    return {label: LINK.findall(body) for label, body in CARD.findall(html)}


async def test_the_index_groups_models_by_app(app: FastAPI, client: httpx.AsyncClient) -> None:
    await staff(app, client, "root", superuser=True)

    page = await client.get("/admin/")

    assert page.status_code == 200
    assert "<title>crudkit administration</title>" in page.text
    assert "Site administration" in page.text
    cards = index_cards(page.text)
    assert list(cards) == ["auth", "admin", "shop"]
    assert "Authentication and authorization" in page.text
    assert cards["shop"] == [
        ("category", "list"),
        ("category", "create"),
        ("tag", "list"),
        ("tag", "create"),
        ("product", "list"),
        ("product", "create"),
        ("order", "list"),
        ("order", "create"),
    ]
    assert cards["admin"] == [("log-entry", "list")]  # the history is read-only


async def test_the_index_shows_only_what_the_user_may_see(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(app, client, "clerk", "shop.view_category", "shop.add_product")

    cards = index_cards((await client.get("/admin/")).text)

    assert cards == {
        "shop": [
            ("category", "list"),
            ("tag", "list"),  # public, like categories
            ("product", "list"),
            ("product", "create"),
            ("order", "list"),
            ("order", "create"),  # as through the API: anyone signed in places an order
        ]
    }


async def test_the_index_lists_recent_actions(app: FastAPI, client: httpx.AsyncClient) -> None:
    await staff(app, client, "root", superuser=True)
    assert (await submit(client, "/admin/category/create", {"name": "Lighting"})).status_code == 302
    [category] = await rows(app, Category)

    page = await client.get("/admin/")

    recent = page.text[page.text.index('id="recent-actions"') :]
    assert f'<a href="http://testserver/admin/category/details/{category["id"]}">Lighting</a>' in (
        recent
    )


async def test_pages_offer_dark_and_light(app: FastAPI, client: httpx.AsyncClient) -> None:
    await staff(app, client, "root", superuser=True)

    page = await client.get("/admin/category/list")
    script = await client.get("/admin/statics/js/crudkit-theme.js")

    assert "js/crudkit-theme.js" in page.text.split("</head>")[0]
    assert script.status_code == 200
    assert "data-bs-theme" in script.text


async def test_an_unexpected_error_is_an_error_page(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await staff(app, client, "root", superuser=True)

    async def fail(request: Request) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.state.admin._find_model_view("category"), "list", fail)
    response = await client.get("/admin/category/list", headers={"X-Request-ID": "req-500"})

    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in response.text
    assert "req-500" in response.text
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    "url",
    ["sqlite+aiosqlite:////nonexistent-dir/db.sqlite3", "postgresql+asyncpg://u@127.0.0.1:1/none"],
    ids=["sqlite", "postgresql"],
)
async def test_a_database_outage_is_503(
    app: FastAPI, client: httpx.AsyncClient, settings: crudkit.Settings, url: str
) -> None:
    await staff(app, client, "root", superuser=True)
    working = app.state.db
    app.state.db = Database(settings.model_copy(update={"database_url": url}))
    try:
        response = await client.get("/admin/")
    finally:
        await app.state.db.dispose()
        app.state.db = working

    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"
    assert "The database is unavailable" in response.text
    assert (await client.get("/admin/")).status_code == 200  # back when the database is


async def test_resource_hooks_reach_the_project_app(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    resource = app.state.apps.registry[Product]

    async def before_create(request: Request, values: dict[str, Any]) -> dict[str, Any]:
        seen.append(request.app.state.db)
        return values

    monkeypatch.setattr(resource, "before_create", before_create)
    await staff(app, client, "root", superuser=True)
    lighting = await insert(app, Category, name="Lighting")

    response = await submit(
        client,
        "/admin/product/create",
        {"name": "Lamp", "price": "1", "category_id": str(lighting)},  # a lookup is checked
    )

    assert response.status_code == 302, response.text
    # The project's app state reaches the hook.
    assert seen == [app.state.db]
    assert len(await history(app)) == 1
