"""Resources declared by a project: every column type through the API, private resources
without an owner, and custom permission objects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import ColumnElement, insert
from starlette.requests import Request

import crudkit
from crudkit.contrib.auth.testing import auth_headers, create_user
from crudkit.db import table_of
from crudkit.permissions import Action, get_user
from crudkit.testing import client_for, create_tables, database
from tests.models import Gadget, Note, Shelf, ShelfItem


class AuthorOnly(crudkit.BasePermission):
    """A project's own rule: notes are visible to their author only."""

    def has_permission(self, request: Request, resource: crudkit.Resource, action: Action) -> bool:
        return get_user(request).is_authenticated

    def get_query_filter(
        self, request: Request, resource: crudkit.Resource, action: Action
    ) -> ColumnElement[bool] | None:
        return table_of(Note).c.author_id == get_user(request).id


def make_registry(note_permissions: list[crudkit.BasePermission] | None) -> crudkit.Registry:
    registry = crudkit.Registry()

    @registry.register(Gadget)
    class GadgetResource(crudkit.Resource):
        owner_field = "owner_id"
        public_read = True
        ordering_fields = ["rating", "name"]
        filter_fields = ["colour", "released", "token", "active"]
        write_only_fields = ["secret"]

    class NoteResource(crudkit.Resource):
        permissions = note_permissions

    registry.register(Note, NoteResource)
    return registry


@pytest.fixture
async def make_app(settings: crudkit.Settings) -> AsyncIterator[Any]:
    apps: list[FastAPI] = []

    async def build(note_permissions: list[crudkit.BasePermission] | None = None) -> FastAPI:
        app = crudkit.create_app(settings, registry=make_registry(note_permissions))
        await create_tables(app)
        apps.append(app)
        return app

    yield build
    for app in apps:
        await app.state.db.dispose()


async def test_every_column_type_round_trips(make_app: Any) -> None:
    app = await make_app()
    owner = await create_user(app, "alice")
    headers = await auth_headers(app, owner)
    body = {
        "name": "widget",
        "notes": "long text",
        "count": 3,
        "small": -5,
        "big": 2**40,
        "weight": "12.125",
        "ratio": 0.5,
        "active": False,
        "colour": "green",
        "released": "2024-02-29",
        "alarm": "07:30:00",
        "seen_at": "2024-03-01T12:00:00+02:00",
        "extra": {"tags": ["a", "b"], "n": 1},
        "secret": "hidden",
    }
    async with client_for(app) as client:
        created = await client.post("/api/v1/gadgets", json=body, headers=headers)
        assert created.status_code == 201, created.text
        gadget = created.json()
        assert "secret" not in gadget
        assert gadget["weight"] == "12.125"
        assert gadget["colour"] == "green"
        assert gadget["seen_at"] == "2024-03-01T10:00:00Z"  # stored in UTC
        assert gadget["extra"] == {"tags": ["a", "b"], "n": 1}
        assert len(gadget["token"]) == 36
        fetched = await client.get(f"/api/v1/gadgets/{gadget['id']}")
        assert fetched.json() == gadget
        by_token = await client.get("/api/v1/gadgets", params={"token": gadget["token"]})
        assert [item["id"] for item in by_token.json()["items"]] == [gadget["id"]]
        for params in ({"colour": "green"}, {"released__gte": "2024-01-01"}, {"active": "false"}):
            found = await client.get("/api/v1/gadgets", params=params)
            assert found.json()["total"] == 1, params
        assert (await client.get("/api/v1/gadgets", params={"colour": "blue"})).status_code == 422


@pytest.mark.parametrize("ordering", ["rating", "-rating", "rating,-name", "-rating,name"])
async def test_cursor_walk_with_nulls(make_app: Any, ordering: str) -> None:
    app = await make_app()
    ratings = [None, 3, None, 1, 3, None, 2, 1, None, 3, None]
    async with database(app).transaction() as conn:
        await conn.execute(
            insert(table_of(Gadget)),
            [{"name": f"g{i}", "rating": rating} for i, rating in enumerate(ratings)],
        )
    async with client_for(app) as client:
        params = {"ordering": ordering, "limit": 2}
        everything = await client.get("/api/v1/gadgets", params={**params, "limit": 100})
        expected = [item["id"] for item in everything.json()["items"]]
        seen: list[int] = []
        page = (await client.get("/api/v1/gadgets", params=params)).json()
        while True:
            seen += [item["id"] for item in page["items"]]
            if not page["next_cursor"]:
                break
            page = (
                await client.get(
                    "/api/v1/gadgets", params={**params, "cursor": page["next_cursor"]}
                )
            ).json()
    assert seen == expected
    assert sorted(seen) == list(range(1, len(ratings) + 1))
    rating_of = {item["id"]: item["rating"] for item in everything.json()["items"]}
    values = [rating_of[i] for i in expected]
    non_null = [v for v in values if v is not None]
    # NULLs last ascending, first descending, on SQLite and PostgreSQL alike.
    if ordering.startswith("-"):
        assert values[: values.count(None)] == [None] * values.count(None)
        assert non_null == sorted(non_null, reverse=True)
    else:
        assert values[len(non_null) :] == [None] * values.count(None)
        assert non_null == sorted(non_null)


async def test_private_resource_without_owner_needs_view_permission(make_app: Any) -> None:
    app = await make_app()
    reader = await create_user(app, "reader", permissions=["tests.view_note"])
    writer = await create_user(app, "writer", permissions=["tests.add_note"])
    stranger = await create_user(app, "stranger")
    async with client_for(app) as client:
        assert (await client.get("/api/v1/notes")).status_code == 401
        stranger_headers = await auth_headers(app, stranger)
        assert (await client.get("/api/v1/notes", headers=stranger_headers)).status_code == 403
        created = await client.post(
            "/api/v1/notes", json={"text": "hello"}, headers=await auth_headers(app, writer)
        )
        assert created.status_code == 201
        note_url = f"/api/v1/notes/{created.json()['id']}"
        assert (await client.get(note_url, headers=stranger_headers)).status_code == 403
        reader_headers = await auth_headers(app, reader)
        assert (await client.get("/api/v1/notes", headers=reader_headers)).json()["total"] == 1
        assert (await client.get(note_url, headers=reader_headers)).status_code == 200
        patched = await client.patch(note_url, json={"text": "x"}, headers=reader_headers)
        assert patched.status_code == 403


async def test_custom_permissions_replace_the_default_everywhere(make_app: Any) -> None:
    app = await make_app([AuthorOnly() | crudkit.IsSuperuser()])
    alice = await create_user(app, "alice")
    bob = await create_user(app, "bob")
    root = await create_user(app, "root", is_superuser=True)
    async with database(app).transaction() as conn:
        await conn.execute(
            insert(table_of(Note)),
            [{"text": "alice's", "author_id": alice}, {"text": "bob's", "author_id": bob}],
        )
    async with client_for(app) as client:
        alice_headers = await auth_headers(app, alice)
        listed = (await client.get("/api/v1/notes", headers=alice_headers)).json()
        assert [item["text"] for item in listed["items"]] == ["alice's"]
        assert listed["total"] == 1
        assert (await client.get("/api/v1/notes/2", headers=alice_headers)).status_code == 404
        assert (
            await client.patch("/api/v1/notes/2", json={"text": "mine"}, headers=alice_headers)
        ).status_code == 404
        assert (await client.delete("/api/v1/notes/2", headers=alice_headers)).status_code == 404
        assert (await client.get("/api/v1/notes/1", headers=alice_headers)).status_code == 200
        root_list = (
            await client.get("/api/v1/notes", headers=await auth_headers(app, root))
        ).json()
        assert root_list["total"] == 2
        assert (await client.get("/api/v1/notes")).status_code == 401


async def test_expand_shows_only_related_rows_the_caller_may_read(
    settings: crudkit.Settings,
) -> None:
    registry = crudkit.Registry()

    @registry.register(Shelf)
    class ShelfResource(crudkit.Resource):
        public_read = True
        path = "shelves"  # the default would be "shelfs"

    @registry.register(ShelfItem)
    class ShelfItemResource(crudkit.Resource):
        owner_field = "owner_id"

    app = crudkit.create_app(settings, registry=registry)
    alice = await create_user(app, "alice")
    bob = await create_user(app, "bob")
    async with database(app).transaction() as conn:
        await conn.execute(insert(table_of(Shelf)).values(id=1, label="top"))
        await conn.execute(
            insert(table_of(ShelfItem)),
            [
                {"name": "alice's", "shelf_id": 1, "owner_id": alice},
                {"name": "bob's", "shelf_id": 1, "owner_id": bob},
            ],
        )
    async with client_for(app) as client:
        as_alice = await client.get(
            "/api/v1/shelves/1", params={"expand": "items"}, headers=await auth_headers(app, alice)
        )
        assert [item["name"] for item in as_alice.json()["items"]] == ["alice's"]
        anonymous = await client.get("/api/v1/shelves/1", params={"expand": "items"})
        assert anonymous.json()["items"] == []  # anonymous may not read items at all
        item = await client.get(
            "/api/v1/shelf_items/1",
            params={"expand": "shelf"},
            headers=await auth_headers(app, alice),
        )
        assert item.json()["shelf"] == {"id": 1, "label": "top"}
    await app.state.db.dispose()


async def test_estimated_count(settings: crudkit.Settings, is_postgres: bool) -> None:
    registry = crudkit.Registry()

    @registry.register(Note)
    class NoteResource(crudkit.Resource):
        public_read = True
        count = "estimate"
        filter_fields = ["text"]

    @registry.register(Gadget)
    class GadgetResource(crudkit.Resource):
        public_read = True
        count = "none"

    app = crudkit.create_app(settings, registry=registry)
    async with database(app).transaction() as conn:
        await conn.execute(insert(table_of(Note)), [{"text": f"n{i}"} for i in range(300)])
        await conn.execute(insert(table_of(Gadget)), [{"name": f"g{i}"} for i in range(30)])
        if is_postgres:
            await conn.exec_driver_sql("ANALYZE test_note")
    async with client_for(app) as client:
        notes = (await client.get("/api/v1/notes", params={"limit": 10})).json()
        assert notes["total"] is not None
        assert abs(notes["total"] - 300) <= 30  # the planner's estimate; exact on SQLite
        filtered = await client.get("/api/v1/notes", params={"limit": 10, "text__icontains": "n1"})
        assert filtered.status_code == 200
        assert filtered.json()["total"] is not None
        gadgets = (await client.get("/api/v1/gadgets", params={"limit": 10})).json()
        assert gadgets["total"] is None
        assert gadgets["next_cursor"]
    await app.state.db.dispose()


async def test_resource_path_next_to_another_route_leaves_it_served(
    settings: crudkit.Settings,
) -> None:
    # Generated endpoints are matched first, yet one whose path also matches an auth
    # route steps aside for it: the resource serves every other path.
    registry = crudkit.Registry()

    @registry.register(Note)
    class NoteResource(crudkit.Resource):
        path = "/auth"

    app = crudkit.create_app(settings, registry=registry)
    await create_tables(app)
    async with client_for(app) as client:
        token = await client.post(
            "/api/v1/auth/token", data={"username": "nobody", "password": "wrong"}
        )
        assert token.status_code == 401
        assert (await client.get("/api/v1/auth/999")).status_code == 401  # notes are private
        wrong = await client.get("/api/v1/auth/token")
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "POST"
    await app.state.db.dispose()


def test_generated_endpoints_are_matched_first(settings: crudkit.Settings) -> None:
    app = crudkit.create_app(settings)
    first = app.router.routes[0]
    assert getattr(first, "path", "").startswith("/api/v1/")
    assert app.url_path_for("token") == "/api/v1/auth/token"
