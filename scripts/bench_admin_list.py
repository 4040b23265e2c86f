"""Time admin list pages of a 1,000,000-row `shop_product` on PostgreSQL: counted exactly
(sqladmin's own `count`, what the admin did before) and as crudkit's admin counts them.

    .venv/bin/python scripts/bench_admin_list.py
    .venv/bin/python scripts/bench_admin_list.py --rows 1000000 --repeat 20 \\
        --url postgresql+asyncpg://postgres@127.0.0.1:5432/crudkit_admin_bench

Creates the database if it is missing and seeds it once (generate_series, then
ANALYZE), logs in to the admin as a superuser in-process (httpx over ASGI, no
network), and prints the median and 90th percentile of each page in both modes.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "example_project"))

import httpx  # noqa: E402
from sqladmin import ModelView  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

import crudkit  # noqa: E402
import crudkit.contrib.admin.models  # noqa: E402
import shop.models  # noqa: E402, F401
from crudkit.contrib.admin.views import ResourceView  # noqa: E402
from crudkit.contrib.auth.testing import create_user  # noqa: E402
from crudkit.db import Model  # noqa: E402
from crudkit.testing import client_for  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/crudkit_admin_bench"
PASSWORD = "correct-horse-battery"
PAGES = [
    "/admin/category/list",  # 20 rows: what a page costs whatever the count
    "/admin/product/list",
    "/admin/product/list?page=50",
    "/admin/product/list?in_stock=true",
    "/admin/product/list?sortBy=price&sort=desc",
]
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


async def prepare(url: str, rows: int) -> None:
    """The database, its tables, and `rows` products (seeded once)."""
    server = make_url(url).set(database="postgres").render_as_string(hide_password=False)
    name = make_url(url).database
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        found = await conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if not found:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Model.metadata.create_all)
        count = await conn.scalar(text("SELECT count(*) FROM shop_product"))
    if count != rows:
        print(f"seeding {rows:,} products ...", flush=True)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "TRUNCATE crudkit_log_entry, shop_order, shop_product, "
                    "shop_category, auth_user RESTART IDENTITY CASCADE"
                )
            )
    await engine.dispose()


async def seed(app: object, url: str, rows: int) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        if await conn.scalar(text("SELECT count(*) FROM shop_product")) == rows:
            await engine.dispose()
            return
    owner = await create_user(app, "bench_root", is_staff=True, is_superuser=True)  # type: ignore[arg-type]
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO shop_category (name) "
                "SELECT 'Category ' || g FROM generate_series(1, 20) g"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO shop_product (name, price, in_stock, category_id, owner_id, "
                "created_at, updated_at) "
                "SELECT 'Product ' || g, (g % 10000) / 100.0, g % 3 <> 0, 1 + g % 20, :owner, "
                "now(), now() FROM generate_series(1, :rows) g"
            ),
            {"owner": owner, "rows": rows},
        )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE shop_product"))
    await engine.dispose()


@contextmanager
def exact_counts() -> Iterator[None]:
    """The admin as it was: sqladmin's exact `count(*)` on every page."""
    ours = ResourceView.count
    ResourceView.count = ModelView.count  # type: ignore[method-assign]
    try:
        yield
    finally:
        ResourceView.count = ours  # type: ignore[method-assign]


async def login(client: httpx.AsyncClient) -> None:
    page = await client.get("/admin/login")
    match = TOKEN.search(page.text)
    assert match
    response = await client.post(
        "/admin/login",
        data={"username": "bench_root", "password": PASSWORD, "csrf_token": match.group(1)},
        headers={"Origin": "http://testserver"},
    )
    assert response.status_code == 302, response.text


async def timings(client: httpx.AsyncClient, path: str, repeat: int) -> tuple[float, float, str]:
    for _ in range(3):  # warm caches and the connection pool
        await client.get(path)
    samples = []
    shown = ""
    for _ in range(repeat):
        started = time.perf_counter()
        response = await client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text[:300]
        found = re.search(r"Showing [^<]*items", response.text)
        shown = " ".join(found.group(0).split()) if found else ""
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9) - 1], shown


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args()

    await prepare(options.url, options.rows)
    settings = crudkit.Settings(
        database_url=options.url,
        secret_key="benchmark-secret-key-that-is-long-enough",
        installed_apps=["crudkit.contrib.auth", "crudkit.contrib.admin", "shop"],
        allowed_hosts=["testserver"],
        argon2_time_cost=1,
        argon2_memory_cost=1024,
        argon2_parallelism=1,
        _env_file=None,  # type: ignore[call-arg]
    )
    app = crudkit.create_app(settings)
    await seed(app, options.url, options.rows)
    async with client_for(app) as client:
        await login(client)
        print(f"{'page':45} {'mode':8} {'median ms':>10} {'p90 ms':>8}  footer")
        for path in PAGES:
            for mode in ("exact", "crudkit"):
                if mode == "exact":
                    with exact_counts():
                        median, p90, shown = await timings(client, path, options.repeat)
                else:
                    median, p90, shown = await timings(client, path, options.repeat)
                print(f"{path:45} {mode:8} {median:10.1f} {p90:8.1f}  {shown}", flush=True)
    await app.state.db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
