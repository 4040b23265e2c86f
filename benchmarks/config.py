"""Where things are: database, ports, the benchmark user, and the environment of each app."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PROJECT = ROOT / "example_project"
PYTHON = sys.executable

PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("BENCH_PG_USER", "postgres")

SECRET_KEY = "benchmark-secret-key-" + "x" * 32
METRICS_TOKEN = "benchmark-metrics-token-" + "y" * 32
BENCH_USER = "bench"
BENCH_PASSWORD = "Bench-password-2024!"
CATEGORIES = 20
SMALL_ROWS = 10_000
LARGE_ROWS = 1_000_000
DEEP_OFFSET = 900_000
POOL_SIZE = 10  # crudkit's default `db_pool_size`; every app gets the same pool


@dataclass(frozen=True)
class Dataset:
    """One seeded database."""

    name: str
    rows: int

    def dsn(self, host: str = PG_HOST, port: int = PG_PORT) -> str:
        """A libpq/asyncpg DSN."""
        return f"postgresql://{PG_USER}@{host}:{port}/{self.name}"

    def sqlalchemy_url(self, host: str = PG_HOST, port: int = PG_PORT) -> str:
        return f"postgresql+asyncpg://{PG_USER}@{host}:{port}/{self.name}"


SMALL = Dataset("crudkit_bench", SMALL_ROWS)
LARGE = Dataset("crudkit_bench_large", LARGE_ROWS)


def crudkit_env(database_url: str) -> dict[str, str]:
    """Environment of the example project in production mode (debug off, a real secret)."""
    return {
        "CRUDKIT_SETTINGS_MODULE": "settings",
        "CRUDKIT_DATABASE_URL": database_url,
        "CRUDKIT_DEBUG": "false",
        "CRUDKIT_SECRET_KEY": SECRET_KEY,
        # The servers' address, and the host of the in-process runs (cpu.py, statements.py).
        "CRUDKIT_ALLOWED_HOSTS": "127.0.0.1,localhost,bench",
        # Metrics are counted as in production, where Prometheus scrapes with this token.
        "CRUDKIT_METRICS_TOKEN": METRICS_TOKEN,
        # The run outlives the default 15 minutes of an access token.
        "CRUDKIT_ACCESS_TOKEN_TTL": "86400",
        "CRUDKIT_DB_POOL_SIZE": str(POOL_SIZE),
    }


def app_env(database_url: str, dsn: str, owner_id: int) -> dict[str, str]:
    """Environment every server process gets (each app reads what it needs)."""
    env = dict(os.environ)
    env.update(crudkit_env(database_url))
    env["BENCH_DATABASE_URL"] = database_url
    env["BENCH_DSN"] = dsn
    env["BENCH_OWNER_ID"] = str(owner_id)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(EXAMPLE_PROJECT)])
    return env
