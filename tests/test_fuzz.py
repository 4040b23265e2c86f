"""Schemathesis against the example project's OpenAPI schema, on a live server.

Generated requests (valid and invalid) as a normal user and as a superuser, with
Schemathesis' checks: no server errors, only documented status codes, responses
that match their schema. A fixed seed and a bounded number of examples keep the
run short and repeatable; any failure is a real bug to fix, not to filter out.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import insert

import crudkit
from crudkit.contrib.auth.testing import auth_headers, create_user
from crudkit.db import table_of
from crudkit.testing import database
from shop.models import Category, Order, Product
from tests.cli_support import fresh_database

MAX_EXAMPLES = 25
SEED = 20261126


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def prepare(app: FastAPI) -> dict[str, str]:
    from crudkit.migrator import Migrations

    # Migrated, as a deployment is: /readyz must answer 200 too.
    async with database(app).engine.begin() as conn:
        await conn.run_sync(Migrations(app.state.apps).upgrade)
    alice = await create_user(app, "alice")
    root = await create_user(app, "root", is_staff=True, is_superuser=True)
    async with database(app).transaction() as conn:
        await conn.execute(insert(table_of(Category)), [{"name": f"c{i}"} for i in range(3)])
        await conn.execute(
            insert(table_of(Product)),
            [
                {"name": f"p{i}", "price": Decimal(i), "owner_id": alice, "category_id": 1}
                for i in range(5)
            ],
        )
        await conn.execute(
            insert(table_of(Order)), [{"product_id": 1, "quantity": 2, "owner_id": alice}]
        )
    tokens = {
        "user": (await auth_headers(app, alice))["Authorization"],
        "superuser": (await auth_headers(app, root))["Authorization"],
    }
    await database(app).dispose()
    return tokens


@pytest.fixture(scope="module")
def live_server(
    _base_settings: crudkit.Settings, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    with fresh_database(tmp_path_factory.mktemp("fuzz"), backend, "fuzz") as url:
        yield from serve(_base_settings.model_copy(update={"database_url": url}))


def serve(settings: crudkit.Settings) -> Iterator[tuple[str, dict[str, str]]]:
    app = crudkit.create_app(settings)
    tokens = asyncio.run(prepare(app))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", tokens
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.mark.parametrize("caller", ["user", "superuser"])
def test_schemathesis_finds_nothing(
    live_server: tuple[str, dict[str, str]], caller: str, tmp_path: Path
) -> None:
    url, tokens = live_server
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        # Valid-looking data may still break rules a schema cannot state (a common
        # password, a foreign key to a missing row): those 422s are correct answers.
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--header",
        f"Authorization: {tokens[caller]}",
        # Logging out or changing the password would end the session under test.
        "--exclude-path",
        "/api/v1/auth/logout",
        "--exclude-path",
        "/api/v1/auth/password",
        "--report-dir",
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
