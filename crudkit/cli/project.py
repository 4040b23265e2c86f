"""The project a command works on: its settings, installed apps and database.

The project is loaded on first use, not when `manage.py` starts, so `--help`
and the built-in commands are listed even when the settings cannot be loaded
(Flask's `ScriptInfo`). Commands receive it with `pass_project`::

    @click.command()
    @pass_project
    def hello(project: Project) -> None:
        click.echo(project.settings.database_url)
        asyncio.run(count_users(project))

    async def count_users(project: Project) -> None:
        async with project.database() as db, db.read() as conn:
            ...

Errors a user can meet (a settings module that fails, an app label that is not
installed, an unknown revision, an unreachable database) become one line on
stderr and exit status 1, through `describe_error`.
"""

from __future__ import annotations

import os
import re
import socket
import traceback
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from crudkit.apps import Apps
from crudkit.conf import Settings, load_settings
from crudkit.db import Database
from crudkit.exceptions import CrudkitError, ImproperlyConfigured
from crudkit.extras import install_hint, missing_module
from crudkit.migrator.engines import command_engine

if TYPE_CHECKING:
    from crudkit.migrator import Migrations

T = TypeVar("T")


class CommandError(click.ClickException):
    """A command cannot do what was asked: one line on stderr, exit status 1."""


class Project:
    """Settings, installed apps and database of the project `manage.py` serves."""

    def __init__(
        self,
        settings_module: str | None = None,
        *,
        settings: Settings | None = None,
        apps: Apps | None = None,
    ) -> None:
        self.settings_module = settings_module
        """Dotted path of the settings module; `CRUDKIT_SETTINGS_MODULE` when None."""
        self.show_traceback = False
        """`--traceback`: let errors propagate instead of printing one line."""
        self._settings = settings or (apps.settings if apps else None)
        self._apps = apps
        self._load_error: CrudkitError | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = self._load(self._load_settings)
        return self._settings

    @property
    def apps(self) -> Apps:
        """The installed apps, populated (their `ready()` hooks have run)."""
        if self._apps is None:
            self._apps = Apps(self.settings)
        return self._load(self._apps.populate)

    def _load_settings(self) -> Settings:
        try:
            return load_settings(self.settings_module)
        except CrudkitError:
            raise
        except Exception as exc:  # a settings module that raises while it is imported
            name = self.settings_module or os.environ.get("CRUDKIT_SETTINGS_MODULE", "")
            raise ImproperlyConfigured(
                f"cannot import settings module {name!r}: {_located(exc)}"
            ) from exc

    def _load(self, load: Callable[[], T]) -> T:
        """`load()`, or the error the first attempt raised.

        Loading is not repeated after a failure: a second `Apps.populate()` would
        meet the half-registered state of the first and report that instead.
        """
        if self._load_error is not None:
            raise self._load_error
        try:
            return load()
        except CrudkitError as exc:
            self._load_error = exc
            raise
        except Exception as exc:  # an app's module raises while it is imported
            self._load_error = ImproperlyConfigured(
                f"cannot load the installed apps: {_located(exc)}"
            )
            raise self._load_error from exc

    @cached_property
    def migrations(self) -> Migrations:
        from crudkit.migrator import Migrations  # Alembic, loaded by the commands that need it

        return Migrations(self.apps)

    def get_app_label(self, label: str) -> str:
        """`label` if such an app is installed, else a clear error."""
        return self.apps.get_app_config(label).label

    @asynccontextmanager
    async def database(self) -> AsyncIterator[Database]:
        """The project's database, its engine disposed of on exit.

        Its transactions are real on SQLite too (`crudkit.migrator.engines`), so what a
        command does in one transaction is all done or not at all.
        """
        db = Database(self.settings, command_engine(self.settings))
        try:
            yield db
        finally:
            await db.dispose()

    def describe_database(self) -> str:
        """The database URL without its password, for messages."""
        try:
            return make_url(self.settings.database_url).render_as_string(hide_password=True)
        except Exception:  # describing an error must not raise another
            return "the database"


pass_project = click.make_pass_decorator(Project, ensure=True)
"""Decorator passing the `Project` to a command as its first argument."""

# Errors that explain themselves; anything else is a bug and says so.
_MISSING_TABLE = re.compile(r"no such table|relation .* does not exist", re.IGNORECASE)


def describe_error(exc: BaseException, project: Project | None = None, *, hint: bool = True) -> str:
    """One line saying what went wrong, for errors a command may meet.

    `hint=False` leaves out the guess at a missing table's cause (inside a
    migration or a fixture, "run `migrate`" is no help).
    """
    from alembic.util import CommandError as AlembicCommandError

    if (module := missing_module(exc)) is not None:  # whatever it caused, the fix is an extra
        message = install_hint(module)
    elif isinstance(exc, CrudkitError | AlembicCommandError):
        message = str(exc)
    elif isinstance(exc, DBAPIError):
        message = f"database error: {_first_line(exc)}"
        if hint and _MISSING_TABLE.search(message):
            message += " (has the database been migrated? run `migrate`)"
    elif isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        where = project.describe_database() if project else "the database"
        message = f"cannot connect to {where}: {exc}"
    elif isinstance(exc, OSError):
        message = str(exc)
    else:
        message = f"unexpected {type(exc).__name__}: {exc} (run with --traceback for details)"
    return _one_line(message)


def _located(exc: BaseException) -> str:
    """`NameError: name 'x' is not defined (settings.py, line 3)`: the error and where it is."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{type(exc).__name__}: {exc.msg} ({Path(exc.filename).name}, line {exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(frames[-1].filename).name}, line {frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _one_line(message: str) -> str:
    # "invalid settings:\n  a: ...\n  b: ..." -> "invalid settings: a: ...; b: ..."
    line = ""
    for part in filter(None, (part.strip() for part in message.splitlines())):
        line += part if not line else (" " if line.endswith(":") else "; ") + part
    return line


def _first_line(exc: DBAPIError) -> str:
    # "(sqlite3.OperationalError) no such table: x\n[SQL: ...]" -> "no such table: x"
    # asyncpg's errors also start with "<class 'asyncpg.exceptions.UndefinedTableError'>: ".
    line = str(exc).splitlines()[0]
    return re.sub(r"^\([\w.]+\)\s*(<class '[\w.]+'>:\s*)?", "", line)
