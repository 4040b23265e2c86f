"""The migration engine: Alembic with one version branch per app, configured in code.

`manage.py`'s migration commands drive it, `/readyz` asks it which migrations
are pending, and `manage.py check` which model changes no migration describes.

Each installed app keeps its scripts in its own package, `<app>/migrations/`
(contrib apps ship theirs). Every such folder is an Alembic version location and
every app a branch labelled with the app label; all share one `alembic_version`
table. Revision ids are readable and stable, `<label>_<number>`, in files named
as Django names them; an app's migration `depends_on` the heads of the apps its
tables point at, so upgrading creates `auth_user` before `shop_product`::

    auth/migrations/0001_initial.py    revision auth_0001
    shop/migrations/0001_initial.py    revision shop_0001, depends_on auth_0001

Projects need no `alembic.ini` and no `env.py`: `Migrations.config()` builds the
Alembic `Config` around crudkit's env (`crudkit/migrations_env/`), and `run_sync`
hands it a connection of the project's async engine.

`Migrations.plan()` lists the steps from the database's heads to a target, as
Alembic's own `upgrade`/`downgrade` commands compute them; `run()` takes those
steps, one transaction each, telling the caller as each starts and ends, and
names the one that fails (`MigrationFailed`); `sql()` writes the same steps'
SQL in Alembic's offline mode (`migrate --plan`, `migrate --sql`).

`makemigrations` compares the models with a *scratch database* upgraded to the
current heads (an in-memory SQLite database, or a temporary PostgreSQL database
on the project's server): the project's own database need not exist or be
migrated, as in Django, and the comparison still speaks the project's dialect.

A table belongs to the app of its model; a table without a model (a link table)
to the app named in its `info["app_label"]`, else the app its name starts with
(`auth_user_groups`), else the one app whose tables it references. Autogenerate
for an app sees only that app's tables, so it never proposes dropping another
app's, nor touches tables of apps that are not installed.
"""

from __future__ import annotations

import os
import secrets
from argparse import Namespace
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, TextIO, TypeVar

from alembic import command
from alembic.config import Config
from alembic.operations.ops import MigrationScript, UpgradeOps
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, RevisionStep
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Connection, Table, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from crudkit.apps import Apps
from crudkit.conf import Settings
from crudkit.db import Model, connect_args
from crudkit.exceptions import CrudkitError
from crudkit.migrator.autogenerate import DESTRUCTIVE, describe, diff_kind, slug, suggest_name
from crudkit.migrator.engines import command_engine, set_sqlite_foreign_keys

T = TypeVar("T")
Direction = Literal["upgrade", "downgrade"]

ENV_PATH = Path(__file__).resolve().parent.parent / "migrations_env"
ZERO = "zero"
"""The revision name that means "before the app's first migration", as in Django."""
MIGRATE_LOCK_KEY = 0x63726B6D  # "crkm": the advisory lock `migrate` holds on PostgreSQL


class MigrationError(CrudkitError):
    """A migration cannot be made or applied as asked."""


@dataclass
class EnvOptions:
    """What crudkit's `env.py` reads from `config.attributes["crudkit"]`.

    Online (a `connection`) to compare or migrate; offline (a `url`, for its
    dialect) to write the SQL of a migration run to `output`.
    """

    apps: Apps
    connection: Connection | None = None
    include_object: Callable[[Any, str | None, str, bool, Any], bool] | None = None
    on_version_apply: Callable[..., None] | None = None
    url: str | None = None
    output: TextIO | None = None


@dataclass(frozen=True)
class Migration:
    """One migration script of an app, named as `manage.py` shows it."""

    app_label: str
    revision: str
    name: str
    """The file name without `.py`: `0001_initial`."""
    path: Path

    def __str__(self) -> str:
        return f"{self.app_label}.{self.name}"


@dataclass(frozen=True)
class Step:
    """One migration that `migrate` applies or unapplies."""

    migration: Migration
    is_upgrade: bool

    def __str__(self) -> str:
        return f"{'Apply' if self.is_upgrade else 'Unapply'} {self.migration}"


class MigrationFailed(MigrationError):
    """A migration raised while it ran; it was rolled back, the ones before it kept."""

    def __init__(self, step: Step, error: BaseException) -> None:
        super().__init__(f"{step.migration} failed: {error}")
        self.step = step
        self.error = error


@dataclass
class Draft:
    """The migration autogenerate made (or would make) for one app."""

    app_label: str
    path: Path
    changes: list[str]
    destructive: list[str] = field(default_factory=list)
    written: bool = False


class Migrations:
    """The migration scripts of a project's installed apps, and Alembic to run them."""

    def __init__(self, apps: Apps) -> None:
        self.apps = apps.populate()
        self.owners = _table_owners(self.apps)

    # Which app a table belongs to.

    def app_of(self, table_name: str) -> str | None:
        """The label of the app owning `table_name`, also for tables only the database has."""
        return self.owners.get(table_name) or _label_by_prefix(self.apps, table_name)

    def tables(self, label: str) -> list[Table]:
        return [
            table for table in Model.metadata.sorted_tables if self.owners.get(table.name) == label
        ]

    def references(self, label: str) -> list[str]:
        """Labels of the other apps whose tables this app's tables have foreign keys to."""
        found: list[str] = []
        for table in self.tables(label):
            for fk in table.foreign_keys:
                other = self.owners.get(fk.column.table.name)
                if other and other != label and other not in found:
                    found.append(other)
        return found

    def in_dependency_order(self, labels: Iterable[str]) -> list[str]:
        """`labels` with every app after the apps it references (installed order otherwise)."""
        wanted = list(labels)
        ordered: list[str] = []

        def visit(label: str, path: tuple[str, ...]) -> None:
            if label in ordered or label in path:  # a cycle keeps installed order
                return
            for other in self.references(label):
                if other in wanted:
                    visit(other, (*path, label))
            ordered.append(label)

        for label in wanted:
            visit(label, ())
        return ordered

    def include_object(self, label: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
        """Alembic's `include_object` hook narrowing autogenerate to the tables of `label`."""

        def include(
            obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
        ) -> bool:
            table_name = name if type_ == "table" else getattr(obj.table, "name", None)
            return table_name is not None and self.app_of(table_name) == label

        return include

    # Scripts.

    def config(self, options: EnvOptions | None = None, *, file_template: str = "") -> Config:
        """An Alembic `Config` for this project, built in code (no `alembic.ini`)."""
        config = Config(
            cmd_opts=Namespace(quiet=True),  # commands print their own, Django-like, output
            attributes={"crudkit": options} if options else None,
        )
        config.set_main_option("script_location", _escape(str(ENV_PATH)))
        config.set_main_option("path_separator", "os")
        # Folders that do not exist yet are skipped when reading, created when writing.
        locations = os.pathsep.join(str(app.migrations_path) for app in self.apps)
        if locations:
            config.set_main_option("version_locations", _escape(locations))
        if file_template:
            config.set_main_option("file_template", file_template)
        return config

    def script(self) -> ScriptDirectory:
        return ScriptDirectory.from_config(self.config())

    def migrations(self, label: str, script: ScriptDirectory | None = None) -> list[Migration]:
        """The app's migrations, first to last."""
        folder = self.apps.get_app_config(label).migrations_path
        script = script or self.script()
        revisions = [r for r in script.walk_revisions() if Path(r.path).parent == folder]
        revisions.reverse()
        parents = {parent for revision in revisions for parent in _parents(revision)}
        heads = [_migration(label, r) for r in revisions if r.revision not in parents]
        if len(heads) > 1:
            names = ", ".join(m.name for m in heads)
            raise MigrationError(
                f"conflicting migrations in app {label!r}: {names} both follow the same "
                "migration; remove one, or make one follow the other (down_revision)"
            )
        return [_migration(label, revision) for revision in revisions]

    def all_migrations(self, script: ScriptDirectory | None = None) -> dict[str, Migration]:
        """Every installed app's migrations, by revision id."""
        script = script or self.script()
        return {
            migration.revision: migration
            for config in self.apps
            for migration in self.migrations(config.label, script)
        }

    def resolve(self, label: str, name: str) -> Migration:
        """The app's migration called `name`: `0002`, `0002_product_sku` or `shop_0002`."""
        migrations = self.migrations(label)
        matches = [m for m in migrations if name in (m.revision, m.name)] or [
            m for m in migrations if m.name.startswith(name)
        ]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(m.name for m in migrations) or "none"
        if matches:
            raise MigrationError(f"{name!r} matches several migrations of app {label!r}: {known}")
        raise MigrationError(f"app {label!r} has no migration {name!r} (it has: {known})")

    # Reading and changing a database (inside `run_sync`).

    def heads(self, connection: Connection) -> tuple[str, ...]:
        """The revisions the database is at (one per app branch; none when unmigrated)."""
        return MigrationContext.configure(connection).get_current_heads()

    def applied(self, connection: Connection) -> set[str]:
        """Revision ids applied to the database, dependencies included."""
        return self.applied_at(self.heads(connection))

    def applied_at(self, heads: Sequence[str]) -> set[str]:
        """Revision ids applied to a database at `heads`, dependencies included."""
        return _ancestors(self.script(), heads)

    def plan(self, direction: Direction, target: str, heads: Sequence[str]) -> list[Step]:
        """The steps `run` would take from `heads`, in order; nothing is run."""
        script = self.script()
        return self._steps(script, _revision_steps(script, direction, target, heads))

    def upgrade(self, connection: Connection, target: str = "heads") -> None:
        self.run(connection, "upgrade", target)

    def run(
        self,
        connection: Connection,
        direction: Direction,
        target: str,
        *,
        on_start: Callable[[Step], None] | None = None,
        on_done: Callable[[Step], None] | None = None,
    ) -> None:
        """Apply (or unapply) migrations up (or down) to `target`, one transaction each.

        `on_start` and `on_done` hear about each step as it runs. A step that
        fails is rolled back on its own (its DDL too: PostgreSQL's DDL is
        transactional, and so is SQLite's through `crudkit.migrator.engines`), the
        steps before it stay applied, and `MigrationFailed` names it.
        """
        steps: list[Step] = []
        done: list[Step] = []

        def on_version_apply(**_: Any) -> None:
            done.append(steps[len(done)])
            if on_done:
                on_done(done[-1])
            if on_start and len(done) < len(steps):
                on_start(steps[len(done)])

        config = self.config(EnvOptions(self.apps, connection, on_version_apply=on_version_apply))
        script = ScriptDirectory.from_config(config)

        def plan(heads: Sequence[str], _context: MigrationContext) -> list[RevisionStep]:
            revision_steps = _revision_steps(script, direction, target, heads)
            steps[:] = self._steps(script, revision_steps)
            if on_start and steps:
                on_start(steps[0])
            return revision_steps

        try:
            with EnvironmentContext(config, script, fn=plan, destination_rev=target):
                script.run_env()
        except Exception as exc:
            if len(done) < len(steps):
                raise MigrationFailed(steps[len(done)], exc) from exc
            raise

    def sql(
        self,
        direction: Direction,
        target: str,
        heads: Sequence[str],
        output: TextIO,
    ) -> None:
        """Write the SQL `run` would execute from `heads` to `output` (Alembic's offline mode)."""
        config = self.config(
            EnvOptions(self.apps, url=self.apps.settings.database_url, output=output)
        )
        script = ScriptDirectory.from_config(config)

        def plan(start: Sequence[str], _context: MigrationContext) -> list[RevisionStep]:
            return _revision_steps(script, direction, target, start)

        with EnvironmentContext(
            config, script, fn=plan, as_sql=True, starting_rev=tuple(heads), destination_rev=target
        ):
            script.run_env()

    def _steps(self, script: ScriptDirectory, revision_steps: Sequence[RevisionStep]) -> list[Step]:
        known = self.all_migrations(script)
        return [Step(known[step.revision.revision], step.is_upgrade) for step in revision_steps]

    def make(
        self,
        connection: Connection,
        label: str,
        *,
        message: str | None = None,
        write: bool = True,
        empty: bool = False,
        allow_destructive: bool = True,
    ) -> Draft | None:
        """Autogenerate the app's next migration against `connection` (at heads); None if no change.

        With `write=False` nothing is written: the draft says what would be. Without
        `allow_destructive`, a migration that drops tables or columns is not written.
        """
        config_app = self.apps.get_app_config(label)
        script = self.script()
        existing = self.migrations(label, script)
        head = existing[-1].revision if existing else None
        number = _next_number(existing)
        folder = config_app.migrations_path
        drafts: list[Draft] = []

        def process(context: Any, revision: Any, directives: list[MigrationScript]) -> None:
            migration = directives[0]
            ops = migration.upgrade_ops
            assert isinstance(ops, UpgradeOps)
            diffs = list(ops.as_diffs())
            if not diffs and not empty:
                directives[:] = []
                return
            if message is None:
                migration.message = suggest_name(label, diffs, initial=head is None)
            changes = [describe(diff) for diff in diffs]
            destructive = [describe(diff) for diff in diffs if diff_kind(diff) in DESTRUCTIVE]
            name = f"{number:04d}_{slug(migration.message or '')}"
            draft = Draft(label, folder / f"{name}.py", changes, destructive)
            draft.written = write and (allow_destructive or not destructive)
            drafts.append(draft)
            if draft.written:
                _create_package(folder)
            else:
                directives[:] = []

        depends_on = self._new_dependencies(label, head, script) if write else []
        options = EnvOptions(self.apps, connection, include_object=self.include_object(label))
        config = self.config(options, file_template=f"{number:04d}_%%(slug)s")
        # Run the env for an empty revision too, so `process` names and records it.
        config.set_main_option("revision_environment", "true")
        written = command.revision(
            config,
            message=message or "auto",
            autogenerate=not empty,
            head=head or "base",
            branch_label=None if head else label,
            version_path=str(folder),
            rev_id=f"{label}_{number:04d}",
            depends_on=depends_on or None,  # type: ignore[arg-type]
            process_revision_directives=process,
        )
        if not drafts:
            return None
        if isinstance(written, Script):
            drafts[0].path = Path(written.path)
        return drafts[0]

    def _new_dependencies(self, label: str, head: str | None, script: ScriptDirectory) -> list[str]:
        """Heads of the referenced apps this app's history does not depend on yet."""
        known = _ancestors(script, [head]) if head else set()
        found = []
        for other in self.references(label):
            migrations = self.migrations(other, script)
            if not migrations:
                raise MigrationError(
                    f"app {label!r} has foreign keys to tables of app {other!r}, which has no "
                    f"migrations yet: run makemigrations {other} first"
                )
            if migrations[-1].revision not in known:
                found.append(migrations[-1].revision)
        return found


# Running Alembic on the async engine.


async def run_sync(engine: AsyncEngine, fn: Callable[[Connection], T], *, lock: bool = False) -> T:
    """Run `fn` (which drives Alembic) on one connection of `engine`, and commit.

    `engine` should come from `command_engine`, so that on SQLite too each
    migration's DDL is inside its transaction. On SQLite, foreign keys are off
    while it runs, as Django does: batch mode recreates tables, and dropping a
    referenced table would otherwise fail or cascade. They are checked once
    everything is done. With `lock`, PostgreSQL
    runs one such call at a time (an advisory lock), so machines that all run
    `migrate` as they deploy take turns instead of racing.
    """
    async with AsyncExitStack() as stack:
        if lock and engine.dialect.name == "postgresql":
            await stack.enter_async_context(_migrate_lock(engine))
        return await _run_sync(engine, fn)


@asynccontextmanager
async def _migrate_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """Hold the migration lock until the block ends.

    The lock belongs to a transaction kept open on a connection of its own, not to a
    session: behind a transaction pooler (PgBouncer) a session lock would stay with a
    server connection that other clients get, and could not be released. The open
    transaction pins one server connection until it ends, and ends with the process.
    """
    async with engine.connect() as conn, conn.begin():
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK_KEY})
        yield


async def _run_sync(engine: AsyncEngine, fn: Callable[[Connection], T]) -> T:
    async with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            await set_sqlite_foreign_keys(conn, on=False)
        try:
            result = await conn.run_sync(fn)
            await conn.commit()
            if sqlite:
                check = await conn.exec_driver_sql("PRAGMA foreign_key_check")
                problems: list[tuple[Any, ...]] = [tuple(row) for row in check]
                await conn.commit()
                if problems:
                    table, rowid, parent, _ = problems[0]
                    raise MigrationError(
                        f"{len(problems)} row(s) break foreign keys after migrating, e.g. "
                        f"row {rowid} of {table} points at a missing {parent} row"
                    )
        except BaseException:
            await conn.rollback()
            raise
        finally:
            if sqlite:
                await set_sqlite_foreign_keys(conn, on=True)
        return result


@asynccontextmanager
async def scratch_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An empty database of the project's dialect, thrown away afterwards.

    In-memory SQLite for a SQLite project; for PostgreSQL a temporary database on
    the project's server (the user needs CREATEDB, as for Django's test database).
    """
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        memory = settings.model_copy(update={"database_url": "sqlite+aiosqlite://"})
        engine = command_engine(memory)
        try:
            yield engine
        finally:
            await engine.dispose()
        return
    name = f"{(url.database or 'crudkit')[:40]}_scratch_{secrets.token_hex(4)}"
    try:
        await _execute_autocommit(settings, url, f'CREATE DATABASE "{name}"')
    except DBAPIError as exc:
        reason = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
        raise MigrationError(
            f"cannot create a scratch database to compare the models with ({reason}); "
            f"the user of CRUDKIT_DATABASE_URL needs the CREATEDB privilege"
        ) from exc
    scratch_url = url.set(database=name).render_as_string(hide_password=False)
    engine = create_async_engine(
        scratch_url, poolclass=NullPool, connect_args=connect_args(settings, url)
    )
    try:
        yield engine
    finally:
        await engine.dispose()
        await _execute_autocommit(settings, url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _execute_autocommit(settings: Settings, url: URL, statement: str) -> None:
    engine = create_async_engine(
        url,
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args=connect_args(settings, url),
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def pending_changes(
    migrations: Migrations, labels: Sequence[str] | None = None
) -> list[Draft]:
    """What `makemigrations` would write for `labels` (default: every app), writing nothing."""
    drafts = []
    async with scratch_engine(migrations.apps.settings) as engine:
        await run_sync(engine, migrations.upgrade)
        for label in labels if labels is not None else migratable_labels(migrations):
            draft = await run_sync(engine, partial(migrations.make, label=label, write=False))
            if draft:
                drafts.append(draft)
    return drafts


def unmigrated_labels(migrations: Migrations) -> list[str]:
    """Apps that have tables but no migrations yet (so `migrate` creates none of them)."""
    script = migrations.script()
    return [
        config.label
        for config in migrations.apps
        if migrations.tables(config.label) and not migrations.migrations(config.label, script)
    ]


def migratable_labels(migrations: Migrations) -> list[str]:
    """Apps that have tables or migrations, each after the apps it references."""
    script = migrations.script()
    labels = [
        config.label
        for config in migrations.apps
        if migrations.tables(config.label) or migrations.migrations(config.label, script)
    ]
    return migrations.in_dependency_order(labels)


# Helpers.


def _escape(value: str) -> str:
    # Config values go through ConfigParser interpolation: a literal % is written %%.
    return value.replace("%", "%%")


def _table_owners(apps: Apps) -> dict[str, str]:
    owners: dict[str, str] = {}
    mapped: set[str] = set()
    for mapper in Model.registry.mappers:
        config = apps.app_for_model(mapper.class_)
        for table in mapper.tables:
            mapped.add(table.name)
            if config is not None:  # models of apps not installed belong to nobody
                owners.setdefault(table.name, config.label)
    for table in Model.metadata.sorted_tables:  # referenced tables come first
        if table.name in mapped:
            continue
        # A table without a model says nothing of where it was defined: trust an
        # explicit `info={"app_label": ...}`, then the name, then what it references.
        label = table.info.get("app_label") or _label_by_prefix(apps, table.name)
        if label is None:
            referenced = {owners.get(fk.column.table.name) for fk in table.foreign_keys}
            label = referenced.pop() if len(referenced) == 1 else None
        if label is not None:
            owners[table.name] = label
    return owners


def _label_by_prefix(apps: Apps, table_name: str) -> str | None:
    labels = [c.label for c in apps if table_name.startswith(c.label + "_")]
    return max(labels, key=len, default=None)


def _revision_steps(
    script: ScriptDirectory, direction: Direction, target: str, heads: Sequence[str]
) -> list[RevisionStep]:
    """Alembic's steps from `heads` to `target`, as its `upgrade`/`downgrade` commands plan them."""
    current: Any = tuple(heads)
    if direction == "upgrade":
        return script._upgrade_revs(target, current)
    return script._downgrade_revs(target, current)


def _migration(label: str, script: Script) -> Migration:
    path = Path(script.path)
    return Migration(label, script.revision, path.stem, path)


def _parents(revision: Script) -> set[str]:
    down = revision.down_revision
    if down is None:
        return set()
    return {down} if isinstance(down, str) else set(down)


def _ancestors(script: ScriptDirectory, heads: Iterable[str | None]) -> set[str]:
    """The given revisions and every revision they need, dependencies included."""
    seen: set[str] = set()
    stack = [head for head in heads if head]
    while stack:
        revision = script.get_revision(stack.pop())
        if revision.revision in seen:
            continue
        seen.add(revision.revision)
        stack.extend(revision._all_down_revisions)
    return seen


def _next_number(existing: Sequence[Migration]) -> int:
    numbers = [int(m.name[:4]) for m in existing if m.name[:4].isdigit()]
    return max(numbers, default=len(existing)) + 1


def _create_package(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    init = folder / "__init__.py"
    if not init.exists():
        init.write_text('"""Migrations of this app (made by `manage.py makemigrations`)."""\n')
