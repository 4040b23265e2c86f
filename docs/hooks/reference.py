"""MkDocs hook: the settings and command-line reference pages, written at each build.

`reference/settings.md` comes from `crudkit.Settings` (each field's type, default,
constraints, environment variable and attribute docstring), `reference/cli.md`
from the `manage.py` command group with the default apps installed (each command's
usage, help and options, as `--help` prints them), and `reference/checks.md` from
the system checks (`crudkit.checks`: each check's id and docstring). None of these
pages is a file in the repository, so none can drift from the code.
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from pathlib import Path
from typing import Any

import click
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from pydantic.fields import FieldInfo

from crudkit import checks
from crudkit.cli import Project, main
from crudkit.conf import DEFAULT_APPS, Settings

SETTINGS_PAGE = "reference/settings.md"
CLI_PAGE = "reference/cli.md"
CHECKS_PAGE = "reference/checks.md"
PROGRAM = "manage.py"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    pages = (
        (SETTINGS_PAGE, settings_page()),
        (CLI_PAGE, cli_page()),
        (CHECKS_PAGE, checks_page()),
    )
    for uri, content in pages:
        files.append(File.generated(config, uri, content=content))
    return files


# Settings.


def settings_page() -> str:
    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    docs = attribute_docstrings(Settings)
    lines = [
        "# Settings",
        "",
        "A project's settings module subclasses `crudkit.Settings` (a pydantic-settings",
        f"model); every setting can also be set by the environment variable `{prefix}<NAME>`",
        "or in a `.env` file, which override the module. Lists are read from the",
        'environment as JSON (`["a", "b"]`) or separated by commas (`a,b`). A',
        f'`{prefix}` variable that names no setting stops start-up with a "did you mean".',
        "",
        "| setting | environment variable | default |",
        "|---|---|---|",
    ]
    lines += [
        f"| [`{name}`](#{name}) | `{prefix}{name.upper()}` | {default_text(field)} |"
        for name, field in Settings.model_fields.items()
    ]
    for name, field in Settings.model_fields.items():
        description = docs.get(name) or field.description or ""
        lines += ["", f"## `{name}` {{#{name}}}", "", description, ""]
        lines.append(f"- Type: `{type_text(field.annotation)}`")
        lines.append(f"- Default: {default_text(field)}")
        constraints = constraint_text(field)
        if constraints:
            lines.append(f"- Constraint: {constraints}")
        lines.append(f"- Environment variable: {', '.join(env_names(prefix, name, field))}")
    return "\n".join(lines) + "\n"


def attribute_docstrings(cls: type[Any]) -> dict[str, str]:
    """The string literal after each annotated attribute of `cls`'s class body."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0]
    assert isinstance(body, ast.ClassDef)
    found: dict[str, str] = {}
    for statement, following in zip(body.body, body.body[1:], strict=False):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            found[statement.target.id] = inspect.cleandoc(following.value.value)
    return found


def type_text(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("pathlib.", "")


def default_text(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if isinstance(value, Path):
        value = str(value)
    if value is None:
        return "`None`"
    return f"`{json.dumps(value)}`"


def constraint_text(field: FieldInfo) -> str:
    # pydantic keeps `Field(gt=0)` as `annotated_types.Gt(gt=0)` in the metadata.
    symbols = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
    return ", ".join(
        f"{symbol} {getattr(item, bound)}"
        for item in field.metadata
        for bound, symbol in symbols.items()
        if getattr(item, bound, None) is not None
    )


def env_names(prefix: str, name: str, field: FieldInfo) -> list[str]:
    names = [prefix + name.upper()]
    alias = field.validation_alias
    choices = getattr(alias, "choices", [alias])
    names += [choice.upper() for choice in choices if isinstance(choice, str)]
    return [f"`{env}`" for env in dict.fromkeys(names)]


# Command line.


def cli_commands() -> tuple[click.Context, dict[str, click.Command]]:
    """The group's context and its commands, those of the default apps included."""
    # Unvalidated settings: the apps' `ready()` reads only their defaults, and the build
    # must depend neither on the environment nor on a secret key.
    settings = Settings.model_construct(installed_apps=list(DEFAULT_APPS))
    root = click.Context(main, info_name=PROGRAM, obj=Project(settings=settings))
    commands = {}
    for name in main.list_commands(root):
        command = main.get_command(root, name)
        if command is not None:
            commands[name] = command
    return root, commands


def cli_page() -> str:
    root, commands = cli_commands()
    lines = [
        "# Command line",
        "",
        "`python manage.py COMMAND` in a project, or `crudkit --settings MODULE COMMAND`",
        "anywhere. The commands below are the built-in ones and those of the default",
        "apps (`crudkit.contrib.auth`, `crudkit.contrib.admin`); an app adds its own from",
        "`AppConfig.ready()` with `apps.add_command(...)`. Every command takes `--help`,",
        "and `--settings` and `--traceback` may also follow its name.",
        "",
        *command_lines(main, root, heading="## Global options"),
    ]
    for name, command in commands.items():
        ctx = click.Context(command, info_name=name, parent=root)
        lines += ["", *command_lines(command, ctx, heading=f"## `{name}` {{#{name}}}")]
    return "\n".join(lines) + "\n"


def command_lines(command: click.Command, ctx: click.Context, heading: str) -> list[str]:
    lines = [heading, "", "```text", command.get_usage(ctx), "```", ""]
    help_text = inspect.cleandoc((command.help or "").split("\f", 1)[0])
    lines += [line for line in help_text.splitlines() if line.strip() != "\b"]
    arguments = [param for param in command.get_params(ctx) if isinstance(param, click.Argument)]
    options = [
        record
        for param in command.get_params(ctx)
        # `--help` is on every command: said once, above.
        if isinstance(param, click.Option) and param.name != "help"
        if (record := param.get_help_record(ctx))
    ]
    if arguments:
        lines += ["", "Arguments:", ""]
        lines += [argument_line(argument) for argument in arguments]
    if options:
        lines += ["", "Options:", ""]
        lines += [f"- `{names}`: {text}" if text else f"- `{names}`" for names, text in options]
    return lines


def argument_line(argument: click.Argument) -> str:
    if argument.metavar:  # written as the usage line shows it
        return f"- `{argument.metavar}`"
    repeated = "..." if argument.nargs == -1 else ""
    optional = "" if argument.required else " (optional)"
    return f"- `{argument.human_readable_name}{repeated}`{optional}"


# System checks.


def checks_page() -> str:
    lines = [
        "# System checks",
        "",
        "`python manage.py check` runs the core checks; `check --deploy` adds the",
        "production ones. Each finding has a stable id (`crudkit.E...` for errors, which",
        "make the command exit 1, `crudkit.W...` for warnings) and a hint saying what to",
        "do. Apps add their own checks with `AppConfig.checks`.",
        "",
        "| id | run by | what it checks |",
        "|---|---|---|",
    ]
    found = [(check, "check") for check in checks.CORE_CHECKS]
    found += [(check, "check --deploy") for check in checks.DEPLOY_CHECKS]
    found.append((checks.load_error, "check"))
    rows = []
    for check, command in found:
        summary = inspect.getdoc(check) or ""
        ids, _, what = summary.split("\n", 1)[0].partition(": ")
        rows.append((ids, command, what))
    lines += [f"| `{ids}` | `{command}` | {what} |" for ids, command, what in sorted(rows)]
    return "\n".join(lines) + "\n"
