"""Helpers for testing crudkit projects: an HTTP client, users, tokens.

async with crudkit.testing.client_for(app) as client:
    await create_user(app, "alice", "s3cret-pass!")
    headers = await login(client, "alice", "s3cret-pass!")
    response = await client.get("/api/v1/products", headers=headers)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import insert, select

from crudkit.db import Database, Model


@asynccontextmanager
async def client_for(
    app: FastAPI, base_url: str = "http://testserver"
) -> AsyncIterator[httpx.AsyncClient]:
    """An `httpx.AsyncClient` calling `app` in-process, inside its lifespan."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


def database(app: FastAPI) -> Database:
    db: Database = app.state.db
    return db


async def create_tables(app: FastAPI) -> None:
    """Create every model's table (tests; projects use `manage.py migrate`)."""
    async with database(app).engine.begin() as conn:
        await conn.run_sync(Model.metadata.create_all)


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
    from crudkit.contrib.auth.hashing import hash_password
    from crudkit.contrib.auth.models import Permission, User, user_permissions

    users = User.__table__
    perms = Permission.__table__
    async with database(app).transaction() as conn:
        result = await conn.execute(
            insert(users)
            .values(
                username=username,
                email=email or f"{username}@example.com",
                hashed_password=hash_password(password),
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
