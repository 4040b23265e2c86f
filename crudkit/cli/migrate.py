"""`makemigrations`, `migrate` and `showmigrations`: Django's commands on Alembic.

    python manage.py makemigrations          # every app with model changes
    python manage.py makemigrations shop --check
    python manage.py migrate                 # every app to its latest migration
    python manage.py migrate shop zero       # unapply the shop app
    python manage.py migrate --plan          # what would run; --sql: its SQL
    python manage.py showmigrations

How apps, branches and revisions map onto Alembic is in `crudkit.migrator`.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from functools import partial
from pathlib import Path
from typing import Literal

import click
from sqlalchemy.engine import make_url

from crudkit.cli.project import CommandError, Project, describe_error, pass_project
from crudkit.migrator import (
    ZERO,
    Direction,
    Draft,
    MigrationError,
    MigrationFailed,
    Migrations,
    Step,
    migratable_labels,
    run_sync,
    scratch_engine,
    unmigrated_labels,
)


@click.command()
@click.argument("app", required=False)
@click.option("-m", "--message", help="Name of the migration (default: from its changes).")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if changes are pending.")
@click.option("--empty", is_flag=True, help="Write an empty migration for APP (data migrations).")
@click.option(
    "--allow-destructive",
    is_flag=True,
    help="Write migrations that drop tables or columns (a rename looks like a drop and an add).",
)
@pass_project
def makemigrations(
    project: Project,
    app: str | None,
    message: str | None,
    check: bool,
    empty: bool,
    allow_destructive: bool,
) -> None:
    """Write migrations for model changes (Alembic autogenerate).

    Models are compared with a scratch database migrated to the latest
    migrations, so the project's database is neither read nor needed.
    """
    migrations = project.migrations
    if app:
        labels = [project.get_app_label(app)]
    elif empty:
        raise click.UsageError("--empty needs an APP")
    else:
        labels = migratable_labels(migrations)
    drafts = asyncio.run(
        _make(
            project,
            labels,
            message=message,
            write=not check,
            empty=empty,
            allow_destructive=allow_destructive,
        )
    )
    if not drafts:
        click.echo(f"No changes detected in app {app!r}" if app else "No changes detected")
        return
    for draft in drafts:
        _print_draft(draft)
    if check:
        click.get_current_context().exit(1)
    refused = [draft for draft in drafts if not draft.written]
    if refused:
        apps = ", ".join(repr(draft.app_label) for draft in refused)
        raise CommandError(
            f"not written: the migrations for {apps} drop tables or columns, and a rename looks "
            "like a drop and an add; check the changes, then run again with --allow-destructive"
        )


async def _make(
    project: Project,
    labels: list[str],
    *,
    message: str | None,
    write: bool,
    empty: bool,
    allow_destructive: bool,
) -> list[Draft]:
    migrations = project.migrations
    drafts = []
    async with scratch_engine(project.settings) as engine:
        for label in labels:
            # Upgrading first also applies what the previous app just got, so each new
            # migration is known to run, and the next app can depend on it.
            await run_sync(engine, migrations.upgrade)
            make = partial(
                migrations.make,
                label=label,
                message=message,
                write=write,
                empty=empty,
                allow_destructive=allow_destructive,
            )
            draft = await run_sync(engine, make)
            if draft:
                drafts.append(draft)
        if any(draft.written for draft in drafts):
            await run_sync(engine, migrations.upgrade)
    return drafts


def _print_draft(draft: Draft) -> None:
    click.echo(f"Migrations for {draft.app_label!r}:")
    note = "" if draft.written else " (not written)"
    click.echo(f"  {_display_path(draft.path)}{note}")
    for change in draft.changes or ["(empty)"]:
        click.echo(f"    {change}")


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@click.command()
@click.argument("app", required=False)
@click.argument("revision", required=False)
@click.option("--plan", is_flag=True, help="List the migrations that would run; change nothing.")
@click.option(
    "--sql",
    "show_sql",
    is_flag=True,
    help="Print the SQL that would run (Alembic's offline mode); change nothing.",
)
@pass_project
def migrate(
    project: Project, app: str | None, revision: str | None, plan: bool, show_sql: bool
) -> None:
    """Apply migrations, or unapply them down to REVISION (`zero`: all of APP's).

    Without APP, every app is brought to its latest migration, in dependency
    order. After migrating up, apps' post-migrate hooks run (the auth app
    creates the permissions of new models). Each migration runs in its own
    transaction: one that fails is rolled back, DDL included, and the database
    stays at the migration before it.
    """
    if plan and show_sql:
        raise click.UsageError("--plan and --sql cannot be combined")
    if revision and not app:
        raise click.UsageError("REVISION needs an APP")
    label = project.get_app_label(app) if app else None
    if plan or show_sql:
        asyncio.run(_preview(project, label, revision, show_sql=show_sql))
    else:
        asyncio.run(_migrate(project, label, revision))


async def _preview(
    project: Project, label: str | None, revision: str | None, *, show_sql: bool
) -> None:
    """`--plan` and `--sql`: read where the database is, say what `migrate` would do."""
    migrations = project.migrations
    heads = await _heads(project) if _database_exists(project) else ()
    applied = migrations.applied_at(heads)
    direction, target, _ = _plan(migrations, applied, label, revision)
    if direction == "none":
        if not show_sql:
            click.echo("Planned operations:\n  No planned migration operations.")
        return
    if show_sql:
        try:
            migrations.sql(direction, target, heads, sys.stdout)
        except Exception as exc:
            if project.show_traceback:
                raise
            raise CommandError(_offline_error(exc)) from exc
        return
    click.echo("Planned operations:")
    steps = migrations.plan(direction, target, heads)
    for step in steps:
        click.echo(f"  {step}")
    if not steps:
        click.echo("  No planned migration operations.")


def _offline_error(exc: Exception) -> str:
    """Why `--sql` could not write a migration's SQL, naming the migration."""
    from alembic.util import CommandError as AlembicCommandError

    in_migration = [
        frame for frame in traceback.extract_tb(exc.__traceback__) if "migrations" in frame.filename
    ]
    name = f"migration {Path(in_migration[-1].filename).stem}" if in_migration else "a migration"
    if isinstance(exc, AlembicCommandError) and "batch mode" in str(exc):
        why = "it alters a table in batch mode, which SQLite can only do on a live database"
    else:
        why = f"it reads the database, which offline SQL cannot ({type(exc).__name__}: {exc})"
    return (
        f"--sql cannot write the SQL of {name}: {why}; the SQL above stops before it. "
        "Use `migrate --plan` to see what would run, or run `migrate` on a copy of the database"
    )


def _database_exists(project: Project) -> bool:
    """False for a SQLite file that is not there yet (connecting would create it)."""
    url = make_url(project.settings.database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return True
    return Path(url.database).exists()


async def _heads(project: Project) -> tuple[str, ...]:
    async with project.database() as db:
        return await run_sync(db.engine, project.migrations.heads)


async def _migrate(project: Project, label: str | None, revision: str | None) -> None:
    migrations = project.migrations
    async with project.database() as db:
        applied = await run_sync(db.engine, migrations.applied)
        direction, target, heading = _plan(migrations, applied, label, revision)
        click.echo("Operations to perform:")
        click.echo(f"  {heading}")
        click.echo("Running migrations:")
        progress = _Progress()
        if direction != "none":
            run = partial(
                migrations.run,
                direction=direction,
                target=target,
                on_start=progress.start,
                on_done=progress.done,
            )
            try:
                await run_sync(db.engine, run, lock=True)
            except MigrationFailed as exc:
                progress.failed()
                applied = await run_sync(db.engine, migrations.applied)
                raise CommandError(_failure(migrations, exc, applied)) from exc
        if not progress.count:
            click.echo("  No migrations to apply.")
        missing = unmigrated_labels(migrations)
        if missing and direction != "downgrade":
            apps = ", ".join(repr(label) for label in missing)
            click.echo(
                f"  Your models in app(s) {apps} have no migrations, so they have no tables: "
                "run `makemigrations`, then `migrate`."
            )
        if direction != "downgrade":
            async with db.transaction() as conn:
                for hook in project.apps.post_migrate_hooks:
                    await hook(project.apps, conn)


class _Progress:
    """Prints `  Applying shop.0002_sku...` as a migration starts and `OK` when it is done."""

    def __init__(self) -> None:
        self.count = 0

    def start(self, step: Step) -> None:
        verb = "Applying" if step.is_upgrade else "Unapplying"
        click.echo(f"  {verb} {step.migration}...", nl=False)

    def done(self, step: Step) -> None:
        self.count += 1
        click.echo(" OK")

    def failed(self) -> None:
        click.echo(" FAILED")


def _failure(migrations: Migrations, exc: MigrationFailed, applied: set[str]) -> str:
    """Which migration failed, why, and where its app stays."""
    migration = exc.step.migration
    own = migrations.migrations(migration.app_label)
    kept = [m.name for m in own if m.revision in applied]
    where = kept[-1] if kept else ZERO
    reason = describe_error(exc.error, hint=False)
    return (
        f"migration {migration} failed and was rolled back: {reason}; "
        f"app {migration.app_label!r} stays at {where}"
    )


def _plan(
    migrations: Migrations, applied: set[str], label: str | None, revision: str | None
) -> tuple[Direction | Literal["none"], str, str]:
    """(`upgrade`, `downgrade` or `none`; the Alembic target; what to tell the user)."""
    if label is None:
        labels = ", ".join(migratable_labels(migrations)) or "none"
        return "upgrade", "heads", f"Apply all migrations: {labels}"
    own = migrations.migrations(label)
    if not own:
        raise MigrationError(f"app {label!r} has no migrations")
    if revision is None:
        return "upgrade", own[-1].revision, f"Apply all migrations: {label}"
    if revision == ZERO:
        heading = f"Unapply all migrations: {label}"
        if any(m.revision in applied for m in own):
            return "downgrade", f"{label}@base", heading
        return "none", f"{label}@base", heading
    target = migrations.resolve(label, revision)
    heading = f"Target specific migration: {target.name}, from {label}"
    if target.revision not in applied:
        return "upgrade", target.revision, heading
    later = own[own.index(target) + 1 :]
    if any(m.revision in applied for m in later):
        return "downgrade", f"{label}@{target.revision}", heading
    return "none", target.revision, heading


@click.command()
@pass_project
def showmigrations(project: Project) -> None:
    """List every app's migrations: [X] applied, [ ] pending."""
    migrations = project.migrations
    applied = asyncio.run(_applied(project))
    for config in project.apps:
        click.echo(config.label)
        own = migrations.migrations(config.label)
        if not own:
            click.echo(" (no migrations)")
        for migration in own:
            mark = "X" if migration.revision in applied else " "
            click.echo(f" [{mark}] {migration.name}")


async def _applied(project: Project) -> set[str]:
    async with project.database() as db:
        return await run_sync(db.engine, project.migrations.applied)
