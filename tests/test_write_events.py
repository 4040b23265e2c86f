"""Installed apps hear every API write inside its transaction."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection

from crudkit.events import WriteEvent
from crudkit.permissions import Action
from tests.conftest import Caller


@pytest.fixture
def events(app: FastAPI) -> Iterator[list[WriteEvent]]:
    heard: list[WriteEvent] = []

    async def listen(conn: AsyncConnection, event: WriteEvent) -> None:
        assert conn.in_transaction()
        heard.append(event)

    hooks = app.state.apps.write_hooks
    hooks.append(listen)
    yield heard
    hooks.remove(listen)


async def test_create_update_delete_are_reported(
    client: httpx.AsyncClient, alice: Caller, events: list[WriteEvent]
) -> None:
    created = await client.post(
        "/api/v1/products", json={"name": "Lamp", "price": "1"}, headers=alice.headers
    )
    assert created.status_code == 201, created.text
    url = f"/api/v1/products/{created.json()['id']}"
    await client.patch(url, json={"price": "2"}, headers={**alice.headers, "X-Request-ID": "r-1"})
    await client.delete(url, headers=alice.headers)
    assert [event.action for event in events] == [Action.CREATE, Action.UPDATE, Action.DELETE]
    create, update, delete = events
    assert create.before is None
    assert create.after is not None
    assert create.channel == "api"
    assert create.user is not None
    assert create.user.id == alice.id
    assert update.request_id == "r-1"
    changes = update.changes()
    assert set(changes) >= {"price", "updated_at"}
    assert [str(value) for value in changes["price"]] == ["1.00", "2.00"]
    assert delete.after is None
    assert delete.object_id == create.object_id


async def test_refused_writes_are_not_reported(
    client: httpx.AsyncClient, alice: Caller, bob: Caller, events: list[WriteEvent]
) -> None:
    created = await client.post(
        "/api/v1/products", json={"name": "Lamp", "price": "1"}, headers=alice.headers
    )
    events.clear()
    assert created.status_code == 201, created.text
    url = f"/api/v1/products/{created.json()['id']}"
    assert (await client.patch(url, json={"price": "2"}, headers=bob.headers)).status_code == 403
    assert (await client.delete(url, headers=bob.headers)).status_code == 403
    assert events == []
