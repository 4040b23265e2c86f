"""`shell`: models by name, `db` and `session`, top-level `await`, `-c` and stdin."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import crudkit
from crudkit.cli import Project
from crudkit.cli.shell import AsyncConsole, shell_namespace
from tests.cli_support import Cli, example_settings, fresh_database

COUNT = "await session.scalar(select(func.count()).select_from({model}))"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Cli]:
    with fresh_database(tmp_path_factory.mktemp("shell"), backend) as url:
        cli = Cli(url)
        assert cli("migrate").exit_code == 0
        assert cli("seed").exit_code == 0
        yield cli


def test_command_with_top_level_await(seeded: Cli) -> None:
    result = seeded("shell", "-c", f"print({COUNT.format(model='Product')})")

    assert result.exit_code == 0, result.output
    assert result.stdout == "8\n"


def test_models_and_helpers_are_in_the_namespace(seeded: Cli) -> None:
    code = "print(sorted(name for name in globals() if not name.startswith('_')))"

    names = seeded("shell", "-c", code).stdout

    for name in ["Category", "Product", "Order", "User", "Group", "Permission", "LogEntry"]:
        assert f"'{name}'" in names
    for name in ["apps", "db", "session", "settings", "select", "func", "crudkit"]:
        assert f"'{name}'" in names


def test_stdin_is_run_as_a_script(seeded: Cli) -> None:
    script = (
        f"n = {COUNT.format(model='Category')}\nfor i in range(n):\n    pass\nprint('n =', n)\n"
    )

    result = seeded("shell", input=script)

    assert result.exit_code == 0, result.output
    assert result.stdout == "n = 4\n"


def test_changes_last_once_committed(seeded: Cli) -> None:
    seeded("shell", "-c", "session.add(Category(name='Uncommitted'))\nawait session.flush()")
    seeded("shell", "-c", "session.add(Category(name='Tools'))\nawait session.commit()")

    names = {row[0] for row in seeded.query("SELECT name FROM shop_category")}
    assert "Tools" in names
    assert "Uncommitted" not in names


def test_errors_show_the_users_traceback_and_exit_1(seeded: Cli) -> None:
    failed = seeded("shell", "-c", "x = 1\nawait session.get(Product, 1 / 0)")
    exited = seeded("shell", "-c", "raise SystemExit(3)")

    assert failed.exit_code == 1
    assert failed.stderr.startswith(
        'Traceback (most recent call last):\n  File "<shell -c>", line 2'
    )
    assert failed.stderr.endswith("ZeroDivisionError: division by zero\n")
    assert "asyncio" not in failed.stderr  # the shell's machinery is not the user's problem
    assert exited.exit_code == 3


def test_console_awaits_at_the_top_level(seeded: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    """The interactive console (`code.interact`), fed line by line as a user types."""
    project = Project(settings=example_settings(seeded.database_url))
    with asyncio.Runner() as runner:
        db = crudkit.Database(project.settings)
        session = db.sessionmaker()
        console = AsyncConsole(runner, shell_namespace(project, db, session))
        for line in [
            "users = (await session.scalars(select(User))).all()",
            "async def names():",
            "    return [u.username for u in await session.scalars(select(User))]",
            "",
            "print(len(users), await names())",
            "undefined_name",
            "print('still here')",
        ]:
            console.push(line)
        runner.run(session.close())
        runner.run(db.dispose())

    captured = capsys.readouterr()
    assert captured.out == "1 ['demo']\nstill here\n"
    assert "NameError: name 'undefined_name' is not defined" in captured.err
