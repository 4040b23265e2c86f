"""The history: every API, admin and command-line write leaves exactly one entry, in its
own transaction; the admin shows it read-only, and per row."""

from __future__ import annotations

import enum
import html
import json
import math
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection

from crudkit.contrib.admin.history import jsonable
from crudkit.contrib.auth.models import Group, User
from crudkit.contrib.auth.testing import auth_headers, create_user
from crudkit.events import WriteEvent
from crudkit.testing import count_queries
from shop.models import Category, Product, Tag
from tests.admin_support import ORIGIN, delete, history, insert, login, rows, staff, submit
from tests.cli_support import Cli, fresh_database
from tests.conftest import Caller

API = "/api/v1"


async def test_api_writes_are_recorded(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    created = await client.post(
        f"{API}/products",
        json={"name": "Lamp", "price": "12.50"},
        headers={**alice.headers, "X-Request-ID": "req-create"},
    )
    assert created.status_code == 201, created.text
    product = created.json()["id"]
    url = f"{API}/products/{product}"
    assert (await client.patch(url, json={"price": "15"}, headers=alice.headers)).status_code == 200
    assert (await client.delete(url, headers=alice.headers)).status_code == 204

    entries = await history(app)
    assert [entry["action"] for entry in entries] == ["create", "update", "delete"]
    for entry in entries:
        assert (entry["channel"], entry["user_id"], entry["username"]) == ("api", alice.id, "alice")
        assert (entry["app_label"], entry["model"], entry["object_id"]) == (
            "shop",
            "product",
            str(product),
        )
        assert entry["object_repr"] == "Lamp"
        json.dumps(entry["changes"])  # stored as JSON, so it reads back as JSON
    create, update, remove = (entry["changes"] for entry in entries)
    assert entries[0]["request_id"] == "req-create"
    assert create["name"] == [None, "Lamp"]
    assert create["price"] == [None, "12.50"]
    assert create["owner_id"] == [None, alice.id]
    assert datetime.fromisoformat(create["created_at"][1]).tzinfo is not None
    assert set(update) == {"price", "updated_at"}
    assert update["price"] == ["12.50", "15.00"]
    assert remove["name"] == ["Lamp", None]


async def test_admin_writes_are_recorded(app: FastAPI, client: httpx.AsyncClient) -> None:
    root = await staff(app, client, "root", superuser=True)

    created = await submit(client, "/admin/category/create", {"name": "Lighting"})
    assert created.status_code == 302, created.text
    [category] = await rows(app, Category)
    edited = await submit(client, f"/admin/category/edit/{category['id']}", {"name": "Lamps"})
    assert edited.status_code == 302, edited.text
    product = await submit(
        client,
        "/admin/product/create",
        {"name": "Desk lamp", "price": "30", "category_id": str(category["id"])},
    )
    assert product.status_code == 302, product.text
    assert (await delete(client, "category", category["id"])).status_code == 200

    entries = await history(app)
    assert [(e["model"], e["action"]) for e in entries] == [
        ("category", "create"),
        ("category", "update"),
        ("product", "create"),
        ("category", "delete"),
    ]
    assert {(e["channel"], e["user_id"], e["username"]) for e in entries} == {
        ("admin", root, "root")
    }
    assert all(entry["request_id"] for entry in entries)
    assert entries[0]["changes"] == {"id": [None, category["id"]], "name": [None, "Lighting"]}
    assert entries[1]["changes"] == {"name": ["Lighting", "Lamps"]}
    assert entries[2]["changes"]["category_id"] == [None, category["id"]]
    assert entries[2]["changes"]["owner_id"] == [None, root]
    assert entries[3]["changes"] == {"id": [category["id"], None], "name": ["Lamps", None]}
    assert entries[3]["object_repr"] == "Lamps"


async def test_many_to_many_links_are_recorded(app: FastAPI, client: httpx.AsyncClient) -> None:
    await staff(app, client, "root", superuser=True)
    editors = await insert(app, Group, name="editors")
    ann = await create_user(app, "ann")

    response = await submit(
        client,
        f"/admin/user/edit/{ann}",
        {"username": "ann", "email": "ann@example.com", "groups": str(editors), "is_active": "y"},
    )

    assert response.status_code == 302, response.text
    [entry] = await history(app, model="user")
    assert entry["changes"]["groups"] == [[], [editors]]


@pytest.fixture
def failing_hook(app: FastAPI) -> Iterator[None]:
    """A write hook that fails after the history's: the write must not happen at all."""

    async def fail(conn: AsyncConnection, event: WriteEvent) -> None:
        raise RuntimeError("a later hook failed")

    app.state.apps.write_hooks.append(fail)
    yield
    app.state.apps.write_hooks.remove(fail)


@pytest.mark.usefixtures("failing_hook")
async def test_the_entry_shares_the_write_transaction(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    root = await create_user(app, "root", is_staff=True, is_superuser=True)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as raw:
        headers = await auth_headers(app, root)
        response = await raw.post(f"{API}/categories", json={"name": "Lighting"}, headers=headers)
    assert response.status_code == 500

    assert (await login(client, "root")).status_code == 302
    failed = await submit(client, "/admin/category/create", {"name": "Desks"})
    assert failed.status_code == 500  # the error page, naming the request: not a form message
    assert failed.headers["X-Request-ID"] in failed.text
    assert "a later hook failed" not in failed.text

    assert await rows(app, Category) == []
    assert await history(app) == []


async def test_refused_and_failed_writes_leave_no_entry(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller, bob: Caller, superuser: Caller
) -> None:
    created = await client.post(
        f"{API}/products", json={"name": "Lamp", "price": "1"}, headers=alice.headers
    )
    url = f"{API}/products/{created.json()['id']}"
    assert (
        await client.post(f"{API}/categories", json={"name": "A"}, headers=superuser.headers)
    ).status_code == 201
    before = await history(app)
    assert len(before) == 2

    assert (await client.patch(url, json={"price": "2"}, headers=bob.headers)).status_code == 403
    assert (await client.delete(url, headers=bob.headers)).status_code == 403
    duplicate = await client.post(
        f"{API}/categories", json={"name": "A"}, headers=superuser.headers
    )
    assert duplicate.status_code == 409
    await staff(app, client, "clerk", "shop.view_category")
    assert (await submit(client, "/admin/category/create", {"name": "B"})).status_code == 403
    await staff(app, client, "boss", superuser=True)
    assert (await submit(client, "/admin/category/create", {"name": "A"})).status_code == 400
    no_token = await client.post(
        "/admin/category/create", data={"name": "C"}, headers={"Origin": ORIGIN}
    )
    assert no_token.status_code == 403

    assert await history(app) == before


async def test_secrets_are_never_recorded(app: FastAPI, client: httpx.AsyncClient) -> None:
    await staff(app, client, "root", superuser=True)
    password = "violet-otter-harbour"

    created = await submit(
        client,
        "/admin/user/create",
        {"username": "ann", "email": "ann@example.com", "password": password, "is_active": "y"},
    )
    assert created.status_code == 302, created.text
    [ann] = await rows(app, User, username="ann")
    changed = await submit(
        client,
        f"/admin/user/edit/{ann['id']}",
        {"username": "ann", "email": "ann@example.com", "password": "another-" + password},
    )
    assert changed.status_code == 302, changed.text

    entries = await history(app, model="user")
    assert [entry["action"] for entry in entries] == ["create", "update"]
    text = json.dumps([entry["changes"] for entry in entries])
    assert "password" not in text
    assert "$argon2" not in text
    assert password not in text
    assert entries[1]["changes"]["token_version"] == [0, 1]  # the change is still visible


async def test_deleting_your_own_account_keeps_your_name(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    root = await staff(app, client, "root", superuser=True)

    assert (await delete(client, "user", root)).status_code == 200

    [entry] = await history(app)
    assert (entry["action"], entry["user_id"], entry["username"]) == ("delete", None, "root")
    assert await rows(app, User) == []


async def test_history_view_is_read_only_and_filterable(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    for name in ("Lamp", "Desk"):
        created = await client.post(
            f"{API}/products", json={"name": name, "price": "1"}, headers=alice.headers
        )
        assert created.status_code == 201
    lamp = (await rows(app, Product, name="Lamp"))[0]["id"]
    root = await staff(app, client, "root", superuser=True)
    assert (await submit(client, "/admin/category/create", {"name": "Shelving"})).status_code == 302
    before = await history(app)

    listing = await client.get("/admin/log-entry/list")
    assert listing.status_code == 200
    for name in ("Lamp", "Desk", "Shelving"):
        assert name in listing.text
    by_model = await client.get(
        "/admin/log-entry/list", params={"model": "category", "model_op": "exact"}
    )
    assert "Shelving" in by_model.text
    assert "Desk" not in by_model.text
    by_object = await client.get(
        "/admin/log-entry/list",
        params={
            "model": "product",
            "model_op": "exact",
            "object_id": lamp,
            "object_id_op": "exact",
        },
    )
    assert "Lamp" in by_object.text
    assert "Desk" not in by_object.text
    by_user = await client.get(
        "/admin/log-entry/list", params={"user_id": str(root), "user_id_op": "exact"}
    )
    assert "Shelving" in by_user.text
    assert "Lamp" not in by_user.text

    entry = before[0]["id"]
    assert "/admin/log-entry/create" not in listing.text
    assert f"/admin/log-entry/edit/{entry}" not in listing.text
    assert (await client.get("/admin/log-entry/create")).status_code == 403
    assert (await client.get(f"/admin/log-entry/edit/{entry}")).status_code == 403
    assert (
        await submit(client, "/admin/log-entry/create", {"action": "create"})
    ).status_code == 403
    assert (await delete(client, "log-entry", entry)).status_code == 403
    assert (await client.get(f"/admin/log-entry/details/{entry}")).status_code == 200
    assert await history(app) == before


async def test_history_view_needs_its_permission(app: FastAPI, client: httpx.AsyncClient) -> None:
    await staff(app, client, "clerk", "shop.view_category")
    assert (await client.get("/admin/log-entry/list")).status_code == 403

    await staff(app, client, "auditor", "admin.view_logentry")
    assert (await client.get("/admin/log-entry/list")).status_code == 200


async def test_a_rows_history_page(app: FastAPI, client: httpx.AsyncClient, alice: Caller) -> None:
    created = await client.post(
        f"{API}/products", json={"name": "Lamp", "price": "12.50"}, headers=alice.headers
    )
    lamp = created.json()["id"]
    other = await client.post(
        f"{API}/products", json={"name": "Desk", "price": "1"}, headers=alice.headers
    )
    assert other.status_code == 201
    await staff(app, client, "root", superuser=True)
    path = f"/admin/product/edit/{lamp}"
    edited = await submit(client, path, {"name": "Lamp", "price": "15.00"}, form_page=path)
    assert edited.status_code == 302, edited.text

    details = await client.get(f"/admin/product/details/{lamp}")
    assert f'href="http://testserver/admin/product/history/{lamp}"' in details.text
    page = await client.get(f"/admin/product/history/{lamp}")
    assert page.status_code == 200
    assert page.text.count("<tr>") == 3  # the header and two entries
    assert "price: 12.50 → 15.00" in page.text
    assert "alice" in page.text
    assert "root" in page.text
    assert "Desk" not in page.text


async def test_a_rows_history_follows_its_scope(
    app: FastAPI, client: httpx.AsyncClient, alice: Caller
) -> None:
    product = await insert(app, Product, name="Lamp", price=Decimal(1), owner_id=alice.id)
    created = await client.post(
        f"{API}/orders", json={"product_id": product, "quantity": 1}, headers=alice.headers
    )
    assert created.status_code == 201, created.text
    await staff(app, client, "clerk")  # orders are private: clerk sees only their own

    assert (await client.get(f"/admin/order/history/{created.json()['id']}")).status_code == 404
    assert (await client.get("/admin/order/history/abc")).status_code == 404
    await staff(app, client, "nobody_special", "shop.view_category")
    assert (await client.get("/admin/user/history/1")).status_code == 403


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


def test_values_become_json() -> None:
    moment = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
    token = uuid.UUID("12345678-1234-5678-1234-567812345678")
    value = {
        "price": Decimal("12.50"),
        "at": moment,
        "day": date(2024, 3, 1),
        "alarm": time(7, 30),
        "token": token,
        "colour": Colour.RED,
        "level": Level.HIGH,
        "blob": b"\x00\x01",
        "ratio": math.nan,
        "tags": ("a", 1, None, True),
    }

    converted = jsonable(value)

    assert converted == {
        "price": "12.50",
        "at": "2024-03-01T12:30:00+00:00",
        "day": "2024-03-01",
        "alarm": "07:30:00",
        "token": "12345678-1234-5678-1234-567812345678",
        "colour": "red",
        "level": "HIGH",
        "blob": "<2 bytes>",
        "ratio": "nan",
        "tags": ["a", 1, None, True],
    }
    json.dumps(converted)


def test_command_line_writes_are_recorded(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        cli = Cli(url)
        assert cli("migrate").exit_code == 0
        result = cli(
            "createsuperuser",
            "--noinput",
            "--username",
            "admin",
            "--email",
            "a@example.com",
            env={"CRUDKIT_SUPERUSER_PASSWORD": "violet-otter-harbour"},
        )
        assert result.exit_code == 0, result.output
        entries = cli.query(
            "SELECT channel, action, model, object_repr, changes FROM crudkit_log_entry"
        )
    assert [tuple(entry)[:4] for entry in entries] == [("cli", "create", "user", "admin")]
    assert "hashed_password" not in str(entries[0][4])


async def test_many_to_many_changes_are_shown_by_name(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(app, client, "root", superuser=True)
    red, blue, green = [await insert(app, Tag, name=name) for name in ("red", "blue", "green")]
    lamps = []
    for name in ("Desk lamp", "Floor lamp"):
        created = await submit(
            client,
            "/admin/product/create",
            {"name": name, "price": "30", "tags": [str(red), str(blue)]},
        )
        assert created.status_code == 302, created.text
        [lamp] = await rows(app, Product, name=name)
        lamps.append(lamp["id"])
        edited = await submit(
            client,
            f"/admin/product/edit/{lamp['id']}",
            {"name": name, "price": "30", "tags": [str(blue), str(green)]},
            form_page=f"/admin/product/edit/{lamp['id']}",
        )
        assert edited.status_code == 302, edited.text
    await submit(client, "/admin/tag/edit/" + str(green), {"name": "lime"})
    assert (await delete(client, "tag", red)).status_code == 200

    # A row's History page: the tags by name (a deleted one by its key), one query for them.
    with count_queries(app) as log:
        page = await client.get(f"/admin/product/history/{lamps[0]}")
    assert page.status_code == 200, page.text
    assert f"tags: #{red}, blue → blue, lime" in html.unescape(page.text)
    assert len(log.on("shop_tag")) == 1
    # The History list and an entry's page: the same, one query per page for all entries.
    with count_queries(app) as log:
        listed = await client.get("/admin/log-entry/list", params={"search": "lamp"})
    assert listed.status_code == 200, listed.text
    assert html.unescape(listed.text).count(f"tags: #{red}, blue → blue, lime") == 2
    assert len(log.on("shop_tag")) == 1
    entry = next(e for e in await history(app, model="product") if e["action"] == "update")
    details = await client.get(f"/admin/log-entry/details/{entry['id']}")
    assert f"tags: #{red}, blue → blue, lime" in html.unescape(details.text)
