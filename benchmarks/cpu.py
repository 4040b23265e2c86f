"""CPU per request in-process: the ASGI app called directly, no HTTP, no load generator.

    .venv/bin/python -m benchmarks.cpu                        # every case, 2,000 requests each
    .venv/bin/python -m benchmarks.cpu retrieve list -n 5000
    .venv/bin/python -m benchmarks.cpu retrieve --profile     # pyinstrument, printed per case
    CPU_PROFILE_ALL=1 .venv/bin/python -m benchmarks.cpu list --profile   # every frame shown

Steadier than wrk on a shared machine: `time.process_time()` counts only this
process's CPU (the database's work is not in it), so the figure is what crudkit
itself costs per request. Uses the seeded `crudkit_bench` database of
`benchmarks.run` (run that once first) and uvloop, as uvicorn does. The access
log stays on: send stderr to /dev/null (or a file) as a server would.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.config import BENCH_PASSWORD, BENCH_USER, EXAMPLE_PROJECT, SMALL, crudkit_env

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

CREATE = b'{"name": "cpu", "price": "1.50", "category_id": 3}'
CASES: dict[str, tuple[str, str, bytes, bool]] = {
    # name: (method, path with {i}, body, with the bench user's token)
    "retrieve": ("GET", "/api/v1/products/{i}", b"", False),
    "retrieve-token": ("GET", "/api/v1/products/{i}", b"", True),
    "list": ("GET", "/api/v1/products?limit=50", b"", False),
    "list-token": ("GET", "/api/v1/products?limit=50", b"", True),
    "list-filtered": (
        "GET",
        "/api/v1/products?limit=50&price__gte=500&ordering=-price",
        b"",
        False,
    ),
    "create": ("POST", "/api/v1/products", CREATE, True),
    "patch": ("PATCH", "/api/v1/products/{i}", b'{"price": "2.50"}', True),
}


def _scope(method: str, target: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    path, _, query = target.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"bench"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def call(
    app: App, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[int, bytes]:
    """One request through the whole ASGI stack; its status and body."""
    status = 0
    chunks: list[bytes] = []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(_scope(method, target, headers), receive, send)
    return status, b"".join(chunks)


async def token_for(app: App) -> str:
    import json
    from urllib.parse import urlencode

    form = urlencode({"username": BENCH_USER, "password": BENCH_PASSWORD}).encode()
    headers = [(b"content-type", b"application/x-www-form-urlencoded")]
    status, body = await call(app, "POST", "/api/v1/auth/token", headers, form)
    if status != 200:
        raise RuntimeError(f"login failed: {status} {body!r}")
    token: str = json.loads(body)["access_token"]
    return token


async def run(app: App, name: str, headers: list[tuple[bytes, bytes]], count: int) -> None:
    """`count` requests of case `name`, over the first 5,000 products."""
    method, path, body, _ = CASES[name]
    for i in range(count):
        status, content = await call(app, method, path.format(i=i % 5000 + 1), headers, body)
        if status >= 300:
            raise RuntimeError(f"{name}: {status} {content[:300]!r}")


async def measure(names: list[str], requests: int, profile: bool) -> None:
    import crudkit

    app: Any = crudkit.create_app()
    logging.getLogger("crudkit.access").disabled = False
    async with app.router.lifespan_context(app):
        token = await token_for(app)
        for name in names:
            _, _, body, with_token = CASES[name]
            headers = [(b"content-type", b"application/json")] if body else []
            if with_token:
                headers.append((b"authorization", f"Bearer {token}".encode()))
            await run(app, name, headers, 200)  # warm: pools, caches, prepared statements
            profiler = None
            if profile:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0002, async_mode="disabled")
                profiler.start()
            started = time.process_time()
            await run(app, name, headers, requests)
            spent = time.process_time() - started
            if profiler is not None:
                profiler.stop()
            print(f"{name:16} {spent / requests * 1e6:8.0f} us CPU/request", flush=True)
            if profiler is not None:
                every_frame = bool(os.environ.get("CPU_PROFILE_ALL"))
                print(profiler.output_text(unicode=True, color=False, show_all=every_frame))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", help=f"any of: {', '.join(CASES)} (default: all)")
    parser.add_argument("-n", "--requests", type=int, default=2000)
    parser.add_argument("--profile", action="store_true", help="pyinstrument each case")
    parser.add_argument("--database-url", default=SMALL.sqlalchemy_url())
    args = parser.parse_args()
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    os.environ.update(crudkit_env(args.database_url))
    sys.path.insert(0, str(EXAMPLE_PROJECT))
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        pass
    asyncio.run(measure(args.cases or list(CASES), args.requests, args.profile))
    if args.database_url == SMALL.sqlalchemy_url():
        from benchmarks.seed import reset

        asyncio.run(reset(SMALL))  # drop the rows `create` added


if __name__ == "__main__":
    main()
