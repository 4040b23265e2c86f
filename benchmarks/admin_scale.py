"""Admin lists at scale: the admin's product list at 10,000 rows and at 10,000,000.

    .venv/bin/python -m benchmarks.admin_scale                  # 10,000 and 10,000,000 rows
    .venv/bin/python -m benchmarks.admin_scale --rows 1000000   # a quicker trial at 1,000,000
    .venv/bin/python -m benchmarks.admin_scale --keep           # keep (and reuse) the databases

Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user `postgres`). Creates two
databases of its own, `crudkit_admin_<rows>`, migrates the example project into
each (`manage.py migrate`), makes a superuser (`manage.py createsuperuser`) and
fills `shop_product` in the database itself (`INSERT ... SELECT FROM
generate_series`, secondary indexes dropped and rebuilt around it, then VACUUM
ANALYZE). Then it serves the example project on each database under uvicorn
(debug off), logs in to each admin as a browser does, and times pages of the
product list over HTTP, the two servers taking turns request by request: the
first page, sorted, filtered and searched, the next pages reached by each
page's "next" link, and a page in the middle of the list reached by the "next"
link of the page before it (fetched once by its number). Prints the median of
`--runs` requests per page and the ratio of the large table to the small one,
against the goal: at most 2x. Exit status 1 when a page misses it. Not part of
the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx

from benchmarks.config import BENCH_PASSWORD, EXAMPLE_PROJECT, PYTHON, ROOT, Dataset, app_env

SMALL_ROWS = 10_000
LARGE_ROWS = 10_000_000
CHUNK = 1_000_000
CATEGORIES = 20
ADMIN_USER = "admin"
PORT = 8120
"""The small table's server; the large table's is the next port."""
GOAL = 2.0
LIST = "/admin/product/list"
STARTUP_TIMEOUT = 60.0

# Product names start with one of these words, so a search for one matches an eighth.
WORDS = ("Desk", "Floor", "Wall", "Table", "Garden", "Reading", "Ceiling", "Bedside")
FILL = f"""
INSERT INTO shop_product
    (id, name, description, price, in_stock, category_id, owner_id, created_at, updated_at)
SELECT i,
       (ARRAY{list(WORDS)!r})[i % {len(WORDS)} + 1] || ' lamp ' || lpad(i::text, 8, '0'),
       CASE WHEN i % 5 = 0 THEN NULL ELSE 'Lamp number ' || i END,
       ((i::bigint * 7919) % 99901 + 100) / 100.0,
       i % 7 <> 0,
       i % {CATEGORIES} + 1,
       $3,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second',
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second'
FROM generate_series($1::int, $2::int) AS i
"""


@dataclass(frozen=True)
class Page:
    """A list page to time: reached by its query string, or by the "next" link of another."""

    label: str
    params: dict[str, str]
    next_from: str | None = None
    """The label of the page whose "next" link leads here."""
    middle: bool = False
    """Reached from the middle of the list (the page before it is fetched once, untimed)."""
    share: int = 1
    """One in how many products the list holds (to find its middle)."""


SORT_PRICE_DESC = {"sortBy": "price", "sort": "desc"}
SORT_NAME = {"sortBy": "name", "sort": "asc"}
CATEGORY = {"category_id": "3", "category_id_op": "exact"}
PAGES = [
    Page("page 1, default order", {}),
    Page("sorted by price, ascending", {"sortBy": "price", "sort": "asc"}),
    Page("sorted by price, descending", SORT_PRICE_DESC),
    Page("sorted by name, ascending", SORT_NAME),
    Page("sorted by name, descending", {"sortBy": "name", "sort": "desc"}),
    Page("sorted by created at, descending", {"sortBy": "created_at", "sort": "desc"}),
    Page("filtered by category", CATEGORY),
    Page("filtered by category, by price descending", {**CATEGORY, **SORT_PRICE_DESC}),
    Page("filtered by in stock", {"in_stock": "true"}),
    Page("search 'desk'", {"search": "desk"}),
    Page("search 'desk', by name", {"search": "desk", **SORT_NAME}),
    Page("page 2 (next)", {}, next_from="page 1, default order"),
    Page("page 3 (next)", {}, next_from="page 2 (next)"),
    Page("by price desc, page 2 (next)", {}, next_from="sorted by price, descending"),
    Page("by name, page 2 (next)", {}, next_from="sorted by name, ascending"),
    Page("by category, page 2 (next)", {}, next_from="filtered by category"),
    Page("search, page 2 (next)", {}, next_from="search 'desk'"),
    Page("middle of the list (next)", {}, middle=True),
    Page("middle, by price desc (next)", SORT_PRICE_DESC, middle=True),
    Page("middle, by name (next)", SORT_NAME, middle=True),
    Page("middle, by category (next)", CATEGORY, middle=True, share=CATEGORIES),
]
PAGE_SIZE = 10  # sqladmin's default

_NEXT = re.compile(r'<a class="page-link" href="([^"]+)">\s*(?:<i[^>]*></i>\s*)?next', re.I)
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_SHOWING = re.compile(r"Showing [^<]*? items")


def database(rows: int) -> Dataset:
    return Dataset(f"crudkit_admin_{rows}", rows)


def _manage(dataset: Dataset, *args: str) -> None:
    env = app_env(dataset.sqlalchemy_url(), dataset.dsn(), owner_id=0)
    env["CRUDKIT_SUPERUSER_PASSWORD"] = BENCH_PASSWORD
    subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=EXAMPLE_PROJECT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


async def _is_filled(dataset: Dataset) -> bool:
    try:
        conn = await asyncpg.connect(dataset.dsn())
    except asyncpg.InvalidCatalogNameError:
        return False
    try:
        last = await conn.fetchval("SELECT max(id) FROM shop_product")
        admin = await conn.fetchval(
            "SELECT count(*) FROM auth_user WHERE username = $1", ADMIN_USER
        )
    except asyncpg.UndefinedTableError:
        return False
    finally:
        await conn.close()
    return bool(last == dataset.rows and admin == 1)


async def fill(dataset: Dataset) -> None:
    """A fresh database holding `dataset.rows` products, analyzed."""
    if await _is_filled(dataset):
        print(f"{dataset.name}: reused ({dataset.rows:,} products)", flush=True)
        _manage(dataset, "migrate")  # the schema may have moved on since
        await _analyze(dataset)
        return
    started = time.monotonic()
    server = await asyncpg.connect(Dataset("postgres", 0).dsn())
    try:
        await server.execute(f'DROP DATABASE IF EXISTS "{dataset.name}" WITH (FORCE)')
        await server.execute(f'CREATE DATABASE "{dataset.name}"')
    finally:
        await server.close()
    _manage(dataset, "migrate")
    _manage(dataset, "createsuperuser", "--noinput", "--username", ADMIN_USER)
    conn = await asyncpg.connect(dataset.dsn())
    try:
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("SET maintenance_work_mem = '1GB'")
        owner = await conn.fetchval("SELECT id FROM auth_user WHERE username = $1", ADMIN_USER)
        await conn.execute(
            "INSERT INTO shop_category (id, name) SELECT i, 'Category ' || lpad(i::text, 2, '0')"
            f" FROM generate_series(1, {CATEGORIES}) AS i"
        )
        # Indexes are built once at the end, faster than kept up row by row.
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'shop_product'"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        )
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["indexname"]}"')
        for first in range(1, dataset.rows + 1, CHUNK):
            last = min(first + CHUNK - 1, dataset.rows)
            await conn.execute(FILL, first, last, owner)
            print(f"{dataset.name}: {last:,} products", flush=True)
        for index in indexes:
            await conn.execute(index["indexdef"])
        for table in ("shop_category", "shop_product"):
            await conn.execute(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
    finally:
        await conn.close()
    await _analyze(dataset)
    print(f"{dataset.name}: filled in {time.monotonic() - started:.0f} s", flush=True)


async def _analyze(dataset: Dataset) -> None:
    conn = await asyncpg.connect(dataset.dsn())
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def drop(dataset: Dataset) -> None:
    server = await asyncpg.connect(Dataset("postgres", 0).dsn())
    try:
        await server.execute(f'DROP DATABASE IF EXISTS "{dataset.name}" WITH (FORCE)')
    finally:
        await server.close()


@contextmanager
def serving(dataset: Dataset, port: int, log: Path) -> Iterator[str]:
    """The example project under uvicorn on `dataset`; yields its base URL."""
    env = app_env(dataset.sqlalchemy_url(), dataset.dsn(), owner_id=0)
    command = [
        PYTHON, "-m", "uvicorn", "--factory", "crudkit.app:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"uvicorn exited at start:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not become ready in time")
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def log_in(client: httpx.Client, url: str) -> None:
    """Log `client` in to the admin as the superuser, as a browser does."""
    form = client.get("/admin/login")
    match = _TOKEN.search(form.text)
    if match is None:
        raise RuntimeError(f"no CSRF token on the login page ({form.status_code})")
    answer = client.post(
        "/admin/login",
        data={"username": ADMIN_USER, "password": BENCH_PASSWORD, "csrf_token": match[1]},
        headers={"Origin": url},
    )
    if answer.status_code != 302:
        raise RuntimeError(f"admin login failed: {answer.status_code}")


def next_link(page: httpx.Response) -> str:
    match = _NEXT.search(page.text)
    if match is None:
        raise RuntimeError(f"no next link on {page.url}")
    return html.unescape(match[1])


def get(client: httpx.Client, target: str, params: dict[str, str] | None = None) -> httpx.Response:
    answer = client.get(target, params=params)
    if answer.status_code != 200:
        raise RuntimeError(f"{answer.url}: {answer.status_code} {answer.text[:300]}")
    return answer


@dataclass
class Timing:
    ms: float
    showing: str
    url: str


def targets_of(client: httpx.Client, rows: int) -> dict[str, tuple[str, dict[str, str] | None]]:
    """The URL of each page: by query string, or the "next" link of the page before it."""
    fetched: dict[str, httpx.Response] = {}
    targets: dict[str, tuple[str, dict[str, str] | None]] = {}
    for page in PAGES:
        if page.next_from is not None:
            targets[page.label] = (next_link(fetched[page.next_from]), None)
        elif page.middle:
            # The page before the middle, by number (once, untimed): its "next" link is timed.
            before = max(rows // page.share // PAGE_SIZE // 2, 1)
            started = time.perf_counter()
            previous = get(client, LIST, {**page.params, "page": str(before)})
            print(
                f"  {rows:,} rows: page {before:,} by number (offset), "
                f"{(time.perf_counter() - started) * 1000:,.0f} ms",
                flush=True,
            )
            targets[page.label] = (next_link(previous), None)
        else:
            targets[page.label] = (LIST, page.params)
        fetched[page.label] = get(client, *targets[page.label])
    return targets


def time_pages(clients: list[httpx.Client], rows: list[int], runs: int) -> list[dict[str, Timing]]:
    """The median wall time of each page on each server, in ms. The servers take turns,
    request by request, so the machine's other load weighs on both alike."""
    targets = [targets_of(client, count) for client, count in zip(clients, rows, strict=True)]
    results: list[dict[str, Timing]] = [{} for _ in clients]
    for page in PAGES:
        samples: list[list[float]] = [[] for _ in clients]
        answers: list[httpx.Response] = []
        for _ in range(runs):
            answers = []
            for index, client in enumerate(clients):
                started = time.perf_counter()
                answers.append(get(client, *targets[index][page.label]))
                samples[index].append((time.perf_counter() - started) * 1000)
        for index, answer in enumerate(answers):
            showing = _SHOWING.search(answer.text)
            results[index][page.label] = Timing(
                statistics.median(samples[index]), showing[0] if showing else "", str(answer.url)
            )
    return results


@contextmanager
def admin_clients(datasets: list[Dataset], log_dir: Path) -> Iterator[list[httpx.Client]]:
    """A logged-in admin client for each dataset, each served by its own uvicorn."""
    with ExitStack() as stack:
        clients = []
        for port, dataset in enumerate(datasets, start=PORT):
            url = stack.enter_context(serving(dataset, port, log_dir / f"{dataset.name}.log"))
            client = stack.enter_context(httpx.Client(base_url=url, timeout=300))
            log_in(client, url)
            clients.append(client)
        yield clients


def report(small: Dataset, large: Dataset, a: dict[str, Timing], b: dict[str, Timing]) -> bool:
    print()
    print(f"| page | ms at {small.rows:,} | ms at {large.rows:,} | ratio | goal | met? |")
    print("|---|---:|---:|---:|---:|---|")
    met = True
    for page in PAGES:
        ratio = b[page.label].ms / a[page.label].ms
        ok = ratio <= GOAL
        met &= ok
        print(
            f"| {page.label} | {a[page.label].ms:.1f} | {b[page.label].ms:.1f} | "
            f"{ratio:.2f}x | <= {GOAL:.0f}x | {'yes' if ok else 'NO'} |"
        )
    print()
    for page in PAGES:
        print(f"{page.label}: {b[page.label].showing} ({b[page.label].url.split('?', 1)[-1]})")
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=LARGE_ROWS, help="rows of the large table")
    parser.add_argument("--small-rows", type=int, default=SMALL_ROWS)
    parser.add_argument("--runs", type=int, default=15, help="requests per page (median)")
    parser.add_argument("--keep", action="store_true", help="keep the databases for a rerun")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the servers, drop the databases

    small, large = database(args.small_rows), database(args.rows)
    try:
        for dataset in (small, large):
            asyncio.run(fill(dataset))
        with (
            tempfile.TemporaryDirectory(prefix="crudkit-admin-scale-") as tmp,
            admin_clients([small, large], Path(tmp)) as clients,
        ):
            print(f"timing {len(PAGES)} pages, {args.runs} runs each", flush=True)
            timings = time_pages(clients, [small.rows, large.rows], args.runs)
        met = report(small, large, *timings)
    finally:
        if not args.keep:
            for dataset in (small, large):
                asyncio.run(drop(dataset))
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
