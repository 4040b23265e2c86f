"""One write pipeline on every channel: validation, hooks, history, `on_commit`, and the
Python write API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from starlette.requests import Request

import crudkit
from crudkit.contrib.auth.models import User
from crudkit.contrib.auth.resources import UserResource
from crudkit.contrib.auth.testing import auth_headers, create_user
from crudkit.testing import client_for
from tests.admin_support import history, login, rows, submit
from tests.models import Label

committed: list[str] = []
"""Names of labels whose `on_commit` callback ran."""


class LabelResource(crudkit.Resource):
    owner_field = "owner_id"
    public_read = True

    async def validate(
        self, request: Request, values: dict[str, Any], obj: Any = None
    ) -> dict[str, Any]:
        if "spam" in values.get("name", "").lower():
            raise crudkit.ValidationError({"name": "Labels may not contain 'spam'."})
        return values

    async def after_create(self, request: Request, obj: Any) -> None:
        if obj.name == "boom":
            raise crudkit.Conflict("The after_create hook refused it.")
        crudkit.on_commit(lambda: committed.append(obj.name))


@pytest.fixture
async def labels_app(settings: crudkit.Settings) -> AsyncIterator[FastAPI]:
    registry = crudkit.Registry()
    registry.register(User, UserResource)
    registry.register(Label, LabelResource)
    app = crudkit.create_app(settings, registry=registry)
    committed.clear()
    yield app
    await app.state.db.dispose()


@pytest.fixture
async def labels_client(labels_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(labels_app) as client:
        yield client


async def _headers(app: FastAPI, username: str, **options: Any) -> dict[str, str]:
    return await auth_headers(app, await create_user(app, username, **options))


async def test_validates_refuses_api_writes_and_changes_values(
    labels_app: FastAPI, labels_client: httpx.AsyncClient
) -> None:
    headers = await _headers(labels_app, "alice")

    refused = await labels_client.post(
        "/api/v1/labels", json={"name": "Forbidden fruit"}, headers=headers
    )
    assert refused.status_code == 422
    assert refused.json()["detail"] == [
        {"loc": ["body", "name"], "msg": "Labels may not say 'forbidden'.", "type": "value_error"}
    ]
    assert await rows(labels_app, Label) == []
    assert await history(labels_app) == []

    created = await labels_client.post("/api/v1/labels", json={"name": "  Lamp "}, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "Lamp"  # the validator's return value is what is written

    label = created.json()["id"]
    patched = await labels_client.patch(
        f"/api/v1/labels/{label}", json={"name": "forbidden"}, headers=headers
    )
    assert patched.status_code == 422
    assert patched.json()["detail"][0]["loc"] == ["body", "name"]
    assert [row["name"] for row in await rows(labels_app, Label)] == ["Lamp"]


async def test_resource_validate_is_a_422_at_the_field(
    labels_app: FastAPI, labels_client: httpx.AsyncClient
) -> None:
    headers = await _headers(labels_app, "alice")

    response = await labels_client.post("/api/v1/labels", json={"name": "Spam"}, headers=headers)

    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"loc": ["body", "name"], "msg": "Labels may not contain 'spam'.", "type": "value_error"}
    ]
    assert await rows(labels_app, Label) == []


async def test_validation_refuses_admin_writes_on_the_field(
    labels_app: FastAPI, labels_client: httpx.AsyncClient
) -> None:
    await create_user(labels_app, "root", is_staff=True, is_superuser=True)
    assert (await login(labels_client, "root")).status_code == 302

    for name, message in (
        ("forbidden", "Labels may not say &#39;forbidden&#39;."),
        ("spam", "Labels may not contain &#39;spam&#39;."),
    ):
        response = await submit(labels_client, "/admin/label/create", {"name": name})
        assert response.status_code == 400
        assert message in response.text
    assert await rows(labels_app, Label) == []
    assert await history(labels_app) == []

    saved = await submit(labels_client, "/admin/label/create", {"name": " Desk "})
    assert saved.status_code == 302, saved.text
    [label] = await rows(labels_app, Label)
    assert label["name"] == "Desk"
    [entry] = await history(labels_app)
    assert (entry["channel"], entry["action"]) == ("admin", "create")


async def test_a_failing_after_hook_writes_nothing_and_commits_nothing(
    labels_app: FastAPI, labels_client: httpx.AsyncClient
) -> None:
    headers = await _headers(labels_app, "alice")

    refused = await labels_client.post("/api/v1/labels", json={"name": "boom"}, headers=headers)
    assert refused.status_code == 409
    assert await rows(labels_app, Label) == []
    assert await history(labels_app) == []
    assert committed == []

    created = await labels_client.post("/api/v1/labels", json={"name": "Lamp"}, headers=headers)
    assert created.status_code == 201
    assert committed == ["Lamp"]


async def test_every_api_write_leaves_one_history_row(
    labels_app: FastAPI, labels_client: httpx.AsyncClient
) -> None:
    headers = await _headers(labels_app, "alice")
    created = await labels_client.post("/api/v1/labels", json={"name": "Lamp"}, headers=headers)
    label = created.json()["id"]
    await labels_client.patch(f"/api/v1/labels/{label}", json={"name": "Desk"}, headers=headers)
    await labels_client.delete(f"/api/v1/labels/{label}", headers=headers)

    entries = await history(labels_app, model="label")
    assert [(e["action"], e["channel"], e["object_id"]) for e in entries] == [
        ("create", "api", str(label)),
        ("update", "api", str(label)),
        ("delete", "api", str(label)),
    ]
    assert entries[1]["changes"] == {"name": ["Lamp", "Desk"]}


async def test_registration_leaves_a_history_row(app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={"username": "newbie", "email": "n@example.com", "password": "correct-horse-9"},
    )

    assert response.status_code == 201, response.text
    [entry] = await history(app, model="user")
    assert (entry["action"], entry["channel"], entry["object_id"]) == (
        "create",
        "api",
        str(response.json()["id"]),
    )
    assert "hashed_password" not in entry["changes"]


async def test_python_write_api_runs_the_same_pipeline(labels_app: FastAPI) -> None:
    alice_id = await create_user(labels_app, "alice")
    [alice] = [row for row in await rows(labels_app, User) if row["id"] == alice_id]
    from crudkit.contrib.auth.users import load_user

    async with labels_app.state.db.read() as conn:
        user = await load_user(conn, user_id=alice["id"])
    assert user is not None

    with pytest.raises(crudkit.NotAuthenticated):
        await crudkit.create(Label, {"name": "Lamp"}, app=labels_app)
    with pytest.raises(crudkit.ValidationError):
        await crudkit.create(Label, {"name": "forbidden"}, user=user, app=labels_app)
    with pytest.raises(crudkit.Invalid):
        await crudkit.create(Label, {"name": "x" * 51}, user=user, app=labels_app)

    row = await crudkit.create(Label, {"name": "Lamp"}, user=user, app=labels_app)
    assert (row.name, row.owner_id) == ("Lamp", alice["id"])
    row = await crudkit.update(Label, row.id, {"name": "Desk"}, user=user, app=labels_app)
    assert row.name == "Desk"
    trusted = await crudkit.create(
        Label, {"name": "Shelf", "owner_id": None}, check=False, app=labels_app
    )
    assert trusted.owner_id is None
    await crudkit.delete(Label, row.id, user=user, app=labels_app)

    assert [r["name"] for r in await rows(labels_app, Label)] == ["Shelf"]
    entries = await history(labels_app, model="label")
    assert [(e["action"], e["channel"]) for e in entries] == [
        ("create", "cli"),
        ("update", "cli"),
        ("create", "cli"),
        ("delete", "cli"),
    ]
    assert committed == ["Lamp", "Shelf"]


async def test_nested_writes_share_the_transaction(labels_app: FastAPI) -> None:
    class Failing(Exception):
        pass

    async def create_then_fail() -> None:
        async with labels_app.state.writes.transaction():
            await crudkit.create(
                Label, {"name": "Lamp", "owner_id": None}, check=False, app=labels_app
            )
            raise Failing

    with pytest.raises(Failing):
        await create_then_fail()

    assert await rows(labels_app, Label) == []
    assert await history(labels_app) == []
    assert committed == []


def test_mapper_events_the_pipeline_cannot_fire_are_refused_at_start(
    settings: crudkit.Settings,
) -> None:
    def listener(*args: Any) -> None:
        pass

    registry = crudkit.Registry()
    registry.register(Label, LabelResource)
    event.listen(Label, "before_insert", listener)
    try:
        with pytest.raises(crudkit.ImproperlyConfigured, match="before_insert"):
            crudkit.create_app(settings, registry=registry)
    finally:
        event.remove(Label, "before_insert", listener)


class Refused(Exception):
    """Raised by a step of a write in the tests below."""


@pytest.mark.parametrize("step", ["validate", "before_create", "after_create", "history", "sql"])
async def test_a_failure_in_any_step_leaves_no_row_and_no_history(
    labels_app: FastAPI, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    user_id = await create_user(labels_app, "alice")
    resource = labels_app.state.apps.registry[Label]

    async def refuse(*args: Any) -> Any:
        raise Refused(step)

    values: dict[str, Any] = {"name": "Lamp"}
    if step == "history":
        monkeypatch.setattr(labels_app.state.apps, "write_hooks", [refuse])
    elif step == "sql":
        values["owner_id"] = user_id + 1000  # a foreign key to no user: the INSERT fails
    else:
        monkeypatch.setattr(resource, step, refuse)
    # A fresh pipeline, so the overridden hooks are seen.
    labels_app.state.writes = type(labels_app.state.writes)(
        labels_app.state.db, labels_app.state.apps
    )

    expected: type[Exception] = crudkit.Invalid if step == "sql" else Refused
    with pytest.raises(expected):
        await crudkit.create(Label, values, check=False, app=labels_app)

    assert await rows(labels_app, Label) == []
    assert await history(labels_app) == []
    assert committed == []
