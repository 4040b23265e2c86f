"""The command group itself (help, errors, settings), `seed`, `routes` and `runserver`."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from crudkit.cli import Project, main
from tests.cli_support import EXAMPLE, TEST_SECRET, Cli, fresh_database, manage

BUILTINS = [
    "check",
    "dumpdata",
    "loaddata",
    "makemigrations",
    "migrate",
    "openapi",
    "routes",
    "runserver",
    "shell",
    "showmigrations",
    "startapp",
    "startproject",
]
APP_COMMANDS = ["changepassword", "createsuperuser", "createuser", "seed"]


@pytest.fixture
def cli(tmp_path: Path, backend: str) -> Iterator[Cli]:
    with fresh_database(tmp_path, backend) as url:
        yield Cli(url)


def command_names(help_text: str) -> list[str]:
    section = help_text.split("Commands:\n", 1)[1]
    return [line.split()[0] for line in section.splitlines() if line.startswith("  ")]


def test_help_lists_builtin_and_app_commands(cli: Cli) -> None:
    result = cli("--help")

    assert result.exit_code == 0
    assert command_names(result.stdout) == sorted(BUILTINS + APP_COMMANDS)


def test_help_still_lists_builtins_when_settings_fail() -> None:
    result = CliRunner().invoke(main, ["--help"], obj=Project("no_such_settings"))

    assert result.exit_code == 0
    assert command_names(result.stdout) == BUILTINS
    assert result.stderr == (
        "Error: cannot load the project: cannot import settings module 'no_such_settings': "
        "No module named 'no_such_settings'\n"
    )


def test_bad_settings_module_is_one_line() -> None:
    result = manage(["--settings", "no_such_settings", "migrate"])

    assert result.returncode == 1
    assert result.stderr == (
        "Error: cannot import settings module 'no_such_settings': "
        "No module named 'no_such_settings'\n"
    )


def test_invalid_settings_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(
        "import crudkit\nsettings = crudkit.Settings(secret_key='short', page_size_max=0)\n"
    )

    # The console script, from the project's directory: it is importable, as with manage.py.
    result = manage(
        ["--settings", "broken", "showmigrations"], cwd=tmp_path, script=["-m", "crudkit.cli"]
    )

    assert result.returncode == 1
    assert result.stderr.startswith("Error: invalid settings: secret_key (CRUDKIT_SECRET_KEY): ")
    assert "page_size_max (CRUDKIT_PAGE_SIZE_MAX)" in result.stderr
    assert result.stderr.count("\n") == 1


def test_an_unmigrated_database_says_so(cli: Cli) -> None:
    result = cli("seed")

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: database error: ")
    assert result.stderr.endswith(" (has the database been migrated? run `migrate`)\n")


@pytest.mark.parametrize(
    "args", [["--traceback", "migrate"], ["migrate", "--traceback"], ["migrate", "--", "x"]]
)
def test_traceback_option_shows_the_error(args: list[str]) -> None:
    result = CliRunner().invoke(main, args, obj=Project("no_such_settings"))

    assert result.exit_code == 1
    if "--traceback" in args:  # before or after the command name, as in Django
        assert type(result.exception).__name__ == "ImproperlyConfigured"
    else:
        assert result.stderr.startswith("Error: cannot import settings module")


def test_settings_option_after_the_command(tmp_path: Path) -> None:
    (tmp_path / "mysettings.py").write_text(
        "import crudkit\nsettings = crudkit.Settings(secret_key='short')\n"
    )

    result = manage(
        ["check", "--settings", "mysettings"], cwd=tmp_path, script=["-m", "crudkit.cli"]
    )

    assert result.returncode == 1
    assert "crudkit.E002 (error): the project cannot be loaded: invalid settings" in result.stdout


def test_a_settings_module_that_raises_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "settings.py").write_text("import crudkit\n\nDEBUG = undefined_name\n")

    result = manage(
        ["--settings", "settings", "routes"], cwd=tmp_path, script=["-m", "crudkit.cli"]
    )

    assert result.returncode == 1
    assert result.stderr == (
        "Error: cannot import settings module 'settings': "
        "NameError: name 'undefined_name' is not defined (settings.py, line 3)\n"
    )


def test_an_app_that_fails_to_load_is_reported_once(tmp_path: Path) -> None:
    """The group loads the project to list commands; the command must not load it again."""
    (tmp_path / "settings.py").write_text(
        "import crudkit\n\nclass Settings(crudkit.Settings):\n"
        "    installed_apps: list[str] = ['crudkit.contrib.auth', 'broken']\n"
    )
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "__init__.py").write_text("")
    (tmp_path / "broken" / "models.py").write_text("import crudkit\n\n1 / 0\n")
    env = {"CRUDKIT_SECRET_KEY": TEST_SECRET}

    result = manage(
        ["--settings", "settings", "migrate"], cwd=tmp_path, env=env, script=["-m", "crudkit.cli"]
    )

    assert result.returncode == 1
    assert result.stderr == (
        "Error: cannot load the installed apps: ZeroDivisionError: division by zero "
        "(models.py, line 3)\n"
    )


def test_unknown_command_and_option_are_usage_errors(cli: Cli) -> None:
    unknown = cli("frobnicate")
    bad_option = cli("migrate", "--frobnicate")

    assert unknown.exit_code == 2
    assert "No such command 'frobnicate'" in unknown.stderr
    assert bad_option.exit_code == 2
    assert "No such option '--frobnicate'" in bad_option.stderr


def test_seed_is_idempotent(cli: Cli) -> None:
    cli("migrate")

    first = cli("seed")
    second = cli("seed")

    assert first.exit_code == 0, first.output
    assert "Created the user 'demo' to own the products" in first.stdout
    assert first.stdout.endswith("Added 4 categories, 3 tags and 8 products.\n")
    assert second.exit_code == 0, second.output
    assert second.stdout == "Nothing to add: the sample data is already loaded.\n"
    assert cli.query("SELECT count(*) FROM shop_category")[0][0] == 4
    assert cli.query("SELECT count(*) FROM shop_product")[0][0] == 8
    assert cli.query("SELECT count(*) FROM shop_tag")[0][0] == 3
    assert cli.query("SELECT count(*) FROM shop_product_tags")[0][0] == 7
    assert cli.query("SELECT username, hashed_password FROM auth_user") == [("demo", "")]


def test_seed_gives_products_to_the_first_superuser(cli: Cli) -> None:
    cli("migrate")
    cli(
        "createsuperuser",
        "--noinput",
        "--username",
        "admin",
        env={"CRUDKIT_SUPERUSER_PASSWORD": "violet-otter-harbour"},
    )

    result = cli("seed")

    assert "Products are owned by the superuser 'admin'." in result.stdout
    owners = cli.query(
        "SELECT DISTINCT u.username FROM shop_product p JOIN auth_user u ON u.id = p.owner_id"
    )
    assert owners == [("admin",)]


def test_routes(cli: Cli) -> None:
    result = cli("routes")

    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert lines[0] == "METHODS PATH PERMISSION"
    assert "GET /healthz public" in lines
    assert "POST /api/v1/auth/token public" in lines
    assert "GET /api/v1/auth/me checked by the endpoint (uses the caller)" in lines
    assert "GET /api/v1/products public read" in lines
    assert "POST /api/v1/products authenticated; becomes the owner" in lines
    assert "PATCH /api/v1/products/{id} shop.change_product, or the owner" in lines
    assert "POST /api/v1/categories shop.add_category" in lines
    assert "GET /api/v1/orders shop.view_order, or the owner's rows" in lines
    assert "* /admin mounted app: its own checks" in lines


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_runserver_serves_the_project(cli: Cli) -> None:
    port = _free_port()
    env = {"CRUDKIT_DATABASE_URL": cli.database_url, "CRUDKIT_SECRET_KEY": TEST_SECRET}
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--port", str(port)],
        cwd=EXAMPLE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()[1]
                assert time.monotonic() < deadline, "runserver did not answer"
                time.sleep(0.2)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
    finally:
        server.terminate()
        server.communicate(timeout=10)
