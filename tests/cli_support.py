"""Helpers for testing `manage.py` commands: a fresh database, CliRunner, subprocesses.

Migrations need an empty database, so each test that migrates gets its own: a
SQLite file, or a PostgreSQL database created (and dropped) next to
CRUDKIT_TEST_DATABASE_URL. Tests take the `backend` fixture (conftest), so every
command test runs on both databases when PostgreSQL is configured.

Projects whose models change, or that a test creates (`startproject`), run in a
child process: `TempProject.run` runs a batch of commands there and can then
serve the project in-process (httpx ASGITransport) and report what its API and
admin answered.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

import crudkit
from crudkit.cli import Project, main
from tests.conftest import engine_for

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
PG_URL = os.environ.get("CRUDKIT_TEST_DATABASE_URL")
TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256"
EXAMPLE_APPS = ["crudkit.contrib.auth", "crudkit.contrib.admin", "shop"]


async def _execute(url: str, statement: str, *, autocommit: bool = False) -> list[Any]:
    options: dict[str, Any] = {"poolclass": NullPool}
    if autocommit:
        options["isolation_level"] = "AUTOCOMMIT"
    engine = engine_for(url, **options)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement))
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


def query(url: str, statement: str) -> list[Any]:
    """Rows of one SQL statement, run on its own connection."""
    return asyncio.run(_execute(url, statement))


@contextmanager
def fresh_database(tmp_path: Path, backend: str = "sqlite", name: str = "cli") -> Iterator[str]:
    """The URL of an empty database, dropped afterwards (PostgreSQL) or in `tmp_path`."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / f'{name}.sqlite3'}"
        return
    assert PG_URL, "PostgreSQL tests need CRUDKIT_TEST_DATABASE_URL"
    name = f"crudkit_cli_{uuid.uuid4().hex[:10]}"
    asyncio.run(_execute(PG_URL, f'CREATE DATABASE "{name}"', autocommit=True))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(
            _execute(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', autocommit=True)
        )


def example_settings(database_url: str, **values: Any) -> crudkit.Settings:
    options: dict[str, Any] = {
        "secret_key": TEST_SECRET,
        "installed_apps": EXAMPLE_APPS,
        "allowed_hosts": ["testserver"],
        # Cheap hashing keeps the suite fast; the scheme is the same argon2id.
        "argon2_time_cost": 1,
        "argon2_memory_cost": 1024,
        "argon2_parallelism": 1,
        **values,
    }
    return crudkit.Settings(database_url=database_url, _env_file=None, **options)  # type: ignore[call-arg]


class Cli:
    """Runs `manage.py` commands of the example project in-process, one project per call."""

    def __init__(self, database_url: str, **settings: Any) -> None:
        self.database_url = database_url
        self.settings = settings

    def __call__(
        self,
        *args: str,
        input: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
        project: Project | None = None,
    ) -> Result:
        project = project or Project(settings=example_settings(self.database_url, **self.settings))
        return CliRunner().invoke(main, list(args), input=input, env=env, obj=project)

    def query(self, statement: str) -> list[Any]:
        return query(self.database_url, statement)


# Runs several commands in one child process, each as `crudkit <args>` would, and
# prints their exit codes and output as JSON: a process costs seconds of imports.
RUN_COMMANDS = """
import json, sys, traceback
from click.testing import CliRunner
from crudkit.cli import main

results = []
for args in json.loads(sys.argv[1]):
    result = CliRunner().invoke(main, args, prog_name="crudkit")
    error = result.exc_info if not isinstance(result.exception, (SystemExit, type(None))) else None
    trace = "".join(traceback.format_exception(*error)) if error else ""
    results.append([result.exit_code, result.stdout, result.stderr + trace])
"""
BATCH = RUN_COMMANDS + "print(json.dumps(results))\n"

# Then, in the same child: serve the project in-process and use its API and admin
# as a client would; prints [results, {"status": {...}, "bodies": {...}}] as JSON.
RUN_COMMANDS_THEN_SERVE = (
    RUN_COMMANDS
    + """
import asyncio, json, sys
import httpx
from crudkit.app import create_app
from crudkit.conf import load_settings

path, payload, username, password = json.loads(sys.argv[2])

async def smoke():
    app = create_app(load_settings("settings"))
    status, bodies = {}, {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            form = {"username": username, "password": password}
            token = await client.post("/api/v1/auth/token", data=form)
            status["token"] = token.status_code
            headers = {"Authorization": "Bearer " + token.json()["access_token"]}
            created = await client.post("/api/v1/" + path, json=payload, headers=headers)
            status["create"], bodies["create"] = created.status_code, created.json()
            listed = await client.get("/api/v1/" + path, headers=headers)
            status["list"], bodies["list"] = listed.status_code, listed.json()
            anonymous = await client.get("/api/v1/" + path)
            status["anonymous"] = anonymous.status_code
            login = await client.get("/admin/login")
            status["admin_login"], bodies["admin_login"] = login.status_code, login.text
    return {"status": status, "bodies": bodies}

print(json.dumps([results, asyncio.run(smoke())]))
"""
)

ADMIN = ("admin", "violet-otter-harbour")
"""The superuser `TempProject.run(..., smoke=...)` logs in as: create it in the batch with
`["createsuperuser", "--noinput", "--username", "admin"]` (the password is in the env)."""


class TempProject:
    """A project in a temporary directory, driven in child processes."""

    def __init__(self, root: Path, database_url: str) -> None:
        self.root = root
        self.database_url = database_url

    def environment(self, password: str = ADMIN[1]) -> dict[str, str]:
        """The child's `CRUDKIT_*` variables; `password` is what `--noinput` users get."""
        return {
            "CRUDKIT_DATABASE_URL": self.database_url,
            "CRUDKIT_SECRET_KEY": TEST_SECRET,
            "CRUDKIT_DEBUG": "false",
            "CRUDKIT_ALLOWED_HOSTS": "testserver",
            "CRUDKIT_ARGON2_TIME_COST": "1",
            "CRUDKIT_ARGON2_MEMORY_COST": "1024",
            "CRUDKIT_ARGON2_PARALLELISM": "1",
            "CRUDKIT_SUPERUSER_PASSWORD": password,  # createsuperuser/createuser --noinput
        }

    def run(
        self, *commands: list[str], smoke: tuple[str, dict[str, Any]] | None = None
    ) -> tuple[list[tuple[int, str, str]], dict[str, Any]]:
        """Exit code, stdout and stderr of each command (one child process).

        With `smoke=(path, payload)`, the same child then logs in as `ADMIN`,
        creates `payload` at `/api/v1/<path>`, lists it and fetches the admin's
        login page; what it got comes back as the second value.
        """
        batch = [["--settings", "settings", *args] for args in commands]
        code = BATCH if smoke is None else RUN_COMMANDS_THEN_SERVE
        args = [json.dumps(batch)] + ([json.dumps([*smoke, *ADMIN])] if smoke else [])
        result = manage(args, cwd=self.root, env=self.environment(), script=("-c", code))
        assert result.returncode == 0, result.stderr
        output = json.loads(result.stdout)
        results, served = (output, {}) if smoke is None else output
        outcomes = [(code, out, err) for code, out, err in results]
        for _, _, err in outcomes:
            assert "Traceback" not in err, err
        return outcomes, served


def manage(
    args: Sequence[str],
    *,
    cwd: Path = EXAMPLE,
    env: Mapping[str, str] | None = None,
    script: Sequence[str] = ("manage.py",),
) -> subprocess.CompletedProcess[str]:
    """Run a command in a child process, as a user would (`python manage.py ...`)."""
    # Only the suite's PgBouncer mode (a property of CRUDKIT_TEST_DATABASE_URL) carries over.
    full_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CRUDKIT_") or key == "CRUDKIT_DB_PGBOUNCER"
    }
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, *script, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
