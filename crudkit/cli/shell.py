"""`shell`: Python with the project loaded, its models imported, and `await` at the top level.

    $ python manage.py shell
    >>> await session.scalar(select(func.count()).select_from(Product))
    8
    $ python manage.py shell -c "print(await session.get(User, 1))"
    $ echo "print(len(settings.installed_apps))" | python manage.py shell

The namespace holds every model of the installed apps by class name (an app
label prefix, `shop_Product`, when two apps use the same name), `settings`,
`apps`, `db` (a `crudkit.Database`), `session` (an `AsyncSession`: changes last
once you `await session.commit()`), and SQLAlchemy's `select`, `func`,
`insert`, `update`, `delete`.

Interactive sessions use IPython when it is installed (its `autoawait`), else
`code.interact` with the top-level-await compiler flag, as `python -m asyncio`
does. Unlike `python -m asyncio`, the event loop runs in the main thread: each
statement runs to completion on one `asyncio.Runner` (IPython's `loop_runner`
too), so the engine's connections always belong to one loop. With `-c`, or stdin that is not a
terminal, the code runs as a script, awaits included, and the command exits 1
if it raises.
"""

from __future__ import annotations

import ast
import asyncio
import code
import importlib
import inspect
import sys
import traceback
import types
from typing import Any

import click
import sqlalchemy

import crudkit
from crudkit.cli.project import Project, pass_project

TOP_LEVEL_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


@click.command()
@click.option(
    "-c", "--command", "source", help="Run this code (top-level `await` allowed) and exit."
)
@click.option(
    "-i",
    "--interface",
    type=click.Choice(["ipython", "python"]),
    help="The interactive shell (default: IPython when installed).",
)
@pass_project
def shell(project: Project, source: str | None, interface: str | None) -> None:
    """Python with settings, models, `db` and an async `session`; top-level `await` works."""
    apps = project.apps
    with asyncio.Runner() as runner:
        db = crudkit.Database(project.settings)
        session = db.sessionmaker()
        namespace = shell_namespace(project, db, session)
        status = 0
        try:
            if source is not None:
                status = run_source(runner, source, namespace, "<shell -c>")
            elif not sys.stdin.isatty():
                status = run_source(runner, sys.stdin.read(), namespace, "<stdin>")
            else:
                _interact(runner, namespace, banner(namespace, apps.settings.debug), interface)
        finally:
            runner.run(_close(session, db))
    if status:
        raise click.exceptions.Exit(status)


def shell_namespace(project: Project, db: crudkit.Database, session: Any) -> dict[str, Any]:
    """What the shell starts with: models by name, settings, `db`, `session`, SQL helpers."""
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    for config in project.apps:
        for model in project.apps.get_models(config.label):
            name = model.__name__
            if name in namespace:
                name = f"{config.label}_{name}"
            namespace[name] = model
    namespace.update(
        crudkit=crudkit,
        settings=project.settings,
        apps=project.apps,
        db=db,
        session=session,
        select=sqlalchemy.select,
        func=sqlalchemy.func,
        insert=sqlalchemy.insert,
        update=sqlalchemy.update,
        delete=sqlalchemy.delete,
    )
    return namespace


def banner(namespace: dict[str, Any], debug: bool) -> str:
    models = sorted(name for name, value in namespace.items() if _is_model(value))
    return (
        f"crudkit shell (Python {sys.version.split()[0]}); top-level `await` works.\n"
        f"Models: {', '.join(models) or 'none'}\n"
        "Also: settings, apps, db, session (await session.commit() to keep changes), "
        "select, func, insert, update, delete"
        + ("" if debug else "\nNote: debug is off: this may be a production database.")
    )


def run_source(
    runner: asyncio.Runner, source: str, namespace: dict[str, Any], filename: str
) -> int:
    """Run `source` as a script in `namespace`, awaiting it if it awaits; its exit status."""
    try:
        compiled = compile(source, filename, "exec", flags=TOP_LEVEL_AWAIT)
        result = eval(compiled, namespace)  # the user's own code, as with `python -c`
        if inspect.iscoroutine(result):
            runner.run(result)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        click.echo(user_traceback(filename), err=True)
        return 1
    return 0


class AsyncConsole(code.InteractiveConsole):
    """`code.InteractiveConsole` whose statements may `await`, like `python -m asyncio`'s."""

    def __init__(self, runner: asyncio.Runner, namespace: dict[str, Any]) -> None:
        super().__init__(namespace, filename="<console>")
        self.runner = runner
        self.compile.compiler.flags |= TOP_LEVEL_AWAIT

    def runcode(self, code: types.CodeType) -> None:
        function = types.FunctionType(code, self.locals)
        try:
            result = function()
            if inspect.iscoroutine(result):
                self.runner.run(result)
        except SystemExit:
            raise
        except BaseException:  # KeyboardInterrupt too: back to the prompt, as in Python's REPL
            self.write(user_traceback(self.filename) + "\n")


def _interact(
    runner: asyncio.Runner,
    namespace: dict[str, Any],
    banner_text: str,
    interface: str | None,
) -> None:
    if interface != "python":
        try:  # optional: imported by name, so type checkers need no stubs
            ipython = importlib.import_module("IPython")
            traitlets = importlib.import_module("traitlets.config")
        except ImportError:
            if interface == "ipython":
                raise click.ClickException("IPython is not installed") from None
        else:
            config = traitlets.Config()
            config.InteractiveShell.loop_runner = runner.run  # awaits on the shell's loop
            config.InteractiveShell.banner2 = banner_text
            ipython.start_ipython(argv=[], user_ns=namespace, config=config)
            return
    _enable_completion(namespace)
    AsyncConsole(runner, namespace).interact(banner=banner_text, exitmsg="")


def _enable_completion(namespace: dict[str, Any]) -> None:
    try:
        import readline
        import rlcompleter
    except ImportError:  # pragma: no cover - Windows without pyreadline
        return
    readline.set_completer(rlcompleter.Completer(namespace).complete)
    readline.parse_and_bind("tab: complete")


async def _close(session: Any, db: crudkit.Database) -> None:
    await session.close()  # uncommitted changes are rolled back
    await db.dispose()


def user_traceback(filename: str) -> str:
    """The traceback being handled, from the user's code (`filename`) on: no shell or asyncio."""
    kind, error, tb = sys.exc_info()
    start = tb
    while start is not None and start.tb_frame.f_code.co_filename != filename:
        start = start.tb_next
    return "".join(traceback.format_exception(kind, error, start or tb)).rstrip()


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, crudkit.Model)
