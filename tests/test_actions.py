"""`@crudkit.action`: custom endpoints checked like generated ones, typed in OpenAPI,
writing through the pipeline; `extra_permissions`; mistakes refused at start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from openapi_spec_validator import validate
from pydantic import BaseModel, Field
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Row

import crudkit
from crudkit.contrib.admin.models import LogEntry
from crudkit.contrib.auth.models import Permission
from crudkit.contrib.auth.permissions_sync import create_permissions
from crudkit.contrib.auth.testing import auth_headers, create_user
from crudkit.db import table_of
from crudkit.testing import client_for, create_tables, database
from tests.models import Gadget, Note


class RenameIn(BaseModel):
    name: str = Field(min_length=1, max_length=20)


class GadgetSummary(BaseModel):
    id: int
    name: str


class GadgetStats(BaseModel):
    total: int


def make_registry() -> crudkit.Registry:
    registry = crudkit.Registry()

    @registry.register(Gadget)
    class GadgetResource(crudkit.Resource):
        owner_field = "owner_id"
        extra_permissions = [("feature", "Can feature gadgets")]

        @crudkit.action(detail=True, methods=["POST"], permission="change")
        async def rename(self, request: Request, obj: Row[Any], body: RenameIn) -> GadgetSummary:
            return await crudkit.update(Gadget, obj.id, {"name": body.name}, request=request)  # type: ignore[return-value]

        @crudkit.action(detail=True, methods=["POST"], permission="feature")
        async def feature(self, request: Request, obj: Row[Any]) -> Gadget:
            # The action's permission is the check: the write itself is trusted.
            return await crudkit.update(Gadget, obj.id, {"rating": 5}, request=request, check=False)  # type: ignore[return-value]

        @crudkit.action(detail=True, methods=["POST"], permission="change")
        async def retire(self, request: Request, obj: Row[Any]) -> Gadget:
            await crudkit.update(Gadget, obj.id, {"name": "retired"}, request=request)
            raise crudkit.ValidationError({"name": "Gadgets cannot be retired yet."})

        @crudkit.action(detail=False, methods=["GET"], permission="view")
        async def stats(self, request: Request) -> GadgetStats:
            async with request.app.state.db.reader() as reader:
                total = await reader.scalar(select(func.count()).select_from(table_of(Gadget)))
            return GadgetStats(total=total)

    @registry.register(Note)
    class NoteResource(crudkit.Resource):
        @crudkit.action(detail=True, methods=["DELETE"], permission="change")
        async def clear(self, request: Request, obj: Row[Any]) -> None:
            await crudkit.update(Note, obj.id, {"text": ""}, request=request)

        @crudkit.action(detail=False, methods=["GET", "POST"], permission="view")
        async def ping(self, request: Request) -> dict[str, str]:
            return {"pong": request.method}

    return registry


@pytest.fixture
async def app(settings: crudkit.Settings) -> AsyncIterator[FastAPI]:
    app = crudkit.create_app(settings, registry=make_registry())
    await create_tables(app)
    yield app
    await app.state.db.dispose()


async def add_gadget(app: FastAPI, name: str, owner_id: int | None) -> int:
    async with database(app).transaction() as conn:
        result = await conn.execute(
            insert(table_of(Gadget))
            .values(name=name, owner_id=owner_id)
            .returning(table_of(Gadget).c.id)
        )
        return int(result.scalar_one())


async def test_detail_action_checks_like_an_update_and_writes_history(app: FastAPI) -> None:
    alice = await create_user(app, "alice")
    bob = await create_user(app, "bob")
    mine = await add_gadget(app, "mine", alice)
    theirs = await add_gadget(app, "theirs", bob)
    headers = await auth_headers(app, alice)
    async with client_for(app) as client:
        done = await client.post(
            f"/api/v1/gadgets/{mine}/rename", json={"name": "lamp"}, headers=headers
        )
        assert done.status_code == 200, done.text
        assert done.json() == {"id": mine, "name": "lamp"}
        fetched = await client.get(f"/api/v1/gadgets/{mine}", headers=headers)
        assert fetched.json()["name"] == "lamp"
        other = await client.post(
            f"/api/v1/gadgets/{theirs}/rename", json={"name": "x"}, headers=headers
        )
        assert other.status_code == 404
        missing = await client.post(
            "/api/v1/gadgets/999999/rename", json={"name": "x"}, headers=headers
        )
        assert missing.status_code == 404
        anonymous = await client.post(f"/api/v1/gadgets/{mine}/rename", json={"name": "x"})
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        bad = await client.post(
            f"/api/v1/gadgets/{mine}/rename", json={"name": ""}, headers=headers
        )
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "name"]
        empty = await client.post(f"/api/v1/gadgets/{mine}/rename", headers=headers)
        assert empty.status_code == 422
        assert empty.json()["detail"][0]["loc"] == ["body"]
        bad_id = await client.post(
            "/api/v1/gadgets/abc/rename", json={"name": "x"}, headers=headers
        )
        assert bad_id.status_code == 422
    async with database(app).transaction() as conn:
        entries = (
            await conn.execute(
                select(table_of(LogEntry)).where(
                    table_of(LogEntry).c.model == "gadget",
                    table_of(LogEntry).c.object_id == str(mine),
                )
            )
        ).all()
        names = (await conn.execute(select(table_of(Gadget).c.name).order_by("id"))).scalars().all()
    assert [(entry.action, entry.channel, entry.user_id) for entry in entries] == [
        ("update", "api", alice)
    ]
    assert names == ["lamp", "theirs"]  # refused calls wrote nothing


async def test_standard_permission_without_it_is_403(app: FastAPI) -> None:
    carol = await create_user(app, "carol")
    dave = await create_user(app, "dave", permissions=["tests.change_note"])
    async with database(app).transaction() as conn:
        note = (
            await conn.execute(
                insert(table_of(Note)).values(text="hi").returning(table_of(Note).c.id)
            )
        ).scalar_one()
    async with client_for(app) as client:
        refused = await client.delete(
            f"/api/v1/notes/{note}/clear", headers=await auth_headers(app, carol)
        )
        assert refused.status_code == 403
        allowed = await client.delete(
            f"/api/v1/notes/{note}/clear", headers=await auth_headers(app, dave)
        )
        assert allowed.status_code == 204, allowed.text
        assert allowed.content == b""
    async with database(app).transaction() as conn:
        text = (await conn.execute(select(table_of(Note).c.text))).scalar_one()
    assert text == ""


async def test_list_action(app: FastAPI) -> None:
    alice = await create_user(app, "alice")
    await add_gadget(app, "a", None)
    await add_gadget(app, "b", alice)
    async with client_for(app) as client:
        assert (await client.get("/api/v1/gadgets/stats")).status_code == 401
        headers = await auth_headers(app, alice)
        stats = await client.get("/api/v1/gadgets/stats", headers=headers)
        assert stats.status_code == 200, stats.text
        assert stats.json() == {"total": 2}
        wrong = await client.post("/api/v1/gadgets/stats", headers=headers)
        assert wrong.status_code == 405


async def test_extra_permission_is_created_and_grantable(app: FastAPI) -> None:
    apps = app.state.apps
    async with database(app).transaction() as conn:
        assert await create_permissions(apps, conn) > 0
        assert await create_permissions(apps, conn) == 0  # idempotent
        found = (
            await conn.execute(
                select(table_of(Permission)).where(
                    table_of(Permission).c.codename == "tests.feature_gadget"
                )
            )
        ).one()
    assert (found.name, found.app_label, found.model) == ("Can feature gadgets", "tests", "gadget")
    plain = await create_user(app, "plain")
    editor = await create_user(app, "editor", permissions=["tests.feature_gadget"])
    gadget = await add_gadget(app, "g", editor)
    theirs = await add_gadget(app, "h", plain)
    async with client_for(app) as client:
        assert (await client.post(f"/api/v1/gadgets/{gadget}/feature")).status_code == 401
        refused = await client.post(
            f"/api/v1/gadgets/{gadget}/feature", headers=await auth_headers(app, plain)
        )
        assert refused.status_code == 403
        own = await client.post(
            f"/api/v1/gadgets/{theirs}/feature", headers=await auth_headers(app, plain)
        )
        assert own.status_code == 403  # owning the row is not the permission
        done = await client.post(
            f"/api/v1/gadgets/{gadget}/feature", headers=await auth_headers(app, editor)
        )
        assert done.status_code == 200, done.text
        item = done.json()
        assert (item["rating"], item["name"]) == (5, "g")
        assert set(item) >= {"id", "owner_id", "token"}  # the resource's Out
        # Scoped as a retrieve: the editor cannot see another user's gadget.
        hidden = await client.post(
            f"/api/v1/gadgets/{theirs}/feature", headers=await auth_headers(app, editor)
        )
        assert hidden.status_code == 404


async def test_openapi_describes_actions(app: FastAPI) -> None:
    async with client_for(app) as client:
        schema = (await client.get("/openapi.json")).json()
    validate(schema)
    operations = {
        operation["operationId"]: (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }
    path, method, rename = operations["gadgets_rename"]
    assert (path, method) == ("/api/v1/gadgets/{id}/rename", "post")
    assert rename["tags"] == ["Gadgets"]
    assert rename["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RenameIn"
    }
    assert rename["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GadgetSummary"
    }
    assert {"401", "403", "404", "422"} <= set(rename["responses"])
    assert schema["components"]["schemas"]["RenameIn"]["properties"]["name"]["maxLength"] == 20
    assert [p["name"] for p in rename["parameters"]] == ["id"]
    path, method, stats = operations["gadgets_stats"]
    assert (path, method) == ("/api/v1/gadgets/stats", "get")
    assert stats["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GadgetStats"
    }
    feature = operations["gadgets_feature"][2]
    assert feature["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GadgetOut"
    }
    assert "204" in operations["notes_clear"][2]["responses"]


def build(
    settings: crudkit.Settings, resource: type[crudkit.Resource], model: type[Any] = Note
) -> FastAPI:
    registry = crudkit.Registry()
    registry.register(model, resource)
    return crudkit.create_app(settings, registry=registry)


async def test_colliding_action_name_is_refused(settings: crudkit.Settings) -> None:
    class Colliding(crudkit.Resource):
        @crudkit.action(detail=True, methods=["GET"], permission="view")
        async def history(self, request: Request, obj: Any) -> None: ...

    with pytest.raises(crudkit.ImproperlyConfigured, match=r"Colliding\.history.*collides"):
        build(settings, Colliding)

    class CollidingList(crudkit.Resource):
        @crudkit.action(detail=False, methods=["POST"], permission="add")
        async def bulk(self, request: Request) -> None: ...

    with pytest.raises(crudkit.ImproperlyConfigured, match=r"CollidingList\.bulk.*collides"):
        build(settings, CollidingList)


async def test_unknown_permission_is_refused(settings: crudkit.Settings) -> None:
    class Unknown(crudkit.Resource):
        extra_permissions = [("publish", "Can publish")]

        @crudkit.action(detail=True, methods=["POST"], permission="pubish")
        async def publish(self, request: Request, obj: Any) -> None: ...

    with pytest.raises(crudkit.ImproperlyConfigured, match=r"Unknown\.publish.*'pubish'.*publish"):
        build(settings, Unknown)


@pytest.mark.parametrize(
    "entry", [("publish now", "Can publish"), ("", "x"), ("change", "Can change"), ("publish",)]
)
def test_bad_extra_permission_is_refused(entry: Any) -> None:
    class BadCodename(crudkit.Resource):
        extra_permissions = [entry]

    with pytest.raises(crudkit.ImproperlyConfigured, match=r"BadCodename\.extra_permissions"):
        crudkit.Registry().register(Note, BadCodename)


async def test_bad_signatures_are_refused(settings: crudkit.Settings) -> None:
    class UntypedBody(crudkit.Resource):
        @crudkit.action(detail=True, methods=["POST"], permission="change")
        async def tag(self, request: Request, obj: Any, body: dict[str, Any]) -> None: ...

    with pytest.raises(crudkit.ImproperlyConfigured, match=r"UntypedBody\.tag.*pydantic"):
        build(settings, UntypedBody)

    class MissingObj(crudkit.Resource):
        @crudkit.action(detail=True, methods=["POST"], permission="change")
        async def tag(self, request: Request) -> None: ...

    with pytest.raises(crudkit.ImproperlyConfigured, match=r"MissingObj\.tag.*request, obj"):
        build(settings, MissingObj)

    with pytest.raises(crudkit.ImproperlyConfigured, match="async"):
        crudkit.action(detail=True)(lambda self, request, obj: None)
    with pytest.raises(crudkit.ImproperlyConfigured, match="methods"):
        crudkit.action(detail=True, methods=["FETCH"])


async def test_action_with_several_methods(app: FastAPI) -> None:
    root = await create_user(app, "root", is_superuser=True)
    headers = await auth_headers(app, root)
    async with client_for(app) as client:
        schema = (await client.get("/openapi.json")).json()
        for method in ("GET", "POST"):
            answer = await client.request(method, "/api/v1/notes/ping", headers=headers)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"pong": method}
            operation = schema["paths"]["/api/v1/notes/ping"][method.lower()]
            assert operation["operationId"] == f"notes_ping_{method.lower()}"
        assert (await client.get("/api/v1/notes/ping")).status_code == 401
        # The list and retrieve routes still answer.
        assert (await client.get("/api/v1/notes", headers=headers)).status_code == 200
        assert (await client.get("/api/v1/notes/1", headers=headers)).status_code == 404


async def test_an_action_failing_after_a_write_leaves_nothing_written(app: FastAPI) -> None:
    alice = await create_user(app, "alice")
    mine = await add_gadget(app, "mine", alice)
    headers = await auth_headers(app, alice)
    async with client_for(app) as client:
        refused = await client.post(f"/api/v1/gadgets/{mine}/retire", headers=headers)
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["body", "name"]
        fetched = await client.get(f"/api/v1/gadgets/{mine}", headers=headers)
        assert fetched.json()["name"] == "mine"
    async with database(app).transaction() as conn:
        entries = await conn.execute(select(table_of(LogEntry)))
        assert entries.all() == []
