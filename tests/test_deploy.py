"""The deploy documentation, run as written: migrate, then two servers (gunicorn with two
uvicorn workers, and a second "machine") sharing one PostgreSQL and one Redis. Login
throttling and token revocation hold across all of them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli_support import EXAMPLE, PG_URL, TEST_SECRET, fresh_database, manage
from tests.conftest import DATABASE_ENV
from tests.test_throttle import REDIS_URL

pytestmark = pytest.mark.postgres
PASSWORD = "tulip-garden-42"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited while starting"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


@pytest.fixture
def deployment(tmp_path: Path, backend: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    if backend != "postgresql" or not PG_URL:
        pytest.skip("deployments run on PostgreSQL")
    with fresh_database(tmp_path, backend) as database_url:
        env = {
            "PATH": os.environ["PATH"],
            **DATABASE_ENV,
            "CRUDKIT_SETTINGS_MODULE": "settings",
            "CRUDKIT_DEBUG": "false",
            "CRUDKIT_ALLOWED_HOSTS": "127.0.0.1",
            "CRUDKIT_SECRET_KEY": TEST_SECRET,
            "CRUDKIT_DATABASE_URL": database_url,
            "CRUDKIT_REDIS_URL": REDIS_URL,
            "CRUDKIT_SUPERUSER_PASSWORD": PASSWORD,
        }
        migrated = manage(["migrate"], env=env)
        assert migrated.returncode == 0, migrated.stderr
        gunicorn_port, machine_port = free_port(), free_port()
        gunicorn = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "crudkit.app:create_app()",
                "--worker-class", "uvicorn_worker.UvicornWorker",
                "--workers", "2", "--bind", f"127.0.0.1:{gunicorn_port}",
                "--graceful-timeout", "30",
            ],
            cwd=EXAMPLE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        machine = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--port", str(machine_port)],
            cwd=EXAMPLE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        servers = [gunicorn, machine]
        try:
            first, second = f"http://127.0.0.1:{gunicorn_port}", f"http://127.0.0.1:{machine_port}"
            wait_until_up(first, gunicorn)
            wait_until_up(second, machine)
            yield first, second, env
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(timeout=30)


def test_two_servers_share_throttle_and_revocation(
    deployment: tuple[str, str, dict[str, str]],
) -> None:
    first, second, env = deployment
    for url in (first, second):
        ready = httpx.get(f"{url}/readyz")
        assert ready.json() == {
            "status": "ok",
            "checks": {"database": "ok", "migrations": "ok", "redis": "ok"},
        }
    tag = uuid.uuid4().hex[:8]  # Redis outlives the database
    carol, dave = f"carol_{tag}", f"dave_{tag}"
    for name in (carol, dave):
        created = manage(["createuser", name, "--noinput"], env=env)
        assert created.returncode == 0, created.stderr

    with httpx.Client() as client:
        for attempt in range(5):  # failures spread over both servers (and their workers)
            url = (first, second)[attempt % 2]
            denied = client.post(
                f"{url}/api/v1/auth/token", data={"username": carol, "password": "x"}
            )
            assert denied.status_code == 401
        for url in (first, second):
            throttled = client.post(
                f"{url}/api/v1/auth/token", data={"username": carol, "password": PASSWORD}
            )
            assert throttled.status_code == 429
            assert int(throttled.headers["retry-after"]) > 0

        login = client.post(
            f"{first}/api/v1/auth/token", data={"username": dave, "password": PASSWORD}
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        for _ in range(4):  # several requests, so both gunicorn workers see the token
            assert client.get(f"{first}/api/v1/auth/me", headers=headers).status_code == 200
        assert client.post(f"{second}/api/v1/auth/logout", headers=headers).status_code == 204
        for url in (first, first, first, second):
            assert client.get(f"{url}/api/v1/auth/me", headers=headers).status_code == 401
