"""1,000 product creates: one `POST /products/bulk` against 1,000 `POST /products`.

    .venv/bin/python -m benchmarks.bulk            # against the seeded crudkit_bench

In process (the whole ASGI stack, no sockets), as the bench user with a token, on the
PostgreSQL database `benchmarks.run` seeds; the rows created are deleted afterwards.
Prints the wall time and CPU of each way, best of `--rounds`, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from typing import Any

from benchmarks.config import EXAMPLE_PROJECT, SMALL, crudkit_env
from benchmarks.cpu import call, token_for

ROWS = 1000


def bodies() -> list[dict[str, Any]]:
    return [{"name": f"Bulk product {i:04d}", "price": "9.90"} for i in range(ROWS)]


async def singles(app: Any, headers: list[tuple[bytes, bytes]]) -> None:
    for body in bodies():
        status, content = await call(
            app, "POST", "/api/v1/products", headers, json.dumps(body).encode()
        )
        if status != 201:
            raise RuntimeError(f"create: {status} {content[:300]!r}")


async def bulk(app: Any, headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps({"create": bodies()}).encode()
    status, content = await call(app, "POST", "/api/v1/products/bulk", headers, payload)
    results = json.loads(content)["results"] if status == 200 else []
    if status != 200 or any(result["status"] != 201 for result in results):
        raise RuntimeError(f"bulk: {status} {content[:300]!r}")


async def measure(rounds: int) -> None:
    import crudkit
    from benchmarks.seed import reset

    app: Any = crudkit.create_app()
    logging.getLogger("crudkit.access").disabled = True  # 2,000 lines per round otherwise
    async with app.router.lifespan_context(app):
        token = await token_for(app)
        headers = [
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
        ]
        best: dict[str, tuple[float, float]] = {}
        for _ in range(rounds):
            for name, way in (("1,000 single requests", singles), ("one bulk request", bulk)):
                wall, cpu = time.perf_counter(), time.process_time()
                await way(app, headers)
                spent = (time.perf_counter() - wall, time.process_time() - cpu)
                best[name] = min(best.get(name, spent), spent)
                await reset(SMALL)
    for name, (wall, cpu) in best.items():
        print(f"{name:24} {wall * 1000:8.0f} ms wall {cpu * 1000:8.0f} ms CPU")
    (single_wall, single_cpu), (bulk_wall, bulk_cpu) = best.values()
    print(f"bulk / single: {single_wall / bulk_wall:.2f}x faster (wall), "
          f"{single_cpu / bulk_cpu:.2f}x less CPU")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(crudkit_env(SMALL.sqlalchemy_url()))
    sys.path.insert(0, str(EXAMPLE_PROJECT))
    asyncio.run(measure(args.rounds))


if __name__ == "__main__":
    main()
