"""`X-Forwarded-For` is believed only from the proxies in `forwarded_allow_ips`: a live
`runserver` (uvicorn) trusts no one by default, even 127.0.0.1, so a client cannot
escape login throttling by naming a new address for every guess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.cli_support import EXAMPLE, TEST_SECRET, fresh_database, manage
from tests.conftest import DATABASE_ENV
from tests.test_deploy import free_port, wait_until_up

ATTEMPTS = 5


@contextmanager
def runservers(*envs: dict[str, str], logs: Path) -> Iterator[list[str]]:
    """Start a `runserver` per environment, all at once; their URLs once they answer."""
    started: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    try:
        for index, env in enumerate(envs):
            port, log = free_port(), logs / f"server-{index}.log"
            with log.open("wb") as output:
                server = subprocess.Popen(
                    [sys.executable, "manage.py", "runserver", "--port", str(port)],
                    cwd=EXAMPLE, env=env, stdout=output, stderr=output,
                )  # fmt: skip
            started.append((f"http://127.0.0.1:{port}", server, log))
        for url, server, log in started:
            try:
                wait_until_up(url, server)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{log.read_text()}") from None
        yield [url for url, _, _ in started]
    finally:
        for _, server, _ in started:
            server.terminate()
        for _, server, _ in started:
            server.wait(timeout=30)


def guesses(url: str, username: str, count: int) -> list[int]:
    """Wrong passwords, each claiming to come from a different address."""
    with httpx.Client() as client:
        return [
            client.post(
                f"{url}/api/v1/auth/token",
                data={"username": username, "password": "wrong-password"},
                headers={"X-Forwarded-For": f"203.0.113.{index}"},
            ).status_code
            for index in range(count)
        ]


def test_forwarded_for_is_believed_only_from_listed_proxies(tmp_path: Path, backend: str) -> None:
    with fresh_database(tmp_path, backend) as database_url:
        env = {
            "PATH": os.environ["PATH"],
            **DATABASE_ENV,
            "CRUDKIT_SETTINGS_MODULE": "settings",
            "CRUDKIT_DEBUG": "false",
            "CRUDKIT_SECRET_KEY": TEST_SECRET,
            "CRUDKIT_DATABASE_URL": database_url,
            "CRUDKIT_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CRUDKIT_LOGIN_ATTEMPTS": str(ATTEMPTS),
            "CRUDKIT_ARGON2_TIME_COST": "1",  # cheap hashing: the test is about addresses
            "CRUDKIT_ARGON2_MEMORY_COST": "1024",
        }
        migrated = manage(["migrate"], env=env)
        assert migrated.returncode == 0, migrated.stderr
        with runservers(
            env, {**env, "CRUDKIT_FORWARDED_ALLOW_IPS": "127.0.0.1"}, logs=tmp_path
        ) as (untrusting, behind_proxy):
            # Nobody listed: the header is ignored and every guess counts for 127.0.0.1.
            assert guesses(untrusting, "alice", ATTEMPTS + 3) == [401] * ATTEMPTS + [429] * 3
            # 127.0.0.1 listed as the proxy: each address is a client of its own.
            assert guesses(behind_proxy, "alice", ATTEMPTS + 3) == [401] * (ATTEMPTS + 3)
