"""Hostile input: every request below is refused with a 4xx, never a 500, and the
database is exactly as it was."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert, select

from crudkit.db import table_of
from crudkit.testing import database
from shop.models import Category, Order, Product
from tests.conftest import Caller

P = "/api/v1/products"
C = "/api/v1/categories"
O = "/api/v1/orders"  # noqa: E741
BIG = "12345678901234567890"
NESTED = "[" * 5000 + "]" * 5000


def deep_object(depth: int) -> str:
    return '{"name": ' * depth + '"x"' + "}" * depth


def body(**values: Any) -> dict[str, Any]:
    return {"json": {"name": "Lamp", "price": "1.00", **values}}


def raw(content: bytes | str, content_type: str = "application/json") -> dict[str, Any]:
    data = content.encode() if isinstance(content, str) else content
    return {"content": data, "headers": {"Content-Type": content_type}}


CASES: list[tuple[str, str, str, dict[str, Any]]] = [
    # SQL fragments in search, filters, ordering and everything else in the query.
    ("sql-ordering", "GET", P, {"params": {"ordering": "price; DROP TABLE shop_product"}}),
    ("sql-ordering-subquery", "GET", P, {"params": {"ordering": "(SELECT 1)"}}),
    ("sql-ordering-case", "GET", P, {"params": {"ordering": "CASE WHEN 1=1 THEN price END"}}),
    ("sql-filter-or", "GET", P, {"params": {"price": "1 OR 1=1"}}),
    ("sql-filter-in", "GET", P, {"params": {"category_id__in": "1);DROP TABLE shop_product;--"}}),
    ("sql-filter-bool", "GET", P, {"params": {"in_stock": "true' --"}}),
    ("sql-expand", "GET", P, {"params": {"expand": "category;DROP TABLE shop_product"}}),
    ("sql-cursor", "GET", P, {"params": {"cursor": "' OR 1=1 --"}}),
    ("sql-limit", "GET", P, {"params": {"limit": "1;DELETE FROM shop_product"}}),
    ("sql-param-name", "GET", P, {"params": {"price) OR (1": "1"}}),
    ("sql-id", "GET", f"{P}/1%20OR%201=1", {}),
    ("sql-id-union", "DELETE", f"{P}/1 UNION SELECT 1", {}),
    ("sql-body-name-too-long", "POST", P, body(name="' OR 1=1; --" * 30)),
    # NUL bytes.
    ("nul-body", "POST", P, body(name="lamp\x00")),
    ("nul-only", "POST", P, body(name="\x00")),
    ("nul-description", "POST", P, body(description="a\x00b")),
    ("nul-category", "POST", C, {"json": {"name": "x\x00"}}),
    ("nul-cursor", "GET", P, {"params": {"cursor": "\x00"}}),
    ("nul-ordering", "GET", P, {"params": {"ordering": "\x00"}}),
    ("nul-id", "GET", f"{P}/%00", {}),
    ("nul-filter", "GET", P, {"params": {"price": "1\x00"}}),
    # Unicode edge cases.
    ("lone-surrogate", "POST", P, raw('{"name": "\\ud800", "price": "1"}')),
    ("lone-low-surrogate", "POST", C, raw('{"name": "\\udfff"}')),
    ("astral-overflow", "POST", P, body(name="\U0001d54f" * 201)),
    ("rtl-in-number", "POST", P, body(price="\u202e1")),
    ("fullwidth-too-long", "POST", P, body(name="\uff21" * 201)),
    ("zero-width-price", "POST", P, body(price="1\u200b")),
    ("emoji-quantity", "POST", O, {"json": {"product_id": 1, "quantity": "🔥"}}),
    ("invalid-utf8", "POST", P, raw(b'{"name": "\xff\xfe", "price": "1"}')),
    ("bom-body", "POST", P, raw(b'\xef\xbb\xbf{"name": 1}')),
    # Enormous numbers.
    ("big-price", "POST", P, body(price=BIG)),
    ("big-float-price", "POST", P, body(price=1e308)),
    ("big-quantity", "POST", O, {"json": {"product_id": 1, "quantity": int(BIG)}}),
    ("big-category", "POST", P, body(category_id=int(BIG))),
    ("big-id", "GET", f"{P}/{BIG}", {}),
    ("big-id-patch", "PATCH", f"{P}/{BIG}", body()),
    ("big-limit", "GET", P, {"params": {"limit": BIG}}),
    ("big-offset", "GET", P, {"params": {"offset": BIG}}),
    ("big-filter", "GET", P, {"params": {"category_id": BIG}}),
    ("big-exponent", "GET", P, {"params": {"price__gt": "1e999999"}}),
    ("nan-json", "POST", P, raw('{"name": "x", "price": NaN}')),
    ("infinity-json", "POST", P, raw('{"name": "x", "price": Infinity}')),
    # Deep or odd JSON.
    ("deep-array", "POST", P, raw(NESTED)),
    ("deep-object", "POST", P, raw(deep_object(3000))),
    ("nested-name", "POST", P, body(name={"a": {"b": [1, 2, {"c": None}]}})),
    ("array-body", "POST", P, {"json": [{"name": "x", "price": "1"}]}),
    ("null-body", "POST", P, raw("null")),
    ("string-body", "POST", P, raw('"lamp"')),
    ("empty-body", "POST", P, raw(b"")),
    ("duplicate-keys", "POST", P, raw('{"name": "a", "name": "b" , "price": "x"}')),
    ("truncated-json", "POST", P, raw('{"name": "a", "price": ')),
    # Too big.
    ("ten-megabytes", "POST", P, raw(b'{"name": "' + b"x" * 10_000_000 + b'"}')),
    ("big-patch", "PATCH", f"{P}/1", raw(b'{"description": "' + b"y" * 2_000_000 + b'"}')),
    # Wrong content types.
    ("text-plain", "POST", P, raw('{"name": "a", "price": "1"}', "text/plain")),
    ("form-encoded", "POST", P, {"data": {"name": "a", "price": "1"}}),
    ("multipart", "POST", P, {"files": {"file": ("a.json", b'{"name": "a"}')}}),
    ("xml", "POST", P, raw("<product><name>a</name></product>", "application/xml")),
    ("json-but-latin1", "POST", P, raw('{"name": "caf\xe9"}'.encode("latin-1"))),
    ("too-many-params", "GET", P, {"params": {f"x{i}": "1" for i in range(500)}}),
    ("huge-search", "GET", P, {"params": {"search": "a" * 5000}}),
    ("huge-in-list", "GET", P, {"params": {"category_id__in": ",".join(["1"] * 2000)}}),
    # Mass assignment and forged ownership.
    ("set-owner", "POST", P, body(owner_id=999)),
    ("set-id", "POST", C, {"json": {"name": "x", "id": 5}}),
    (
        "register-as-staff",
        "POST",
        "/api/v1/auth/register",
        {"json": {"username": "eve", "password": "tulip-garden-42", "is_superuser": True}},
    ),
]


async def snapshot(app: FastAPI) -> list[Any]:
    async with database(app).read() as conn:
        return [
            (await conn.execute(select(table_of(model)))).all()
            for model in (Category, Product, Order)
        ]


@pytest.mark.parametrize(
    ("method", "path", "options"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_hostile_request_is_4xx_and_changes_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    alice: Caller,
    method: str,
    path: str,
    options: dict[str, Any],
) -> None:
    async with database(app).transaction() as conn:
        await conn.execute(insert(table_of(Category)).values(name="Lamps"))
        await conn.execute(
            insert(table_of(Product)).values(name="Lamp", price=Decimal(1), owner_id=alice.id)
        )
    before = await snapshot(app)
    # The parameters are shared by every backend's run: read them, never pop.
    options = dict(options)
    headers = {**alice.headers, **options.pop("headers", {})}
    response = await client.request(method, path, headers=headers, **options)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    json.loads(response.text)
    assert await snapshot(app) == before


def test_at_least_fifty_cases() -> None:
    assert len(CASES) >= 50
