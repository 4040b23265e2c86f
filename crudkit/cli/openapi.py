"""`openapi`: the project's OpenAPI document, and `--check` against a committed one.

    python manage.py openapi -o openapi.json      # write it (stdout without -o)
    python manage.py openapi --check openapi.json # exit 1 on a breaking change

The document is written with sorted keys and a 2-space indent, so it is the same
bytes for the same API: commit it, and review what changes with the code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from crudkit.cli.project import CommandError, Project, pass_project
from crudkit.openapi_diff import breaking_changes


def render(document: dict[str, Any]) -> str:
    """The document as committed: sorted keys, 2-space indent, a final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def load_document(path: Path) -> dict[str, Any]:
    """The OpenAPI document in `path`, or a one-line error."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise CommandError(f"cannot read {path}: {reason}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(document, dict) or "openapi" not in document or "paths" not in document:
        raise CommandError(f'{path} is not an OpenAPI document (no "openapi" or "paths")')
    return document


@click.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the document to FILE instead of stdout.",
)
@click.option(
    "--check",
    "previous",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Compare FILE (the previous document) with the current one; exit 1 on breaking changes.",
)
@pass_project
def openapi(project: Project, output: Path | None, previous: Path | None) -> None:
    """Write the project's OpenAPI document, or check it for breaking changes."""
    if output is not None and previous is not None:
        raise click.UsageError("use either -o or --check, not both")
    old = load_document(previous) if previous is not None else None
    from crudkit.app import create_app

    document = create_app(project.settings, apps=project.apps).openapi()
    if old is not None:
        changes = breaking_changes(old, document)
        if not changes:
            click.echo("No breaking changes.")
            return
        click.echo(f"Breaking changes since {previous} ({len(changes)}):")
        for change in changes:
            click.echo(f"  {change}")
        raise click.exceptions.Exit(1)
    text = render(document)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
