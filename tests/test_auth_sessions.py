"""Ending sessions: logout (API and admin) is recorded in the history, a login is not, and a
refresh token replayed ends every session of its user, access tokens minted from its
family included."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from crudkit.contrib.auth.testing import create_user
from tests.admin_support import ORIGIN, history, page_token
from tests.admin_support import login as admin_login
from tests.test_auth import AUTH, bearer, token_pair


async def test_logout_is_recorded_and_a_login_is_not(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user_id = await create_user(app, "alice")
    pair = await token_pair(client, "alice")
    assert await history(app) == []  # last_login is bookkeeping, not an edit

    assert (
        await client.post(f"{AUTH}/logout", headers=bearer(pair["access_token"]))
    ).status_code == 204

    [entry] = await history(app)
    assert entry["model"] == "user"
    assert entry["object_id"] == str(user_id)
    assert entry["action"] == "update"
    assert entry["channel"] == "api"
    assert entry["user_id"] == user_id
    assert entry["username"] == "alice"
    assert set(entry["changes"]) == {"token_version"}


async def test_admin_logout_is_recorded(app: FastAPI, client: httpx.AsyncClient) -> None:
    user_id = await create_user(app, "ann", is_staff=True)
    assert (await admin_login(client, "ann")).status_code == 302
    token = await page_token(client, "/admin/")

    response = await client.post(
        "/admin/logout", data={"csrf_token": token}, headers={"Origin": ORIGIN}
    )

    assert response.status_code == 302
    [entry] = await history(app)
    assert (entry["object_id"], entry["channel"]) == (str(user_id), "admin")
    assert (entry["user_id"], entry["action"]) == (user_id, "update")
    assert set(entry["changes"]) == {"token_version"}


async def test_register_and_password_change_are_recorded(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    created = await client.post(
        f"{AUTH}/register",
        json={"username": "carol", "email": "carol@example.com", "password": "tulip-garden-42"},
    )
    assert created.status_code == 201, created.text
    pair = await token_pair(client, "carol", "tulip-garden-42")
    changed = await client.post(
        f"{AUTH}/password",
        json={"current_password": "tulip-garden-42", "new_password": "another-long-secret"},
        headers=bearer(pair["access_token"]),
    )
    assert changed.status_code == 204

    registered, password = await history(app)
    assert (registered["action"], registered["object_id"]) == ("create", str(created.json()["id"]))
    assert (password["action"], password["username"]) == ("update", "carol")
    assert "hashed_password" not in password["changes"]  # never recorded


async def test_a_replayed_refresh_token_ends_every_session(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user_id = await create_user(app, "alice")
    first = await token_pair(client, "alice")
    other_device = await token_pair(client, "alice")
    rotated = await client.post(f"{AUTH}/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    minted = rotated.json()
    assert (
        await client.get(f"{AUTH}/me", headers=bearer(minted["access_token"]))
    ).status_code == 200

    # The spent token comes back: its owner or a thief holds a copy.
    replayed = await client.post(f"{AUTH}/refresh", json={"refresh_token": first["refresh_token"]})

    assert replayed.status_code == 401
    # Access tokens minted from the family stop working at once, not when they expire,
    # and so does everything else the user held.
    for pair in (first, minted, other_device):
        me = await client.get(f"{AUTH}/me", headers=bearer(pair["access_token"]))
        assert me.status_code == 401
    for refresh_token in (minted["refresh_token"], other_device["refresh_token"]):
        refused = await client.post(f"{AUTH}/refresh", json={"refresh_token": refresh_token})
        assert refused.status_code == 401
    [entry] = await history(app)
    assert (entry["object_id"], entry["action"]) == (str(user_id), "update")
    assert entry["user_id"] is None  # whoever replayed it is not known
    # The user logs in again as usual.
    await token_pair(client, "alice")


async def test_an_unknown_refresh_token_ends_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A refresh token already gone (its user logged out) is refused without a new revocation."""
    await create_user(app, "alice")
    old = await token_pair(client, "alice")
    assert (
        await client.post(f"{AUTH}/logout", headers=bearer(old["access_token"]))
    ).status_code == 204
    current = await token_pair(client, "alice")

    refused = await client.post(f"{AUTH}/refresh", json={"refresh_token": old["refresh_token"]})

    assert refused.status_code == 401
    me = await client.get(f"{AUTH}/me", headers=bearer(current["access_token"]))
    assert me.status_code == 200
