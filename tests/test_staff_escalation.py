"""Staff grant no one more than they hold, and touch no one who holds more than they do.

A staff member with `auth.change_group` cannot give their own group permissions
they lack; one with `auth.change_user` cannot take over (new password),
deactivate, regroup or delete a user holding a permission they lack, nor grant
one, nor make a superuser. Superusers and trusted callers (the commands,
`check=False` scripts) are not restricted.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote_plus

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert as insert_statement
from sqlalchemy import select

import crudkit
from crudkit.contrib.auth.hashing import verify_password
from crudkit.contrib.auth.models import (
    Group,
    Permission,
    User,
    group_permissions,
    user_groups,
    user_permissions,
)
from crudkit.contrib.auth.testing import create_user
from crudkit.contrib.auth.users import AuthUser, load_user
from crudkit.db import table_of
from crudkit.writes import Caller, WritePipeline
from tests.admin_support import PASSWORD, delete, history, insert, rows, staff, submit
from tests.cli_support import Cli

NEW_PASSWORD = "violet-otter-harbour"
GROUP_ADMIN = ("auth.view_group", "auth.change_group", "auth.delete_group", "auth.view_permission")
USER_ADMIN = ("auth.view_user", "auth.change_user", "auth.delete_user", "auth.add_user")
CHOOSER = (*USER_ADMIN, "auth.view_group", "auth.view_permission")
"""A user admin who may also read the groups and permissions they choose (each key of a
many-to-many set must be a row the writer may read)."""


async def _permission(app: FastAPI, codename: str) -> int:
    """The id of the permission `codename`, created if missing."""
    found = await rows(app, Permission, codename=codename)
    if found:
        return int(found[0]["id"])
    app_label, _, rest = codename.partition(".")
    action, _, model = rest.partition("_")
    return await insert(
        app,
        Permission,
        codename=codename,
        name=f"Can {action} {model}",
        app_label=app_label,
        model=model,
    )


async def _group(app: FastAPI, name: str, *codenames: str, members: tuple[int, ...] = ()) -> int:
    group_id = await insert(app, Group, name=name)
    permission_ids = [await _permission(app, codename) for codename in codenames]
    async with app.state.db.transaction() as conn:
        for permission_id in permission_ids:
            await conn.execute(
                insert_statement(group_permissions).values(
                    group_id=group_id, permission_id=permission_id
                )
            )
        for member in members:
            await conn.execute(
                insert_statement(user_groups).values(user_id=member, group_id=group_id)
            )
    return group_id


async def _group_codenames(app: FastAPI, group_id: int) -> list[str]:
    permission = table_of(Permission)
    stmt = (
        select(permission.c.codename)
        .join(group_permissions, group_permissions.c.permission_id == permission.c.id)
        .where(group_permissions.c.group_id == group_id)
        .order_by(permission.c.codename)
    )
    async with app.state.db.read() as conn:
        return [row[0] for row in await conn.execute(stmt)]


async def _links(app: FastAPI, user_id: int) -> tuple[list[int], list[int]]:
    """The user's group ids and direct permission ids."""
    async with app.state.db.read() as conn:
        groups = await conn.execute(
            select(user_groups.c.group_id).where(user_groups.c.user_id == user_id)
        )
        perms = await conn.execute(
            select(user_permissions.c.permission_id).where(user_permissions.c.user_id == user_id)
        )
        return sorted(row[0] for row in groups), sorted(row[0] for row in perms)


async def _user(app: FastAPI, user_id: int) -> dict[str, Any]:
    [row] = await rows(app, User, id=user_id)
    return row


async def _auth_user(app: FastAPI, user_id: int) -> AuthUser:
    async with app.state.db.reader() as reader:
        user = await load_user(reader, user_id=user_id)
    assert user is not None
    return user


async def _as(app: FastAPI, user_id: int) -> Caller:
    """A checked caller writing as the user (as a project's own admin view or endpoint)."""
    pipeline = WritePipeline.of(app)
    return Caller(pipeline.script_request(await _auth_user(app, user_id)), via="admin")


def _permissions_form(name: str, permission_ids: list[int]) -> dict[str, Any]:
    return {"name": name, "permissions": [str(pk) for pk in permission_ids]}


# Groups.


async def test_staff_cannot_give_their_own_group_permissions_they_lack(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    manager = await staff(app, client, "manager", *GROUP_ADMIN)
    managers = await _group(app, "Managers", "shop.view_product", members=(manager,))
    held = await _permission(app, "shop.view_product")
    lacking = [await _permission(app, codename) for codename in USER_ADMIN]
    assert (await client.get("/admin/user/list")).status_code == 403

    response = await submit(
        client, f"/admin/group/edit/{managers}", _permissions_form("Managers", [held, *lacking])
    )

    assert response.status_code == 400, response.text
    assert (
        "You cannot grant permissions you do not have: auth.add_user, auth.change_user, "
        "auth.delete_user, auth.view_user."
    ) in response.text
    assert await _group_codenames(app, managers) == ["shop.view_product"]
    assert await history(app) == []
    assert (await client.get("/admin/user/list")).status_code == 403  # nothing gained


async def test_staff_give_a_group_permissions_they_hold(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    manager = await staff(app, client, "manager", *GROUP_ADMIN, "shop.view_product")
    managers = await _group(app, "Managers", members=(manager,))
    editors = await _group(app, "Editors")
    held = [
        await _permission(app, codename) for codename in ("auth.view_group", "shop.view_product")
    ]

    for group_id, name in ((managers, "Managers"), (editors, "Editors")):
        response = await submit(
            client, f"/admin/group/edit/{group_id}", _permissions_form(name, held)
        )
        assert response.status_code == 302, response.text
        assert await _group_codenames(app, group_id) == ["auth.view_group", "shop.view_product"]

    # And take them away again.
    response = await submit(
        client, f"/admin/group/edit/{editors}", _permissions_form("Editors", [])
    )
    assert response.status_code == 302, response.text
    assert await _group_codenames(app, editors) == []


async def test_staff_keep_a_groups_permissions_they_lack(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(app, client, "manager", *GROUP_ADMIN, "shop.view_product")
    admins = await _group(app, "Admins", "auth.delete_user", "shop.view_product")
    lacking = await _permission(app, "auth.delete_user")

    # Removing what they hold, keeping what they lack: accepted.
    kept = await submit(
        client, f"/admin/group/edit/{admins}", _permissions_form("Admins", [lacking])
    )
    assert kept.status_code == 302, kept.text
    assert await _group_codenames(app, admins) == ["auth.delete_user"]

    # Removing what they lack (they could not give it back): refused.
    removed = await submit(client, f"/admin/group/edit/{admins}", _permissions_form("Admins", []))
    assert removed.status_code == 400, removed.text
    assert "You cannot remove permissions you do not have: auth.delete_user." in removed.text
    deleted = await delete(client, "group", admins)
    assert deleted.status_code == 200
    assert (
        "You cannot delete the group Admins: it grants permissions you do not have "
        "(auth.delete_user)." in unquote_plus(deleted.text)
    )
    assert await _group_codenames(app, admins) == ["auth.delete_user"]


async def test_staff_create_groups_only_with_permissions_they_hold(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(app, client, "manager", *GROUP_ADMIN, "auth.add_group")
    held = await _permission(app, "auth.view_group")
    lacking = await _permission(app, "auth.delete_user")

    refused = await submit(client, "/admin/group/create", _permissions_form("Admins", [lacking]))
    accepted = await submit(client, "/admin/group/create", _permissions_form("Viewers", [held]))

    assert refused.status_code == 400, refused.text
    assert "You cannot grant permissions you do not have: auth.delete_user." in refused.text
    assert accepted.status_code == 302, accepted.text
    assert [row["name"] for row in await rows(app, Group)] == ["Viewers"]


# Users.


async def test_staff_cannot_touch_a_user_holding_a_permission_they_lack(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(app, client, "manager", *USER_ADMIN)
    senior = await create_user(app, "senior", is_staff=True, permissions=["auth.view_user"])
    await _group(app, "Product admins", "shop.delete_product", members=(senior,))
    before = await _user(app, senior)
    message = "You cannot change senior: they hold permissions you do not have."

    takeover = await submit(
        client,
        f"/admin/user/edit/{senior}",
        {
            "username": "senior",
            "email": "senior@example.com",
            "password": NEW_PASSWORD,
            "is_active": "y",
        },
    )
    deactivated = await submit(
        client, f"/admin/user/edit/{senior}", {"username": "senior", "email": "senior@example.com"}
    )
    deleted = await delete(client, "user", senior)

    for response in (takeover, deactivated):
        assert response.status_code == 400, response.text
        assert message in response.text
    assert deleted.status_code == 200
    assert "You cannot delete senior: they hold permissions you do not have." in unquote_plus(
        deleted.text
    )
    assert await _user(app, senior) == before
    assert await history(app) == []
    # The old password still works, the new one does not.
    login = await client.post(
        "/api/v1/auth/token", data={"username": "senior", "password": NEW_PASSWORD}
    )
    assert login.status_code == 401


async def test_staff_cannot_regroup_a_user_holding_a_permission_they_lack(app: FastAPI) -> None:
    manager = await create_user(app, "manager", is_staff=True, permissions=CHOOSER)
    senior = await create_user(app, "senior", is_staff=True, permissions=["shop.delete_product"])
    viewers = await _group(app, "Viewers", "auth.view_user")
    pipeline = WritePipeline.of(app)

    changes: list[dict[str, Any]] = [
        {"groups": [viewers]},
        {"user_permissions": []},
        {"email": "s@new.example"},
    ]
    for values in changes:
        with pytest.raises(crudkit.PermissionDenied) as refused:
            await pipeline.update(User, senior, values, await _as(app, manager))
        assert refused.value.detail == (
            "You cannot change senior: they hold permissions you do not have."
        )
    assert await _links(app, senior) == ([], [await _permission(app, "shop.delete_product")])

    # Deactivated, they still hold what reactivating them would give back.
    dormant = await create_user(
        app, "dormant", is_active=False, permissions=["shop.delete_product"]
    )
    with pytest.raises(crudkit.PermissionDenied):
        await pipeline.update(User, dormant, {"is_active": True}, await _as(app, manager))
    root = await create_user(app, "root", is_superuser=True)
    for attempt in (
        pipeline.update(User, root, {"is_active": False}, await _as(app, manager)),
        pipeline.delete(User, root, await _as(app, manager)),
    ):
        with pytest.raises(crudkit.PermissionDenied) as refused:
            await attempt
        assert "only a superuser may" in str(refused.value.detail)
    assert (await _user(app, dormant))["is_active"] is False
    assert (await _user(app, root))["is_active"] is True


async def test_staff_manage_users_whose_permissions_they_hold(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(app, client, "manager", *USER_ADMIN, "shop.view_product")
    junior = await create_user(app, "junior", is_staff=True, permissions=["auth.view_user"])
    await _group(app, "Viewers", "shop.view_product", members=(junior,))

    changed = await submit(
        client,
        f"/admin/user/edit/{junior}",
        {
            "username": "junior",
            "email": "junior@example.com",
            "password": NEW_PASSWORD,
            "is_active": "y",
        },
    )
    assert changed.status_code == 302, changed.text
    assert verify_password(NEW_PASSWORD, (await _user(app, junior))["hashed_password"])[0]

    deactivated = await submit(
        client, f"/admin/user/edit/{junior}", {"username": "junior", "email": "junior@example.com"}
    )
    assert deactivated.status_code == 302, deactivated.text
    assert (await _user(app, junior))["is_active"] is False

    deleted = await delete(client, "user", junior)
    assert deleted.status_code == 200
    assert "error" not in deleted.text
    assert await rows(app, User, username="junior") == []


async def test_staff_grant_users_only_what_they_hold(app: FastAPI) -> None:
    manager = await create_user(app, "manager", is_staff=True, permissions=CHOOSER)
    junior = await create_user(app, "junior")
    admins = await _group(app, "Admins", "auth.view_user", "auth.delete_group")
    viewers = await _group(app, "Viewers", "auth.view_user")
    lacking = await _permission(app, "shop.delete_product")
    held = await _permission(app, "auth.view_user")
    pipeline = WritePipeline.of(app)

    refusals: dict[str, tuple[dict[str, Any], str]] = {
        "groups": (
            {"groups": [viewers, admins]},
            "You cannot add a user to Admins: it grants permissions you do not have "
            "(auth.delete_group).",
        ),
        "user_permissions": (
            {"user_permissions": [held, lacking]},
            "You cannot grant permissions you do not have: shop.delete_product.",
        ),
        "is_superuser": ({"is_superuser": True}, "Only a superuser may make a user a superuser."),
    }
    for field, (values, message) in refusals.items():
        with pytest.raises(crudkit.ValidationError) as refused:
            await pipeline.update(User, junior, dict(values), await _as(app, manager))
        assert refused.value.messages == {field: [message]}
        with pytest.raises(crudkit.ValidationError) as refused:
            await pipeline.create(
                User, {"username": f"new-{field}", **values}, await _as(app, manager)
            )
        assert refused.value.messages == {field: [message]}
    assert await _links(app, junior) == ([], [])
    assert (await _user(app, junior))["is_superuser"] is False
    assert [row["username"] for row in await rows(app, User)] == ["manager", "junior"]
    assert await history(app) == []

    # What they hold they may give, to an existing user or a new one.
    values = {"groups": [viewers], "user_permissions": [held]}
    await pipeline.update(User, junior, dict(values), await _as(app, manager))
    assert await _links(app, junior) == ([viewers], [held])
    created = await pipeline.create(User, {"username": "ann", **values}, await _as(app, manager))
    assert await _links(app, created.id) == ([viewers], [held])


async def test_the_python_write_api_refuses_making_a_superuser(app: FastAPI) -> None:
    manager = await _auth_user(
        app, await create_user(app, "manager", is_staff=True, permissions=USER_ADMIN)
    )
    junior = await create_user(app, "junior")

    with pytest.raises(crudkit.ValidationError) as created:
        await crudkit.create(
            User, {"username": "mallory", "is_superuser": True}, user=manager, app=app
        )
    with pytest.raises(crudkit.ValidationError) as updated:
        await crudkit.update(User, junior, {"is_superuser": True}, user=manager, app=app)

    for refused in (created, updated):
        assert refused.value.messages == {
            "is_superuser": ["Only a superuser may make a user a superuser."]
        }
    assert [row["username"] for row in await rows(app, User, is_superuser=True)] == []


async def test_staff_edit_their_own_account_but_gain_nothing(app: FastAPI) -> None:
    manager = await create_user(app, "manager", is_staff=True, permissions=CHOOSER)
    admins = await _group(app, "Admins", "auth.delete_group")
    pipeline = WritePipeline.of(app)

    await pipeline.update(User, manager, {"email": "m@new.example"}, await _as(app, manager))
    with pytest.raises(crudkit.ValidationError):
        await pipeline.update(User, manager, {"groups": [admins]}, await _as(app, manager))
    with pytest.raises(crudkit.ValidationError):
        await pipeline.update(User, manager, {"is_superuser": True}, await _as(app, manager))

    assert (await _user(app, manager))["email"] == "m@new.example"
    assert not (await _auth_user(app, manager)).has_perm("auth.delete_group")


# Permissions.


async def test_staff_cannot_rename_a_permission_into_another(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(
        app,
        client,
        "manager",
        "auth.view_permission",
        "auth.change_permission",
        "auth.delete_permission",
    )
    own = await _permission(app, "auth.view_permission")
    form = {
        "codename": "auth.delete_user",
        "name": "Can view",
        "app_label": "auth",
        "model": "user",
    }

    renamed = await submit(client, f"/admin/permission/edit/{own}", form)
    deleted = await delete(client, "permission", own)

    assert renamed.status_code == 400, renamed.text
    assert "Only a superuser may change what a permission grants (its codename)." in renamed.text
    assert "Only a superuser may delete a permission" in unquote_plus(deleted.text)
    assert [row["codename"] for row in await rows(app, Permission, id=own)] == [
        "auth.view_permission"
    ]


# Superusers and trusted callers.


async def test_superusers_do_all_of_it(app: FastAPI, client: httpx.AsyncClient) -> None:
    await staff(app, client, "root", superuser=True)
    senior = await create_user(app, "senior", is_staff=True, permissions=["shop.delete_product"])
    admins = await _group(app, "Admins", "auth.delete_user", members=(senior,))
    lacking = [await _permission(app, codename) for codename in USER_ADMIN]

    grouped = await submit(
        client, f"/admin/group/edit/{admins}", _permissions_form("Admins", lacking)
    )
    changed = await submit(
        client,
        f"/admin/user/edit/{senior}",
        {
            "username": "senior",
            "password": NEW_PASSWORD,
            "is_staff": "y",
            "is_superuser": "y",
            "groups": str(admins),
            "user_permissions": [str(pk) for pk in lacking],
        },
    )

    assert grouped.status_code == changed.status_code == 302, (grouped.text, changed.text)
    user = await _user(app, senior)
    assert (user["is_active"], user["is_superuser"]) == (False, True)
    assert verify_password(NEW_PASSWORD, user["hashed_password"])[0]
    assert await _links(app, senior) == ([admins], sorted(lacking))
    assert (await delete(client, "group", admins)).status_code == 200
    assert (await delete(client, "user", senior)).status_code == 200
    assert await rows(app, User, username="senior") == []
    assert await rows(app, Group) == []


async def test_trusted_callers_are_not_restricted(app: FastAPI) -> None:
    root = await create_user(app, "root", is_superuser=True)
    admins = await _group(app, "Admins", "auth.delete_user")

    # A script writing with check=False, as the commands do.
    await crudkit.update(User, root, {"is_active": False}, app=app, check=False)
    await WritePipeline.of(app).update(
        User,
        root,
        {"groups": [admins], "is_active": True},
        Caller(WritePipeline.of(app).script_request(), via="cli", check=False),
    )
    assert await _links(app, root) == ([admins], [])
    created = await crudkit.create(
        User, {"username": "root2", "is_superuser": True}, app=app, check=False
    )
    assert created.is_superuser is True


async def test_changepassword_command_is_unaffected(app: FastAPI, database_url: str) -> None:
    root = await create_user(app, "root", is_superuser=True)
    senior = await create_user(app, "senior", is_staff=True, permissions=["shop.delete_product"])
    cli = Cli(database_url)

    for username in ("root", "senior"):
        result = await asyncio.to_thread(
            cli, "changepassword", username, input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n"
        )
        assert result.exit_code == 0, result.output
    for user_id in (root, senior):
        hashed = (await _user(app, user_id))["hashed_password"]
        assert verify_password(NEW_PASSWORD, hashed)[0]
        assert not verify_password(PASSWORD, hashed)[0]


async def test_a_bulk_delete_refused_for_one_user_deletes_none(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(app, client, "manager", *USER_ADMIN)
    first = await create_user(app, "first")
    senior = await create_user(app, "senior", is_staff=True, permissions=["shop.delete_product"])
    last = await create_user(app, "last")

    refused = await delete(client, "user", first, senior, last)

    assert refused.status_code == 200
    assert "You cannot delete senior" in unquote_plus(refused.text)
    remaining = {row["id"] for row in await rows(app, User)}
    assert {first, senior, last} <= remaining
    assert await history(app) == []

    accepted = await delete(client, "user", first, last)

    assert accepted.status_code == 200
    assert "error" not in accepted.text
    assert {row["id"] for row in await rows(app, User)} & {first, senior, last} == {senior}
    assert len(await history(app, action="delete")) == 2
