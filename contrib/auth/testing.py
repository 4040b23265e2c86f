"""Helpers for testing projects that use the auth app: users, tokens, the permission matrix.

    from crudkit.contrib.auth.testing import create_user, login
    from crudkit.testing import client_for

    async with client_for(app) as client:
        await create_user(app, "alice", "s3cret-pass!")
        headers = await login(client, "alice", "s3cret-pass!")
        response = await client.get("/api/v1/products", headers=headers)

They live with the auth app because they write its tables and speak its token
endpoint; `crudkit.testing` keeps what any project can use.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import delete, func, insert, select

from crudkit.contrib.auth.hashing import hash_password
from crudkit.contrib.auth.models import Permission, User, user_permissions
from crudkit.db import table_of
from crudkit.testing import database


@cache
def _hashed(password: str) -> str:
    return hash_password(password)


async def create_user(
    app: FastAPI,
    username: str,
    password: str = "correct-horse-battery",
    *,
    email: str = "",
    is_staff: bool = False,
    is_superuser: bool = False,
    is_active: bool = True,
    permissions: Iterable[str] = (),
) -> int:
    """Insert a user (with the given permission codenames, created if missing); its id."""
    users = table_of(User)
    perms = table_of(Permission)
    async with database(app).transaction() as conn:
        result = await conn.execute(
            insert(users)
            .values(
                username=username,
                email=email or f"{username}@example.com",
                hashed_password=_hashed(password),
                is_staff=is_staff,
                is_superuser=is_superuser,
                is_active=is_active,
            )
            .returning(users.c.id)
        )
        user_id = int(result.scalar_one())
        for codename in permissions:
            perm_id = await _permission_id(conn, perms, codename)
            await conn.execute(
                insert(user_permissions).values(user_id=user_id, permission_id=perm_id)
            )
    return user_id


async def _permission_id(conn: Any, perms: Any, codename: str) -> int:
    found = (await conn.execute(select(perms.c.id).where(perms.c.codename == codename))).first()
    if found is not None:
        return int(found[0])
    app_label, _, rest = codename.partition(".")
    action, _, model = rest.partition("_")
    result = await conn.execute(
        insert(perms)
        .values(codename=codename, name=f"Can {action} {model}", app_label=app_label, model=model)
        .returning(perms.c.id)
    )
    return int(result.scalar_one())


async def login(
    client: httpx.AsyncClient,
    username: str,
    password: str = "correct-horse-battery",
    *,
    api_prefix: str = "/api/v1",
) -> dict[str, str]:
    """Authorization headers for `username`, through the token endpoint."""
    response = await client.post(
        f"{api_prefix}/auth/token", data={"username": username, "password": password}
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def auth_headers(app: FastAPI, user_id: int) -> dict[str, str]:
    """Authorization headers for a user without a login round trip (no password hashing)."""
    users = table_of(User)
    async with database(app).read() as conn:
        version = (
            await conn.execute(select(users.c.token_version).where(users.c.id == user_id))
        ).scalar_one()
    token = app.state.auth.tokens.issue(user_id, "access", version).token
    return {"Authorization": f"Bearer {token}"}


ACTIONS = ("list", "retrieve", "create", "update", "delete")


@dataclass
class PermissionMatrix:
    """Status codes per caller and action; `list` shows `200+` when the owner's row is
    listed and `200-` when it is filtered out."""

    resource: str
    cells: dict[str, dict[str, str]] = field(default_factory=dict)

    def __str__(self) -> str:
        width = max(len(caller) for caller in self.cells)
        lines = [f"{self.resource:<{width}}  " + "  ".join(f"{a:>8}" for a in ACTIONS)]
        for caller, row in self.cells.items():
            lines.append(f"{caller:<{width}}  " + "  ".join(f"{row[a]:>8}" for a in ACTIONS))
        return "\n".join(lines)

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {caller: dict(row) for caller, row in self.cells.items()}


async def permission_matrix(
    app: FastAPI,
    client: httpx.AsyncClient,
    model: type[Any],
    *,
    row: dict[str, Any],
    create: dict[str, Any],
    update: dict[str, Any],
    api_prefix: str | None = None,
) -> PermissionMatrix:
    """Run list/retrieve/create/update/delete as every kind of caller against `model`.

    Callers: anonymous, the owner of a row, another user, a user holding each model
    permission (view/add/change/delete), staff without permissions, and a superuser.
    `row` holds the column values of the row acted on (its owner is set here), `create`
    and `update` the request bodies. Every refused write is checked to have changed
    nothing, so a test asserting the matrix also proves no partial writes.
    """
    resource = app.state.apps.registry[model]
    prefix = api_prefix or app.state.settings.api_prefix
    url = f"{prefix}{resource.path_segment}"
    table = table_of(model)
    pk = resource.pk_info.key
    tag = uuid.uuid4().hex[:6]

    callers: dict[str, dict[str, str]] = {"anonymous": {}}
    owner_id = await create_user(app, f"owner_{tag}")
    callers["owner"] = await auth_headers(app, owner_id)
    callers["other"] = await auth_headers(app, await create_user(app, f"other_{tag}"))
    for perm in ("view", "add", "change", "delete"):
        codename = resource.get_permission_codename(perm)
        user_id = await create_user(app, f"{perm}_{tag}", permissions=[codename])
        callers[f"{perm} perm"] = await auth_headers(app, user_id)
    callers["staff"] = await auth_headers(
        app, await create_user(app, f"staff_{tag}", is_staff=True)
    )
    callers["superuser"] = await auth_headers(
        app, await create_user(app, f"super_{tag}", is_staff=True, is_superuser=True)
    )

    async def insert_row() -> Any:
        values = dict(row)
        if resource.owner_field:
            values[resource.owner_field] = owner_id
        async with database(app).transaction() as conn:
            result = await conn.execute(insert(table).values(values).returning(resource.pk))
            return result.scalar_one()

    async def snapshot(row_id: Any) -> Any:
        async with database(app).read() as conn:
            found = await conn.execute(select(table).where(resource.pk == row_id))
            return found.first()

    async def count() -> int:
        async with database(app).read() as conn:
            result = await conn.execute(select(func.count()).select_from(table))
            return int(result.scalar_one())

    matrix = PermissionMatrix(resource=resource.name_plural)
    for caller, headers in callers.items():
        cells: dict[str, str] = {}
        target = await insert_row()
        listed = await client.get(url, headers=headers, params={"limit": 1000})
        if listed.status_code == 200:
            ids = [item[pk] for item in listed.json()["items"]]
            cells["list"] = "200+" if target in ids else "200-"
        else:
            cells["list"] = str(listed.status_code)
        cells["retrieve"] = str((await client.get(f"{url}/{target}", headers=headers)).status_code)

        before = await count()
        created = await client.post(url, json=create, headers=headers)
        cells["create"] = str(created.status_code)
        if created.status_code >= 400:
            assert await count() == before, f"{caller}: a refused create wrote a row"

        before_row = await snapshot(target)
        updated = await client.patch(f"{url}/{target}", json=update, headers=headers)
        cells["update"] = str(updated.status_code)
        if updated.status_code >= 400:
            assert await snapshot(target) == before_row, f"{caller}: a refused update wrote"

        deleted = await client.delete(f"{url}/{target}", headers=headers)
        cells["delete"] = str(deleted.status_code)
        if deleted.status_code >= 400:
            assert await snapshot(target) is not None, f"{caller}: a refused delete deleted"
        matrix.cells[caller] = cells
        # Leave the table as it was, so unique values can be used again by the next caller.
        leftovers = [target]
        if created.status_code == 201:
            leftovers.append(created.json()[pk])
        async with database(app).transaction() as conn:
            await conn.execute(delete(table).where(resource.pk.in_(leftovers)))
    return matrix
