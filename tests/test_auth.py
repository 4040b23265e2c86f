"""Auth endpoints: login, refresh rotation, logout, me, register, password change."""

from __future__ import annotations

import bcrypt
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from crudkit.contrib.auth.models import User
from crudkit.contrib.auth.testing import create_user
from crudkit.db import table_of
from crudkit.testing import database

AUTH = "/api/v1/auth"
PASSWORD = "correct-horse-battery"


async def token_pair(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> dict[str, str]:
    response = await client.post(f"{AUTH}/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    pair: dict[str, str] = response.json()
    return pair


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def stored_user(app: FastAPI, username: str) -> dict[str, object]:
    users = table_of(User)
    async with database(app).read() as conn:
        row = (await conn.execute(select(users).where(users.c.username == username))).one()
    return dict(row._mapping)


async def test_token_returns_pair(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create_user(app, "alice")
    pair = await token_pair(client, "alice")
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == 900
    me = await client.get(f"{AUTH}/me", headers=bearer(pair["access_token"]))
    assert me.status_code == 200
    assert (await stored_user(app, "alice"))["last_login"] is not None


@pytest.mark.parametrize(
    ("username", "password"), [("alice", "wrong-password"), ("nobody", PASSWORD), ("", "")]
)
async def test_bad_login_is_401_or_422(
    app: FastAPI, client: httpx.AsyncClient, username: str, password: str
) -> None:
    await create_user(app, "alice")
    response = await client.post(f"{AUTH}/token", data={"username": username, "password": password})
    if username:
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == {"detail": "Incorrect username or password."}
    else:
        assert response.status_code == 422


async def test_inactive_user_cannot_log_in(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create_user(app, "ghost", is_active=False)
    response = await client.post(f"{AUTH}/token", data={"username": "ghost", "password": PASSWORD})
    assert response.status_code == 401


async def test_me_never_shows_the_hash(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create_user(app, "alice", email="alice@example.org")
    pair = await token_pair(client, "alice")
    me = (await client.get(f"{AUTH}/me", headers=bearer(pair["access_token"]))).json()
    assert set(me) == {
        "id",
        "username",
        "email",
        "is_active",
        "is_staff",
        "is_superuser",
        "date_joined",
        "last_login",
    }
    assert me["username"] == "alice"
    assert me["email"] == "alice@example.org"


async def test_me_requires_authentication(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{AUTH}/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_refresh_rotates_and_a_used_token_is_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await create_user(app, "alice")
    first = await token_pair(client, "alice")
    second = await client.post(f"{AUTH}/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert (
        await client.get(f"{AUTH}/me", headers=bearer(rotated["access_token"]))
    ).status_code == 200
    reused = await client.post(f"{AUTH}/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    # The reuse looks like a theft: the whole family ends, the newer token included.
    after_reuse = await client.post(
        f"{AUTH}/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert after_reuse.status_code == 401


async def test_access_and_refresh_tokens_are_not_interchangeable(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await create_user(app, "alice")
    pair = await token_pair(client, "alice")
    as_access = await client.get(f"{AUTH}/me", headers=bearer(pair["refresh_token"]))
    assert as_access.status_code == 401
    as_refresh = await client.post(f"{AUTH}/refresh", json={"refresh_token": pair["access_token"]})
    assert as_refresh.status_code == 401


@pytest.mark.parametrize("body", [{}, {"refresh_token": 5}, {"refresh_token": "x", "extra": 1}])
async def test_refresh_with_bad_body_is_422(
    client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    assert (await client.post(f"{AUTH}/refresh", json=body)).status_code == 422


async def test_logout_ends_every_session(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create_user(app, "alice")
    laptop = await token_pair(client, "alice")
    phone = await token_pair(client, "alice")
    response = await client.post(f"{AUTH}/logout", headers=bearer(laptop["access_token"]))
    assert response.status_code == 204
    for pair in (laptop, phone):
        assert (
            await client.get(f"{AUTH}/me", headers=bearer(pair["access_token"]))
        ).status_code == 401
        refreshed = await client.post(
            f"{AUTH}/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        assert refreshed.status_code == 401
    assert (await client.post(f"{AUTH}/logout")).status_code == 401
    # Logging in again works.
    await token_pair(client, "alice")


async def test_deactivation_revokes_tokens(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create_user(app, "alice")
    pair = await token_pair(client, "alice")
    async with database(app).session() as session:
        user = (await session.execute(select(User).where(User.username == "alice"))).scalar_one()
        user.is_active = False
    assert (await client.get(f"{AUTH}/me", headers=bearer(pair["access_token"]))).status_code == 401


async def test_password_change_revokes_tokens(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create_user(app, "alice")
    pair = await token_pair(client, "alice")
    headers = bearer(pair["access_token"])
    wrong = await client.post(
        f"{AUTH}/password",
        json={"current_password": "nope", "new_password": "another-long-secret"},
        headers=headers,
    )
    assert wrong.status_code == 422
    weak = await client.post(
        f"{AUTH}/password",
        json={"current_password": PASSWORD, "new_password": "12345678"},
        headers=headers,
    )
    assert weak.status_code == 422
    changed = await client.post(
        f"{AUTH}/password",
        json={"current_password": PASSWORD, "new_password": "another-long-secret"},
        headers=headers,
    )
    assert changed.status_code == 204
    assert (await client.get(f"{AUTH}/me", headers=headers)).status_code == 401
    assert (
        await client.post(f"{AUTH}/refresh", json={"refresh_token": pair["refresh_token"]})
    ).status_code == 401
    await token_pair(client, "alice", "another-long-secret")


async def test_register_creates_a_plain_user(app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{AUTH}/register",
        json={"username": "carol", "email": "carol@example.com", "password": "tulip-garden-42"},
    )
    assert response.status_code == 201, response.text
    user = response.json()
    assert user["username"] == "carol"
    assert user["is_staff"] is False
    assert user["is_superuser"] is False
    assert "hashed_password" not in user
    stored = await stored_user(app, "carol")
    assert str(stored["hashed_password"]).startswith("$argon2id$")
    await token_pair(client, "carol", "tulip-garden-42")


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short1", "too short"),
        ("1234567890123", "entirely numeric"),
        ("password", "too common"),
        ("carol2024", "too similar to the username"),
    ],
)
async def test_register_refuses_weak_passwords(
    app: FastAPI, client: httpx.AsyncClient, password: str, message: str
) -> None:
    response = await client.post(
        f"{AUTH}/register", json={"username": "carol", "email": "", "password": password}
    )
    assert response.status_code == 422
    messages = " ".join(error["msg"] for error in response.json()["detail"])
    assert message in messages
    assert response.json()["detail"][0]["loc"] == ["body", "password"]


@pytest.mark.parametrize(
    "extra",
    [
        {"is_staff": True},
        {"is_superuser": True},
        {"is_active": False},
        {"hashed_password": "x"},
        {"id": 99},
        {"token_version": 5},
    ],
)
async def test_register_refuses_mass_assignment(
    app: FastAPI, client: httpx.AsyncClient, extra: dict[str, object]
) -> None:
    response = await client.post(
        f"{AUTH}/register",
        json={"username": "mallory", "password": "tulip-garden-42", **extra},
    )
    assert response.status_code == 422
    users = table_of(User)
    async with database(app).read() as conn:
        assert (await conn.execute(select(users))).first() is None


async def test_register_duplicate_username_is_409(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create_user(app, "carol")
    response = await client.post(
        f"{AUTH}/register", json={"username": "carol", "password": "tulip-garden-42"}
    )
    assert response.status_code == 409


@pytest.mark.parametrize("username", ["", "a b", "x" * 151, "semi;colon"])
async def test_register_invalid_username_is_422(client: httpx.AsyncClient, username: str) -> None:
    response = await client.post(
        f"{AUTH}/register", json={"username": username, "password": "tulip-garden-42"}
    )
    assert response.status_code == 422


async def test_register_is_404_when_disabled(settings, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    import crudkit
    from crudkit.testing import client_for, create_tables

    closed = crudkit.create_app(settings.model_copy(update={"allow_registration": False}))
    await create_tables(closed)
    async with client_for(closed) as closed_client:
        response = await closed_client.post(
            f"{AUTH}/register", json={"username": "dave", "password": "tulip-garden-42"}
        )
    await closed.state.db.dispose()
    assert response.status_code == 404


async def test_bcrypt_hash_verifies_and_is_upgraded(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await create_user(app, "legacy")
    legacy_hash = bcrypt.hashpw(b"old-system-secret", bcrypt.gensalt(rounds=4)).decode()
    users = table_of(User)
    async with database(app).transaction() as conn:
        await conn.execute(
            update(users).where(users.c.username == "legacy").values(hashed_password=legacy_hash)
        )
    await token_pair(client, "legacy", "old-system-secret")
    assert str((await stored_user(app, "legacy"))["hashed_password"]).startswith("$argon2id$")
    # The upgrade is not a password change: the tokens issued keep working.
    pair = await token_pair(client, "legacy", "old-system-secret")
    assert (await client.get(f"{AUTH}/me", headers=bearer(pair["access_token"]))).status_code == 200


async def test_long_passwords_are_not_truncated(app: FastAPI, client: httpx.AsyncClient) -> None:
    long_password = "p" * 60 + "-unique-tail-" + "q" * 60
    await create_user(app, "long", long_password)
    await token_pair(client, "long", long_password)
    truncated = long_password[:72]
    response = await client.post(f"{AUTH}/token", data={"username": "long", "password": truncated})
    assert response.status_code == 401


async def test_changed_argon2_parameters_rehash_at_login(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    from crudkit.contrib.auth import hashing

    await create_user(app, "alice")
    before = str((await stored_user(app, "alice"))["hashed_password"])
    hashing.configure(time_cost=2, memory_cost=2048, parallelism=1)
    try:
        await token_pair(client, "alice")
        after = str((await stored_user(app, "alice"))["hashed_password"])
        assert after != before
        assert "m=2048,t=2,p=1" in after
    finally:
        settings = app.state.settings
        hashing.configure(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
        )


def test_old_passlib_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import passlib

    from crudkit.contrib.auth.hashing import check_passlib
    from crudkit.exceptions import ImproperlyConfigured

    check_passlib()
    monkeypatch.setattr(passlib, "__version__", "1.7.4")
    with pytest.raises(ImproperlyConfigured, match="libpass"):
        check_passlib()


@pytest.mark.parametrize("username", ["nul\x00byte", "\x00", "x" * 5000, "ünïcødé", "' OR '1'='1"])
async def test_odd_usernames_are_401_not_500(client: httpx.AsyncClient, username: str) -> None:
    response = await client.post(f"{AUTH}/token", data={"username": username, "password": "x"})
    assert response.status_code == 401


async def test_docs_password_flow_points_at_the_token_endpoint(settings) -> None:  # type: ignore[no-untyped-def]
    import crudkit

    app = crudkit.create_app(settings.model_copy(update={"api_prefix": "/api/v2"}))
    flows = app.openapi()["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
    assert flows["password"]["tokenUrl"] == app.url_path_for("token") == "/api/v2/auth/token"
    await app.state.db.dispose()
