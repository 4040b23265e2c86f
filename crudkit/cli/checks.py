"""`check`: run the system checks (`crudkit.checks`) and fail on errors.

$ python manage.py check --deploy
System check identified some issues:

ERRORS:
crudkit.E003 (error): no secret_key is set: debug generated a development key (...)
        HINT: set CRUDKIT_SECRET_KEY, e.g. from python -c "..."

WARNINGS:
crudkit.W001 (warning): debug is on: development logs, and a generated secret key when none is set
        HINT: set CRUDKIT_DEBUG=false and CRUDKIT_SECRET_KEY in production

System check identified 2 issues.

A project that cannot be loaded (bad settings, an app that fails to import, a
resource whose options name missing columns) is itself a finding, crudkit.E002,
printed the same way, so `check` in CI always ends with its summary line.
"""

from __future__ import annotations

import click

from crudkit.checks import Message, load_error, run_checks
from crudkit.cli.project import Project, describe_error, pass_project
from crudkit.exceptions import CrudkitError


@click.command()
@click.option("--deploy", is_flag=True, help="Also check the settings for a production deployment.")
@click.option(
    "--fail-level",
    type=click.Choice(["ERROR", "WARNING"], case_sensitive=False),
    default="ERROR",
    show_default=True,
    help="Exit 1 when a finding of this level or above is found.",
)
@pass_project
def check(project: Project, deploy: bool, fail_level: str) -> None:
    """Check the configuration and that migrations match the models (exit 1 on errors)."""
    try:
        apps = project.apps
    except CrudkitError as exc:
        if project.show_traceback:
            raise
        messages = [load_error(describe_error(exc, project))]
    else:
        messages = run_checks(apps, deploy=deploy)
    _print(messages)
    failing = messages if fail_level.upper() == "WARNING" else [m for m in messages if m.is_error]
    if failing:
        click.get_current_context().exit(1)


def _print(messages: list[Message]) -> None:
    if not messages:
        click.echo("System check identified no issues.")
        return
    click.echo("System check identified some issues:")
    for level, title in (("error", "ERRORS"), ("warning", "WARNINGS")):
        found = sorted((m for m in messages if m.level == level), key=lambda m: m.id)
        if found:
            click.echo(f"\n{title}:")
            for message in found:
                click.echo(str(message))
    count = len(messages)
    click.echo(f"\nSystem check identified {count} issue{'s' if count != 1 else ''}.")
