"""`createsuperuser`, `createuser` and `changepassword`."""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

import crudkit
from crudkit.contrib.auth.hashing import verify_password
from crudkit.contrib.auth.testing import login
from crudkit.testing import client_for
from tests.cli_support import EXAMPLE, TEST_SECRET, Cli, example_settings, fresh_database

PASSWORD = "violet-otter-harbour"
ENV = {"CRUDKIT_SUPERUSER_PASSWORD": PASSWORD}


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Cli]:
    with fresh_database(tmp_path_factory.mktemp("users"), backend) as url:
        cli = Cli(url)
        assert cli("migrate").exit_code == 0
        yield cli


@pytest.fixture
def cli(migrated: Cli) -> Iterator[Cli]:
    yield migrated
    migrated.query("DELETE FROM auth_refresh_token")
    migrated.query("DELETE FROM auth_user")


def user(cli: Cli, username: str) -> dict[str, object]:
    rows = cli.query(
        "SELECT username, email, hashed_password, is_staff, is_superuser, token_version "
        f"FROM auth_user WHERE username = '{username}'"
    )
    assert len(rows) == 1
    return dict(rows[0]._mapping)


def test_createsuperuser_noinput(cli: Cli) -> None:
    result = cli(
        "createsuperuser", "--noinput", "--username", "admin", "--email", "a@example.com", env=ENV
    )

    assert result.exit_code == 0, result.output
    assert result.stdout == "Superuser 'admin' created.\n"
    admin = user(cli, "admin")
    assert admin["email"] == "a@example.com"
    assert admin["is_staff"]
    assert admin["is_superuser"]
    assert verify_password(PASSWORD, str(admin["hashed_password"]))[0]


def test_createsuperuser_noinput_reads_username_and_email_from_env(cli: Cli) -> None:
    env = {**ENV, "CRUDKIT_SUPERUSER_USERNAME": "root", "CRUDKIT_SUPERUSER_EMAIL": "r@example.com"}

    result = cli("createsuperuser", "--noinput", env=env)

    assert result.exit_code == 0, result.output
    assert user(cli, "root")["email"] == "r@example.com"


def test_createsuperuser_prompts(cli: Cli) -> None:
    result = cli("createsuperuser", input=f"admin\nadmin@example.com\n{PASSWORD}\n{PASSWORD}\n")

    assert result.exit_code == 0, result.output
    assert user(cli, "admin")["is_superuser"]


def test_existing_username_is_an_error(cli: Cli) -> None:
    cli("createsuperuser", "--noinput", "--username", "admin", env=ENV)

    result = cli("createsuperuser", "--noinput", "--username", "admin", env=ENV)

    assert result.exit_code == 1
    assert result.stderr == "Error: a user named 'admin' already exists\n"


@pytest.mark.parametrize(
    ("password", "problems"),
    [
        ("short", ["This password is too short."]),
        ("password123", ["This password is too common."]),
        ("12345678901", ["This password is entirely numeric.", "This password is too common."]),
        ("admin#42x", ["The password is too similar to the username."]),
    ],
)
def test_bad_passwords_are_refused(cli: Cli, password: str, problems: list[str]) -> None:
    result = cli(
        "createsuperuser",
        "--noinput",
        "--username",
        "admin",
        env={"CRUDKIT_SUPERUSER_PASSWORD": password},
    )

    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == len(problems)
    for line, problem in zip(lines, problems, strict=True):
        assert line.startswith(f"Error: {problem}")
    assert cli.query("SELECT count(*) FROM auth_user")[0][0] == 0


def test_noinput_needs_a_password(cli: Cli) -> None:
    result = cli("createsuperuser", "--noinput", "--username", "admin", env={})

    assert result.exit_code == 1
    assert result.stderr == "Error: --noinput needs the password in CRUDKIT_SUPERUSER_PASSWORD\n"


def test_createuser(cli: Cli) -> None:
    result = cli("createuser", "bob", "--email", "bob@example.com", "--staff", "--noinput", env=ENV)

    assert result.exit_code == 0, result.output
    bob = user(cli, "bob")
    assert bob["is_staff"]
    assert not bob["is_superuser"]
    assert cli("createuser", "carol", input=f"\n{PASSWORD}\n{PASSWORD}\n").exit_code == 0
    assert not user(cli, "carol")["is_staff"]


def test_bad_username_and_email(cli: Cli) -> None:
    bad_name = cli("createuser", "no spaces", "--noinput", env=ENV)
    bad_email = cli("createuser", "bob", "--email", "nope", "--noinput", env=ENV)

    assert bad_name.exit_code == 1
    assert bad_name.stderr == (
        "Error: 'no spaces' is not a valid username: Usernames may contain only letters, "
        "numbers, and @/./+/-/_ characters.\n"
    )
    assert bad_email.exit_code == 1
    assert bad_email.stderr == (
        "Error: 'nope' is not a valid email address: An email address must have an @-sign.\n"
    )


def test_changepassword_reads_stdin(cli: Cli) -> None:
    cli("createuser", "bob", "--noinput", env=ENV)
    before = user(cli, "bob")
    new = "lantern-quarry-mosaic"

    result = cli("changepassword", "bob", input=f"{new}\n{new}\n")

    assert result.exit_code == 0, result.output
    after = user(cli, "bob")
    assert verify_password(new, str(after["hashed_password"]))[0]
    assert not verify_password(PASSWORD, str(after["hashed_password"]))[0]
    assert after["token_version"] == int(str(before["token_version"])) + 1  # old tokens die


async def _me(app: FastAPI, headers: dict[str, str] | None = None) -> tuple[dict[str, str], int]:
    async with client_for(app) as client:
        headers = headers or await login(client, "bob", PASSWORD)
        response = await client.get("/api/v1/auth/me", headers=headers)
        return headers, response.status_code


def test_changepassword_ends_api_sessions(cli: Cli) -> None:
    cli("createuser", "bob", "--noinput", env=ENV)
    app = crudkit.create_app(example_settings(cli.database_url))
    headers, status = asyncio.run(_me(app))
    assert status == 200

    cli("changepassword", "bob", input="lantern-quarry-mosaic\nlantern-quarry-mosaic\n")

    assert asyncio.run(_me(app, headers))[1] == 401


def test_changepassword_mistakes(cli: Cli) -> None:
    cli("createuser", "bob", "--noinput", env=ENV)

    mismatch = cli("changepassword", "bob", input="lantern-quarry-mosaic\nsomething-else-x\n")
    weak = cli("changepassword", "bob", input="bob\nbob\n")
    unknown = cli("changepassword", "nobody", input="x\nx\n")

    assert mismatch.exit_code == 1
    assert mismatch.stderr == "Error: the two passwords do not match\n"
    assert weak.exit_code == 1
    assert "This password is too short." in weak.stderr
    assert unknown.exit_code == 1
    assert unknown.stderr == "Error: user 'nobody' does not exist\n"
    assert verify_password(PASSWORD, str(user(cli, "bob")["hashed_password"]))[0]


def test_createuser_asks_for_the_password_twice(cli: Cli) -> None:
    mismatch = cli("createuser", "dave", input=f"\n{PASSWORD}\nsomething-else-x\n")
    matching = cli("createuser", "dave", input=f"dave@example.com\n{PASSWORD}\n{PASSWORD}\n")

    assert mismatch.exit_code == 1
    assert mismatch.stderr == "Error: the two passwords do not match\n"
    assert matching.exit_code == 0, matching.output
    assert verify_password(PASSWORD, str(user(cli, "dave")["hashed_password"]))[0]


def _read_until(fd: int, marker: bytes, seen: bytearray) -> None:
    deadline = time.monotonic() + 30
    while marker not in seen:
        assert time.monotonic() < deadline, seen.decode(errors="replace")
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            seen.extend(os.read(fd, 1024))


def test_createuser_prompts_twice_on_a_terminal(tmp_path: Path) -> None:
    """On a real terminal the password is asked twice, hidden, as by createsuperuser."""
    main_fd, child_fd = os.openpty()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CRUDKIT_")},
        "CRUDKIT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'tty.sqlite3'}",
        "CRUDKIT_SECRET_KEY": TEST_SECRET,
        "CRUDKIT_ARGON2_MEMORY_COST": "1024",
    }
    child = subprocess.Popen(
        [sys.executable, "-c", TTY_SCRIPT],
        cwd=EXAMPLE,
        env=env,
        stdin=child_fd,
        stdout=child_fd,
        stderr=child_fd,
        start_new_session=True,  # no controlling terminal: getpass uses the pty on stdin
    )
    os.close(child_fd)
    seen = bytearray()
    try:
        for prompt, answer in [
            (b"Email address: ", b"\n"),
            (b"Password: ", PASSWORD.encode() + b"\n"),
            (b"Password (again): ", PASSWORD.encode() + b"\n"),
        ]:
            _read_until(main_fd, prompt, seen)
            os.write(main_fd, answer)
        _read_until(main_fd, b"User 'erin' created.", seen)
    finally:
        child.wait(timeout=30)
        os.close(main_fd)
    assert child.returncode == 0, seen.decode(errors="replace")
    assert PASSWORD.encode() not in seen  # never echoed


# migrate, then createuser, in one process whose stdin is the terminal.
TTY_SCRIPT = """
import sys
from click.testing import CliRunner
from crudkit.cli import main
sys.path.insert(0, ".")
CliRunner().invoke(main, ["--settings", "settings", "migrate"])
main(["--settings", "settings", "createuser", "erin"], prog_name="manage.py")
"""
