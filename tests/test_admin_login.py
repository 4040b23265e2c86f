"""Admin login, session and logout: only active staff get in, and logging out is final."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

import crudkit
from crudkit.contrib.auth.models import User
from crudkit.contrib.auth.testing import create_user
from crudkit.contrib.auth.testing import login as api_login
from crudkit.db import table_of
from crudkit.testing import client_for
from tests.admin_support import ORIGIN, PASSWORD, login, page_token, rows


@pytest.mark.parametrize(
    ("is_staff", "is_superuser"),
    [(True, False), (False, True), (True, True)],
    ids=["staff", "superuser", "staff-superuser"],
)
async def test_staff_and_superusers_log_in(
    app: FastAPI, client: httpx.AsyncClient, is_staff: bool, is_superuser: bool
) -> None:
    user_id = await create_user(app, "ann", is_staff=is_staff, is_superuser=is_superuser)

    response = await login(client, "ann")

    assert response.status_code == 302
    assert response.headers["location"] == "http://testserver/admin/"
    index = await client.get("/admin/")
    assert index.status_code == 200
    assert "Logout" in index.text
    [user] = await rows(app, User, id=user_id)
    assert user["last_login"] is not None


@pytest.mark.parametrize(
    ("username", "options", "password"),
    [
        ("customer", {}, PASSWORD),  # active, but not staff
        ("gone", {"is_staff": True, "is_active": False}, PASSWORD),
        ("gone_root", {"is_superuser": True, "is_active": False}, PASSWORD),
        ("typo", {"is_staff": True}, "wrong-password-123"),
        ("nobody", None, PASSWORD),  # no such user
        ("nul\x00byte", None, PASSWORD),  # cannot even be looked up on PostgreSQL
    ],
    ids=["not-staff", "inactive-staff", "inactive-superuser", "wrong-password", "unknown", "nul"],
)
async def test_login_refused_shows_the_form_again(
    app: FastAPI,
    client: httpx.AsyncClient,
    username: str,
    options: dict[str, bool] | None,
    password: str,
) -> None:
    if options is not None:
        await create_user(app, username, **options)

    response = await login(client, username, password)

    assert response.status_code == 400
    assert "correct username and password for a staff account" in response.text
    assert 'name="password"' in response.text
    assert (await client.get("/admin/")).status_code == 302  # still logged out


async def test_pages_need_a_login(client: httpx.AsyncClient) -> None:
    for path in ("/admin/", "/admin/product/list", "/admin/user/details/1"):
        response = await client.get(path)
        assert response.status_code == 302, path
        assert response.headers["location"] == "http://testserver/admin/login"


async def test_failed_logins_are_throttled(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create_user(app, "ann", is_staff=True)
    for _ in range(app.state.settings.login_attempts):
        assert (await login(client, "ann", "wrong-password-123")).status_code == 400

    response = await login(client, "ann")  # the right password, too late

    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    assert "Too many failed attempts" in response.text


async def test_session_cookie_flags(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create_user(app, "ann", is_staff=True)

    response = await login(client, "ann")

    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("crudkit_admin=")
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "path=/admin" in cookie
    assert "secure" not in cookie
    assert (await client.get("/admin/")).headers["x-frame-options"] == "DENY"


async def test_session_cookie_is_secure_with_https_only(
    app: FastAPI, settings: crudkit.Settings
) -> None:
    # A second app on the `app` fixture's database, which cleans it up afterwards.
    secure_app = crudkit.create_app(settings.model_copy(update={"https_only": True}))
    try:
        await create_user(secure_app, "ann", is_staff=True)
        async with client_for(secure_app, base_url="https://testserver") as client:
            token = await page_token(client)
            response = await client.post(
                "/admin/login",
                data={"username": "ann", "password": PASSWORD, "csrf_token": token},
                headers={"Origin": "https://testserver"},
            )
        assert response.status_code == 302
        assert "secure" in response.headers["set-cookie"].lower()
    finally:
        await secure_app.state.db.dispose()


async def test_logout_ends_the_session_on_the_server(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await create_user(app, "ann", is_staff=True)
    await login(client, "ann")
    stolen = client.cookies["crudkit_admin"]
    token = await page_token(client, "/admin/")

    response = await client.post(
        "/admin/logout", data={"csrf_token": token}, headers={"Origin": ORIGIN}
    )

    assert response.status_code == 302
    assert response.headers["location"] == "http://testserver/admin/login"
    assert (await client.get("/admin/")).status_code == 302
    # The cookie from before the logout, replayed, is dead too.
    client.cookies.set("crudkit_admin", stolen, path="/admin")
    assert (await client.get("/admin/")).status_code == 302


async def test_logout_link_asks_before_logging_out(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create_user(app, "ann", is_staff=True)
    await login(client, "ann")

    page = await client.get("/admin/logout")

    assert page.status_code == 200
    assert 'action="http://testserver/admin/logout" method="POST"' in page.text
    assert (await client.get("/admin/")).status_code == 200  # still logged in


async def test_api_logout_and_deactivation_end_admin_sessions(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user_id = await create_user(app, "ann", is_staff=True)
    await login(client, "ann")
    headers = await api_login(client, "ann")

    assert (await client.post("/api/v1/auth/logout", headers=headers)).status_code == 204
    assert (await client.get("/admin/")).status_code == 302

    await login(client, "ann")
    users = table_of(User)
    async with app.state.db.transaction() as conn:
        await conn.execute(update(users).where(users.c.id == user_id).values(is_staff=False))
    assert (await client.get("/admin/")).status_code == 302
