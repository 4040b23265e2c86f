"""PgBouncer in transaction pooling mode in front of PostgreSQL (`db_pgbouncer`).

Each test starts a PgBouncer of its own (`scripts/pgbouncer.sh`, Debian's `pgbouncer`
package) in front of the suite's PostgreSQL server: concurrent API, auth and admin
traffic, `manage.py` migrations, and PgBouncer restarted in the middle of traffic.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

import crudkit
from crudkit.contrib.auth.testing import auth_headers, create_user
from crudkit.testing import client_for
from tests.admin_support import login
from tests.cli_support import fresh_database, manage
from tests.conftest import EXAMPLE, ROOT, TEST_SECRET

pytestmark = pytest.mark.postgres

SCRIPT = ROOT / "scripts" / "pgbouncer.sh"
PASSWORD = "correct-horse-battery"


def _installed() -> bool:
    return shutil.which("pgbouncer") is not None or Path("/usr/sbin/pgbouncer").exists()


class PgBouncer:
    """A PgBouncer on a free local port in front of the server of `server_url`."""

    def __init__(self, directory: Path, server_url: str) -> None:
        server = make_url(server_url)
        self.directory = directory
        self.server = (server.host or "127.0.0.1", server.port or 5432)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])

    def url(self, database_url: str) -> str:
        """`database_url`, reached through this PgBouncer."""
        url = make_url(database_url).set(host="127.0.0.1", port=self.port)
        return url.render_as_string(hide_password=False)

    def start(self) -> None:
        host, port = self.server
        self._script("start", str(self.port), host, str(port))

    def stop(self) -> None:
        self._script("stop")

    def _script(self, *args: str) -> None:
        done = subprocess.run(
            ["bash", str(SCRIPT), args[0], str(self.directory), *args[1:]],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr


@pytest.fixture
def pgbouncer(database_url: str) -> Iterator[PgBouncer]:
    if not _installed():
        if os.environ.get("CI"):
            pytest.fail("pgbouncer is not installed (Debian's `pgbouncer` package)")
        pytest.skip("pgbouncer is not installed")
    # Not under pytest's private temporary directory: run as root, the script hands the
    # directory to the `postgres` user, as pgbouncer refuses to run as root.
    directory = Path(tempfile.mkdtemp(prefix="crudkit-pgbouncer-"))
    bouncer = PgBouncer(directory, database_url)
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def bounced(settings: crudkit.Settings, pgbouncer: PgBouncer) -> crudkit.Settings:
    """The suite's settings with the database reached through PgBouncer."""
    return settings.model_copy(
        update={
            "database_url": pgbouncer.url(settings.database_url),
            "db_pgbouncer": True,
            "db_pool_timeout": 2.0,
        }
    )


async def _gather_limited(calls: list[Callable[[], Awaitable[int]]], limit: int) -> list[int]:
    gate = asyncio.Semaphore(limit)

    async def run(call: Callable[[], Awaitable[int]]) -> int:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(run(call) for call in calls)))


async def test_mixed_traffic_through_pgbouncer(backend: str, bounced: crudkit.Settings) -> None:
    # More clients than PgBouncer has server connections, so consecutive transactions of
    # one client land on server connections another client used: prepared statements
    # kept across transactions would be missing there, or taken under the same name.
    app = crudkit.create_app(bounced)
    async with client_for(app) as client, client_for(app) as admin:
        owner = await create_user(app, "owner", is_staff=True, is_superuser=True)
        headers = await auth_headers(app, owner)
        assert (await login(admin, "owner")).status_code == 302
        category = await client.post("/api/v1/categories", json={"name": "Lamps"}, headers=headers)
        assert category.status_code == 201, category.text

        async def create(n: int) -> int:
            payload = {"name": f"lamp {n}", "price": "9.50", "category_id": category.json()["id"]}
            answer = await client.post("/api/v1/products", json=payload, headers=headers)
            return answer.status_code

        async def read(path: str) -> int:
            return (await client.get(path, headers=headers)).status_code

        async def token() -> int:
            form = {"username": "owner", "password": PASSWORD}
            return (await client.post("/api/v1/auth/token", data=form)).status_code

        async def admin_page() -> int:
            return (await admin.get("/admin/product/list")).status_code

        calls: list[Callable[[], Awaitable[int]]] = []
        for n in range(60):
            calls += [
                lambda n=n: create(n),  # type: ignore[misc]
                lambda: read("/api/v1/products?limit=20"),
                lambda: read("/api/v1/products?search=lamp&ordering=-price"),
                lambda: read(f"/api/v1/categories/{category.json()['id']}"),
                # Not /healthz: it answers 503 when its SELECT 1 waits over a second,
                # which 40 clients on 20 server connections of a busy machine may.
                (admin_page, token, lambda: read("/api/v1/tags"))[n % 3],
            ]
        statuses = await _gather_limited(calls, 40)
    await app.state.db.dispose()
    assert [s for s in statuses if s >= 300] == []
    assert statuses.count(201) == 60


def _environment(url: str, *, pgbouncer: bool = True) -> dict[str, str]:
    """`manage.py`'s environment: the project's database through PgBouncer."""
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith("CRUDKIT_")},
        "CRUDKIT_DATABASE_URL": url,
        "CRUDKIT_DB_PGBOUNCER": str(pgbouncer).lower(),
        "CRUDKIT_SECRET_KEY": TEST_SECRET,
        "CRUDKIT_DEBUG": "false",
        "CRUDKIT_ALLOWED_HOSTS": "testserver",
    }


def _manage(url: str, *args: str, pgbouncer: bool = True) -> subprocess.CompletedProcess[str]:
    return manage(["--settings", "settings", *args], env=_environment(url, pgbouncer=pgbouncer))


def test_check_deploy_tells_a_pooler_without_the_setting(
    backend: str, pgbouncer: PgBouncer, database_url: str
) -> None:
    bounced = pgbouncer.url(database_url)
    found = _manage(bounced, "check", "--deploy", pgbouncer=False).stdout
    assert "crudkit.W008 (warning): database_url leads to a connection pooler" in found
    assert "CRUDKIT_DB_PGBOUNCER=true" in found
    assert "crudkit.W008" not in _manage(bounced, "check", "--deploy").stdout
    assert "crudkit.W008" not in _manage(database_url, "check", "--deploy", pgbouncer=False).stdout


def test_migrations_through_pgbouncer(backend: str, pgbouncer: PgBouncer, tmp_path: Path) -> None:
    with fresh_database(tmp_path, backend) as direct_url:
        url = pgbouncer.url(direct_url)
        # Two machines deploying at once take turns (the migration lock), and nothing
        # is left behind on PgBouncer's server connections for the next command.
        command = [sys.executable, "manage.py", "--settings", "settings", "migrate"]
        both = [
            subprocess.Popen(command, cwd=EXAMPLE, env=_environment(url), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]  # fmt: skip
        outputs = [process.communicate(timeout=120) for process in both]
        for process, (out, err) in zip(both, outputs, strict=True):
            assert process.returncode == 0, out + err
        assert sum("Applying" in out for out, _ in outputs) >= 1
        shown = _manage(url, "showmigrations")
        assert shown.returncode == 0, shown.stderr
        assert "[X]" in shown.stdout
        assert "[ ]" not in shown.stdout
        again = _manage(url, "migrate")
        assert again.returncode == 0, again.stderr
        assert "No migrations to apply." in again.stdout
        # makemigrations compares with a scratch database, created and dropped through
        # PgBouncer too.
        check = _manage(url, "makemigrations", "--check")
        assert check.returncode == 0, check.stdout + check.stderr


async def test_pgbouncer_restart_is_503_then_recovers(
    backend: str, bounced: crudkit.Settings, pgbouncer: PgBouncer
) -> None:
    app = crudkit.create_app(bounced)
    async with client_for(app) as client:
        owner = await create_user(app, "owner")
        headers = await auth_headers(app, owner)
        outcomes: list[tuple[str, int, float]] = []
        stop = asyncio.Event()

        async def traffic(kind: str) -> None:
            n = 0
            while not stop.is_set():
                started = time.monotonic()
                if kind == "write":
                    n += 1
                    payload = {"name": f"lamp {n}", "price": "1"}
                    answer = await client.post("/api/v1/products", json=payload, headers=headers)
                else:
                    answer = await client.get("/api/v1/products?limit=5", headers=headers)
                outcomes.append((kind, answer.status_code, time.monotonic() - started))
                await asyncio.sleep(0.01)

        tasks = [asyncio.create_task(traffic(kind)) for kind in ("read", "read", "write")]
        await asyncio.sleep(0.5)
        before = len(outcomes)
        await asyncio.to_thread(pgbouncer.stop)  # the requests go on meanwhile
        down = len(outcomes)
        await asyncio.sleep(1.0)
        health = await client.get("/healthz")
        assert health.status_code == 503
        during = outcomes[down:]
        await asyncio.to_thread(pgbouncer.start)
        back = len(outcomes)
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*tasks)

        assert {status for _, status, _ in outcomes[:before]} == {200, 201}
        # While it is down: 503 at once (a refused connection), nothing else, no hang.
        assert during
        assert {status for _, status, _ in during} == {503}
        assert max(seconds for _, _, seconds in during) < 1.0
        # Back: the same app serves again, without a restart.
        after = outcomes[back + 6 :]
        assert after
        assert {status for _, status, _ in after} == {200, 201}
        assert (await client.get("/healthz")).status_code == 200
    await app.state.db.dispose()
