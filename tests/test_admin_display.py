"""What admin pages show around the rows: date-times, refusals, the icon, the last page."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert as sql_insert

from crudkit.contrib.admin import counting
from crudkit.contrib.admin.views import ResourceView
from crudkit.db import table_of
from shop.models import Category, Product
from tests.admin_support import insert, staff

WHEN = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)
TIME = '<time datetime="2026-03-14T15:09:26+00:00" data-crudkit-time>2026-03-14 15:09:26 UTC</time>'


async def test_date_times_are_shown_to_the_second_in_utc(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    root = await staff(app, client, "root", superuser=True)
    lamp = await insert(
        app, Product, name="Lamp", price=Decimal(1), owner_id=root, created_at=WHEN, updated_at=WHEN
    )

    listed = await client.get("/admin/product/list")
    details = await client.get(f"/admin/product/details/{lamp}")

    assert listed.text.count(TIME) == 2  # created and updated
    assert details.text.count(TIME) == 2
    assert "535897" not in listed.text + details.text


def back(response: httpx.Response) -> tuple[str, str]:
    """The error page's way back: its URL and text."""
    found = re.search(r'<a href="([^"]+)"[^>]*id="error-back">([^<]+)</a>', response.text)
    assert found, response.text
    return found.group(1), found.group(2)


async def test_a_missing_row_is_a_404_inside_the_admin(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(app, client, "root", superuser=True)

    response = await client.get("/admin/product/details/999999")

    assert response.status_code == 404
    assert 'id="navbar-menu"' in response.text  # the admin's menu
    assert back(response) == ("http://testserver/admin/product/list", "Back to Products")


async def test_a_refused_list_is_a_403_inside_the_admin(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(app, client, "clerk", "shop.view_product")

    response = await client.get("/admin/user/list")

    assert response.status_code == 403
    assert 'id="navbar-menu"' in response.text
    assert "/admin/product/list" in response.text  # the menu shows what the clerk may see
    assert back(response) == ("http://testserver/admin/", "Back to the admin")


async def test_a_refusal_before_login_is_a_plain_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/statics/nothing-here.css")

    assert response.status_code == 404
    assert 'id="navbar-menu"' not in response.text


async def test_every_page_has_the_admins_icon(app: FastAPI, client: httpx.AsyncClient) -> None:
    login = await client.get("/admin/login")
    icon = re.search(r'<link rel="icon" type="image/svg\+xml" href="([^"]+)"', login.text)
    assert icon, login.text
    response = await client.get(icon.group(1))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")

    await staff(app, client, "root", superuser=True)
    assert icon.group(0) in (await client.get("/admin/product/list")).text


async def _products(app: FastAPI, owner: int, count: int) -> None:
    rows = [{"name": f"Lamp {n:03d}", "price": Decimal(n), "owner_id": owner} for n in range(count)]
    async with app.state.db.transaction() as conn:
        await conn.execute(sql_insert(table_of(Product)), rows)


LAST = re.compile(r'<a\s+class="page-link" href="([^"]+)">Last \((\d+)\)</a>')


async def test_the_list_links_to_its_last_page(app: FastAPI, client: httpx.AsyncClient) -> None:
    root = await staff(app, client, "root", superuser=True)
    await _products(app, root, 95)

    first = await client.get("/admin/product/list", params={"search": "lamp"})

    [(url, number)] = LAST.findall(first.text)
    assert number == "10"
    last = await client.get(url.replace("&amp;", "&"))
    assert "Showing 91 to 95 of 95 items" in last.text
    assert "search=lamp" in url
    assert LAST.search(last.text) is None  # the last page is among its own links


async def test_no_last_page_when_the_count_is_approximate(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ResourceView, "exact_count_limit", 5)
    monkeypatch.setattr(counting, "PAGES_AHEAD", 1)
    root = await staff(app, client, "root", superuser=True)
    await _products(app, root, 95)

    page = await client.get("/admin/product/list", params={"search": "lamp"})

    assert "more than" in page.text
    assert LAST.search(page.text) is None


async def test_foreign_key_filters_choose_by_name(app: FastAPI, client: httpx.AsyncClient) -> None:
    root = await staff(app, client, "root", superuser=True)
    lamps = await insert(app, Category, name="Lamps")
    rugs = await insert(app, Category, name="Rugs")
    await insert(
        app, Product, name="Desk lamp", price=Decimal(30), owner_id=root, category_id=lamps
    )
    await insert(app, Product, name="Wool rug", price=Decimal(90), owner_id=root, category_id=rugs)

    page = await client.get("/admin/product/list")
    select = re.search(r'<select name="category_id"[^>]*>', page.text)
    assert select, page.text
    assert 'data-role="select2-ajax"' in select.group(0)
    assert 'data-url="http://testserver/admin/product/filter/lookup"' in select.group(0)
    assert 'name="category_id_op" value="exact"' in page.text

    found = await client.get(
        "/admin/product/filter/lookup", params={"name": "category_id", "term": "lam"}
    )
    assert found.json() == {"results": [{"id": str(lamps), "text": "Lamps"}]}

    chosen = await client.get(
        "/admin/product/list", params={"category_id": lamps, "category_id_op": "exact"}
    )
    assert "Desk lamp" in chosen.text
    assert "Wool rug" not in chosen.text
    assert re.search(r"Current:\s+Lamps", chosen.text)
    assert f'data-json=\'[{{"id": "{lamps}", "text": "Lamps"}}]\'' in chosen.text

    # A typed operation still works, and is shown as typed.
    typed = await client.get(
        "/admin/product/list", params={"category_id": rugs, "category_id_op": "gte"}
    )
    assert "Wool rug" in typed.text
    assert re.search(rf"Current:\s+gte {rugs}\s", typed.text)

    missing = await client.get(
        "/admin/product/filter/lookup", params={"name": "price", "term": "1"}
    )
    assert missing.status_code == 404


async def test_a_filters_choices_need_the_targets_read_permission(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(app, client, "auditor", "admin.view_logentry")
    url = "/admin/log-entry/filter/lookup"

    page = await client.get("/admin/log-entry/list")
    assert '<select name="user_id"' in page.text
    refused = await client.get(url, params={"name": "user_id", "term": "auditor"})
    assert refused.status_code == 403

    await staff(app, client, "admin", "admin.view_logentry", "auth.view_user")
    found = await client.get(url, params={"name": "user_id", "term": "audit"})
    assert [row["text"] for row in found.json()["results"]] == ["auditor"]
