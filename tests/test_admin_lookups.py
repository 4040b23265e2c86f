"""Foreign keys in admin forms: searched by query, never loaded whole, scoped like the target."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

import crudkit
from crudkit.contrib.auth.models import Group, Permission, User
from crudkit.contrib.auth.resources import UserResource
from crudkit.contrib.auth.testing import create_user
from crudkit.testing import client_for, count_queries
from shop.models import Category, Order, Product
from tests.admin_support import form_version, insert, login, rows, staff, submit
from tests.models import Note


async def lookup(client: httpx.AsyncClient, identity: str, name: str, term: str) -> httpx.Response:
    return await client.get(f"/admin/{identity}/ajax/lookup", params={"name": name, "term": term})


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["text"] for item in response.json()["results"]]


async def test_lookups_search_and_stop_at_a_page(app: FastAPI, client: httpx.AsyncClient) -> None:
    for number in range(30):
        await insert(app, Category, name=f"Lamps {number:02d}")
    rugs = await insert(app, Category, name="Rugs")
    await staff(app, client, "root", superuser=True)

    with count_queries(app) as log:
        found = names(await lookup(client, "product", "category_id", "LAMPS"))
    assert len(found) == 20
    assert all(name.startswith("Lamps") for name in found)
    [statement] = log.on("shop_category")
    assert "LIMIT" in statement.upper()

    assert names(await lookup(client, "product", "category_id", str(rugs))) == ["Rugs"]
    assert names(await lookup(client, "product", "category_id", "%")) == []  # literal %


async def test_forms_never_load_a_whole_table(app: FastAPI, client: httpx.AsyncClient) -> None:
    root = await staff(app, client, "root", superuser=True)
    lighting = await insert(app, Category, name="Lighting")
    await insert(app, Category, name="Rugs")
    product = await insert(
        app, Product, name="Lamp", price=Decimal(1), owner_id=root, category_id=lighting
    )

    with count_queries(app) as log:
        create = await client.get("/admin/product/create")
    assert create.status_code == 200
    assert 'data-role="select2-ajax"' in create.text
    assert log.on("shop_category") == []

    with count_queries(app) as log:
        edit = await client.get(f"/admin/product/edit/{product}")
    assert "Lighting" in edit.text  # the current value, looked up by its key
    assert "Rugs" not in edit.text
    assert all("WHERE" in statement.upper() for statement in log.on("shop_category"))


async def test_a_lookup_needs_the_targets_read_permission(notes_app: FastAPI) -> None:
    # Users are neither public nor owned: choosing one needs `auth.view_user`.
    async with client_for(notes_app) as client:
        alice = await create_user(notes_app, "alice")
        await create_user(
            notes_app, "clerk", is_staff=True, permissions=["tests.view_note", "tests.add_note"]
        )
        assert (await login(client, "clerk")).status_code == 302

        refused = await lookup(client, "note", "author_id", "ali")
        crafted = await submit(
            client, "/admin/note/create", {"text": "Hello", "author_id": str(alice)}
        )

        assert refused.status_code == 403
        assert "alice" not in refused.text
        assert crafted.status_code == 400
        assert "Author: not a valid choice." in crafted.text
        assert await rows(notes_app, Note) == []


async def test_choices_are_the_rows_the_api_would_list(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    bob = await create_user(app, "bob")
    bobs = await insert(app, Product, name="Bob's lamp", price=Decimal(1), owner_id=bob)
    clerk = await staff(app, client, "clerk")
    clerks = await insert(app, Product, name="Clerk's lamp", price=Decimal(1), owner_id=clerk)

    # Products are public: anyone may choose any of them, as the API lists them all.
    assert sorted(names(await lookup(client, "order", "product_id", "lamp"))) == [
        "Bob's lamp",
        "Clerk's lamp",
    ]
    assert names(await lookup(client, "order", "product_id", str(bobs))) == ["Bob's lamp"]
    mine = await submit(client, "/admin/order/create", {"product_id": str(clerks), "quantity": "1"})
    assert mine.status_code == 302, mine.text
    [order] = await rows(app, Order)
    assert (order["product_id"], order["owner_id"]) == (clerks, clerk)


async def test_a_current_value_out_of_scope_shows_only_its_key(notes_app: FastAPI) -> None:
    async with client_for(notes_app) as client:
        bob = await create_user(notes_app, "bob")
        await create_user(
            notes_app,
            "clerk",
            is_staff=True,
            permissions=["tests.view_note", "tests.change_note"],
        )
        note = await insert(notes_app, Note, text="Hello", author_id=bob)
        assert (await login(client, "clerk")).status_code == 302
        path = f"/admin/note/edit/{note}"

        form = await client.get(path)
        assert form.status_code == 200
        assert f"user #{bob}" in form.text
        assert "bob" not in form.text

        # Left as it is, the value is kept: only a new choice is checked.
        version = await form_version(client, path)
        saved = await submit(
            client,
            path,
            {"text": "Hello again", "author_id": str(bob), "crudkit_version": version},
        )
        assert saved.status_code == 302, saved.text
        [row] = await rows(notes_app, Note)
        assert (row["author_id"], row["text"]) == (bob, "Hello again")


async def test_many_to_many_lookups_are_scoped(app: FastAPI, client: httpx.AsyncClient) -> None:
    await insert(
        app, Permission, codename="shop.view_x", name="Can view x", app_label="shop", model="x"
    )
    await insert(app, Group, name="editors")
    await staff(
        app,
        client,
        "clerk",
        "auth.view_group",
        "auth.change_group",
        "auth.view_user",
        "auth.change_user",
    )

    assert (await lookup(client, "group", "permissions", "shop")).status_code == 403
    # Privileged fields of the user form are not on a staff member's form at all.
    assert (await lookup(client, "user", "groups", "edit")).status_code == 403
    assert (await lookup(client, "user", "nothing", "edit")).status_code == 400
    assert (
        await client.get("/admin/user/ajax/lookup", params={"name": "groups"})
    ).status_code == 400

    await staff(app, client, "root", superuser=True)
    assert names(await lookup(client, "group", "permissions", "view_x")) == ["shop.view_x"]
    assert names(await lookup(client, "user", "groups", "edit")) == ["editors"]


@pytest.fixture
async def notes_app(settings: crudkit.Settings) -> AsyncIterator[FastAPI]:
    """An app whose Note has a foreign key without a relationship (`author_id`)."""
    registry = crudkit.Registry()
    registry.register(User, UserResource)
    registry.register(Note)
    app = crudkit.create_app(settings, registry=registry)
    yield app
    await app.state.db.dispose()


async def test_a_foreign_key_without_a_relationship_is_a_lookup(notes_app: FastAPI) -> None:
    async with client_for(notes_app) as client:
        alice = await create_user(notes_app, "alice")
        await create_user(notes_app, "root", is_staff=True, is_superuser=True)
        assert (await login(client, "root")).status_code == 302

        form = await client.get("/admin/note/create")
        assert 'name="author_id"' in form.text
        assert 'data-role="select2-ajax"' in form.text
        assert names(await lookup(client, "note", "author_id", "ali")) == ["alice"]

        created = await submit(
            client, "/admin/note/create", {"text": "Hello", "author_id": str(alice)}
        )
        assert created.status_code == 302, created.text
        [note] = await rows(notes_app, Note)
        assert note["author_id"] == alice
        details = await client.get(f"/admin/note/details/{note['id']}")
        assert f'href="http://testserver/admin/user/details/{alice}"' in details.text
