"""The documentation site builds with `mkdocs build --strict`, and its generated reference
pages list every setting and every command of the code they come from."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import crudkit
from crudkit.conf import ENVIRONMENT_NOT_SETTINGS_PREFIXES

ROOT = Path(__file__).resolve().parent.parent

# Outside CI a checkout may lack the docs extra; CI installs it, so there a missing
# package fails the tests instead of skipping them.
needs_mkdocs = pytest.mark.skipif(
    not os.environ.get("CI")
    and any(
        importlib.util.find_spec(name) is None for name in ("mkdocs", "material", "mkdocstrings")
    ),
    reason="mkdocs-material and mkdocstrings (the docs extra) are not installed: "
    'pip install -e ".[docs]"',
)


def clean_environment() -> dict[str, str]:
    """The environment without the project's settings, as a user's shell would have it."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("CRUDKIT_") or name.startswith(ENVIRONMENT_NOT_SETTINGS_PREFIXES)
    }
    env["NO_MKDOCS_2_WARNING"] = "1"  # the theme's notice, on every build
    return env


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(target)],
        cwd=ROOT,
        env=clean_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    return target


def page(site: Path, path: str) -> str:
    return (site / path / "index.html").read_text()


def commands_of_a_project(tmp_path: Path) -> list[str]:
    """The commands `crudkit --help` lists in a project with the default apps."""
    (tmp_path / "docs_settings.py").write_text(
        "import crudkit\n\nsettings = crudkit.Settings(secret_key='s' * 40)\n"
    )
    shown = subprocess.run(
        [sys.executable, "-m", "crudkit.cli", "--settings", "docs_settings", "--help"],
        cwd=tmp_path,
        env=clean_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    listing = shown.stdout.split("\nCommands:\n", 1)[1]
    return re.findall(r"^  (\S+)", listing, re.MULTILINE)


@needs_mkdocs
def test_the_site_has_every_page(site: Path) -> None:
    for path in (
        "",
        "tutorial",
        "extending",
        "custom-routes",
        "deploy",
        "performance",
        "tuning",
        "permissions",
        "testing",
        "migrations",
        "coming-from-django",
        "reference/settings",
        "reference/cli",
        "reference/checks",
        "reference/http",
        "reference/api",
    ):
        assert (site / path / "index.html").is_file(), path
    # The code the pages quote and the build's hook are not pages.
    assert not list(site.rglob("*.py"))


@needs_mkdocs
def test_settings_page_lists_every_setting(site: Path) -> None:
    html = page(site, "reference/settings")
    fields = crudkit.Settings.model_fields
    assert len(fields) >= 20
    for name in fields:
        assert f'id="{name}"' in html, name
        assert f"CRUDKIT_{name.upper()}" in html, name
    # Descriptions are the fields' docstrings, types and defaults their declarations.
    assert "Signs tokens, sessions and cursors" in html
    assert '<code>"sqlite+aiosqlite:///./db.sqlite3"</code>' in html.replace("&quot;", '"')


@needs_mkdocs
def test_cli_page_lists_every_command(site: Path, tmp_path: Path) -> None:
    html = page(site, "reference/cli")
    commands = commands_of_a_project(tmp_path)
    assert {"migrate", "makemigrations", "runserver", "createsuperuser", "startproject"} <= set(
        commands
    )
    for name in commands:
        assert f'id="{name}"' in html, name
        assert f"Usage: manage.py {name} " in html, name
    # Each command's options, with their help as `--help` shows it.
    assert "--allow-destructive" in html
    assert "Write migrations that drop tables or columns" in html


@needs_mkdocs
def test_checks_page_lists_every_check_id(site: Path) -> None:
    html = page(site, "reference/checks")
    source = (ROOT / "crudkit" / "checks.py").read_text()
    ids = set(re.findall(r'"(crudkit\.[EW]\d{3})"', source))
    assert len(ids) >= 15
    for check_id in ids:
        assert check_id.split(".")[1] in html, check_id
    assert "<code>check --deploy</code>" in html


@needs_mkdocs
def test_api_page_documents_the_public_classes(site: Path) -> None:
    html = page(site, "reference/api")
    for name in ("Resource", "Settings", "AppConfig", "action", "computed", "create", "IsOwner"):
        assert f'id="crudkit.{name}"' in html, name


def test_every_python_block_of_the_site_is_checked() -> None:
    """The pages' Python is quoted from files the suite runs (tests/test_docs.py checks
    the `<!-- example: PATH -->` and `<!-- excerpt: PATH -->` markers)."""
    unmarked = []
    for page_path in sorted((ROOT / "docs").rglob("*.md")):
        lines = page_path.read_text().splitlines()
        unmarked += [
            f"{page_path.relative_to(ROOT)}:{number + 1}"
            for number, line in enumerate(lines)
            if line == "```python"
            and not re.fullmatch(
                r"<!-- (example|excerpt): \S+ -->", lines[number - 1] if number else ""
            )
        ]
    assert unmarked == []
