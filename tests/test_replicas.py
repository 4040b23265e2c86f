"""Read replicas, against a real streaming replica of the test server.

`CRUDKIT_TEST_REPLICA_URL` names the replica's server (`scripts/replica.sh start` runs
one on 127.0.0.1:5433); the suite's own database, created on the primary, reaches it
by replication under the same name. Lag is made by pausing the replica's replay, a
lost replica by a TCP proxy in front of it that is cut, and a promoted one is a second
replica of our own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import crudkit
from crudkit.exceptions import ImproperlyConfigured
from crudkit.testing import client_for, count_queries, database
from shop.models import Tag
from tests.conftest import make_caller

ROOT = Path(__file__).resolve().parent.parent
REPLICA = os.environ.get("CRUDKIT_TEST_REPLICA_URL")
TAGS = "/api/v1/tags"
ORDERS = "/api/v1/orders"


@pytest.fixture
def replica_url(pg_database_url: str | None) -> str:
    """The suite's database on the replica."""
    if not REPLICA:
        if os.environ.get("CI"):
            pytest.fail("CI is set but CRUDKIT_TEST_REPLICA_URL is not (scripts/replica.sh start)")
        pytest.skip("set CRUDKIT_TEST_REPLICA_URL (scripts/replica.sh start runs a replica)")
    assert pg_database_url is not None
    name = make_url(pg_database_url).database
    return make_url(REPLICA).set(database=name).render_as_string(hide_password=False)


async def _scalar(url: str, sql: str) -> Any:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql))).scalar()
    finally:
        await engine.dispose()


async def caught_up(primary_url: str, replica_url: str) -> None:
    """Wait (up to 60 s) until the replica has replayed all the primary had written."""
    lsn = await _scalar(primary_url, "SELECT pg_current_wal_lsn()::text")
    deadline = time.monotonic() + 60  # a fresh replica of a busy server takes a while
    while not await _scalar(replica_url, f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"):
        assert time.monotonic() < deadline, "the replica did not catch up"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def replica_app(
    settings: crudkit.Settings, urls: list[str], max_lag: float = 5.0
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = crudkit.create_app(
        settings.model_copy(update={"database_replica_urls": urls, "replica_max_lag": max_lag})
    )
    async with client_for(app) as client:
        yield app, client


async def ready(client: httpx.AsyncClient) -> dict[str, Any]:
    """`/readyz`'s body. The suite's schema is built without migrations, so it answers
    503 for them: a replica is never one of its failing checks."""
    body: dict[str, Any] = (await client.get("/readyz")).json()
    assert set(body["checks"]) == {"database", "migrations"}, body
    assert body["checks"]["database"] == "ok"
    return body


async def replica_states(client: httpx.AsyncClient) -> list[str]:
    return [replica["state"] for replica in (await ready(client))["replicas"]]


async def wait_state(client: httpx.AsyncClient, state: str) -> None:
    deadline = time.monotonic() + 15
    while (states := await replica_states(client)) != [state]:
        assert time.monotonic() < deadline, f"replica {states}, expected {state}"
        await asyncio.sleep(0.1)


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements `engine` runs inside the block."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def replica_engine(app: FastAPI) -> AsyncEngine:
    return database(app).replicas.replicas[0].engine


@contextmanager
def crudkit_log() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("crudkit")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


async def make_tag(client: httpx.AsyncClient, headers: dict[str, str], name: str) -> int:
    response = await client.post(TAGS, json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def tag_names(client: httpx.AsyncClient) -> list[str]:
    response = await client.get(TAGS, params={"ordering": "name"})
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


@asynccontextmanager
async def replay_paused(replica_url: str) -> AsyncIterator[None]:
    await _scalar(replica_url, "SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        await _scalar(replica_url, "SELECT pg_wal_replay_resume()")


@pytest.mark.postgres
async def test_lists_and_retrieves_read_the_replica_writes_and_auth_the_primary(
    settings: crudkit.Settings, replica_url: str
) -> None:
    async with replica_app(settings, [replica_url]) as (app, client):
        admin = await make_caller(app, "root", is_staff=True, is_superuser=True)
        tag = await make_tag(client, admin.headers, "red")
        await caught_up(settings.database_url, replica_url)
        await wait_state(client, "ok")

        with count_queries(app) as primary, statements(replica_engine(app)) as replica:
            listed = await client.get(TAGS, headers=admin.headers)
            retrieved = await client.get(f"{TAGS}/{tag}", headers=admin.headers)
        assert listed.status_code == 200
        assert retrieved.status_code == 200
        assert [item["name"] for item in listed.json()["items"]] == ["red"]
        assert retrieved.json()["name"] == "red"
        assert len([s for s in replica if "shop_tag" in s]) >= 2
        assert primary.on("shop_tag") == []
        assert primary.on("auth_user"), "the caller is looked up on the primary"
        assert not [s for s in replica if "auth_user" in s]

        with count_queries(app) as primary, statements(replica_engine(app)) as replica:
            created = await client.post(TAGS, json={"name": "blue"}, headers=admin.headers)
            updated = await client.patch(
                f"{TAGS}/{tag}", json={"name": "green"}, headers=admin.headers
            )
        assert created.status_code == 201
        assert updated.status_code == 200
        assert replica == []
        assert primary.on("shop_tag")


@pytest.mark.postgres
async def test_a_lagging_replica_is_skipped_until_it_catches_up(
    settings: crudkit.Settings, replica_url: str
) -> None:
    async with replica_app(settings, [replica_url], max_lag=2.0) as (app, client):
        admin = await make_caller(app, "root", is_staff=True, is_superuser=True)
        await make_tag(client, admin.headers, "a")
        await caught_up(settings.database_url, replica_url)
        await wait_state(client, "ok")
        async with replay_paused(replica_url):
            await make_tag(client, admin.headers, "b")
            # Within replica_max_lag the list is the replica's: without "b" yet.
            assert await tag_names(client) == ["a"]
            await wait_state(client, "lagging")
            assert (await ready(client))["replicas"][0]["lag"] > 2.0
            with statements(replica_engine(app)) as replica:
                assert await tag_names(client) == ["a", "b"]  # the primary's, no error
            assert replica == []
        await wait_state(client, "ok")
        with statements(replica_engine(app)) as replica:
            assert await tag_names(client) == ["a", "b"]
        assert replica, "back on the replica"


@pytest.mark.postgres
async def test_a_request_reads_its_own_writes(settings: crudkit.Settings, replica_url: str) -> None:
    async with replica_app(settings, [replica_url]) as (app, client):

        async def write_then_list(request: Request, name: str) -> list[str]:
            if name:
                await crudkit.create(Tag, {"name": name}, request=request, check=False)
            async with database(request.app).replica_reader() as reader:
                rows = await reader.rows(select(Tag.name).order_by(Tag.name))
            return [row[0] for row in rows]

        app.add_api_route("/write-then-list", write_then_list, methods=["POST"])
        await make_tag(client, (await make_caller(app, "root", is_superuser=True)).headers, "a")
        await caught_up(settings.database_url, replica_url)
        await wait_state(client, "ok")
        async with replay_paused(replica_url):
            response = await client.post("/write-then-list", params={"name": "b"})
            assert response.status_code == 200, response.text
            assert response.json() == ["a", "b"], "the read after the write is the primary's"
            # The next request has written nothing: the replica again, without "b" yet.
            response = await client.post("/write-then-list", params={"name": ""})
            assert response.json() == ["a"]


class Proxy:
    """A TCP proxy to the replica: cut, it is a replica lost mid-run; started again on
    the same port, a replica restarted."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()


@pytest.mark.postgres
async def test_a_replica_lost_or_restarted_mid_run_fails_no_request(
    settings: crudkit.Settings, replica_url: str
) -> None:
    url = make_url(replica_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    await proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    async with replica_app(settings, [proxied]) as (app, client):
        admin = await make_caller(app, "root", is_staff=True, is_superuser=True)
        await make_tag(client, admin.headers, "a")
        await caught_up(settings.database_url, replica_url)
        await wait_state(client, "ok")
        with statements(replica_engine(app)) as replica:
            assert await tag_names(client) == ["a"]  # a pooled connection to the replica now
        assert replica

        # The server ends the replica's connections (as a restart does): the pooled one
        # fails mid-request, the statement runs again on the primary.
        await _scalar(
            replica_url,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
            f"AND datname = '{url.database}'",
        )
        assert await tag_names(client) == ["a"]
        await wait_state(client, "ok")  # the next check reconnects

        # The replica gone: nothing answers at its address.
        await proxy.cut()
        assert await tag_names(client) == ["a"]
        assert (await client.get(f"{TAGS}?search=a")).status_code == 200
        await wait_state(client, "down")
        health = await client.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        for _ in range(5):
            assert await tag_names(client) == ["a"]

        # Back at the same address: reads return to it.
        await proxy.start()
        await wait_state(client, "ok")
        with statements(replica_engine(app)) as replica:
            assert await tag_names(client) == ["a"]
        assert replica
    await proxy.cut()


def _script(*args: str, **env: str) -> None:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "replica.sh"), *args],
        check=True,
        capture_output=True,
        env={**os.environ, **env},
        timeout=120,
    )


@pytest.mark.postgres
async def test_a_promoted_replica_is_skipped(settings: crudkit.Settings, replica_url: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("runs a second replica as the postgres user: needs root")
    # A replica of our own, promoted: the shared one goes on serving the other tests.
    env = {
        "CRUDKIT_REPLICA_DIR": "/var/lib/postgresql/crudkit-replica-promoted",
        "CRUDKIT_REPLICA_PORT": "5434",
    }
    _script("start", **env)
    try:
        own = make_url(replica_url).set(port=5434).render_as_string(hide_password=False)
        async with replica_app(settings, [own]) as (app, client):
            admin = await make_caller(app, "root", is_staff=True, is_superuser=True)
            await make_tag(client, admin.headers, "a")
            await caught_up(settings.database_url, own)
            await wait_state(client, "ok")
            _script("promote", **env)
            await wait_state(client, "promoted")
            await make_tag(client, admin.headers, "b")  # never reaches the promoted server
            with statements(replica_engine(app)) as replica:
                assert await tag_names(client) == ["a", "b"]
            assert replica == []
    finally:
        _script("stop", **env)
        shutil.rmtree(env["CRUDKIT_REPLICA_DIR"], ignore_errors=True)


@pytest.mark.postgres
async def test_a_wrong_replica_url_at_start_warns_and_reads_the_primary(
    settings: crudkit.Settings, replica_url: str
) -> None:
    wrong = [
        make_url(replica_url).set(port=1).render_as_string(hide_password=False),
        make_url(replica_url).set(database="no_such_database").render_as_string(),
    ]
    with crudkit_log() as records:
        async with replica_app(settings, wrong) as (app, client):
            warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
            assert len(warnings) == 2, warnings
            assert all("reading from the primary" in w for w in warnings)
            assert "no_such_database" in warnings[1]
            admin = await make_caller(app, "root", is_staff=True, is_superuser=True)
            await make_tag(client, admin.headers, "a")
            assert await tag_names(client) == ["a"]
            body = await ready(client)
            assert [r["state"] for r in body["replicas"]] == ["down", "down"]
            assert "127.0.0.1:1/" in body["replicas"][0]["url"]
            assert (await client.get("/healthz")).json() == {"status": "ok"}
        # Each problem is logged when it starts, not at every check.
        assert len([r for r in records if r.levelno == logging.WARNING]) == 2


def test_replica_urls_are_checked_at_start() -> None:
    base = {"secret_key": "x" * 32, "_env_file": None}
    pg = "postgresql+asyncpg://app@db/shop"
    with pytest.raises(ImproperlyConfigured, match="postgresql\\+asyncpg"):
        crudkit.conf.build_settings(
            database_url=pg, database_replica_urls="postgresql://app@replica/shop", **base
        )
    with pytest.raises(ImproperlyConfigured, match="not a database URL"):
        crudkit.conf.build_settings(database_url=pg, database_replica_urls="replica", **base)
    with pytest.raises(ImproperlyConfigured, match="needs a PostgreSQL database_url"):
        crudkit.conf.build_settings(
            database_url="sqlite+aiosqlite:///x.db", database_replica_urls=pg, **base
        )
    settings = crudkit.conf.build_settings(
        database_url=pg, database_replica_urls=f"{pg},{pg.replace('db', 'db2')}", **base
    )
    assert settings.database_replica_urls == [pg, pg.replace("db", "db2")]
    assert settings.replica_max_lag == 5.0
