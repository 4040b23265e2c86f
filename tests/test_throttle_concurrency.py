"""Login throttling and password hashing under bursts of parallel requests.

Each attempt is counted before its password is checked, so 50 parallel guesses
for one username get at most `login_attempts` answers and 429s for the rest, in
one worker's memory or through Redis across two app instances, on the API and
the admin login alike. Hashing runs at most `password_hash_concurrency` at once
per worker; the requests beyond wait their turn or get 503, never 500.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import crudkit
from crudkit.contrib.auth import hashing
from crudkit.contrib.auth.testing import create_user, login
from crudkit.testing import client_for
from tests.admin_support import ORIGIN, PASSWORD, page_token
from tests.admin_support import login as admin_login_as
from tests.test_throttle import attempt, two_workers  # noqa: F401 (a fixture)

BURST = 50
AUTH = "/api/v1/auth"


def unique(prefix: str) -> str:
    """A username no earlier run used (Redis outlives the test database)."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)


async def admin_attempt(client: httpx.AsyncClient, token: str, username: str) -> httpx.Response:
    return await client.post(
        "/admin/login",
        data={"username": username, "password": "wrong-password-123", "csrf_token": token},
        headers={"Origin": ORIGIN},
    )


# Login throttling.


async def test_parallel_wrong_logins_cannot_outrun_the_limit(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    limit = app.state.settings.login_attempts
    await create_user(app, "alice")
    await create_user(app, "bob")

    burst = await asyncio.gather(
        *(attempt(client, "alice", "wrong-password") for _ in range(BURST))
    )

    counted = statuses(burst)
    assert counted[401] <= limit
    assert counted[401] + counted[429] == BURST, counted
    assert all(0 < int(r.headers["retry-after"]) <= 300 for r in burst if r.status_code == 429)
    # Throttled: even the right password is refused; other usernames are not.
    assert (await attempt(client, "alice", "correct-horse-battery")).status_code == 429
    assert (await attempt(client, "bob", "correct-horse-battery")).status_code == 200


async def test_parallel_wrong_logins_across_two_workers(
    two_workers: tuple[FastAPI, FastAPI],  # noqa: F811
) -> None:
    first, second = two_workers
    limit = first.state.settings.login_attempts
    username, other = unique("carol"), unique("dave")
    await create_user(first, username)
    await create_user(first, other)
    async with client_for(first) as one, client_for(second) as two:
        burst = await asyncio.gather(
            *(attempt((one, two)[i % 2], username, "wrong-password") for i in range(BURST))
        )

        counted = statuses(burst)
        assert counted[401] <= limit
        assert counted[401] + counted[429] == BURST, counted
        for worker in (one, two):
            assert (await attempt(worker, username, "correct-horse-battery")).status_code == 429
        assert (await attempt(two, other, "correct-horse-battery")).status_code == 200


async def test_parallel_wrong_admin_logins_cannot_outrun_the_limit(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    limit = app.state.settings.login_attempts
    await create_user(app, "ann", is_staff=True)
    await create_user(app, "ben", is_staff=True)
    token = await page_token(client)

    burst = await asyncio.gather(*(admin_attempt(client, token, "ann") for _ in range(BURST)))

    counted = statuses(burst)
    assert counted[400] <= limit
    assert counted[400] + counted[429] == BURST, counted
    assert all("Too many failed attempts" in r.text for r in burst if r.status_code == 429)
    right = await client.post(
        "/admin/login",
        data={"username": "ann", "password": PASSWORD, "csrf_token": token},
        headers={"Origin": ORIGIN},
    )
    assert right.status_code == 429
    assert int(right.headers["retry-after"]) > 0
    other = await client.post(
        "/admin/login",
        data={"username": "ben", "password": PASSWORD, "csrf_token": token},
        headers={"Origin": ORIGIN},
    )
    assert other.status_code == 302


async def test_parallel_wrong_admin_logins_across_two_workers(
    two_workers: tuple[FastAPI, FastAPI],  # noqa: F811
) -> None:
    first, second = two_workers
    limit = first.state.settings.login_attempts
    username = unique("erin")
    await create_user(first, username, is_staff=True)
    async with client_for(first) as one, client_for(second) as two:
        tokens = {one: await page_token(one), two: await page_token(two)}
        clients = (one, two)
        burst = await asyncio.gather(
            *(admin_attempt(clients[i % 2], tokens[clients[i % 2]], username) for i in range(BURST))
        )

        counted = statuses(burst)
        assert counted[400] <= limit
        assert counted[400] + counted[429] == BURST, counted
        for worker in clients:
            right = await worker.post(
                "/admin/login",
                data={"username": username, "password": PASSWORD, "csrf_token": tokens[worker]},
                headers={"Origin": ORIGIN},
            )
            assert right.status_code == 429


async def test_parallel_wrong_password_changes_are_throttled(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A stolen access token buys no more guesses at the password than the login form."""
    limit = app.state.settings.login_attempts
    await create_user(app, "alice")
    headers = await login(client, "alice", "correct-horse-battery")

    async def change(current: str) -> httpx.Response:
        return await client.post(
            f"{AUTH}/password",
            json={"current_password": current, "new_password": "another-long-secret"},
            headers=headers,
        )

    burst = await asyncio.gather(*(change("wrong-password") for _ in range(BURST)))

    counted = statuses(burst)
    assert counted[422] <= limit
    assert counted[422] + counted[429] == BURST, counted
    assert (await change("correct-horse-battery")).status_code == 429
    assert (await attempt(client, "alice", "correct-horse-battery")).status_code == 429


async def test_a_right_password_change_clears_the_count(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    limit = app.state.settings.login_attempts
    await create_user(app, "alice")
    headers = await login(client, "alice", "correct-horse-battery")
    for _ in range(limit - 1):
        wrong = await client.post(
            f"{AUTH}/password",
            json={"current_password": "wrong-password", "new_password": "another-long-secret"},
            headers=headers,
        )
        assert wrong.status_code == 422
    changed = await client.post(
        f"{AUTH}/password",
        json={"current_password": "correct-horse-battery", "new_password": "another-long-secret"},
        headers=headers,
    )
    assert changed.status_code == 204
    for _ in range(limit):
        assert (await attempt(client, "alice", "wrong-password")).status_code == 401


# Password hashing.


class CountingContext:
    """Stands for passlib's `CryptContext`: counts the hashes running at once, each made
    to last `delay` seconds so that a burst overlaps."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.calls = 0
        self.started = threading.Event()

    @contextmanager
    def _counted(self) -> Iterator[None]:
        with self.lock:
            self.running += 1
            self.calls += 1
            self.peak = max(self.peak, self.running)
            self.started.set()
        try:
            time.sleep(self.delay)
            yield
        finally:
            with self.lock:
                self.running -= 1

    def hash(self, *args: Any, **kwargs: Any) -> Any:
        with self._counted():
            return self.inner.hash(*args, **kwargs)

    def verify(self, *args: Any, **kwargs: Any) -> Any:
        with self._counted():
            return self.inner.verify(*args, **kwargs)

    def verify_and_update(self, *args: Any, **kwargs: Any) -> Any:
        with self._counted():
            return self.inner.verify_and_update(*args, **kwargs)


@pytest.fixture
async def hashing_app(
    settings: crudkit.Settings, request: pytest.FixtureRequest
) -> AsyncIterator[FastAPI]:
    """An app on the test database with `password_hash_concurrency` from the test's param."""
    concurrency = getattr(request, "param", 3)
    built = crudkit.create_app(
        settings.model_copy(update={"password_hash_concurrency": concurrency})
    )
    try:
        yield built
    finally:
        await built.state.auth.close()
        await built.state.db.dispose()


def counting(monkeypatch: pytest.MonkeyPatch, delay: float) -> CountingContext:
    context = CountingContext(hashing.context, delay)
    monkeypatch.setattr(hashing, "context", context)
    return context


async def test_a_burst_hashes_at_most_the_setting_at_once(
    hashing_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    concurrency = hashing_app.state.settings.password_hash_concurrency
    names = [f"user{i}" for i in range(10)]
    for name in names:
        await create_user(hashing_app, name)
    context = counting(monkeypatch, delay=0.02)

    async with client_for(hashing_app) as client:
        registrations = [
            client.post(
                f"{AUTH}/register",
                json={"username": f"new{i}", "email": "", "password": "tulip-garden-42"},
            )
            for i in range(20)
        ]
        logins = [attempt(client, name, "correct-horse-battery") for name in names]
        unknown = [attempt(client, f"ghost{i}", "whatever-password") for i in range(10)]
        wrong = [attempt(client, name, "wrong-password") for name in names]
        burst = await asyncio.gather(*registrations, *logins, *unknown, *wrong)

    counted = statuses(burst)
    assert counted == Counter({201: 20, 200: 10, 401: 20}), counted
    assert context.calls == len(burst)  # every request hashed once, dummy checks included
    assert context.peak == concurrency  # reached under the burst, never passed


@pytest.mark.parametrize("hashing_app", [1], indirect=True)
async def test_requests_that_cannot_get_a_turn_get_503(
    hashing_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting(monkeypatch, delay=0.3)
    hashing_app.state.auth.hasher.wait = 0.05  # a short wait, so the burst overflows it
    await create_user(hashing_app, "ann", is_staff=True)

    async with client_for(hashing_app) as client:
        burst = await asyncio.gather(
            *(
                client.post(
                    f"{AUTH}/register",
                    json={"username": f"new{i}", "email": "", "password": "tulip-garden-42"},
                )
                for i in range(6)
            ),
            *(attempt(client, f"ghost{i}", "whatever-password") for i in range(4)),
        )
        counted = statuses(burst)
        assert set(counted) <= {201, 401, 503}, counted
        assert counted[503] >= 1
        assert counted[201] + counted[401] >= 1
        for response in burst:
            if response.status_code == 503:
                assert int(response.headers["retry-after"]) > 0
                assert "try again" in response.json()["detail"]

        # The admin login says so on its form.
        token = await page_token(client)
        admin = await asyncio.gather(
            *(
                client.post(
                    "/admin/login",
                    data={"username": "ann", "password": PASSWORD, "csrf_token": token},
                    headers={"Origin": ORIGIN},
                )
                for _ in range(3)
            )
        )
        admin_counted = statuses(admin)
        assert set(admin_counted) <= {302, 503}, admin_counted
        assert admin_counted[503] >= 1
        busy = next(r for r in admin if r.status_code == 503)
        assert "The server is busy" in busy.text
        assert int(busy.headers["retry-after"]) > 0


@pytest.mark.parametrize("hashing_app", [1], indirect=True)
async def test_admin_user_form_says_when_hashing_is_busy(
    hashing_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_user(hashing_app, "root", is_staff=True, is_superuser=True)
    async with client_for(hashing_app) as client:
        assert (await admin_login_as(client, "root")).status_code == 302
        token = await page_token(client, "/admin/user/create")
        context = counting(monkeypatch, delay=0.5)
        hashing_app.state.auth.hasher.wait = 0.05
        # A sign-up takes the worker's only hashing turn...
        signup = asyncio.create_task(
            client.post(
                f"{AUTH}/register",
                json={"username": "early", "email": "", "password": "tulip-garden-42"},
            )
        )
        assert await asyncio.to_thread(context.started.wait, 10)

        # ...so the admin's new user cannot be hashed in time: a message, not an error page.
        response = await client.post(
            "/admin/user/create",
            data={"username": "ann", "password": "violet-otter-harbour", "csrf_token": token},
            headers={"Origin": ORIGIN},
        )

        assert response.status_code == 400, response.text
        assert "The server is busy" in response.text
        assert (await signup).status_code == 201
