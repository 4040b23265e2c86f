"""Errors a new project meets in its first hour say what to do: the extra to install, the
worker that cannot start, the option to pass, why `--sql` stops."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_support import EXAMPLE, TEST_SECRET, Cli, fresh_database, manage

# Runs `crudkit` as if an optional dependency were not installed.
WITHOUT = """
import sys
sys.modules[sys.argv.pop(1)] = None
from crudkit.cli import main
main(prog_name="crudkit")
"""
SECURE = {"CRUDKIT_SECRET_KEY": TEST_SECRET, "CRUDKIT_ALLOWED_HOSTS": "testserver"}


@pytest.fixture
def cli(tmp_path: Path, backend: str) -> Iterator[Cli]:
    with fresh_database(tmp_path, backend) as url:
        yield Cli(url)


def without(module: str, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return manage(
        ["--settings", "settings", *args], env={**SECURE, **env}, script=["-c", WITHOUT, module]
    )


def test_postgres_url_without_asyncpg_names_the_extra() -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    for args in (["migrate"], ["routes"], ["check"]):
        result = without("asyncpg", args, CRUDKIT_DATABASE_URL=url)

        assert result.returncode == 1, args
        assert result.stderr == (
            "Error: asyncpg is not installed (needed for postgresql+asyncpg:// database URLs): "
            'pip install "crudkit[postgres]"\n'
        ), args


def test_runserver_workers_that_cannot_start_stop_the_server(tmp_path: Path) -> None:
    # Each worker builds the app, and the throttle's Redis client with it: without the
    # redis package no worker can start. The server stops, instead of restarting them.
    result = without(
        "redis",
        ["runserver", "--workers", "2", "--port", "0"],
        CRUDKIT_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
        CRUDKIT_REDIS_URL="redis://127.0.0.1:6379/15",
    )

    assert result.returncode == 1
    assert result.stderr == (
        'Error: redis is not installed (needed for redis_url): pip install "crudkit[redis]"\n'
    )
    assert "Started" not in result.stdout + result.stderr


def test_testing_helpers_name_their_extra() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['httpx'] = None; import crudkit.testing"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "ModuleNotFoundError: httpx is not installed (needed for crudkit.testing): "
        'pip install "crudkit[testing]"'
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--pythonpath", str(EXAMPLE), "--settings", "settings", "routes"],
        ["routes", "--pythonpath", str(EXAMPLE), "--settings", "settings"],
    ],
)
def test_pythonpath_finds_the_project_from_elsewhere(tmp_path: Path, args: list[str]) -> None:
    env = {**SECURE, "CRUDKIT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}"}

    result = manage(args, cwd=tmp_path, env=env, script=["-m", "crudkit.cli"])

    assert result.returncode == 0, result.stderr
    assert "/api/v1/products" in result.stdout

    elsewhere = manage(
        ["--settings", "settings", "routes"], cwd=tmp_path, env=env, script=["-m", "crudkit.cli"]
    )
    assert elsewhere.returncode == 1
    assert "cannot import settings module 'settings'" in elsewhere.stderr


def test_check_deploy_warns_of_workers_without_redis(cli: Cli) -> None:
    found = cli("check", "--deploy", env={"WEB_CONCURRENCY": "4"})
    assert "crudkit.W007 (warning): WEB_CONCURRENCY is 4 and no redis_url is set" in found.stdout

    for env in ({"WEB_CONCURRENCY": "1"}, {"WEB_CONCURRENCY": ""}):
        assert "crudkit.W007" not in cli("check", "--deploy", env=env).stdout
    shared = Cli(cli.database_url, redis_url="redis://127.0.0.1:6379/15")
    assert "crudkit.W007" not in shared("check", "--deploy", env={"WEB_CONCURRENCY": "4"}).stdout


def test_migrate_sql_explains_a_batch_migration_on_sqlite(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        cli = Cli(url)
        assert cli("migrate", "auth").exit_code == 0
        assert cli("migrate", "admin").exit_code == 0

        result = cli("migrate", "--sql")

    assert result.exit_code == 1
    assert "CREATE TABLE shop_product" in result.stdout  # the SQL up to the migration
    assert result.stderr == (
        "Error: --sql cannot write the SQL of migration 0002_tags_and_order_status: it alters "
        "a table in batch mode, which SQLite can only do on a live database; the SQL above "
        "stops before it. Use `migrate --plan` to see what would run, or run `migrate` on a "
        "copy of the database\n"
    )


def test_routes_list_registration_only_when_it_is_open(cli: Cli) -> None:
    closed = cli("routes")
    assert closed.exit_code == 0, closed.output
    assert "/auth/register" not in closed.stdout
    assert "/api/v1/auth/token" in closed.stdout

    opened = Cli(cli.database_url, allow_registration=True)("routes")
    assert opened.exit_code == 0, opened.output
    assert "POST /api/v1/auth/register public" in [
        " ".join(line.split()) for line in opened.stdout.splitlines()
    ]
