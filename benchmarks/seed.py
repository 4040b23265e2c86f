"""Create, migrate and fill the benchmark databases.

The schema is crudkit's own (`manage.py migrate` of the example project) and the
benchmark user is made with `manage.py createuser`; rows are loaded with COPY.
A database that already holds its rows is reused: migrated (the schema may have
moved on) and reset.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg  # type: ignore[import-untyped]

from benchmarks.config import (
    BENCH_PASSWORD,
    BENCH_USER,
    CATEGORIES,
    EXAMPLE_PROJECT,
    PYTHON,
    Dataset,
    app_env,
)

PRODUCT_COLUMNS = [
    "id",
    "name",
    "description",
    "price",
    "in_stock",
    "category_id",
    "owner_id",
    "created_at",
    "updated_at",
]
CHUNK = 100_000
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def products(first: int, last: int, owner_id: int) -> Iterator[tuple[object, ...]]:
    """Rows `first..last` (inclusive), the same on every run."""
    for i in range(first, last + 1):
        rng = random.Random(i)
        stamp = EPOCH + timedelta(seconds=i)
        yield (
            i,
            f"Product {i:07d}",
            None if i % 5 == 0 else f"Benchmark product number {i}.",
            Decimal(rng.randint(100, 100_000)) / 100,
            i % 7 != 0,
            i % CATEGORIES + 1,
            owner_id,
            stamp,
            stamp,
        )


TAGS = 5


def product_tags(first: int, last: int) -> Iterator[tuple[int, int]]:
    """The tags of products `first..last`: one each, and a second on every third."""
    for i in range(first, last + 1):
        yield (i, i % TAGS + 1)
        if i % 3 == 0:
            yield (i, (i + 1) % TAGS + 1)


async def ensure_seeded(dataset: Dataset, *, force: bool = False) -> int:
    """Make `dataset` hold exactly its rows; the benchmark user's id."""
    if not force and await _is_seeded(dataset):
        _manage(dataset, "migrate")  # the schema may have moved on since it was seeded
        owner_id = await _owner_id(dataset)
        await reset(dataset)
        return owner_id
    print(f"seeding {dataset.name} with {dataset.rows:,} products ...", flush=True)
    await _recreate(dataset)
    _manage(dataset, "migrate")
    _manage(dataset, "createuser", BENCH_USER, "--email", "bench@example.com", "--noinput")
    owner_id = await _owner_id(dataset)
    conn = await asyncpg.connect(dataset.dsn())
    try:
        await conn.copy_records_to_table(
            "shop_category",
            records=[(i, f"Category {i:02d}") for i in range(1, CATEGORIES + 1)],
            columns=["id", "name"],
        )
        for first in range(1, dataset.rows + 1, CHUNK):
            last = min(first + CHUNK - 1, dataset.rows)
            await conn.copy_records_to_table(
                "shop_product",
                records=list(products(first, last, owner_id)),
                columns=PRODUCT_COLUMNS,
            )
        await conn.copy_records_to_table(
            "shop_tag",
            records=[(i, f"tag-{i}") for i in range(1, TAGS + 1)],
            columns=["id", "name"],
        )
        for first in range(1, dataset.rows + 1, CHUNK):
            last = min(first + CHUNK - 1, dataset.rows)
            await conn.copy_records_to_table(
                "shop_product_tags",
                records=list(product_tags(first, last)),
                columns=["product_id", "tag_id"],
            )
        for table in ("shop_category", "shop_product", "shop_tag"):
            await conn.execute(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return owner_id


async def reset(dataset: Dataset) -> None:
    """Drop rows the write scenarios added, so every run reads the same table."""
    conn = await asyncpg.connect(dataset.dsn())
    try:
        deleted = await conn.execute("DELETE FROM shop_product WHERE id > $1", dataset.rows)
        await conn.execute("SELECT setval('shop_product_id_seq', $1)", dataset.rows)
        if deleted != "DELETE 0":
            await conn.execute("VACUUM ANALYZE shop_product")
    finally:
        await conn.close()


async def _is_seeded(dataset: Dataset) -> bool:
    try:
        conn = await asyncpg.connect(dataset.dsn())
    except asyncpg.InvalidCatalogNameError:
        return False
    try:
        seeded = await conn.fetchval(
            "SELECT count(*) FROM shop_product WHERE id <= $1", dataset.rows
        )
        user = await conn.fetchval("SELECT count(*) FROM auth_user WHERE username = $1", BENCH_USER)
        tagged = await conn.fetchval("SELECT count(*) > 0 FROM shop_product_tags")
    except asyncpg.UndefinedTableError:
        return False
    finally:
        await conn.close()
    return bool(seeded == dataset.rows and user == 1 and tagged)


async def _recreate(dataset: Dataset) -> None:
    admin = await asyncpg.connect(Dataset("postgres", 0).dsn())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{dataset.name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{dataset.name}"')
    finally:
        await admin.close()


async def _owner_id(dataset: Dataset) -> int:
    conn = await asyncpg.connect(dataset.dsn())
    try:
        owner_id = await conn.fetchval("SELECT id FROM auth_user WHERE username = $1", BENCH_USER)
    finally:
        await conn.close()
    return int(owner_id)


def _manage(dataset: Dataset, *args: str) -> None:
    env = app_env(dataset.sqlalchemy_url(), dataset.dsn(), owner_id=0)
    env["CRUDKIT_SUPERUSER_PASSWORD"] = BENCH_PASSWORD
    subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=EXAMPLE_PROJECT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
