"""The scale-out topology of docs/deploy.md, run as written: gunicorn workers reach the
primary through PgBouncer in transaction pooling mode, read lists and retrieves from a
streaming replica, and share Redis. Needs pgbouncer and the replica that
`scripts/replica.sh start` runs (`CRUDKIT_TEST_REPLICA_URL`), as `.ci/run` provides."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.cli_support import EXAMPLE, PG_URL, TEST_SECRET, fresh_database, manage
from tests.test_deploy import free_port, wait_until_up
from tests.test_pgbouncer import PgBouncer, _installed
from tests.test_throttle import REDIS_URL

pytestmark = pytest.mark.postgres
REPLICA = os.environ.get("CRUDKIT_TEST_REPLICA_URL")
PASSWORD = "tulip-garden-42"


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _fetchval(url: str, sql: str) -> Any:
    conn = await asyncpg.connect(_dsn(url))
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def wait_for_replica(primary_url: str, replica_url: str) -> None:
    """Until the replica has replayed what the primary had written (the new database)."""
    lsn = asyncio.run(_fetchval(primary_url, "SELECT pg_current_wal_lsn()::text"))
    server = make_url(replica_url).set(database="postgres").render_as_string(False)
    deadline = time.monotonic() + 60
    check = f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"
    while not asyncio.run(_fetchval(server, check)):
        assert time.monotonic() < deadline, "the replica did not catch up"
        time.sleep(0.1)


@pytest.fixture
def topology(tmp_path: Path, backend: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    """Two gunicorn workers behind PgBouncer, with a replica and Redis; yields the base
    URL, the replica's URL of the project's database, and the environment."""
    if backend != "postgresql" or not PG_URL:
        pytest.skip("the topology runs on PostgreSQL")
    if not REPLICA or not _installed():
        if os.environ.get("CI"):
            pytest.fail("CI needs pgbouncer and CRUDKIT_TEST_REPLICA_URL (scripts/replica.sh)")
        pytest.skip("needs pgbouncer and CRUDKIT_TEST_REPLICA_URL (scripts/replica.sh start)")
    with fresh_database(tmp_path, backend) as database_url:
        # Not under pytest's temporary directory: the script hands it to `postgres`.
        directory = Path(tempfile.mkdtemp(prefix="crudkit-topology-"))
        bouncer = PgBouncer(directory, database_url)
        bouncer.start()
        replica_url = (
            make_url(REPLICA)
            .set(database=make_url(database_url).database)
            .render_as_string(hide_password=False)
        )
        env = {
            "PATH": os.environ["PATH"],
            "CRUDKIT_SETTINGS_MODULE": "settings",
            "CRUDKIT_DEBUG": "false",
            "CRUDKIT_ALLOWED_HOSTS": "127.0.0.1",
            "CRUDKIT_SECRET_KEY": TEST_SECRET,
            # As docs/deploy.md sets them: the primary through PgBouncer, the replica, Redis.
            "CRUDKIT_DATABASE_URL": bouncer.url(database_url),
            "CRUDKIT_DB_PGBOUNCER": "true",
            "CRUDKIT_DATABASE_REPLICA_URLS": replica_url,
            "CRUDKIT_REDIS_URL": REDIS_URL,
            "CRUDKIT_SUPERUSER_PASSWORD": PASSWORD,
        }
        server: subprocess.Popen[bytes] | None = None
        try:
            for command in (["migrate"], ["createsuperuser", "--noinput", "--username", "ops"]):
                done = manage(command, env=env)
                assert done.returncode == 0, done.stderr
            wait_for_replica(database_url, replica_url)
            port = free_port()
            server = subprocess.Popen(
                [
                    sys.executable, "-m", "gunicorn", "crudkit.app:create_app()",
                    "--worker-class", "uvicorn_worker.UvicornWorker",
                    "--workers", "2", "--bind", f"127.0.0.1:{port}",
                    "--graceful-timeout", "30",
                ],
                cwd=EXAMPLE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            wait_until_up(url, server)
            yield url, replica_url, env
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
            bouncer.stop()
            shutil.rmtree(directory, ignore_errors=True)


def test_workers_pgbouncer_primary_replica_and_redis(
    topology: tuple[str, str, dict[str, str]],
) -> None:
    url, replica_url, _ = topology
    with httpx.Client(base_url=url, timeout=10) as client:
        deadline = time.monotonic() + 10  # each worker's first replica check
        while True:
            ready = client.get("/readyz").json()
            if ready["status"] == "ok" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert ready["status"] == "ok", ready
        assert ready["checks"] == {"database": "ok", "migrations": "ok", "redis": "ok"}
        assert [replica["state"] for replica in ready["replicas"]] == ["ok"]

        login = client.post("/api/v1/auth/token", data={"username": "ops", "password": PASSWORD})
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = [
            client.post(
                "/api/v1/products", json={"name": f"Lamp {n}", "price": "9.90"}, headers=auth
            )
            for n in range(20)
        ]
        assert [answer.status_code for answer in created] == [201] * 20
        ids = [answer.json()["id"] for answer in created]

        # The replica replays the writes within its lag.
        deadline = time.monotonic() + 10
        while True:
            listed = client.get("/api/v1/products?limit=50", headers=auth)
            assert listed.status_code == 200, listed.text
            if sorted(item["id"] for item in listed.json()["items"]) == ids:
                break
            assert time.monotonic() < deadline, listed.json()
            time.sleep(0.1)
        for pk in ids:
            assert client.get(f"/api/v1/products/{pk}", headers=auth).status_code == 200
        patched = client.patch(f"/api/v1/products/{ids[0]}", json={"price": "5.00"}, headers=auth)
        assert patched.status_code == 200, patched.text
        assert patched.json()["price"] == "5.00"  # the write's answer, from the primary
        # Reads come from the replica: while its replay is paused, a row just written
        # on the primary is not found there (within `replica_max_lag`), then it is.
        server = make_url(replica_url).set(database="postgres").render_as_string(False)
        asyncio.run(_fetchval(server, "SELECT pg_wal_replay_pause()"))
        try:
            late = client.post(
                "/api/v1/products", json={"name": "Late", "price": "1"}, headers=auth
            )
            assert late.status_code == 201, late.text
            stale = client.get(f"/api/v1/products/{late.json()['id']}", headers=auth)
            assert stale.status_code == 404, stale.text
        finally:
            asyncio.run(_fetchval(server, "SELECT pg_wal_replay_resume()"))
        deadline = time.monotonic() + 10
        while client.get(f"/api/v1/products/{late.json()['id']}", headers=auth).status_code != 200:
            assert time.monotonic() < deadline, "the replica did not replay the row"
            time.sleep(0.1)
