"""`startproject` and `startapp`: from nothing to a working API and admin, as a user would."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crudkit.cli import main
from tests.cli_support import ADMIN, ROOT, TempProject, fresh_database, manage

ENTRY_RESOURCE = """
import crudkit

from .models import Entry


@crudkit.register(Entry)
class EntryResource(crudkit.Resource):
    owner_field = "owner_id"
    search_fields = ["title", "body"]
    ordering_fields = ["created_at", "title"]
"""


def run(*args: str) -> Result:
    """A command run in-process from the current directory, with no project configured."""
    return CliRunner().invoke(main, list(args), env={"CRUDKIT_SETTINGS_MODULE": ""})


def uncomment_example(models: Path) -> None:
    """Turn the commented example model of the app template into code, as a user would."""
    text = models.read_text()
    head, example = text.split(
        "# An example to start from (table names start with the app label):\n"
    )
    code = [re.sub(r"^# ?", "", line) for line in example.splitlines()]
    models.write_text(head + "\n".join(code) + "\n")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_startproject_to_a_working_api(workdir: Path, backend: str) -> None:
    created = run("startproject", "mysite")
    root = workdir / "mysite"
    assert created.exit_code == 0, created.output
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == [
        ".gitignore",
        "apps/__init__.py",
        "manage.py",
        "settings.py",
    ]
    gitignore = (root / ".gitignore").read_text().splitlines()
    assert {"db.sqlite3", ".crudkit-secret-key"} <= set(gitignore)

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        made = run("startapp", "blog")
    assert made.exit_code == 0, made.output
    assert made.stdout.startswith("Created app 'blog' in apps/blog. Next:\n")
    assert '  1. add "apps.blog" to installed_apps in settings.py\n' in made.stdout
    blog = root / "apps" / "blog"
    assert sorted(p.name for p in blog.rglob("*.py")) == [
        "__init__.py",
        "__init__.py",
        "apps.py",
        "models.py",
        "resources.py",
    ]
    assert 'name = "apps.blog"' in (blog / "apps.py").read_text()
    for check in (["check"], ["format", "--check"]):  # what the scaffolds write is clean code
        lint = subprocess.run(
            [sys.executable, "-m", "ruff", *check, "--config", str(ROOT / "pyproject.toml"), "."],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        assert lint.returncode == 0, lint.stdout

    uncomment_example(blog / "models.py")
    (blog / "resources.py").write_text(ENTRY_RESOURCE)
    settings = root / "settings.py"
    settings.write_text(
        settings.read_text().replace(
            '"crudkit.contrib.admin",\n', '"crudkit.contrib.admin",\n        "apps.blog",\n'
        )
    )
    with fresh_database(workdir, backend) as url:
        (make, migrate, superuser, check), served = TempProject(root, url).run(
            ["makemigrations"],
            ["migrate"],
            ["createsuperuser", "--noinput", "--username", ADMIN[0]],
            ["check"],
            smoke=("entries", {"title": "Hello", "body": "First post"}),
        )

    assert make[:2] == (
        0,
        "Migrations for 'blog':\n  apps/blog/migrations/0001_initial.py\n"
        "    + Create table blog_entry\n",
    )
    assert migrate[0] == 0, migrate[2]
    assert "  Applying blog.0001_initial... OK\n" in migrate[1]
    assert superuser[:2] == (0, "Superuser 'admin' created.\n")
    assert check[:2] == (0, "System check identified no issues.\n")
    status, bodies = served["status"], served["bodies"]
    assert status == {
        "token": 200,
        "create": 201,
        "list": 200,
        "anonymous": 401,
        "admin_login": 200,
    }
    assert bodies["create"]["title"] == "Hello"
    assert bodies["list"]["total"] == 1
    assert 'name="password"' in bodies["admin_login"]


def test_startproject_needs_no_settings_at_all(tmp_path: Path) -> None:
    """The console script, outside any project, with no CRUDKIT_* in the environment."""
    result = manage(["startproject", "site_two"], cwd=tmp_path, script=["-m", "crudkit.cli"])

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert (tmp_path / "site_two" / "manage.py").stat().st_mode & 0o100


def test_startproject_mistakes(workdir: Path) -> None:
    (workdir / "taken").mkdir()
    (workdir / "taken" / "file.txt").write_text("x")

    assert run("startproject", "taken").stderr == (
        "Error: taken already exists and is not an empty directory\n"
    )
    assert run("startproject", "9lives").stderr.startswith(
        "Error: '9lives' is not a valid project name"
    )
    assert run("startproject").exit_code == 2  # a usage error
    assert run("startproject", "here", "empty").exit_code == 0  # an empty or new directory


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("my-app", "'my-app' is not a valid app name: it must be a Python identifier"),
        ("class", "'class' is not a valid app name: it must be a Python identifier"),
        ("auth", "'auth' is the label of a crudkit app; choose another name"),
        ("json", "'json' is the name of an existing Python module; choose another app name"),
    ],
)
def test_startapp_mistakes(workdir: Path, name: str, message: str) -> None:
    result = run("startapp", name)

    assert result.exit_code == 1
    assert result.stderr == f"Error: {message}\n"
    assert list(workdir.iterdir()) == []


def test_startapp_outside_an_apps_layout(workdir: Path) -> None:
    """Like the example project: no `apps` package, so the app goes next to manage.py."""
    first = run("startapp", "library")
    again = run("startapp", "library")

    assert first.exit_code == 0, first.output
    assert '  1. add "library" to installed_apps in settings.py\n' in first.stdout
    assert 'name = "library"' in (workdir / "library" / "apps.py").read_text()
    assert (
        "class LibraryConfig(crudkit.AppConfig):" in (workdir / "library" / "apps.py").read_text()
    )
    assert again.stderr == "Error: library already exists\n"


@pytest.fixture(autouse=True)
def _forget_scaffolded_modules() -> Iterator[None]:
    yield
    for name in [n for n in sys.modules if n.split(".")[0] in {"library", "blog", "apps"}]:
        del sys.modules[name]
