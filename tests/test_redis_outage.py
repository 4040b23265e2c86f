"""Redis going away does not take logins down: each worker counts in its own memory
(logged once), `/readyz` says so, and counts are shared again once Redis is back."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from redis.asyncio import Redis

import crudkit
from crudkit.contrib.auth.testing import create_user
from crudkit.contrib.auth.throttle import LoginThrottle
from crudkit.counters import RETRY_AFTER
from crudkit.testing import client_for, create_tables
from tests.test_deploy import free_port
from tests.test_throttle import attempt

PASSWORD = "correct-horse-battery"  # create_user's
CLIENT = "127.0.0.1"  # the address httpx's in-process transport gives every request
FALLBACK = "unavailable (login throttling falls back to each worker's memory)"

# CI has Redis's server (its package is on the machine); elsewhere the tests need it too.
pytestmark = pytest.mark.skipif(
    not shutil.which("redis-server") and not os.environ.get("CI"),
    reason="needs redis-server (Debian's redis-server package) to stop and restart at will",
)


class RedisServer:
    """A private redis-server on its own port, stopped and started again at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        self.process = subprocess.Popen(
            [*command, "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "redis-server exited while starting"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)  # in case a test froze it
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def freeze(self) -> None:
        """Still accepting connections, answering nothing: a hung Redis."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    async def count(self, username: str) -> int:
        """The failed attempts Redis holds for `username` from the test client."""
        redis = Redis.from_url(self.url)
        try:
            value = await redis.get(LoginThrottle.key(username, CLIENT))
        finally:
            await redis.aclose()
        return int(value or 0)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def workers(
    settings: crudkit.Settings, redis_server: RedisServer
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Clients of two app instances sharing the database and the private Redis."""
    shared = settings.model_copy(update={"redis_url": redis_server.url})
    first, second = crudkit.create_app(shared), crudkit.create_app(shared)
    await create_tables(first)
    await create_user(first, "alice")
    async with client_for(first) as one, client_for(second) as two:
        yield one, two
    for app in (first, second):
        await app.state.db.dispose()


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def levels(self) -> list[str]:
        return [record.levelname for record in self.records]


@pytest.fixture
def logged() -> Iterator[Records]:
    """What the counters log, once per record."""
    logger = logging.getLogger("crudkit.counters")
    records, level = Records(), logger.level
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(records)
    logger.setLevel(level)


async def timed_attempt(
    client: httpx.AsyncClient, username: str, password: str
) -> tuple[int, float]:
    started = time.monotonic()
    response = await attempt(client, username, password)
    return response.status_code, time.monotonic() - started


async def test_logins_outlive_redis_and_share_counts_when_it_returns(
    workers: tuple[httpx.AsyncClient, httpx.AsyncClient],
    redis_server: RedisServer,
    logged: Records,
) -> None:
    one, two = workers
    assert (await attempt(one, "alice", "wrong-password")).status_code == 401
    assert await redis_server.count("alice") == 1  # counted in Redis
    assert (await attempt(one, "alice", PASSWORD)).status_code == 200

    redis_server.stop()
    started = time.monotonic()
    login = await attempt(one, "alice", PASSWORD)
    assert login.status_code == 200
    assert time.monotonic() - started < 2
    token = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert (await one.get("/api/v1/products", headers=token)).status_code == 200
    # Each worker throttles on its own: five failures on one leave the other open.
    for _ in range(5):
        status, seconds = await timed_attempt(one, "alice", "wrong-password")
        assert (status, seconds < 2) == (401, True)
    assert (await attempt(one, "alice", PASSWORD)).status_code == 429
    assert logged.levels == ["WARNING"]  # once, however many requests met the outage
    assert "Redis unreachable" in logged.records[0].getMessage()
    ready = await one.get("/readyz")
    assert ready.json()["checks"]["redis"] == FALLBACK
    assert ready.json()["checks"]["database"] == "ok"
    assert (await attempt(two, "alice", PASSWORD)).status_code == 200
    assert logged.levels == ["WARNING", "WARNING"]  # the second worker's own

    redis_server.start()  # same port, empty: the app is neither restarted nor rebuilt
    await asyncio.sleep(RETRY_AFTER + 0.2)  # each worker tries Redis again after a while
    for index in range(5):
        worker = one if index % 2 else two
        assert (await attempt(worker, "alice", "wrong-password")).status_code == 401
    assert await redis_server.count("alice") == 5  # both workers count in Redis again
    assert (await attempt(one, "alice", PASSWORD)).status_code == 429
    assert (await attempt(two, "alice", PASSWORD)).status_code == 429
    assert logged.levels == ["WARNING", "WARNING", "INFO", "INFO"]
    assert (await one.get("/readyz")).json()["checks"]["redis"] == "ok"


async def test_readyz_notices_redis_first_and_sees_it_return(
    workers: tuple[httpx.AsyncClient, httpx.AsyncClient],
    redis_server: RedisServer,
    logged: Records,
) -> None:
    one, _ = workers
    redis_server.stop()
    assert (await one.get("/readyz")).json()["checks"]["redis"] == FALLBACK
    assert logged.levels == ["WARNING"]
    assert (await attempt(one, "alice", "wrong-password")).status_code == 401
    assert logged.levels == ["WARNING"]  # the login went straight to memory

    redis_server.start()
    # The readiness check tries Redis whatever the back-off, and switches back at once.
    assert (await one.get("/readyz")).json()["checks"]["redis"] == "ok"
    assert logged.levels == ["WARNING", "INFO"]
    assert (await attempt(one, "alice", "wrong-password")).status_code == 401
    assert await redis_server.count("alice") == 1


async def test_a_quick_redis_restart_goes_unnoticed(
    workers: tuple[httpx.AsyncClient, httpx.AsyncClient],
    redis_server: RedisServer,
    logged: Records,
) -> None:
    one, _ = workers
    username = f"user_{uuid.uuid4().hex[:8]}"
    assert (await attempt(one, username, "wrong-password")).status_code == 401
    redis_server.stop()
    redis_server.start()
    # The pooled connection died with the old server: replaced, with no fallback.
    assert (await attempt(one, username, "wrong-password")).status_code == 401
    assert await redis_server.count(username) == 1
    assert (await attempt(one, "alice", PASSWORD)).status_code == 200
    assert logged.levels == []


async def test_a_hung_redis_does_not_stall_logins(
    workers: tuple[httpx.AsyncClient, httpx.AsyncClient],
    redis_server: RedisServer,
    logged: Records,
) -> None:
    one, _ = workers
    assert (await attempt(one, "alice", PASSWORD)).status_code == 200
    redis_server.freeze()
    started = time.monotonic()
    # The first login waits for Redis's timeout once; the next ones do not wait at all.
    first, seconds = await timed_attempt(one, "alice", PASSWORD)
    assert (first, seconds < 2) == (200, True)
    for _ in range(5):
        status, seconds = await timed_attempt(one, "alice", PASSWORD)
        assert (status, seconds < 0.5) == (200, True)
    assert time.monotonic() - started < 3
    ready = await one.get("/readyz")  # within its own 1 s limit, as a degraded check
    assert ready.json()["checks"]["redis"] == FALLBACK
    assert logged.levels == ["WARNING"]


async def test_parallel_guesses_cannot_outrun_the_limit_while_redis_goes(
    workers: tuple[httpx.AsyncClient, httpx.AsyncClient],
    redis_server: RedisServer,
    logged: Records,
) -> None:
    one, _ = workers
    redis_server.stop()
    # Every guess of the burst meets the outage at once; each is still counted first.
    burst = await asyncio.gather(*(attempt(one, "alice", "wrong-password") for _ in range(30)))
    counted = Counter(response.status_code for response in burst)
    assert counted[401] <= 5
    assert counted[401] + counted[429] == 30, counted
    assert logged.levels == ["WARNING"]
