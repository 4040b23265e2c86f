"""crudkit benchmarks: the example project against a hand-written app and a near-limit one.

One command, from the repository root::

    .venv/bin/python -m benchmarks.run             # 10,000 products: the five operations
    .venv/bin/python -m benchmarks.run --large     # 1,000,000 products: offset vs cursor pages

Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user `postgres`), `wrk`
(`apt-get install -y wrk`), two CPUs, and the dev extra plus `orjson` and
`py-spy` (`pip install -e '.[dev]' orjson py-spy`).

What it does:

1. Seeds `crudkit_bench` (or `crudkit_bench_large`): `manage.py migrate` of the
   example project, a normal user `bench` (`manage.py createuser`), 20 categories
   and the products, loaded with COPY. A database that already holds its rows is
   reused; rows added by write scenarios are deleted.
2. Counts the round trips and SQL statements of one request per app and
   scenario, through a counting proxy in front of PostgreSQL (`statements.py`).
3. Serves the three apps under uvicorn, one worker each, all pinned to CPU 0
   (`taskset -c 0`); wrk runs pinned to CPU 1, and so do the PostgreSQL backends
   of the benchmark database, so CPU 0 runs nothing but the app under test:
   - `near-limit`: Starlette + asyncpg + hand-written SQL + orjson (`apps/nearlimit.py`),
   - `hand-written`: FastAPI + SQLAlchemy async ORM + Pydantic (`apps/handwritten.py`),
   - `crudkit`: `crudkit.create_app()` with `example_project/settings.py`, debug off,
     reads anonymous and, as `crudkit (token)`, with the bench user's bearer token.
4. For each scenario, warms every app up, then runs `--rounds` rounds of
   `--seconds` each, the apps interleaved round by round (their order rotating).
   Before each run it waits for the machine to be quiet and records the CPU that
   other processes took meanwhile (`noise.py`).
5. Prints markdown tables: req/s, p50 and p99 per app (medians of the rounds),
   crudkit / hand-written against the targets, hand-written / near-limit, and the
   statement counts. Everything is also written to `--out` (results.json, report.md).

`--variant NAME` adds crudkit with a prototype change of `benchmarks/patches.py`
as another app; `--profile` samples crudkit and the hand-written app with py-spy
under each scenario's load and prints where the time went.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks import profile
from benchmarks.config import (
    BENCH_PASSWORD,
    BENCH_USER,
    DEEP_OFFSET,
    LARGE,
    SMALL,
    Dataset,
    app_env,
)
from benchmarks.load import Driver, Request, Sample
from benchmarks.report import Summary, counts_table, depth_table, ratio_table, results_table
from benchmarks.scenarios import LARGE_SCENARIOS, SMALL_SCENARIOS, Scenario
from benchmarks.seed import ensure_seeded, reset
from benchmarks.servers import CRUDKIT, HANDWRITTEN, NEARLIMIT, AppSpec, crudkit_variant, serving
from benchmarks.statements import Count, count_statements

VARIANT_PORT = 8110


@dataclass(frozen=True)
class Target:
    """An app, and whether its client sends the bench user's token."""

    spec: AppSpec
    token: bool = False

    @property
    def label(self) -> str:
        return f"{self.spec.label} (token)" if self.token else self.spec.label


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", action="store_true", help="1,000,000 rows: deep pages")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of one round")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds per app and scenario")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--scenarios", default="", help="comma-separated names (default: all)")
    parser.add_argument("--variant", action="append", default=[], help="crudkit prototype patch")
    parser.add_argument(
        "--apps", default="nearlimit,handwritten,crudkit", help="comma-separated app keys"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy each scenario after")
    parser.add_argument("--no-counts", action="store_true", help="skip statement counting")
    parser.add_argument("--reseed", action="store_true", help="rebuild the database")
    parser.add_argument("--nice", type=int, default=-10, help="priority of servers and wrk")
    parser.add_argument(
        "--quiet-wait", type=float, default=60.0, help="max seconds to wait for a quiet machine"
    )
    parser.add_argument("--out", type=Path, default=Path("/tmp/crudkit-bench"))
    return parser.parse_args()


def main(args: argparse.Namespace) -> None:
    dataset = LARGE if args.large else SMALL
    scenarios = LARGE_SCENARIOS if args.large else SMALL_SCENARIOS
    if args.scenarios:
        wanted = set(args.scenarios.split(","))
        scenarios = [scenario for scenario in scenarios if scenario.name in wanted]
    out: Path = args.out / ("large" if args.large else "small")
    out.mkdir(parents=True, exist_ok=True)

    owner_id = asyncio.run(ensure_seeded(dataset, force=args.reseed))
    specs = [spec for spec in (NEARLIMIT, HANDWRITTEN, CRUDKIT) if spec.key in args.apps]
    specs += [crudkit_variant(name, VARIANT_PORT + i) for i, name in enumerate(args.variant)]
    env = app_env(dataset.sqlalchemy_url(), dataset.dsn(), owner_id)

    with serving(specs, env, out / "logs", nice=args.nice) as pids:
        token = get_token(CRUDKIT)
        if args.large:
            scenarios = [with_cursor(scenario, CRUDKIT, token) for scenario in scenarios]
        driver = Driver(
            Dataset("postgres", 0).dsn(),
            dataset.name,
            list(pids.values()),
            nice=args.nice,
            quiet_wait=args.quiet_wait,
        )
        samples = measure(driver, pids, dataset, scenarios, specs, token, args)
        summaries = {key: Summary(key[0], key[1], tuple(values)) for key, values in samples.items()}
        profiles = profile_all(driver, scenarios, specs, pids, token, args, out)

    counted = [spec.key for spec in specs if spec.key in _COUNTED]
    counts = (
        []
        if args.no_counts
        else asyncio.run(count_statements(dataset, owner_id, scenarios, counted))
    )
    asyncio.run(reset(dataset))
    crudkits = [t.label for t in targets_for(scenarios[0], specs) if t.spec.prefix] + [
        f"{CRUDKIT.label} (token)"
    ]
    report = render(args, dataset, scenarios, summaries, sorted(set(crudkits)), counts, profiles)
    print(report)
    (out / "report.md").write_text(report + "\n")
    (out / "results.json").write_text(
        json.dumps(
            {
                f"{name} | {target}": [dataclasses.asdict(sample) for sample in summary.samples]
                for (name, target), summary in summaries.items()
            },
            indent=1,
        )
    )


_COUNTED = ("nearlimit", "handwritten", "crudkit")


def get_token(spec: AppSpec) -> str:
    """An access token for the bench user, through crudkit's own login endpoint."""
    response = httpx.post(
        f"{spec.base_url}{spec.prefix}/auth/token",
        data={"username": BENCH_USER, "password": BENCH_PASSWORD},
        timeout=30,
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def with_cursor(scenario: Scenario, spec: AppSpec, token: str) -> Scenario:
    """Fill `{cursor}` with the cursor crudkit returns for the page before `DEEP_OFFSET`."""
    if "{cursor}" not in scenario.path:
        return scenario
    base = f"{spec.base_url}{spec.prefix}/products?limit=50"
    before = httpx.get(f"{base}&offset={DEEP_OFFSET - 50}", timeout=60).json()
    cursor = before["next_cursor"]
    by_offset = httpx.get(f"{base}&offset={DEEP_OFFSET}", timeout=60).json()["items"]
    by_cursor = httpx.get(f"{base}&cursor={cursor}", timeout=60).json()["items"]
    if [item["id"] for item in by_offset] != [item["id"] for item in by_cursor]:
        raise RuntimeError("the cursor page is not the offset page")
    return dataclasses.replace(scenario, path=scenario.path.replace("{cursor}", cursor))


def targets_for(scenario: Scenario, specs: list[AppSpec]) -> list[Target]:
    targets = []
    for spec in specs:
        kind = "crudkit" if spec.prefix else spec.key
        targets += [Target(spec, token) for token in scenario.clients(kind)]
    return targets


def request_for(scenario: Scenario, target: Target, token: str) -> Request:
    return Request(
        method=scenario.method,
        url=target.spec.base_url + target.spec.prefix + scenario.path,
        id_max=scenario.id_max,
        body=scenario.body,
        token=token if target.token else "",
    )


def measure(
    driver: Driver,
    pids: dict[str, int],
    dataset: Dataset,
    scenarios: list[Scenario],
    specs: list[AppSpec],
    token: str,
    args: argparse.Namespace,
) -> dict[tuple[str, str], list[Sample]]:
    samples: dict[tuple[str, str], list[Sample]] = {}
    for scenario in scenarios:
        targets = targets_for(scenario, specs)
        connections = min(scenario.connections, args.connections)
        for target in targets:
            driver.run(request_for(scenario, target, token), args.warmup, connections, wait=False)
        for round_number in range(args.rounds):
            shift = round_number % len(targets)
            for target in targets[shift:] + targets[:shift]:
                request = request_for(scenario, target, token)
                started = time.monotonic()
                sample = driver.run(
                    request, args.seconds, connections, server_pid=pids[target.spec.key]
                )
                waited = time.monotonic() - started - sample.seconds
                samples.setdefault((scenario.name, target.label), []).append(sample)
                print(
                    f"{scenario.name:14} round {round_number + 1}  {target.label:28} "
                    f"{sample.rps:8,.0f} req/s  p50 {sample.p50_ms:7.2f} ms  "
                    f"p99 {sample.p99_ms:7.2f} ms  cpu {sample.server_cpu_us:6.0f} us/req  "
                    f"errors {sample.failures}  "
                    f"others {sample.foreign_cores:.2f} cores  (waited {waited:.0f} s)",
                    flush=True,
                )
        if scenario.method == "POST":
            asyncio.run(reset(dataset))
    return samples


def profile_all(
    driver: Driver,
    scenarios: list[Scenario],
    specs: list[AppSpec],
    pids: dict[str, int],
    token: str,
    args: argparse.Namespace,
    out: Path,
) -> list[tuple[str, str]]:
    """py-spy each crudkit and hand-written target under its scenario's load."""
    if not args.profile:
        return []
    results = []
    for scenario in scenarios:
        for target in targets_for(scenario, specs):
            if target.spec.key == NEARLIMIT.key:
                continue
            raw = out / f"profile-{scenario.name}-{target.label.replace(' ', '_')}.txt"
            recorder = profile.start(pids[target.spec.key], args.seconds, raw)
            driver.run(
                request_for(scenario, target, token),
                args.seconds + 1,
                min(scenario.connections, args.connections),
                wait=False,
            )
            recorder.wait()
            title = f"{scenario.name} / {target.label}"
            results.append((title, profile.describe(raw)))
            print(f"profile {title}:\n{results[-1][1]}", flush=True)
    return results


def render(
    args: argparse.Namespace,
    dataset: Dataset,
    scenarios: list[Scenario],
    summaries: dict[tuple[str, str], Summary],
    crudkits: list[str],
    counts: list[Count],
    profiles: list[tuple[str, str]],
) -> str:
    noise = max(
        (s.foreign_cores for summary in summaries.values() for s in summary.samples), default=0
    )
    parts = [
        f"## {dataset.rows:,} products: {args.rounds} rounds x {args.seconds:g} s, "
        f"{args.connections} connections (deep pages: 1), apps interleaved",
        results_table(scenarios, summaries),
        f"Other processes used at most {noise:.2f} cores during a run.",
    ]
    if args.large:
        parts.append(depth_table(summaries, CRUDKIT.label))
    else:
        parts.append(ratio_table(scenarios, summaries, crudkits))
    if counts:
        parts += ["### Round trips per request", counts_table(counts)]
    for title, text in profiles:
        parts += [f"### Profile: {title}", "```", text, "```"]
    return "\n\n".join(part for part in parts if part)


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so the servers are stopped on the way out


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)
    main(parse_args())
