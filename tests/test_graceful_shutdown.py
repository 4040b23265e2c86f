"""Graceful shutdown and restarts, measured from outside: live servers of the example
project under a concurrent write load, then a signal.

- `runserver` (uvicorn) on SIGTERM stops accepting (new connections are refused, never
  answered 500), lets the requests in flight finish, closes its pools and exits 0; past
  `shutdown_timeout` it cancels what is left, and a cancelled write leaves nothing.
- gunicorn with two uvicorn workers (as the deploy docs run it) on SIGHUP replaces both
  workers without one failed request; a worker stopped alone (SIGTERM) is replaced the
  same way.

Each time, what the clients saw is what the database holds: every product answered 201
is there whole (its columns, its two tag links and its history entry), and no product
exists that was not answered 201. Writes are made slow (`tests.slow_writes`) so that some
are inside their transaction when the signal comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.cli_support import EXAMPLE, ROOT, TEST_SECRET, fresh_database, manage, query
from tests.conftest import DATABASE_ENV
from tests.test_deploy import free_port

ADMIN, PASSWORD = "admin", "tulip-garden-42"
SHUTDOWN_TIMEOUT = 10
SLOW = 2.0
"""Seconds a slow write stalls inside its transaction."""


@dataclass
class Project:
    database_url: str
    env: dict[str, str]
    logs: Path
    markers: Path


@pytest.fixture
def project(tmp_path: Path, backend: str) -> Iterator[Project]:
    with fresh_database(tmp_path, backend) as database_url:
        markers = tmp_path / "stalls"
        markers.mkdir()
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(ROOT),  # tests.slow_writes
            "CRUDKIT_SETTINGS_MODULE": "settings",
            "CRUDKIT_DEBUG": "false",
            "CRUDKIT_ALLOWED_HOSTS": "127.0.0.1",
            "CRUDKIT_SECRET_KEY": TEST_SECRET,
            "CRUDKIT_DATABASE_URL": database_url,
            "CRUDKIT_INSTALLED_APPS": (
                "crudkit.contrib.auth,crudkit.contrib.admin,shop,tests.slow_writes"
            ),
            "CRUDKIT_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT),
            "CRUDKIT_SUPERUSER_PASSWORD": PASSWORD,
            "CRUDKIT_ARGON2_TIME_COST": "1",
            "CRUDKIT_ARGON2_MEMORY_COST": "1024",
            "CRUDKIT_ARGON2_PARALLELISM": "1",
            "SLOW_WRITES_DIR": str(markers),
            **DATABASE_ENV,
        }
        for command in (["migrate"], ["createsuperuser", "--noinput", "--username", ADMIN]):
            done = manage(command, env=env)
            assert done.returncode == 0, done.stderr
        yield Project(database_url, env, tmp_path / "server.log", markers)


@contextlib.contextmanager
def serving(project: Project, command: list[str]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The server `command` starts (`{port}` filled in), once it answers; killed if still up."""
    port = free_port()
    with project.logs.open("wb") as log:
        server = subprocess.Popen(
            [part.format(port=port) for part in command],
            cwd=EXAMPLE, env=project.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, f"the server exited at start:\n{log_tail(project)}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"no answer in 30 s:\n{log_tail(project)}"
            time.sleep(0.1)
        yield url, server
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def log_tail(project: Project) -> str:
    return project.logs.read_text(errors="replace")[-3000:]


def assert_no_app_error(project: Project) -> None:
    log = project.logs.read_text(errors="replace")
    assert "Exception in ASGI application" not in log, log_tail(project)
    assert '"level":"error"' not in log, log_tail(project)


UNANSWERED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
"""The connection closed before any answer: on a server stopping, one it closed while
idle between two requests, which the next request was already on its way to (the
server never read it, so no row may exist for it)."""


@dataclass
class Outcome:
    name: str
    request_id: str
    status: int | None
    """None: no answer (the error says why)."""
    error: str = ""
    at: float = 0.0
    """When the answer (or the error) came, on the monotonic clock."""
    retried: bool = False


@dataclass
class Load:
    """Clients creating products with unique names, and what each of them was answered."""

    url: str
    headers: dict[str, str]
    tags: list[int]
    writes: list[Outcome] = field(default_factory=list)
    reads: list[Outcome] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    retry_unanswered: bool = False
    """Send again, once, a request whose connection closed without an answer: what a
    client does when the server closed the idle keep-alive connection it was reusing."""

    def body(self, name: str) -> dict[str, object]:
        return {
            "name": name,
            "description": f"about {name}",
            "price": "12.50",
            "in_stock": False,
            "tags": self.tags,
        }

    async def create(self, client: httpx.AsyncClient, name: str, request_id: str) -> Outcome:
        outcome = await self.send(client, "POST", name, request_id, json=self.body(name))
        self.writes.append(outcome)
        return outcome

    async def send(
        self, client: httpx.AsyncClient, method: str, path_or_name: str, request_id: str,
        **options: object,
    ) -> Outcome:  # fmt: skip
        path = "/api/v1/products" if method == "POST" else path_or_name
        for retried in (False, True):
            try:
                answer = await client.request(
                    method,
                    path,
                    headers={"X-Request-ID": request_id},
                    **options,  # type: ignore[arg-type]
                )
            except UNANSWERED as error:
                if self.retry_unanswered and not retried:
                    continue
                outcome = Outcome(path_or_name, request_id, None, type(error).__name__)
            except httpx.TransportError as error:
                outcome = Outcome(path_or_name, request_id, None, type(error).__name__)
            else:
                outcome = Outcome(path_or_name, request_id, answer.status_code, answer.text[:200])
            outcome.at, outcome.retried = time.monotonic(), retried
            return outcome
        raise AssertionError("unreachable")

    def client(self) -> httpx.AsyncClient:
        # Keep-alive connections, as a client under load uses them.
        return httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=30)

    async def writer(
        self, number: int, *, slow_every: int = 0, until_refused: bool = False
    ) -> None:
        """Create products one after another until `stop` (or, with `until_refused`, until
        the server refuses the connection); every `slow_every`-th write is slow."""
        async with self.client() as client:
            for index in range(10_000):
                if self.stop.is_set():
                    return
                name = f"{self.run}-w{number}-{index}"
                slow = slow_every and index % slow_every == slow_every - 1
                request_id = f"slow-{SLOW / 4}-{name}" if slow else name
                outcome = await self.create(client, name, request_id)
                if until_refused and outcome.error == "ConnectError":
                    return

    async def reader(self) -> None:
        async with self.client() as client:
            while not self.stop.is_set():
                for path in ("/api/v1/products?limit=20", "/api/v1/tags"):
                    self.reads.append(await self.send(client, "GET", path, uuid.uuid4().hex))

    def created(self) -> set[str]:
        return {outcome.name for outcome in self.writes if outcome.status == 201}

    def failed(self) -> list[Outcome]:
        return [o for o in self.writes + self.reads if o.status not in (200, 201)]


async def start_load(url: str) -> Load:
    async with httpx.AsyncClient(base_url=url) as client:
        token = await client.post(
            "/api/v1/auth/token", data={"username": ADMIN, "password": PASSWORD}
        )
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        tags = []
        for name in ("red", "blue"):
            tag = await client.post("/api/v1/tags", json={"name": name}, headers=headers)
            assert tag.status_code == 201, tag.text
            tags.append(tag.json()["id"])
    return Load(url, headers, tags)


def check_database(project: Project, load: Load) -> None:
    """The products in the database are exactly those answered 201, each one whole."""
    rows = query(
        project.database_url,
        "SELECT p.id, p.name, p.description, p.price, p.in_stock,"
        " (SELECT count(*) FROM shop_product_tags t WHERE t.product_id = p.id),"
        " (SELECT count(*) FROM crudkit_log_entry e WHERE e.app_label = 'shop'"
        "  AND e.model = 'product' AND e.action = 'create'"
        " AND e.object_id = CAST(p.id AS VARCHAR(20)))"
        " FROM shop_product p",
    )
    stored = {row[1] for row in rows}
    assert len(stored) == len(rows), "a product was written twice"
    created = load.created()
    assert created <= stored, f"answered 201, not in the database: {sorted(created - stored)}"
    assert stored <= created, f"in the database, never answered 201: {sorted(stored - created)}"
    for _, name, description, price, in_stock, links, entries in rows:
        assert description == f"about {name}", name
        assert Decimal(str(price)) == Decimal("12.50"), name
        assert not in_stock, name
        assert (links, entries) == (2, 1), f"{name}: {links} tag links, {entries} history entries"


async def wait_exit(server: subprocess.Popen[bytes], seconds: float) -> int | None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        return await asyncio.to_thread(server.wait, seconds)
    return None


async def stalls_begun(project: Project, request_ids: list[str]) -> None:
    """Until each of these writes is stalled inside its transaction."""
    deadline = time.monotonic() + 15
    while not all((project.markers / request_id).exists() for request_id in request_ids):
        assert time.monotonic() < deadline, "the slow writes never reached their stall"
        await asyncio.sleep(0.05)


RUNSERVER = [sys.executable, "manage.py", "runserver", "--port", "{port}"]


def test_sigterm_drains_runserver_under_writes(project: Project, backend: str) -> None:
    # SQLite has one writer at a time: the stalled writes would queue behind each other.
    stalled = 3 if backend == "postgresql" else 1

    async def scenario(url: str, server: subprocess.Popen[bytes]) -> tuple[Load, float, float]:
        load = await start_load(url)
        writers = [asyncio.create_task(load.writer(n, until_refused=True)) for n in range(4)]
        await asyncio.sleep(1)
        ids = [f"slow-{SLOW}-{load.run}-s{n}" for n in range(stalled)]

        async def slow(request_id: str) -> Outcome:
            async with load.client() as client:
                return await load.create(
                    client, request_id.removeprefix(f"slow-{SLOW}-"), request_id
                )

        slow_writes = [asyncio.create_task(slow(request_id)) for request_id in ids]
        await stalls_begun(project, ids)
        signalled = time.monotonic()
        server.send_signal(signal.SIGTERM)

        await asyncio.sleep(0.5)  # the stalled writes have a while to go
        assert server.poll() is None, "the server did not wait for the requests in flight"
        with pytest.raises(httpx.ConnectError):  # refused, not answered
            async with httpx.AsyncClient(base_url=url) as client:
                await client.get("/api/v1/products")

        finished = await asyncio.wait_for(asyncio.gather(*slow_writes), SHUTDOWN_TIMEOUT)
        assert [outcome.status for outcome in finished] == [201] * stalled, finished
        await asyncio.wait_for(asyncio.gather(*writers), SHUTDOWN_TIMEOUT)
        code = await wait_exit(server, SHUTDOWN_TIMEOUT)
        assert code == 0, f"exit status {code}:\n{log_tail(project)}"
        return load, signalled, time.monotonic()

    with serving(project, RUNSERVER) as (url, server):
        load, signalled, exited = asyncio.run(scenario(url, server))

    assert exited - signalled < SHUTDOWN_TIMEOUT
    after = [outcome for outcome in load.writes if outcome.at > signalled]
    # Every write answered before the signal was a 201; after it, the ones in flight
    # still are, then each client is refused a connection. A client may also find the
    # idle connection it reuses closed: no answer, and (checked below) no row.
    assert {o.status for o in load.writes if o.at <= signalled} == {201}
    unanswered = {name.__name__ for name in UNANSWERED}
    assert all(
        o.status == 201 or (o.status is None and o.error in {"ConnectError", *unanswered})
        for o in after
    ), load.failed()
    assert sum(o.error == "ConnectError" for o in load.writes) == 4  # each writer, once
    assert log_tail(project).count("Application shutdown complete") == 1
    assert_no_app_error(project)
    check_database(project, load)


def test_writes_past_shutdown_timeout_are_cancelled_whole(project: Project, backend: str) -> None:
    project.env["CRUDKIT_SHUTDOWN_TIMEOUT"] = "1"

    async def scenario(url: str, server: subprocess.Popen[bytes]) -> tuple[Load, Outcome, float]:
        load = await start_load(url)
        request_id = f"slow-60-{load.run}-stuck"
        async with load.client() as client:
            stuck = asyncio.create_task(load.create(client, f"{load.run}-stuck", request_id))
            await stalls_begun(project, [request_id])
            signalled = time.monotonic()
            server.send_signal(signal.SIGTERM)
            code = await wait_exit(server, 10)
            assert code == 0, f"exit status {code}:\n{log_tail(project)}"
            return load, await stuck, time.monotonic() - signalled

    with serving(project, RUNSERVER) as (url, server):
        load, stuck, took = asyncio.run(scenario(url, server))
    assert 1 <= took < 5
    # Told so (503, not a 500), and nothing of it written: the product is not there.
    assert stuck.status == 503, (stuck, log_tail(project))
    assert "shutting down" in stuck.error
    check_database(project, load)
    assert "timeout graceful shutdown exceeded" in log_tail(project)
    assert_no_app_error(project)


def gunicorn_command() -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "crudkit.app:create_app()",
        "--worker-class", "uvicorn_worker.UvicornWorker",
        "--workers", "2", "--bind", "127.0.0.1:{port}",
        "--graceful-timeout", str(SHUTDOWN_TIMEOUT),
    ]  # fmt: skip


def workers_of(master: int) -> set[int]:
    with open(f"/proc/{master}/task/{master}/children") as listing:
        return {int(pid) for pid in listing.read().split()}


async def replaced(master: int, old: set[int]) -> set[int]:
    """The workers once none of `old` is left and two are serving."""
    deadline = time.monotonic() + 30
    while True:
        workers = workers_of(master)
        if len(workers) == 2 and not workers & old:
            return workers
        assert time.monotonic() < deadline, f"workers {workers}, were {old}"
        await asyncio.sleep(0.1)


@pytest.mark.postgres
def test_gunicorn_reload_and_worker_restart_fail_no_request(project: Project) -> None:
    """Two uvicorn workers under gunicorn serve reads and writes (a third of the writes
    slow, so some are in flight at each signal): SIGHUP replaces both workers, then one
    worker stopped alone (SIGTERM) is replaced; every request is answered 200 or 201."""

    async def scenario(url: str, master: int) -> tuple[Load, list[set[int]]]:
        load = await start_load(url)
        load.retry_unanswered = True
        generations = [workers_of(master)]
        tasks = [asyncio.create_task(load.writer(n, slow_every=3)) for n in range(4)]
        tasks += [asyncio.create_task(load.reader()) for _ in range(2)]
        await asyncio.sleep(1.5)
        os.kill(master, signal.SIGHUP)  # graceful reload: new workers, the old ones drain
        generations.append(await replaced(master, generations[-1]))
        await asyncio.sleep(1)
        stopped = min(generations[-1])
        os.kill(stopped, signal.SIGTERM)
        generations.append(await replaced(master, {stopped}))
        await asyncio.sleep(1)
        load.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        return load, generations

    with serving(project, gunicorn_command()) as (url, server):
        load, (first, reloaded, restarted) = asyncio.run(scenario(url, server.pid))
    assert len(first) == 2
    assert not first & reloaded  # both workers replaced
    assert len(reloaded & restarted) == 1  # then one of them
    assert load.failed() == []
    assert len(load.created()) > 20
    assert len(load.reads) > 20
    assert_no_app_error(project)
    check_database(project, load)
