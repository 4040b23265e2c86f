"""Helpers for driving the admin over HTTP the way a browser does.

A browser sends `Origin` with every POST and DELETE and carries the CSRF
token from the page it came from; these helpers do the same, so a test only
leaves them out on purpose.
"""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from crudkit.contrib.auth.testing import create_user
from crudkit.db import table_of

ORIGIN = "http://testserver"
PASSWORD = "correct-horse-battery"

_TOKEN_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
_TOKEN_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def token_in(html: str) -> str:
    """The CSRF token a page carries (form field or meta tag)."""
    match = _TOKEN_FIELD.search(html) or _TOKEN_META.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def page_token(client: httpx.AsyncClient, path: str = "/admin/login") -> str:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return token_in(response.text)


async def login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> httpx.Response:
    """Submit the admin login form as a browser would."""
    token = await page_token(client)
    return await client.post(
        "/admin/login",
        data={"username": username, "password": password, "csrf_token": token},
        headers={"Origin": ORIGIN},
    )


async def staff(
    app: FastAPI,
    client: httpx.AsyncClient,
    username: str,
    *permissions: str,
    superuser: bool = False,
) -> int:
    """Create a staff user with `permissions`, log them in to the admin; their id."""
    user_id = await create_user(
        app, username, is_staff=True, is_superuser=superuser, permissions=permissions
    )
    response = await login(client, username)
    assert response.status_code == 302, response.text
    return user_id


async def submit(
    client: httpx.AsyncClient,
    path: str,
    data: dict[str, Any],
    *,
    form_page: str | None = None,
) -> httpx.Response:
    """POST a form to `path` with the token of `form_page` (default: `path` itself)."""
    token = await page_token(client, form_page or "/admin/")
    return await client.post(path, data={**data, "csrf_token": token}, headers={"Origin": ORIGIN})


async def delete(client: httpx.AsyncClient, identity: str, *pks: object) -> httpx.Response:
    """The delete dialog's request: DELETE with the token in a header."""
    token = await page_token(client, "/admin/")
    return await client.delete(
        f"/admin/{identity}/delete",
        params={"pks": ",".join(map(str, pks))},
        headers={"Origin": ORIGIN, "X-CSRF-Token": token},
    )


async def rows(app: FastAPI, model: type[Any], /, **where: Any) -> list[dict[str, Any]]:
    table = table_of(model)
    stmt = select(table).order_by(*table.primary_key.columns)
    for key, value in where.items():
        stmt = stmt.where(table.c[key] == value)
    async with app.state.db.read() as conn:
        return [dict(row._mapping) for row in await conn.execute(stmt)]


async def count(app: FastAPI, model: type[Any]) -> int:
    async with app.state.db.read() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(table_of(model)))).scalar_one()
        )


async def insert(app: FastAPI, model: type[Any], /, **values: Any) -> int:
    """Insert a row directly; its id."""
    table = table_of(model)
    async with app.state.db.transaction() as conn:
        result = await conn.execute(table.insert().values(**values).returning(table.c.id))
        return int(result.scalar_one())


_VERSION_FIELD = re.compile(r'name="crudkit_version" type="hidden" value="([^"]*)"')
_VERSION_FIELD_ALT = re.compile(r'name="crudkit_version"[^>]*value="([^"]*)"')


async def form_version(client: httpx.AsyncClient, path: str) -> str:
    """The row version an edit form carries, as a browser would submit it."""
    response = await client.get(path)
    assert response.status_code == 200, response.text
    match = _VERSION_FIELD.search(response.text) or _VERSION_FIELD_ALT.search(response.text)
    assert match, "no version on the edit form"
    return html.unescape(match.group(1))


async def history(app: FastAPI, **where: Any) -> list[dict[str, Any]]:
    """The history entries (`crudkit_log_entry`), oldest first."""
    from crudkit.contrib.admin.models import LogEntry

    return await rows(app, LogEntry, **where)
