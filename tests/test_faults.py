"""Faults: the database going away and coming back, and a worker killed mid-write."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

import crudkit
from crudkit.contrib.auth.testing import auth_headers, create_user
from crudkit.db import table_of
from crudkit.testing import client_for, database
from shop.models import Product
from tests.conftest import ROOT, TEST_SECRET


class TCPProxy:
    """Forwards a local port to the database; `cut()` makes the database unreachable."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.blackhole = False
        self.streams: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and sever the open ones."""
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        for writer in list(self.streams):
            writer.close()
        self.streams.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.streams.add(writer)
        if self.blackhole:
            await reader.read()  # accept, then never answer
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self.streams.add(upstream_writer)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


@pytest.fixture
async def proxied(settings: crudkit.Settings) -> AsyncIterator[tuple[crudkit.Settings, TCPProxy]]:
    url = make_url(settings.database_url)
    proxy = TCPProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    yield settings.model_copy(update={"database_url": proxied_url, "db_pool_timeout": 2.0}), proxy
    with contextlib.suppress(Exception):
        await proxy.cut()


@pytest.mark.postgres
async def test_database_outage_is_503_then_recovers(
    proxied: tuple[crudkit.Settings, TCPProxy],
) -> None:
    settings, proxy = proxied
    app = crudkit.create_app(settings)
    async with client_for(app) as client:
        assert (await client.get("/api/v1/products")).status_code == 200
        await proxy.cut()

        started = time.monotonic()
        health = await client.get("/healthz")
        assert health.status_code == 503
        assert time.monotonic() - started < 1.5
        listed = await client.get("/api/v1/products")
        assert listed.status_code == 503
        assert "database" in listed.json()["detail"]
        assert time.monotonic() - started < 1.5 + settings.db_pool_timeout

        await proxy.start()  # the database is back, on the same address
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/api/v1/products")).status_code == 200
    await app.state.db.dispose()


@pytest.mark.postgres
async def test_pooled_connections_cut_are_replaced_without_an_error(
    proxied: tuple[crudkit.Settings, TCPProxy],
) -> None:
    # No health check first: the requests themselves meet the dead pooled connections,
    # anonymous reads (straight on the driver) and authenticated requests (the caller's
    # lookup first). A read that finds its connection dead reads again on a new one,
    # and the failure invalidates the pool, so the write after it gets a new one too.
    settings, proxy = proxied
    app = crudkit.create_app(settings)
    async with client_for(app) as client:
        user_id = await create_user(app, "carol")
        headers = await auth_headers(app, user_id)
        for caller in ({}, headers):
            assert (await client.get("/api/v1/products", headers=caller)).status_code == 200
            await proxy.cut()
            await proxy.start()  # back at once: only the pooled connections are gone
            answer = await client.get("/api/v1/products", headers=caller)
            assert answer.status_code == 200, answer.text
            assert (await client.get("/api/v1/products/1", headers=caller)).status_code == 404
        await proxy.cut()
        await proxy.start()
        created = await client.post(
            "/api/v1/products", json={"name": "Lamp", "price": "9.50"}, headers=headers
        )
        assert created.status_code == 201, created.text
    await app.state.db.dispose()


@pytest.mark.postgres
async def test_unresponsive_database_is_503_within_the_timeouts(
    proxied: tuple[crudkit.Settings, TCPProxy],
) -> None:
    settings, proxy = proxied
    proxy.blackhole = True
    app = crudkit.create_app(settings)
    async with client_for(app) as client:
        started = time.monotonic()
        assert (await client.get("/healthz")).status_code == 503
        assert time.monotonic() - started < 1.5
        started = time.monotonic()
        assert (await client.get("/api/v1/products")).status_code == 503
        assert time.monotonic() - started < settings.db_pool_timeout + 1.5
    await app.state.db.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_worker_killed_mid_write_leaves_no_row(
    app: crudkit.FastAPI,  # type: ignore[name-defined]
    settings: crudkit.Settings,
    tmp_path: Path,
) -> None:
    owner = await create_user(app, "alice")
    headers = await auth_headers(app, owner)
    await database(app).dispose()
    marker = tmp_path / "stalled"
    port = free_port()
    env = {
        **os.environ,
        "FAULT_DATABASE_URL": settings.database_url,
        "FAULT_SECRET_KEY": TEST_SECRET,
        "FAULT_MARKER": str(marker),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")]),
    }
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "tests.fault_app:create_app", "--factory",
        "--port", str(port), "--log-level", "warning",
        env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(100):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            request = asyncio.create_task(
                client.post(
                    "/api/v1/products",
                    json={"name": "half-written", "price": "1"},
                    headers={**headers, "X-Request-ID": "stall"},
                )
            )
            for _ in range(100):
                if marker.exists():
                    break
                await asyncio.sleep(0.1)
            assert marker.exists(), "the write never reached the stall"
            server.send_signal(signal.SIGKILL)
            await asyncio.wait_for(server.wait(), 10)
            with pytest.raises(httpx.TransportError):
                await request
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
    async with database(app).read() as conn:
        rows = (await conn.execute(select(table_of(Product)))).all()
    assert rows == []
