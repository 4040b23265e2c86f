"""Scale: the example project under gunicorn with two workers on PostgreSQL and Redis.

    .venv/bin/python -m benchmarks.scale                 # 64 clients, 60 s
    .venv/bin/python -m benchmarks.scale --seconds 10    # a quick look

Seeds `crudkit_scale` (10,000 products, owned by eight users), serves it with
`gunicorn crudkit.app:create_app() --workers 2` as docs/deploy.md does, and drives
it with wrk: 64 keep-alive connections of mixed traffic (70% reads, anonymous
and authenticated; 30% creates and PATCHes of the caller's own rows; 1% logins;
see `scale.lua`). Then it checks what must hold across workers:

- no request failed (any status other than 200/201, or a socket error, fails the run);
- every create left exactly one row and one history entry (nothing lost, nothing half-written);
- a login throttled after `login_attempts` failures stays throttled on both workers;
- a token revoked by logout is refused by both workers.

Each check request carries its own X-Request-ID; the JSON access log names the
worker (`pid`) that served it, so the run shows both workers took part.
Exit status 1 when anything does not hold. Not part of the test suite.

The topology of docs/deploy.md, with `--pgbouncer --replica`: the workers reach
PostgreSQL through a PgBouncer in transaction pooling mode (`scripts/pgbouncer.sh`,
on port 6433) and read lists and retrieves from a streaming replica
(`scripts/replica.sh`, on port 5433). The run then also reports PgBouncer's waits
(clients waiting for a server connection) and how many statements the replica
served; `--stop-replica-after N` stops the replica N seconds into the load (reads
must fall back to the primary without an error) and starts it again afterwards.

    .venv/bin/python -m benchmarks.scale --workers 4 --seconds 120 --pgbouncer --replica
    .venv/bin/python -m benchmarks.scale --workers 4 --seconds 120 --pgbouncer --replica \
        --stop-replica-after 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx

from benchmarks.config import (
    BENCH_PASSWORD,
    EXAMPLE_PROJECT,
    PYTHON,
    ROOT,
    SMALL_ROWS,
    Dataset,
    app_env,
)
from benchmarks.noise import TICKS, process_ticks
from benchmarks.seed import _manage, ensure_seeded, reset

DATASET = Dataset("crudkit_scale", SMALL_ROWS)
LUA_SCRIPT = Path(__file__).with_name("scale.lua")
USERS = 8
PORT = 8110
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
LOGIN_ATTEMPTS = 5  # crudkit's default `login_attempts`
PGBOUNCER_PORT = 6433  # beside the test suite's 6432
REPLICA_PORT = 5433  # scripts/replica.sh's default


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int]
    socket_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def failures(self) -> int:
        bad = sum(count for status, count in self.statuses.items() if status not in (200, 201))
        return bad + self.socket_errors


async def prepare_users() -> list[tuple[str, int, int]]:
    """Eight users, each owning an equal block of the seeded products: (name, first, last)."""
    block = DATASET.rows // USERS
    names = [f"scale_{n}" for n in range(1, USERS + 1)]
    conn = await asyncpg.connect(DATASET.dsn())
    try:
        existing = {
            row["username"]
            for row in await conn.fetch(
                "SELECT username FROM auth_user WHERE username LIKE 'scale_%'"
            )
        }
        for name in names:
            if name not in existing:
                _manage(DATASET, "createuser", name, "--email", f"{name}@example.com", "--noinput")
        owners = []
        for index, name in enumerate(names):
            first, last = index * block + 1, (index + 1) * block
            user_id = await conn.fetchval("SELECT id FROM auth_user WHERE username = $1", name)
            await conn.execute(
                "UPDATE shop_product SET owner_id = $1"
                " WHERE id BETWEEN $2 AND $3 AND owner_id <> $1",
                user_id,
                first,
                last,
            )
            owners.append((name, first, last))
        await conn.execute("DELETE FROM crudkit_log_entry")
        await conn.execute("VACUUM ANALYZE shop_product")
    finally:
        await conn.close()
    return owners


@contextmanager
def gunicorn(env: dict[str, str], workers: int, log: Path) -> Iterator[tuple[str, int]]:
    """The example project as docs/deploy.md serves it; yields its base URL and master pid."""
    command = [
        PYTHON, "-m", "gunicorn", "crudkit.app:create_app()",
        "--worker-class", "uvicorn_worker.UvicornWorker",
        "--workers", str(workers), "--bind", f"127.0.0.1:{PORT}",
        "--graceful-timeout", "30", "--keep-alive", "75",
    ]  # fmt: skip
    with log.open("wb") as out:
        server = subprocess.Popen(
            command, cwd=EXAMPLE_PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{PORT}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"gunicorn exited at start:\n{log.read_text()[-3000:]}")
            try:
                ready = httpx.get(f"{url}/readyz", timeout=1)
                if ready.status_code == 200 and ready.json()["checks"].get("redis") == "ok":
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not become ready in 30 s")
            time.sleep(0.3)
        yield url, server.pid
    finally:
        server.terminate()
        server.wait(timeout=60)


@contextmanager
def pgbouncer() -> Iterator[int]:
    """A PgBouncer in transaction pooling mode in front of the local PostgreSQL."""
    script = ROOT / "scripts" / "pgbouncer.sh"
    # A directory of its own: run as root, the script hands it to `postgres`.
    workdir = tempfile.mkdtemp(prefix="crudkit-scale-pgbouncer-")
    subprocess.run(["bash", str(script), "start", workdir, str(PGBOUNCER_PORT)], check=True)
    try:
        yield PGBOUNCER_PORT
    finally:
        subprocess.run(["bash", str(script), "stop", workdir], check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def replica(command: str) -> None:
    script = ROOT / "scripts" / "replica.sh"
    subprocess.run(["bash", str(script), command], check=True, stdout=subprocess.DEVNULL)


def psql(port: int, database: str, query: str) -> list[list[str]]:
    """Rows of `query`, run with psql (PgBouncer's console speaks only the simple protocol)."""
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-XAtF", "\t",
         "-d", database, "-c", query],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [line.split("\t") for line in out.splitlines() if line]


def replica_statements() -> int:
    """Transactions the replica has served in the bench database (each read is one)."""
    rows = psql(
        REPLICA_PORT,
        "postgres",
        "SELECT xact_commit + xact_rollback FROM pg_stat_database"
        f" WHERE datname = '{DATASET.name}'",
    )
    return int(rows[0][0]) if rows else 0


class BouncerWaits:
    """Samples PgBouncer's pool of the bench database once a second during the load."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.most_waiting = 0
        self.longest_wait_ms = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> BouncerWaits:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            try:
                pools = psql(self.port, "pgbouncer", "SHOW POOLS")
            except subprocess.CalledProcessError:
                continue  # down for a moment: the load's own errors tell
            for row in pools:
                # database, user, cl_active, cl_waiting, ..., maxwait, maxwait_us, pool_mode
                if row[0] == DATASET.name:
                    self.most_waiting = max(self.most_waiting, int(row[3]))
                    wait_ms = int(row[-3]) * 1000 + int(row[-2]) / 1000
                    self.longest_wait_ms = max(self.longest_wait_ms, wait_ms)

    def totals(self) -> tuple[int, float, float]:
        """Transactions, and the average and total time clients waited (ms), since start."""
        for row in psql(self.port, "pgbouncer", "SHOW STATS"):
            if row[0] == DATASET.name:
                # database, total_xact_count, total_query_count, ..., total_wait_time, ...
                xacts, wait_us = int(row[1]), int(row[7])
                return xacts, wait_us / max(xacts, 1) / 1000, wait_us / 1000
        return 0, 0.0, 0.0


def login(url: str, username: str) -> str:
    response = httpx.post(
        f"{url}/api/v1/auth/token", data={"username": username, "password": BENCH_PASSWORD}
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def machine_busy_ticks() -> int:
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:8]]
    return sum(fields) - fields[3] - fields[4]  # all but idle and iowait


@dataclass
class CpuShare:
    """Where the machine's CPU went during the run, in cores (the machine has two)."""

    workers: float
    postgres: float
    wrk: float
    other: float


def run_wrk(
    url: str,
    master: int,
    owners: list[tuple[str, int, int]],
    seconds: int,
    connections: int,
    threads: int,
) -> tuple[LoadResult, CpuShare]:
    tokens = [(login(url, name), first, last) for name, first, last in owners]
    env = {
        **os.environ,
        "SCALE_USERS": ";".join(f"{token}:{first}:{last}" for token, first, last in tokens),
        "SCALE_ID_MAX": str(DATASET.rows),
        "SCALE_LOGIN": f"{','.join(name for name, _, _ in owners)}:{BENCH_PASSWORD}",
    }
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
        "-s", str(LUA_SCRIPT), url,
    ]  # fmt: skip
    workers, postgres = children(master), postgres_pids()
    workers_ticks = process_ticks(workers)
    postgres_ticks = {pid: process_ticks([pid]) for pid in postgres}
    busy_ticks, wrk_seconds = machine_busy_ticks(), _children_cpu_seconds()
    started = time.monotonic()
    wrk = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    workers_cores = (process_ticks(workers) - workers_ticks) / TICKS / elapsed
    # Servers that stopped meanwhile (a replica) are left out; new backends start at zero.
    postgres_used = sum(
        process_ticks([pid]) - postgres_ticks.get(pid, 0) for pid in postgres_pids()
    )
    postgres_cores = postgres_used / TICKS / elapsed
    wrk_cores = (_children_cpu_seconds() - wrk_seconds) / elapsed
    busy_cores = (machine_busy_ticks() - busy_ticks) / TICKS / elapsed
    share = CpuShare(
        workers_cores,
        postgres_cores,
        wrk_cores,
        other=max(busy_cores - workers_cores - postgres_cores - wrk_cores, 0.0),
    )
    if wrk.returncode:
        raise RuntimeError(f"wrk failed ({wrk.returncode}): {wrk.stdout}{wrk.stderr}")
    line = next(line for line in wrk.stdout.splitlines() if line.startswith("SCALE_JSON "))
    data = json.loads(line.removeprefix("SCALE_JSON "))
    result = LoadResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        statuses={int(status): count for status, count in data["statuses"].items()},
        socket_errors=data["socket_errors"],
    )
    return result, share


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once it is reaped
    return usage.ru_utime + usage.ru_stime


async def written_rows() -> tuple[int, int]:
    """Products the run created, and the history entries of those creates.

    Read in one snapshot, once the counts stop moving: when wrk stops, the server
    is still finishing the requests in flight.
    """
    conn = await asyncpg.connect(DATASET.dsn())
    try:
        previous = None
        while True:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM shop_product WHERE id > $1) AS rows,"
                " (SELECT count(*) FROM crudkit_log_entry WHERE app_label = 'shop'"
                "  AND action = 'create' AND channel = 'api') AS entries",
                DATASET.rows,
            )
            counts = (int(row["rows"]), int(row["entries"]))
            if counts == previous:
                return counts
            previous = counts
            await asyncio.sleep(1)
    finally:
        await conn.close()


def served_by(log: Path, request_ids: list[str]) -> Counter[int]:
    """The worker pids that logged `request_ids` (from the JSON access log)."""
    wanted = set(request_ids)
    pids: Counter[int] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry.get("logger") == "crudkit.access" and entry.get("request_id") in wanted:
            pids[entry["pid"]] += 1
    return pids


def fresh_connection_calls(
    url: str, method: str, path: str, count: int, **options: object
) -> tuple[list[int], list[str]]:
    """`count` requests, each on a new connection (so the kernel hands them to either worker)."""
    options = dict(options)
    extra: dict[str, str] = options.pop("headers", {})  # type: ignore[assignment]
    statuses, ids = [], []
    for _ in range(count):
        request_id = uuid.uuid4().hex
        headers = {"X-Request-ID": request_id, **extra}
        with httpx.Client() as client:
            response = client.request(method, f"{url}{path}", headers=headers, **options)  # type: ignore[arg-type]
        statuses.append(response.status_code)
        ids.append(request_id)
    return statuses, ids


def check_throttle(url: str, log: Path) -> tuple[bool, str]:
    name = f"throttled_{uuid.uuid4().hex[:8]}"  # Redis outlives the database
    _manage(DATASET, "createuser", name, "--noinput")
    wrong = {"username": name, "password": "not-the-password"}
    right = {"username": name, "password": BENCH_PASSWORD}
    denied, _ = fresh_connection_calls(
        url, "POST", "/api/v1/auth/token", LOGIN_ATTEMPTS, data=wrong
    )
    refused, ids = fresh_connection_calls(url, "POST", "/api/v1/auth/token", 20, data=right)
    workers = served_by(log, ids)
    ok = denied == [401] * LOGIN_ATTEMPTS and refused == [429] * 20 and len(workers) >= 2
    return ok, (
        f"{LOGIN_ATTEMPTS} wrong passwords: {Counter(denied)}; then the right one 20 times: "
        f"{Counter(refused)}, served by workers {dict(workers)}"
    )


def check_revocation(url: str, log: Path) -> tuple[bool, str]:
    token = login(url, "scale_1")
    auth = {"Authorization": f"Bearer {token}"}
    before, _ = fresh_connection_calls(url, "GET", "/api/v1/auth/me", 10, headers=auth)
    logout = httpx.post(f"{url}/api/v1/auth/logout", headers=auth).status_code
    after, ids = fresh_connection_calls(url, "GET", "/api/v1/auth/me", 20, headers=auth)
    workers = served_by(log, ids)
    ok = before == [200] * 10 and logout == 204 and after == [401] * 20 and len(workers) >= 2
    return ok, (
        f"before logout: {Counter(before)}; logout: {logout}; after: {Counter(after)}, "
        f"served by workers {dict(workers)}"
    )


def report(
    result: LoadResult, share: CpuShare, workers: Counter[int], rows: int, entries: int
) -> None:
    print(f"requests     {result.requests:,} in {result.seconds:.1f} s = {result.rps:,.0f} req/s")
    print(
        f"latency      p50 {result.p50_ms:.1f} ms, p90 {result.p90_ms:.1f} ms, "
        f"p99 {result.p99_ms:.1f} ms, max {result.max_ms:.1f} ms"
    )
    statuses = ", ".join(
        f"{status}: {count:,}" for status, count in sorted(result.statuses.items())
    )
    print(f"statuses     {statuses}; socket errors: {result.socket_errors}")
    print(f"per worker   {', '.join(f'pid {pid}: {n:,}' for pid, n in sorted(workers.items()))}")
    print(
        f"CPU, cores   gunicorn workers {share.workers:.2f}, PostgreSQL {share.postgres:.2f}, "
        f"wrk {share.wrk:.2f}, everything else {share.other:.2f} (of 2)"
    )
    per_request = 1e6 / result.rps
    print(
        f"CPU/request  workers {share.workers * per_request:,.0f} us, "
        f"PostgreSQL {share.postgres * per_request:,.0f} us"
    )
    print(
        f"creates      {result.statuses.get(201, 0):,} counted 201s, {rows:,} rows, "
        f"{entries:,} history entries"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--pgbouncer", action="store_true", help="through PgBouncer")
    parser.add_argument("--replica", action="store_true", help="reads on a streaming replica")
    parser.add_argument(
        "--stop-replica-after", type=int, metavar="SECONDS", help="stop the replica mid-run"
    )
    args = parser.parse_args()
    if args.stop_replica_after is not None and not args.replica:
        parser.error("--stop-replica-after needs --replica")

    asyncio.run(ensure_seeded(DATASET))
    owners = asyncio.run(prepare_users())
    with tempfile.TemporaryDirectory(prefix="crudkit-scale-") as tmp, ExitStack() as stack:
        database_url = DATASET.sqlalchemy_url()
        env = app_env(database_url, DATASET.dsn(), owner_id=0)
        env["CRUDKIT_REDIS_URL"] = REDIS_URL
        env["PYTHONPATH"] = os.pathsep.join([str(EXAMPLE_PROJECT), str(ROOT)])
        waits: BouncerWaits | None = None
        if args.pgbouncer:
            port = stack.enter_context(pgbouncer())
            env["CRUDKIT_DATABASE_URL"] = DATASET.sqlalchemy_url(port=port)
            env["CRUDKIT_DB_PGBOUNCER"] = "true"
            waits = BouncerWaits(port)
        if args.replica:
            replica("start")
            env["CRUDKIT_DATABASE_REPLICA_URLS"] = DATASET.sqlalchemy_url(port=REPLICA_PORT)
        log = Path(tmp) / "gunicorn.log"
        with gunicorn(env, args.workers, log) as (url, master):
            print(
                f"gunicorn, {args.workers} workers"
                f"{', PgBouncer (transaction pooling)' if args.pgbouncer else ''}"
                f"{', a streaming replica' if args.replica else ''}; wrk, {args.threads} "
                f"threads, {args.connections} connections, {args.seconds} s ...",
                flush=True,
            )
            replica_before = replica_statements() if args.replica else 0
            replica_reads = 0
            stopper = None
            if args.stop_replica_after is not None:

                def stop_replica() -> None:
                    nonlocal replica_reads
                    replica_reads = replica_statements() - replica_before
                    replica("stop")
                    print(f"replica stopped at {args.stop_replica_after} s", flush=True)

                stopper = threading.Timer(args.stop_replica_after, stop_replica)
                stopper.start()
            with waits if waits is not None else nullcontext():
                result, share = run_wrk(
                    url, master, owners, args.seconds, args.connections, args.threads
                )
            if stopper is not None:
                stopper.join()
            elif args.replica:
                replica_reads = replica_statements() - replica_before
            rows, entries = asyncio.run(written_rows())
            created = result.statuses.get(201, 0)
            workers = Counter(
                json.loads(line)["pid"]
                for line in log.read_text(errors="replace").splitlines()
                if line.startswith('{"') and '"crudkit.access"' in line
            )
            report(result, share, workers, rows, entries)
            if waits is not None:
                xacts, average_ms, total_ms = waits.totals()
                print(
                    f"PgBouncer    {xacts:,} transactions; clients waited {average_ms:.2f} ms "
                    f"on average ({total_ms / 1000:.1f} s in all), at most {waits.most_waiting} "
                    f"at once, the longest {waits.longest_wait_ms:.0f} ms"
                )
            if args.replica:
                print(f"replica      {replica_reads:,} read transactions served by the replica")
            checks = {
                "no failed request": (result.failures == 0, f"{result.failures} failures"),
                # wrk stops counting at the deadline while the server finishes what is in
                # flight: up to one create per connection lands without its 201 being counted.
                "every create left one row and one history entry": (
                    rows == entries and created <= rows <= created + args.connections,
                    f"{created:,} counted 201s, {rows:,} rows, {entries:,} history entries",
                ),
                "every worker served the load": (
                    len(workers) == args.workers,
                    str(dict(workers)),
                ),
                "login throttle shared by the workers": check_throttle(url, log),
                "logout revokes the token on every worker": check_revocation(url, log),
            }
            if args.replica:
                checks["the replica served reads"] = (replica_reads > 0, f"{replica_reads:,}")
        if args.stop_replica_after is not None:
            replica("start")  # as the run found it
    asyncio.run(reset(DATASET))
    failed = False
    for name, (ok, detail) in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
        failed |= not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
