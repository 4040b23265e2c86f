"""Driving an app with wrk pinned to the other CPU, and reading what wrk measured.

`Driver.run` waits for the machine to be quiet, moves the PostgreSQL backends of
the benchmark database to the load CPU (the server CPU then runs the app and
nothing else, as if the database were on another machine), runs wrk, and
records how much CPU other processes took meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

from benchmarks.noise import TICKS, ForeignLoad, process_ticks, wait_for_quiet

LOAD_CPU = "1"
LUA_SCRIPT = Path(__file__).with_name("bench.lua")
QUIET_THRESHOLD = 0.2  # cores used by other processes
QUIET_MAX_WAIT = 60.0


@dataclass(frozen=True)
class Request:
    """What each wrk connection sends, over and over."""

    method: str
    url: str
    id_max: int = 0
    body: str = ""
    token: str = ""


@dataclass(frozen=True)
class Sample:
    """One wrk run."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failures: int
    foreign_cores: float = 0.0
    server_cpu_us: float = 0.0
    """CPU time of the server process per request: steadier than req/s on a busy machine."""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


@dataclass
class Driver:
    """Runs wrk against the servers `server_pids`, which serve `database`."""

    admin_dsn: str
    database: str
    server_pids: list[int]
    nice: int = -10
    quiet_wait: float = QUIET_MAX_WAIT
    backends: set[int] = field(default_factory=set)

    def pin_backends(self) -> None:
        """Move new PostgreSQL backends of the database to the load CPU, at our priority."""
        for pid in asyncio.run(self._backend_pids()) - self.backends:
            _quiet_run(["taskset", "-pc", LOAD_CPU, str(pid)])
            if self.nice:
                _quiet_run(["renice", "-n", str(self.nice), "-p", str(pid)])
            self.backends.add(pid)

    async def _backend_pids(self) -> set[int]:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                self.database,
            )
        finally:
            await conn.close()
        return {row["pid"] for row in rows}

    def run(
        self,
        request: Request,
        seconds: float,
        connections: int,
        *,
        server_pid: int = 0,
        wait: bool = True,
    ) -> Sample:
        """`wrk` for `seconds` with `connections` keep-alive connections on one thread."""
        self.pin_backends()
        own = [os.getpid(), *self.server_pids, *self.backends]
        if wait:
            wait_for_quiet(own, threshold=QUIET_THRESHOLD, max_wait=self.quiet_wait)
        env = {
            **os.environ,
            "BENCH_METHOD": request.method,
            "BENCH_PATH": _path_of(request.url),
            "BENCH_ID_MAX": str(request.id_max),
            "BENCH_BODY": request.body,
            "BENCH_TOKEN": request.token,
        }
        command = [
            *_niced(self.nice), "taskset", "-c", LOAD_CPU, "wrk",
            "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s",
            "-s", str(LUA_SCRIPT), request.url,
        ]  # fmt: skip
        wrk = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        meter = ForeignLoad([*own, wrk.pid])
        meter.start()
        server_ticks = process_ticks([server_pid])
        out, _ = wrk.communicate()
        server_ticks = process_ticks([server_pid]) - server_ticks
        foreign = meter.stop()
        if wrk.returncode:
            raise RuntimeError(f"wrk failed ({wrk.returncode}): {out}")
        line = next(line for line in out.splitlines() if line.startswith("BENCH_JSON "))
        data = json.loads(line.removeprefix("BENCH_JSON "))
        return Sample(
            requests=data["requests"],
            seconds=data["duration_us"] / 1e6,
            p50_ms=data["p50_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            failures=data["non2xx"] + data["socket_errors"],
            foreign_cores=foreign,
            server_cpu_us=server_ticks / TICKS / max(data["requests"], 1) * 1e6,
        )


def _niced(nice: int) -> list[str]:
    return ["nice", "-n", str(nice)] if nice else []


def _quiet_run(command: list[str]) -> None:
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def _path_of(url: str) -> str:
    parts = url.split("/", 3)
    return "/" + parts[3] if len(parts) > 3 else "/"
