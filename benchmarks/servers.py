"""Starting the apps under uvicorn, one worker each, pinned to one CPU."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.config import PYTHON, ROOT

SERVER_CPU = "0"
STARTUP_TIMEOUT = 30.0


@dataclass(frozen=True)
class AppSpec:
    """An app to serve: its factory, port and URL prefix."""

    key: str
    label: str
    factory: str
    port: int
    prefix: str = ""
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


NEARLIMIT = AppSpec("nearlimit", "near-limit", "benchmarks.apps.nearlimit:create_app", 8101)
HANDWRITTEN = AppSpec("handwritten", "hand-written", "benchmarks.apps.handwritten:create_app", 8102)
CRUDKIT = AppSpec("crudkit", "crudkit", "benchmarks.apps.crudkit_app:create_app", 8103, "/api/v1")


def crudkit_variant(patches: str, port: int) -> AppSpec:
    """crudkit with prototype patches applied (see `benchmarks.patches`)."""
    return AppSpec(
        f"crudkit+{patches}",
        f"crudkit+{patches}",
        CRUDKIT.factory,
        port,
        CRUDKIT.prefix,
        {"BENCH_CRUDKIT_PATCHES": patches},
    )


@contextmanager
def serving(
    specs: list[AppSpec], env: dict[str, str], log_dir: Path, nice: int = 0
) -> Iterator[dict[str, int]]:
    """Run every app in `specs` for the duration of the block; yields their pids by key.

    `nice` and `taskset` exec the interpreter, so each pid is the server's own (py-spy
    attaches to it). A negative `nice` favours the benchmark over other work on the machine.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for spec in specs:
            processes.append(_start(spec, env, log_dir, nice))
        for spec, process in zip(specs, processes, strict=True):
            _wait_ready(spec, process, log_dir)
        yield {spec.key: process.pid for spec, process in zip(specs, processes, strict=True)}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def _start(spec: AppSpec, env: dict[str, str], log_dir: Path, nice: int) -> subprocess.Popen[bytes]:
    command = [
        *(["nice", "-n", str(nice)] if nice else []),
        "taskset", "-c", SERVER_CPU,
        PYTHON, "-m", "uvicorn", "--factory", spec.factory,
        "--host", "127.0.0.1", "--port", str(spec.port),
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    log = (log_dir / f"{spec.key}.log").open("wb")
    return subprocess.Popen(
        command, cwd=ROOT, env={**env, **spec.env}, stdout=log, stderr=subprocess.STDOUT
    )


def _wait_ready(spec: AppSpec, process: subprocess.Popen[bytes], log_dir: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (log_dir / f"{spec.key}.log").read_text(errors="replace")
            raise RuntimeError(f"{spec.label} exited at start:\n{log[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", spec.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{spec.label} did not listen on port {spec.port} in time")
