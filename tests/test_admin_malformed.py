"""The admin never answers 500 to malformed input.

Every route of the mounted admin app is found by walking its router, so an
endpoint added later is driven too. Each one is called, as a logged-in
superuser with a valid CSRF token and this site's `Origin`, for every model,
with bad path values, bad query parameters and bad bodies: the answer is
never a 500, and a request the admin refuses changes nothing in the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from starlette.routing import Route

from crudkit.db import Model
from crudkit.testing import client_for
from shop.models import Category, Order, Product
from tests.admin_support import ORIGIN, insert, login, page_token, staff

HUGE = str(2**70)
NUL = "1\x00"
BAD_PKS = ["abc", "", "-1", HUGE, NUL, "1,2", "%", "../.."]
"""What a path's `{pk}` is given, besides a row that exists."""

BAD_QUERIES: list[dict[str, str]] = [
    {"page": "-1"},
    {"page": "x"},
    {"page": "0"},
    {"page": str(10**30)},
    {"page": "1e3"},
    {"pageSize": "-1"},
    {"pageSize": "0"},
    {"pageSize": "x"},
    {"pageSize": str(10**30)},
    {"sortBy": "nope"},
    {"sortBy": "name; DROP TABLE x", "sort": "desc"},
    {"sortBy": "\x00", "sort": "sideways"},
    {"sortBy": "owner.username"},
    {"sort": "x" * 500},
    {"search": "a\x00b"},
    {"search": "%_\\"},
    {"search": "x" * 20_000},
    {"pks": ""},
    {"pks": "abc"},
    {"pks": ",,,"},
    {"pks": "1,abc"},
    {"pks": HUGE},
    {"pks": "\x00"},
    {"pks": "-1"},
    {"name": "nope", "term": "x"},
    {"name": "", "term": ""},
    {"name": "\x00", "term": "\x00"},
    {"name": "category_id", "term": "\x00"},
    {"name": "category_id", "term": HUGE},
    {"name": "category_id", "term": "x" * 5000},
    {"sortBy": "name", "sort": "sideways"},
]
"""Query strings every route is called with (the view's filters are added per view)."""

FILTER_VALUES = ["x", "\x00", HUGE, "1e999"]
FIELD_VALUES = ["a\x00b", HUGE, "-1e999", "nan", "x" * 70_000, "__None"]
"""What every field of a form is set to, one value at a time."""

EXPORT_TYPES = ["csv", "json", "xml", "CSV", "..", "\x00"]
COLUMN_NAMES = ["name", "nope", "id", "\x00"]
IDENTITIES_BAD = ["nope", "\x00"]

_FIELD_NAME = re.compile(r'name="([^"]+)"')


@dataclass
class Call:
    method: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] | None = None
    content: bytes | None = None
    content_type: str | None = None

    def describe(self) -> str:
        body = self.data if self.data is not None else self.content
        shown = repr(body)[:120] if body is not None else ""
        return f"{self.method} {self.url} {self.params!r}"[:300] + f" {shown}"


SESSION_ROUTES = ("login", "logout")
"""Routes that change the session: driven on their own, each request in a fresh one."""


def admin_routes(app: FastAPI) -> list[Route]:
    """Every endpoint of the mounted admin but its statics and `SESSION_ROUTES`."""
    routes = [route for route in app.state.admin.admin.router.routes if isinstance(route, Route)]
    return [route for route in routes if route.name not in SESSION_ROUTES]


def methods_of(route: Route) -> list[str]:
    return sorted((route.methods or {"GET"}) - {"HEAD"})


def views(app: FastAPI) -> list[Any]:
    return list(app.state.admin.views)


def fill(app: FastAPI, route: Route, values: dict[str, str]) -> str:
    """The URL of an admin route, its `{parameters}` replaced by `values`."""
    path: str = app.state.admin.base_url + route.path
    for name, value in values.items():
        path = re.sub(r"\{" + name + r"(:[a-z]+)?\}", quote(value, safe=""), path)
    return path


def good_values(route: Route, identity: str, rows: dict[str, str]) -> dict[str, str]:
    """Path values that find something: a view, one of its rows, a column, an export type."""
    values = {"pk": rows.get(identity, "1"), "export_type": "csv", "column_name": "name"}
    if "identity" in route.param_convertors:
        values["identity"] = identity
    return values


def identities_for(app: FastAPI, route: Route) -> list[str]:
    """Every view for a route of every model; the one a route such as a history page names."""
    if "identity" in route.param_convertors:
        return [view.identity for view in views(app)]
    named = [view.identity for view in views(app) if route.path.startswith(f"/{view.identity}/")]
    return named or [""]


def path_calls(app: FastAPI, rows: dict[str, str]) -> Iterator[Call]:
    """Each route of each view, with each of its path parameters given bad values."""
    for route in admin_routes(app):
        params = set(route.param_convertors)
        for identity in identities_for(app, route):
            good = good_values(route, identity, rows)
            variants = [good]
            variants += [{**good, "pk": pk} for pk in BAD_PKS if "pk" in params]
            variants += [
                {**good, "export_type": t} for t in EXPORT_TYPES if "export_type" in params
            ]
            variants += [
                {**good, "column_name": c} for c in COLUMN_NAMES if "column_name" in params
            ]
            for method in methods_of(route):
                yield from (Call(method, fill(app, route, values)) for values in variants)
        if "identity" in params:
            good = good_values(route, "product", rows)
            for bad in IDENTITIES_BAD:
                for method in methods_of(route):
                    yield Call(method, fill(app, route, {**good, "identity": bad}))


def filter_queries(view: Any) -> Iterator[dict[str, str]]:
    """Bad values and operations for each of a view's list filters."""
    for filter_ in view.get_filters():
        name = filter_.parameter_name
        for value in FILTER_VALUES:
            yield {name: value, f"{name}_op": "exact"}
        yield {name: "1", f"{name}_op": "nope"}


def query_calls(app: FastAPI, rows: dict[str, str]) -> Iterator[Call]:
    """Each route with bad query parameters: the common ones on one view, each view's
    filters on every page of its own that takes no row."""
    for route in admin_routes(app):
        identities = identities_for(app, route)
        identity = "product" if "product" in identities else identities[0]
        url = fill(app, route, good_values(route, identity, rows))
        for method in methods_of(route):
            yield from (Call(method, url, params=query) for query in BAD_QUERIES)
        if "identity" not in route.param_convertors or "pk" in route.param_convertors:
            continue
        for view in views(app):
            url = fill(app, route, good_values(route, view.identity, rows))
            if "GET" in methods_of(route):
                yield from (Call("GET", url, params=query) for query in filter_queries(view))


async def form_fields(client: httpx.AsyncClient, url: str) -> list[str]:
    """The names of the fields on the page at `url` (none when it is not a form)."""
    response = await client.get(url)
    if response.status_code != 200 or "<form" not in response.text:
        return []
    names = set(_FIELD_NAME.findall(response.text)) - {"csrf_token", "search"}
    return sorted(names)


def bodies(fields: list[str], token: str) -> Iterator[Call]:
    """Bad bodies for a form with `fields` (method and URL filled in by the caller)."""
    yield Call("", "")  # no body at all
    yield Call("", "", data={"csrf_token": token})
    for value in FIELD_VALUES:
        yield Call("", "", data={**dict.fromkeys(fields, value), "csrf_token": token})
    yield Call("", "", data={"csrf_token": token, "crudkit_version": "\x00garbage"})
    for raw in (b"%FF%FE%00", b"%ED%B2%80"):  # not UTF-8; a lone surrogate
        encoded = b"&".join(b"%s=%s" % (name.encode(), raw) for name in fields or ["name"])
        yield Call("", "", content=b"csrf_token=" + token.encode() + b"&" + encoded)
    yield Call("", "", content=b"\xff\xfe\x00garbage", content_type="multipart/form-data")
    yield Call(
        "",
        "",
        content=b'--x\r\nContent-Disposition: form-data; name="name"\r\n\r\nabc',
        content_type="multipart/form-data; boundary=x",
    )
    yield Call("", "", content=b'{"name": "json"}', content_type="application/json")


async def body_calls(
    app: FastAPI, client: httpx.AsyncClient, rows: dict[str, str], token: str
) -> list[Call]:
    """Each route that takes a body, for each view, with bad bodies."""
    calls = []
    for route in admin_routes(app):
        posted = [method for method in methods_of(route) if method != "GET"]
        if not posted or route.name == "delete":
            continue
        for identity in identities_for(app, route):
            url = fill(app, route, good_values(route, identity, rows))
            fields = await form_fields(client, url)
            for method in posted:
                for body in bodies(fields, token):
                    body.method, body.url = method, url
                    calls.append(body)
    return calls


async def snapshot(app: FastAPI) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    async with app.state.db.read() as conn:
        for table in Model.metadata.sorted_tables:
            rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
            tables[table.name] = [tuple(row) for row in rows]
    return tables


async def send(client: httpx.AsyncClient, call: Call, token: str) -> httpx.Response:
    headers = {"Origin": ORIGIN, "X-CSRF-Token": token}
    if call.content_type is not None:
        headers["Content-Type"] = call.content_type
    elif call.content is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return await client.request(
        call.method,
        call.url,
        params=call.params,
        data=call.data,
        content=call.content,
        headers=headers,
    )


async def seed(app: FastAPI, root: int) -> dict[str, str]:
    """One row of each shop model; the key of an existing row per admin identity."""
    category = await insert(app, Category, name="Lighting")
    product = await insert(
        app, Product, name="Lamp", price=Decimal("9.50"), owner_id=root, category_id=category
    )
    order = await insert(app, Order, product_id=product, quantity=1, owner_id=root)
    return {"category": str(category), "product": str(product), "order": str(order)}


@dataclass
class Outcome:
    failures: list[str] = field(default_factory=list)
    """Requests answered with a 5xx."""
    changes: list[str] = field(default_factory=list)
    """Refused requests after which the database was not as before."""


CHECK_EVERY = 50
"""Requests sent between two comparisons of the database."""


async def drive(
    app: FastAPI, client: httpx.AsyncClient, calls: Iterable[Call], token: str
) -> Outcome:
    """Send `calls`; nothing but a saved form (which redirects) may change the database.

    The database is compared every `CHECK_EVERY` requests, before each POST and
    after each saved form; a change is reported with the requests sent since the
    comparison before.
    """
    outcome = Outcome()
    before = await snapshot(app)
    sent: list[str] = []

    async def compare() -> None:
        nonlocal before, sent
        after = await snapshot(app)
        if after != before:
            outcome.changes.extend(sent)
        before, sent = after, []

    for call in calls:
        if call.method == "POST" and sent:  # a save may follow: settle what came before
            await compare()
        response = await send(client, call, token)
        if response.status_code >= 500:
            outcome.failures.append(f"{response.status_code} {call.describe()}")
        if call.method == "POST" and response.status_code in (302, 303):  # saved
            before, sent = await snapshot(app), []
            continue
        sent.append(f"{response.status_code} {call.describe()}")
        if len(sent) >= CHECK_EVERY:
            await compare()
    await compare()
    # The session survived: every request above ran as the superuser.
    assert (await client.get("/admin/")).status_code == 200
    return outcome


@pytest.fixture
async def rows(app: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    """A logged-in superuser and a row of each shop model: the key of a row per view."""
    root = await staff(app, client, "root", superuser=True)
    return {"user": str(root), **await seed(app, root)}


def test_every_kind_of_endpoint_is_driven(app: FastAPI) -> None:
    names = {route.name for route in admin_routes(app)}
    assert {"list", "details", "delete", "create", "edit", "export", "ajax_lookup"} <= names
    assert {f"view-{view.identity}-object_history" for view in views(app)} <= names
    assert {"user", "group", "permission", "log-entry"} <= {view.identity for view in views(app)}


async def test_bad_path_values(
    app: FastAPI, client: httpx.AsyncClient, rows: dict[str, str]
) -> None:
    token = await page_token(client, "/admin/")

    outcome = await drive(app, client, path_calls(app, rows), token)

    assert not outcome.failures, "\n".join(outcome.failures)
    assert not outcome.changes, "\n".join(outcome.changes)


async def test_bad_query_parameters(
    app: FastAPI, client: httpx.AsyncClient, rows: dict[str, str]
) -> None:
    token = await page_token(client, "/admin/")

    outcome = await drive(app, client, query_calls(app, rows), token)

    assert not outcome.failures, "\n".join(outcome.failures)
    assert not outcome.changes, "\n".join(outcome.changes)


async def test_bad_form_bodies(
    app: FastAPI, client: httpx.AsyncClient, rows: dict[str, str]
) -> None:
    token = await page_token(client, "/admin/")

    outcome = await drive(app, client, await body_calls(app, client, rows, token), token)

    assert not outcome.failures, "\n".join(outcome.failures)
    assert not outcome.changes, "\n".join(outcome.changes)


async def test_login_and_logout_with_garbage(app: FastAPI) -> None:
    routes = {route.name: route for route in app.state.admin.admin.router.routes}
    garbage: list[dict[str, Any]] = [
        {},
        {"username": ""},
        {"username": "\x00", "password": "\x00"},
        {"username": "x" * 70_000, "password": "y" * 70_000},
        {"username": ["a", "b"], "password": ["c", "d"]},
        {"next": "//evil.example", "username": "root"},
    ]
    async with client_for(app) as client:
        await staff(app, client, "root", superuser=True)
    for name in ("login", "logout"):
        path = app.state.admin.base_url + routes[name].path
        for data in garbage:
            async with client_for(app) as client:
                if name == "logout":
                    assert (await login(client, "root")).status_code == 302
                token = await page_token(client, "/admin/login")
                for method in sorted((routes[name].methods or set()) - {"HEAD"}):
                    response = await client.request(
                        method,
                        path,
                        params={"next": "\x00", "page": "-1"},
                        data=data if method == "POST" else None,
                        headers={"Origin": ORIGIN, "X-CSRF-Token": token},
                    )
                    assert response.status_code < 500, (method, path, data)
            for content_type in ("multipart/form-data", "application/json"):
                async with client_for(app) as client:
                    token = await page_token(client, "/admin/login")
                    response = await client.post(
                        path,
                        content=b"\xff\xfe\x00",
                        headers={
                            "Origin": ORIGIN,
                            "X-CSRF-Token": token,
                            "Content-Type": content_type,
                        },
                    )
                    assert response.status_code < 500, (path, content_type)


@pytest.mark.parametrize("pks", [None, "", "abc", ",", HUGE, "\x00", "1,abc"])
async def test_delete_with_bad_pks_is_a_readable_refusal(
    app: FastAPI, client: httpx.AsyncClient, pks: str | None
) -> None:
    root = await staff(app, client, "root", superuser=True)
    await seed(app, root)
    before = await snapshot(app)
    token = await page_token(client, "/admin/")

    response = await client.delete(
        "/admin/product/delete",
        params={} if pks is None else {"pks": pks},
        headers={"Origin": ORIGIN, "X-CSRF-Token": token},
    )

    assert response.status_code in (400, 404), response.text
    if pks is None:
        assert response.status_code == 400
        assert "No rows to delete were chosen." in response.text
    assert await snapshot(app) == before
