"""Fixtures: a fresh database per test on SQLite, or on PostgreSQL when
CRUDKIT_TEST_DATABASE_URL is set (one database per run, emptied between tests)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
sys.path.insert(0, str(EXAMPLE))

import crudkit  # noqa: E402
from crudkit.db import Model  # noqa: E402
from crudkit.testing import client_for, create_tables  # noqa: E402

TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256"
PG_URL = os.environ.get("CRUDKIT_TEST_DATABASE_URL")
EXAMPLE_APPS = ["crudkit.contrib.auth", "crudkit.contrib.admin", "shop"]

if os.environ.get("CI") and not PG_URL:
    raise pytest.UsageError(
        "CI is set but CRUDKIT_TEST_DATABASE_URL is not: PostgreSQL tests would be skipped"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="PostgreSQL only: set CRUDKIT_TEST_DATABASE_URL")
    for item in items:
        if "postgres" in item.keywords and not PG_URL:
            item.add_marker(skip)


async def _admin_execute(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str | None]:
    """A database of our own for this run, dropped at the end."""
    if not PG_URL:
        yield None
        return
    name = f"crudkit_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin_execute(PG_URL, f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        asyncio.run(_admin_execute(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def database_url(pg_database_url: str | None, tmp_path: Path) -> str:
    if pg_database_url:
        return pg_database_url
    return f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


@pytest.fixture
def settings(database_url: str) -> crudkit.Settings:
    return crudkit.Settings(
        database_url=database_url,
        secret_key=TEST_SECRET,
        installed_apps=EXAMPLE_APPS,
        allow_registration=True,
        _env_file=None,  # type: ignore[call-arg]
    )


async def _empty_database(app: FastAPI) -> None:
    tables = ", ".join(f'"{table.name}"' for table in Model.metadata.sorted_tables)
    async with app.state.db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def app(settings: crudkit.Settings) -> AsyncIterator[FastAPI]:
    """The example project's app on a fresh, empty schema."""
    application = crudkit.create_app(settings)
    await create_tables(application)
    try:
        yield application
    finally:
        if settings.database_url.startswith("postgresql"):
            await _empty_database(application)
        await application.state.db.dispose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as test_client:
        yield test_client
