"""`startproject` and `startapp`: new projects and apps from templates, ready to run.

    crudkit startproject mysite      # anywhere: no settings needed
    cd mysite
    python manage.py startapp blog   # apps/blog, installed as "apps.blog"

A project is `manage.py`, `settings.py` (a `crudkit.Settings` subclass with the
auth and admin apps, SQLite and `debug` for development), a `.gitignore` for
the database and the generated key, and an empty `apps/` package. An app is a
package with `apps.py`, `models.py`, `resources.py` and `migrations/`.

The templates are package data under `crudkit/cli/templates/`: files end in
`-tpl` (so no tool takes them for modules), a `dot-` prefix becomes `.`, and
`$name` placeholders are filled with `string.Template`.
"""

from __future__ import annotations

import importlib.util
import keyword
import re
import stat
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

import click

from crudkit.cli.project import CommandError
from crudkit.conf import DEFAULT_APPS

TEMPLATES = files("crudkit.cli") / "templates"
PROJECT_NAME = re.compile(r"^[A-Za-z_][\w-]*$")
APPS_PACKAGE = "apps"
"""Where `startapp` puts apps when the project has this package (as `startproject` makes)."""
RESERVED_LABELS = {name.rsplit(".", 1)[-1] for name in DEFAULT_APPS}


@click.command()
@click.argument("name")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
def startproject(name: str, directory: Path | None) -> None:
    """Create a project NAME in DIRECTORY (default: ./NAME).

    It runs at once: `python manage.py migrate`, then `runserver`.
    """
    if not PROJECT_NAME.match(name):
        raise CommandError(
            f"{name!r} is not a valid project name: use letters, digits, _ and -, "
            "starting with a letter"
        )
    target = directory if directory is not None else Path(name)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise CommandError(f"{target} already exists and is not an empty directory")
    created = render(TEMPLATES / "project", target, {"project_name": name})
    (target / "manage.py").chmod((target / "manage.py").stat().st_mode | stat.S_IXUSR)
    click.echo(f"Created project {name!r} in {target} ({len(created)} files). Next:")
    click.echo(f"  cd {target}")
    click.echo("  python manage.py migrate")
    click.echo("  python manage.py createsuperuser")
    click.echo("  python manage.py startapp blog")
    click.echo("  python manage.py runserver")


@click.command()
@click.argument("name")
def startapp(name: str) -> None:
    """Create an app NAME: in apps/NAME if the project has an `apps` package, else ./NAME."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise CommandError(f"{name!r} is not a valid app name: it must be a Python identifier")
    if name in RESERVED_LABELS:
        raise CommandError(f"{name!r} is the label of a crudkit app; choose another name")
    in_apps = (Path(APPS_PACKAGE) / "__init__.py").is_file()
    target = Path(APPS_PACKAGE, name) if in_apps else Path(name)
    module = f"{APPS_PACKAGE}.{name}" if in_apps else name
    if target.exists():
        raise CommandError(f"{target} already exists")
    if not in_apps and importlib.util.find_spec(name) is not None:
        raise CommandError(
            f"{name!r} is the name of an existing Python module; choose another app name"
        )
    render(
        TEMPLATES / "app",
        target,
        {
            "app_label": name,
            "app_module": module,
            "class_name": "".join(part.title() for part in name.split("_")),
            "verbose_name": name.replace("_", " ").title(),
        },
    )
    click.echo(f"Created app {name!r} in {target}. Next:")
    click.echo(f'  1. add "{module}" to installed_apps in settings.py')
    click.echo(f"  2. write models in {target / 'models.py'}, register them in resources.py")
    click.echo(f"  3. python manage.py makemigrations {name} && python manage.py migrate")


def render(source: Traversable, target: Path, context: dict[str, str]) -> list[Path]:
    """Copy the template tree `source` to `target`, filling `$placeholders`; the files made."""
    created: list[Path] = []
    target.mkdir(parents=True, exist_ok=True)
    for item in sorted(source.iterdir(), key=lambda item: item.name):
        name = item.name.removesuffix("-tpl")
        if name.startswith("dot-"):
            name = "." + name.removeprefix("dot-")
        if item.is_dir():
            if name != "__pycache__":
                created.extend(render(item, target / name, context))
            continue
        path = target / name
        path.write_text(Template(item.read_text(encoding="utf-8")).substitute(context))
        created.append(path)
    return created
