"""Failed logins are throttled per username and client, in memory or through Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

import crudkit
from crudkit.contrib.auth.testing import create_user
from crudkit.testing import client_for, create_tables

TOKEN = "/api/v1/auth/token"
REDIS_URL = os.environ.get("CRUDKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


async def attempt(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(TOKEN, data={"username": username, "password": password})


async def test_memory_throttle(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create_user(app, "alice")
    await create_user(app, "bob")
    for _ in range(5):
        assert (await attempt(client, "alice", "wrong-password")).status_code == 401
    throttled = await attempt(client, "alice", "correct-horse-battery")
    assert throttled.status_code == 429
    assert 0 < int(throttled.headers["retry-after"]) <= 300
    # Other usernames are unaffected, and unknown usernames are throttled alike.
    assert (await attempt(client, "bob", "correct-horse-battery")).status_code == 200
    for _ in range(5):
        await attempt(client, "nobody", "x")
    assert (await attempt(client, "nobody", "x")).status_code == 429


async def test_success_resets_the_count(app: FastAPI, client: httpx.AsyncClient) -> None:
    await create_user(app, "alice")
    for _ in range(4):
        await attempt(client, "alice", "wrong-password")
    assert (await attempt(client, "alice", "correct-horse-battery")).status_code == 200
    for _ in range(4):
        assert (await attempt(client, "alice", "wrong-password")).status_code == 401


async def _redis_available() -> bool:
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        return bool(await redis.ping())
    except OSError:
        return False
    finally:
        await redis.aclose()


@pytest.fixture
async def two_workers(settings: crudkit.Settings) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    """Two app instances sharing one database and one Redis, like two workers."""
    if not await _redis_available():
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS_URL}")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    shared = settings.model_copy(update={"redis_url": REDIS_URL})
    first, second = crudkit.create_app(shared), crudkit.create_app(shared)
    await create_tables(first)
    yield first, second
    for app in (first, second):
        await app.state.db.dispose()


async def test_redis_throttle_holds_across_workers(two_workers: tuple[FastAPI, FastAPI]) -> None:
    first, second = two_workers
    username = f"user_{uuid.uuid4().hex[:8]}"  # Redis outlives the test database
    await create_user(first, username)
    async with client_for(first) as one, client_for(second) as two:
        for index in range(5):
            worker = one if index % 2 else two
            assert (await attempt(worker, username, "wrong-password")).status_code == 401
        assert (await attempt(one, username, "correct-horse-battery")).status_code == 429
        assert (await attempt(two, username, "correct-horse-battery")).status_code == 429
        other = f"other_{uuid.uuid4().hex[:8]}"
        await create_user(first, other)
        assert (await attempt(two, other, "correct-horse-battery")).status_code == 200
