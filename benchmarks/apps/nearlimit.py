"""The near-limit reference: Starlette + asyncpg + hand-written SQL + orjson.

What the five operations cost with almost nothing between HTTP and the wire:
one pooled connection, one statement per request (autocommit), rows straight
to JSON. Bodies are checked only for their keys; no auth.

    uvicorn --factory benchmarks.apps.nearlimit:create_app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from benchmarks.config import POOL_SIZE

COLUMNS = (
    "id, name, description, price, in_stock, category_id, owner_id, created_at, updated_at, "
    # The product's tag keys, in the same statement: the least any app can do for them.
    "ARRAY(SELECT tag_id FROM shop_product_tags t WHERE t.product_id = shop_product.id"
    " ORDER BY tag_id) AS tags"
)
WRITABLE = ("name", "description", "price", "in_stock", "category_id")
ORDERINGS = {
    "price": "price ASC",
    "-price": "price DESC",
    "name": "name ASC",
    "-name": "name DESC",
    "created_at": "created_at ASC",
    "-created_at": "created_at DESC",
}
SELECT_ONE = f"SELECT {COLUMNS} FROM shop_product WHERE id = $1"
NOT_FOUND = b'{"detail":"Not found."}'
INVALID = b'{"detail":"Invalid request."}'


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError


def json(content: Any, status_code: int = 200) -> Response:
    body = orjson.dumps(content, default=_default)
    return Response(body, status_code, media_type="application/json")


def error(body: bytes, status_code: int) -> Response:
    return Response(body, status_code, media_type="application/json")


def _values(raw: bytes) -> dict[str, Any] | None:
    """The writable fields of a JSON body, or `None` when it has anything else."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict) or not set(body) <= set(WRITABLE):
        return None
    if "price" in body:
        try:
            body["price"] = Decimal(str(body["price"]))
        except InvalidOperation:
            return None
    return body


async def _no_reset(connection: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query on release: these connections change no session state."""


def create_app(dsn: str | None = None, owner_id: int | None = None) -> Starlette:
    """The app; settings default to `BENCH_DSN` and `BENCH_OWNER_ID`."""
    dsn = dsn or os.environ["BENCH_DSN"]
    owner = owner_id if owner_id is not None else int(os.environ["BENCH_OWNER_ID"])
    pools: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            dsn, min_size=POOL_SIZE, max_size=2 * POOL_SIZE, reset=_no_reset
        )
        pools.append(pool)
        try:
            yield
        finally:
            await pool.close()

    async def retrieve(request: Request) -> Response:
        async with pools[0].acquire() as conn:
            row = await conn.fetchrow(SELECT_ONE, int(request.path_params["id"]))
        if row is None:
            return error(NOT_FOUND, 404)
        return json(dict(row))

    async def list_products(request: Request) -> Response:
        params = request.query_params
        try:
            limit = min(max(int(params.get("limit", 50)), 1), 1000)
            offset = max(int(params.get("offset", 0)), 0)
            price_gte = Decimal(params["price__gte"]) if "price__gte" in params else None
        except (ValueError, InvalidOperation):
            return error(INVALID, 422)
        ordering = params.get("ordering")
        if ordering is not None and ordering not in ORDERINGS:
            return error(INVALID, 422)
        where, args = ("WHERE price >= $1", [price_gte]) if price_gte is not None else ("", [])
        order = f"{ORDERINGS[ordering]}, id" if ordering else "id"
        n = len(args)
        page = (
            f"SELECT {COLUMNS} FROM shop_product {where} ORDER BY {order} "
            f"LIMIT ${n + 1} OFFSET ${n + 2}"
        )
        async with pools[0].acquire() as conn:
            rows = await conn.fetch(page, *args, limit, offset)
            total = await conn.fetchval(f"SELECT count(*) FROM shop_product {where}", *args)
        return json({"items": [dict(row) for row in rows], "total": total})

    async def create(request: Request) -> Response:
        values = _values(await request.body())
        if values is None or "name" not in values or "price" not in values:
            return error(INVALID, 422)
        values = {"in_stock": True, **values, "owner_id": owner}
        placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
        sql = (
            f"INSERT INTO shop_product ({', '.join(values)}, created_at, updated_at) "
            f"VALUES ({placeholders}, now(), now()) RETURNING {COLUMNS}"
        )
        async with pools[0].acquire() as conn:
            row = await conn.fetchrow(sql, *values.values())
        return json(dict(row), 201)

    async def update(request: Request) -> Response:
        values = _values(await request.body())
        if not values:
            return error(INVALID, 422)
        assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(values, start=2))
        sql = (
            f"UPDATE shop_product SET {assignments}, updated_at = now() "
            f"WHERE id = $1 RETURNING {COLUMNS}"
        )
        async with pools[0].acquire() as conn:
            row = await conn.fetchrow(sql, int(request.path_params["id"]), *values.values())
        if row is None:
            return error(NOT_FOUND, 404)
        return json(dict(row))

    return Starlette(
        routes=[
            Route("/products", list_products, methods=["GET"]),
            Route("/products", create, methods=["POST"]),
            Route("/products/{id:int}", retrieve, methods=["GET"]),
            Route("/products/{id:int}", update, methods=["PATCH"]),
        ],
        lifespan=lifespan,
    )
