"""Users in the admin: passwords hashed on save, hashes never shown, privileges for superusers."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from crudkit.contrib.auth.hashing import verify_password
from crudkit.contrib.auth.models import Group, User
from crudkit.contrib.auth.testing import create_user
from crudkit.contrib.auth.testing import login as api_login
from tests.admin_support import delete, rows, staff, submit

NEW_PASSWORD = "violet-otter-harbour"


async def _user(app: FastAPI, username: str) -> dict[str, object]:
    [row] = await rows(app, User, username=username)
    return row


async def test_created_user_gets_a_hashed_password_never_shown(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(app, client, "root", superuser=True)

    response = await submit(
        client,
        "/admin/user/create",
        {"username": "ann", "email": "ann@example.com", "password": NEW_PASSWORD, "is_active": "y"},
    )

    assert response.status_code == 302, response.text
    ann = await _user(app, "ann")
    hashed = str(ann["hashed_password"])
    assert hashed.startswith("$argon2id$")
    assert verify_password(NEW_PASSWORD, hashed)[0]
    assert ann["is_staff"] is False
    pages = [
        "/admin/user/list",
        f"/admin/user/details/{ann['id']}",
        f"/admin/user/edit/{ann['id']}",
        "/admin/user/export/csv",
        "/admin/user/export/json",
    ]
    for path in pages:
        page = await client.get(path)
        assert page.status_code == 200, path
        assert hashed not in page.text, path
        assert "$argon2" not in page.text, path
        assert "hashed_password" not in page.text, path
        assert NEW_PASSWORD not in page.text, path
    # The new user can log in to the API with it.
    assert await api_login(client, "ann", NEW_PASSWORD)


async def test_weak_password_is_a_form_error(app: FastAPI, client: httpx.AsyncClient) -> None:
    await staff(app, client, "root", superuser=True)

    for password, message in [
        ("", "A password is required."),
        ("12345678901", "entirely numeric"),
        ("annabelle1", "too similar to the username"),
    ]:
        response = await submit(
            client, "/admin/user/create", {"username": "annabelle", "password": password}
        )
        assert response.status_code == 400, password
        assert message in response.text, password
    assert await rows(app, User, username="annabelle") == []


async def test_blank_password_on_edit_keeps_the_current_one(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(app, client, "root", superuser=True)
    ann_id = await create_user(app, "ann", email="ann@example.com")
    before = await _user(app, "ann")

    response = await submit(
        client,
        f"/admin/user/edit/{ann_id}",
        {"username": "ann", "email": "ann@new.example", "password": "", "is_active": "y"},
    )

    assert response.status_code == 302, response.text
    after = await _user(app, "ann")
    assert after["email"] == "ann@new.example"
    assert after["hashed_password"] == before["hashed_password"]
    assert after["token_version"] == before["token_version"]


async def test_password_change_ends_the_users_sessions_but_not_mine(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    root = await staff(app, client, "root", superuser=True)
    ann_id = await create_user(app, "ann")
    ann_headers = await api_login(client, "ann")

    for user_id, username in ((ann_id, "ann"), (root, "root")):
        response = await submit(
            client,
            f"/admin/user/edit/{user_id}",
            {
                "username": username,
                "password": NEW_PASSWORD,
                "is_active": "y",
                "is_staff": "y",
                "is_superuser": "y" if username == "root" else "",
            },
        )
        assert response.status_code == 302, response.text

    assert (await client.get("/api/v1/auth/me", headers=ann_headers)).status_code == 401
    assert (await client.get("/admin/")).status_code == 200  # root changed their own: still in


async def test_only_superusers_grant_privileges(app: FastAPI, client: httpx.AsyncClient) -> None:
    await staff(app, client, "manager", "auth.view_user", "auth.add_user", "auth.change_user")
    ann_id = await create_user(app, "ann")

    form = await client.get("/admin/user/create")
    assert form.status_code == 200
    for field in ("is_staff", "is_superuser", "groups", "user_permissions"):
        assert f'name="{field}"' not in form.text

    created = await submit(
        client,
        "/admin/user/create",
        {"username": "mallory", "password": NEW_PASSWORD, "is_superuser": "y", "is_staff": "y"},
    )
    edited = await submit(
        client,
        f"/admin/user/edit/{ann_id}",
        {"username": "ann", "is_active": "y", "is_superuser": "y", "is_staff": "y"},
    )

    assert created.status_code == edited.status_code == 302
    for username in ("mallory", "ann"):
        user = await _user(app, username)
        assert (user["is_staff"], user["is_superuser"]) == (False, False), username


async def test_staff_cannot_change_or_delete_a_superuser(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    root_id = await create_user(app, "root", is_superuser=True)
    before = await _user(app, "root")
    await staff(app, client, "manager", "auth.view_user", "auth.change_user", "auth.delete_user")

    assert (await client.get(f"/admin/user/edit/{root_id}")).status_code == 403
    edited = await submit(
        client,
        f"/admin/user/edit/{root_id}",
        {"username": "root", "password": NEW_PASSWORD, "is_active": "y"},
    )
    assert edited.status_code == 403
    assert (await delete(client, "user", root_id)).status_code == 403
    assert await _user(app, "root") == before


async def test_deleting_a_user_with_groups(app: FastAPI, client: httpx.AsyncClient) -> None:
    await staff(app, client, "root", superuser=True)
    group = await submit(client, "/admin/group/create", {"name": "Editors"})
    assert group.status_code == 302, group.text
    [editors] = [row["id"] for row in await rows(app, Group)]
    created = await submit(
        client,
        "/admin/user/create",
        {"username": "ann", "password": NEW_PASSWORD, "groups": str(editors), "is_active": "y"},
    )
    assert created.status_code == 302, created.text
    ann = await _user(app, "ann")

    response = await delete(client, "user", ann["id"])

    assert response.status_code == 200
    assert await rows(app, User, username="ann") == []
    assert [row["name"] for row in await rows(app, Group)] == ["Editors"]
