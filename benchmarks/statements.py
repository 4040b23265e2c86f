"""Round trips and SQL statements per request, counted once per app and scenario.

Each app runs in-process (httpx's ASGI transport) against PostgreSQL through
the counting proxy of `benchmarks.wire`, after warm-up requests so that
prepared-statement caches are filled as they are under load.
"""

from __future__ import annotations

import logging
import os
import random
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from benchmarks.config import (
    BENCH_PASSWORD,
    BENCH_USER,
    EXAMPLE_PROJECT,
    PG_HOST,
    PG_PORT,
    Dataset,
    crudkit_env,
)
from benchmarks.scenarios import Scenario
from benchmarks.wire import WireLog

WARMUP = 25
CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "ping ;")


@dataclass(frozen=True)
class Count:
    """What one request of a scenario sent to PostgreSQL."""

    app: str
    scenario: str
    trips: tuple[str, ...]

    @property
    def statements(self) -> int:
        """SQL statements proper: round trips less transaction control and pings."""
        return sum(1 for trip in self.trips if not trip.startswith(CONTROL))


async def count_statements(
    dataset: Dataset, owner_id: int, scenarios: list[Scenario], apps: list[str]
) -> list[Count]:
    """One `Count` per app (keys of `_BUILDERS`) and scenario it serves."""
    counts: list[Count] = []
    async with WireLog.serving(PG_HOST, PG_PORT) as log:
        for app_key in apps:
            async with AsyncExitStack() as stack:
                client, token = await stack.enter_async_context(
                    _BUILDERS[app_key](dataset, log.port, owner_id)
                )
                for scenario in scenarios:
                    for client_kind in scenario.clients(app_key):
                        headers = {"Authorization": f"Bearer {token}"} if client_kind else {}
                        label = f"{app_key} (token)" if client_kind else app_key
                        counts.append(await _count(log, client, scenario, headers, label))
    return counts


async def _count(
    log: WireLog,
    client: httpx.AsyncClient,
    scenario: Scenario,
    headers: dict[str, str],
    label: str,
) -> Count:
    for number in range(WARMUP):
        await _send(client, scenario, headers, number)
    log.clear()
    await _send(client, scenario, headers, WARMUP)
    return Count(label, scenario.name, tuple(log.trips))


async def _send(
    client: httpx.AsyncClient, scenario: Scenario, headers: dict[str, str], number: int
) -> None:
    path = scenario.path.replace("{id}", str(number % 100 + 1))
    # A fresh price each time: the ORM skips an UPDATE that would not change the row.
    price = f"{random.randint(100, 99_999) / 100:.2f}"
    body = scenario.body.replace("{n}", str(number)).replace("{price}", price)
    response = await client.request(
        scenario.method,
        path.lstrip("/"),
        content=body.encode() or None,
        headers={**headers, "Content-Type": "application/json"} if body else headers,
    )
    if response.status_code >= 400:
        raise RuntimeError(f"{scenario.name}: {response.status_code} {response.text[:300]}")


Builder = Callable[[Dataset, int, int], Any]


@asynccontextmanager
async def _nearlimit(
    dataset: Dataset, port: int, owner_id: int
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    from benchmarks.apps.nearlimit import create_app

    app = create_app(dataset.dsn(port=port), owner_id)
    async with app.router.lifespan_context(app), _client(app, "") as client:
        yield client, ""


@asynccontextmanager
async def _handwritten(
    dataset: Dataset, port: int, owner_id: int
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    from benchmarks.apps.handwritten import create_app

    app = create_app(dataset.sqlalchemy_url(port=port), owner_id)
    async with app.router.lifespan_context(app), _client(app, "") as client:
        yield client, ""


@asynccontextmanager
async def _crudkit(
    dataset: Dataset, port: int, owner_id: int
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    os.environ.update(crudkit_env(dataset.sqlalchemy_url(port=port)))
    if str(EXAMPLE_PROJECT) not in sys.path:
        sys.path.insert(0, str(EXAMPLE_PROJECT))
    from benchmarks.apps.crudkit_app import create_app

    app = create_app()
    logging.getLogger("crudkit.access").setLevel(logging.WARNING)  # one line per request
    async with app.router.lifespan_context(app), _client(app, "/api/v1") as client:
        response = await client.post(
            "auth/token", data={"username": BENCH_USER, "password": BENCH_PASSWORD}
        )
        response.raise_for_status()
        yield client, response.json()["access_token"]


def _client(app: Any, prefix: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=f"http://bench{prefix}"
    )


_BUILDERS: dict[str, Builder] = {
    "nearlimit": _nearlimit,
    "handwritten": _handwritten,
    "crudkit": _crudkit,
}
