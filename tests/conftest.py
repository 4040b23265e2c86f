"""Fixtures: the example project's app on a clean database for every test.

The suite runs on SQLite, and once more on PostgreSQL when CRUDKIT_TEST_DATABASE_URL
is set: every test that touches the database is parametrised by backend. One app
and one schema are built per backend and run; between tests SQLite gets a fresh
copy of the schema and PostgreSQL is truncated.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import TypeAdapter
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
sys.path.insert(0, str(EXAMPLE))

# Every table the suite uses must be known before the schema is built once per run:
# the example project's models and the test models are imported here.
import crudkit  # noqa: E402
import crudkit.contrib.admin.models  # noqa: E402
import crudkit.contrib.auth.models  # noqa: E402
import shop.models  # noqa: E402, F401
import tests.models  # noqa: E402, F401
from crudkit.contrib.auth.deps import AuthServices  # noqa: E402
from crudkit.contrib.auth.testing import auth_headers, create_user  # noqa: E402
from crudkit.db import Model  # noqa: E402
from crudkit.testing import client_for  # noqa: E402

TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256"
PG_URL = os.environ.get("CRUDKIT_TEST_DATABASE_URL")
EXAMPLE_APPS = ["crudkit.contrib.auth", "crudkit.contrib.admin", "shop"]
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]
PGBOUNCER = TypeAdapter(bool).validate_python(os.environ.get("CRUDKIT_DB_PGBOUNCER") or False)
"""PG_URL is a PgBouncer in transaction pooling mode (the app's settings read it too)."""
DATABASE_ENV = {"CRUDKIT_DB_PGBOUNCER": "true"} if PGBOUNCER else {}
"""What a server or command the suite starts in a clean environment needs besides its
database URL."""

if os.environ.get("CI") and not PG_URL:
    raise pytest.UsageError(
        "CI is set but CRUDKIT_TEST_DATABASE_URL is not: PostgreSQL tests would be skipped"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="PostgreSQL only: set CRUDKIT_TEST_DATABASE_URL")
    for item in items:
        if "postgres" in item.keywords and not PG_URL:
            item.add_marker(skip)
        callspec = getattr(item, "callspec", None)
        if "postgres" in item.keywords and callspec and callspec.params.get("backend") == "sqlite":
            item.add_marker(pytest.mark.skip(reason="PostgreSQL only"))


def engine_for(url: str, **options: Any) -> AsyncEngine:
    """An engine of the suite's own (setup, checks); behind PgBouncer it keeps no prepared
    statements, as crudkit's engines then do."""
    if PGBOUNCER and url.startswith("postgresql"):
        options["connect_args"] = {"statement_cache_size": 0, "prepared_statement_cache_size": 0}
    return create_async_engine(url, **options)


async def _execute(url: str, *statements: str, autocommit: bool = True) -> None:
    engine = engine_for(url, isolation_level="AUTOCOMMIT" if autocommit else None)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str | None]:
    """A PostgreSQL database of our own for this run, dropped at the end."""
    if not PG_URL:
        yield None
        return
    name = f"crudkit_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_execute(PG_URL, f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        asyncio.run(_execute(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class SuiteDatabase:
    """A database with every model's table, put back to empty by `reset()`."""

    def __init__(self, url: str, workdir: Path) -> None:
        self.url = url
        self.tables = [table.name for table in Model.metadata.sorted_tables]
        if url.startswith("sqlite"):
            self.path = Path(make_url(url).database or "")
            self.template = workdir / "template.sqlite3"
            engine = create_engine(f"sqlite:///{self.template}")
            Model.metadata.create_all(engine)
            engine.dispose()
            self._copy_template()
        else:
            engine = engine_for(url)

            async def create() -> None:
                async with engine.begin() as conn:
                    await conn.run_sync(Model.metadata.create_all)
                await engine.dispose()

            asyncio.run(create())

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith("postgresql")

    def _copy_template(self) -> None:
        for suffix in ("-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        staged = self.path.with_suffix(".staged")
        shutil.copyfile(self.template, staged)
        os.replace(staged, self.path)  # connections left open keep the old file

    async def reset(self) -> None:
        if self.is_postgres:
            names = ", ".join(f'"{name}"' for name in self.tables)
            await _execute(self.url, f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        else:
            self._copy_template()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def test_database(
    backend: str, pg_database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> SuiteDatabase:
    workdir = tmp_path_factory.mktemp(f"db-{backend}")
    if backend == "postgresql":
        assert pg_database_url is not None
        return SuiteDatabase(pg_database_url, workdir)
    return SuiteDatabase(f"sqlite+aiosqlite:///{workdir / 'test.sqlite3'}", workdir)


@pytest.fixture
def database_url(test_database: SuiteDatabase) -> str:
    return test_database.url


@pytest.fixture
def is_postgres(test_database: SuiteDatabase) -> bool:
    return test_database.is_postgres


@pytest.fixture(scope="session")
def _base_settings(test_database: SuiteDatabase) -> crudkit.Settings:
    return crudkit.Settings(
        database_url=test_database.url,
        secret_key=TEST_SECRET,
        installed_apps=EXAMPLE_APPS,
        allow_registration=True,
        # httpx's in-process clients, and the live servers the suite starts.
        allowed_hosts=["testserver", "127.0.0.1", "localhost"],
        # Cheap hashing keeps the suite fast; the scheme is the same argon2id.
        argon2_time_cost=1,
        argon2_memory_cost=1024,
        argon2_parallelism=1,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
async def settings(
    _base_settings: crudkit.Settings, test_database: SuiteDatabase
) -> AsyncIterator[crudkit.Settings]:
    """The example project's settings on the test database, emptied after the test."""
    yield _base_settings
    await test_database.reset()


@pytest.fixture(scope="session")
def _shared_app(_base_settings: crudkit.Settings) -> FastAPI:
    return crudkit.create_app(_base_settings)


@pytest.fixture
async def app(_shared_app: FastAPI, settings: crudkit.Settings) -> AsyncIterator[FastAPI]:
    """The example project's app (built once per backend), on an empty database."""
    _shared_app.state.auth = AuthServices.from_settings(settings)  # a fresh login throttle
    try:
        yield _shared_app
    finally:
        await _shared_app.state.auth.close()
        await _shared_app.state.db.dispose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as test_client:
        yield test_client


@dataclass(frozen=True)
class Caller:
    """A user of the test app and the headers that authenticate them."""

    id: int
    headers: dict[str, str]


async def make_caller(app: FastAPI, username: str, **options: Any) -> Caller:
    user_id = await create_user(app, username, **options)
    return Caller(user_id, await auth_headers(app, user_id))


@pytest.fixture
async def alice(app: FastAPI) -> Caller:
    return await make_caller(app, "alice")


@pytest.fixture
async def bob(app: FastAPI) -> Caller:
    return await make_caller(app, "bob")


@pytest.fixture
async def superuser(app: FastAPI) -> Caller:
    return await make_caller(app, "root", is_staff=True, is_superuser=True)


ANONYMOUS: dict[str, str] = {}
