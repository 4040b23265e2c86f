"""The `manage.py` command group, loading the project lazily (Flask's `FlaskGroup`).

Built-in commands are always listed, even when the settings cannot be loaded;
commands that apps add from `AppConfig.ready()` (`apps.add_command`) appear
once the project loads, and an app's command replaces a built-in of the same
name, as in Django. `--settings` (or `CRUDKIT_SETTINGS_MODULE`) names the
settings module; the current directory is importable, as with Django's
`manage.py`. Errors print one line and exit 1; `--traceback` shows the stack.
`--pythonpath DIR` makes a project importable from elsewhere (`crudkit --pythonpath
~/mysite --settings settings migrate`). Like Django's, `--settings`, `--pythonpath` and
`--traceback` may also follow the command name
(`manage.py migrate --traceback`). `startproject` and `startapp` need no
project, so they work anywhere, settings or not (`crudkit startproject mysite`).
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
from typing import Any

import click

from crudkit.cli.project import CommandError, Project, describe_error

# Imported when used: the auth app imports this package from `ready()` in every
# process, and the API has no use for Alembic or uvicorn's command line.
BUILTIN_COMMANDS = {
    "check": "crudkit.cli.checks:check",
    "dumpdata": "crudkit.cli.fixtures:dumpdata",
    "loaddata": "crudkit.cli.fixtures:loaddata",
    "makemigrations": "crudkit.cli.migrate:makemigrations",
    "migrate": "crudkit.cli.migrate:migrate",
    "openapi": "crudkit.cli.openapi:openapi",
    "routes": "crudkit.cli.routes:routes",
    "runserver": "crudkit.cli.server:runserver",
    "shell": "crudkit.cli.shell:shell",
    "showmigrations": "crudkit.cli.migrate:showmigrations",
    "startapp": "crudkit.cli.scaffold:startapp",
    "startproject": "crudkit.cli.scaffold:startproject",
}
PROJECTLESS = {"startapp", "startproject"}
"""Commands resolved without loading the project (apps cannot replace them)."""
GLOBAL_FLAGS = {"--traceback"}
GLOBAL_OPTIONS = {"--settings", "--pythonpath"}


def builtin_command(name: str) -> click.Command | None:
    target = BUILTIN_COMMANDS.get(name)
    if target is None:
        return None
    module, _, attr = target.partition(":")
    command = getattr(importlib.import_module(module), attr)
    assert isinstance(command, click.Command)
    return command


class ProjectGroup(click.Group):
    """A group whose commands also come from the installed apps of the project."""

    def _app_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        commands: dict[str, click.Command] = {}
        for command in ctx.ensure_object(Project).apps.commands:
            if command.name:
                commands.setdefault(command.name, command)  # the first app wins, as in Django
        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx)) | set(BUILTIN_COMMANDS)
        project = ctx.ensure_object(Project)
        try:
            names.update(self._app_commands(ctx))
        except Exception as exc:
            # `crudkit --help` outside any project has nothing to report; a project
            # named by --settings or CRUDKIT_SETTINGS_MODULE that fails to load does.
            if project.settings_module or os.environ.get("CRUDKIT_SETTINGS_MODULE"):
                message = describe_error(exc, project)
                click.echo(f"Error: cannot load the project: {message}", err=True)
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in PROJECTLESS:
            return builtin_command(cmd_name)
        try:
            commands = self._app_commands(ctx)
        except Exception:
            builtin = self._builtin(ctx, cmd_name)
            if builtin is not None:  # it reports the loading error itself if it needs the project
                return builtin
            raise
        return commands.get(cmd_name) or self._builtin(ctx, cmd_name)

    def _builtin(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return builtin_command(cmd_name) or super().get_command(ctx, cmd_name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _globals_first(args))

    def invoke(self, ctx: click.Context) -> Any:
        project = ctx.ensure_object(Project)
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # `dumpdata | head`: click exits quietly
                raise
            if project.show_traceback:
                raise
            raise CommandError(describe_error(exc, project)) from exc
        except Exception as exc:
            if project.show_traceback:
                raise
            raise CommandError(describe_error(exc, project)) from exc


def _globals_first(args: list[str]) -> list[str]:
    """Move `--traceback` and `--settings X` given after the command name in front of it."""
    front: list[str] = []
    rest: list[str] = []
    remaining = iter(args)
    for arg in remaining:
        if arg == "--":
            rest.extend([arg, *remaining])
            break
        name = arg.split("=", 1)[0]
        if arg in GLOBAL_FLAGS or (name in GLOBAL_OPTIONS and "=" in arg):
            front.append(arg)
        elif arg in GLOBAL_OPTIONS:
            value = next(remaining, None)  # none: click reports the missing value
            front.extend([arg] if value is None else [arg, value])
        else:
            rest.append(arg)
    return front + rest


def _set_settings(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if not value:
        return
    ctx.ensure_object(Project).settings_module = value
    # Like Django's manage.py: the project's modules import from where it is run.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())


def _set_pythonpath(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    # Like Django's: the project's modules import from there, run from anywhere.
    if value:
        sys.path.insert(0, os.path.abspath(value))


def _set_traceback(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(Project).show_traceback = True


@click.group(cls=ProjectGroup)
@click.option(
    "--settings",
    metavar="MODULE",
    envvar="CRUDKIT_SETTINGS_MODULE",
    is_eager=True,
    expose_value=False,
    callback=_set_settings,
    help="Dotted path of the settings module [env: CRUDKIT_SETTINGS_MODULE].",
)
@click.option(
    "--pythonpath",
    metavar="DIRECTORY",
    type=click.Path(exists=True, file_okay=False),
    is_eager=True,
    expose_value=False,
    callback=_set_pythonpath,
    help="A directory to add to the import path, e.g. the project's (where manage.py is).",
)
@click.option(
    "--traceback",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_set_traceback,
    help="Show the full traceback when a command fails.",
)
@click.version_option(package_name="crudkit", message="crudkit %(version)s")
def main() -> None:
    """Manage a crudkit project: migrations, users, the development server."""
