"""`check` and `check --deploy`: every finding has a stable id, errors alone fail the command."""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

import crudkit
from crudkit.checks import secret_key_weakness
from crudkit.cli import Project
from tests.cli_support import Cli, example_settings, fresh_database

STRONG_KEY = secrets.token_urlsafe(48)
SECURE = {
    "secret_key": STRONG_KEY,
    "debug": False,
    "https_only": True,
    "docs_url": None,
}


@pytest.fixture
def url(tmp_path: Path, backend: str) -> Iterator[str]:
    """A database of each backend, for the findings that depend on it (SQLite: W002)."""
    with fresh_database(tmp_path, backend) as database_url:
        yield database_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """Settings findings do not depend on the database: SQLite is enough (and cheaper)."""
    with fresh_database(tmp_path, "sqlite") as database_url:
        yield database_url


def ids(output: str) -> list[str]:
    return re.findall(r"^(crudkit\.[EW]\d{3}) ", output, re.MULTILINE)


def test_deploy_checks_on_insecure_settings(url: str, tmp_path: Path) -> None:
    cli = Cli(
        url,
        debug=True,
        secret_key="",  # debug generates one, kept in this file
        secret_key_file=tmp_path / ".crudkit-secret-key",
        cors_origins=["*"],
    )

    result = cli("check", "--deploy")

    expected = [
        "crudkit.E003",
        "crudkit.E007",  # debug serves /metrics to anyone
        "crudkit.W001",
        "crudkit.W003",
        "crudkit.W004",
        "crudkit.W005",
    ]
    if url.startswith("sqlite"):
        expected.insert(3, "crudkit.W002")
    assert ids(result.stdout) == expected
    assert result.exit_code == 1
    assert result.stdout.startswith("System check identified some issues:\n\nERRORS:\n")
    assert "crudkit.E003 (error): no secret_key is set: debug generated a development key" in (
        result.stdout
    )
    assert "\tHINT: set CRUDKIT_SECRET_KEY" in result.stdout
    assert result.stdout.endswith(f"\nSystem check identified {len(expected)} issues.\n")


def test_deploy_reports_a_weak_secret_key(sqlite_url: str) -> None:
    weak = Cli(sqlite_url, **{**SECURE, "secret_key": "x" * 40})
    known = Cli(
        sqlite_url, **{**SECURE, "secret_key": "test-secret-key-that-is-long-enough-for-hs256"}
    )

    assert "crudkit.E004 (error): secret_key is weak: it is shorter than 50 characters" in (
        weak("check", "--deploy").stdout
    )
    assert "secret_key is weak: it is a well-known value" in known("check", "--deploy").stdout


def test_deploy_passes_on_production_settings(url: str) -> None:
    result = Cli(url, **SECURE)("check", "--deploy")

    assert result.exit_code == 0, result.output
    if url.startswith("sqlite"):  # the one thing left: SQLite itself
        assert ids(result.stdout) == ["crudkit.W002"]
    else:
        assert result.stdout == "System check identified no issues.\n"


def test_warnings_fail_only_with_fail_level_warning(sqlite_url: str) -> None:
    cli = Cli(sqlite_url, debug=True)

    assert cli("check").exit_code == 0
    failing = cli("check", "--fail-level", "WARNING")
    assert failing.exit_code == 1
    assert ids(failing.stdout) == ["crudkit.W001"]


def test_cors_with_every_origin_and_credentials(sqlite_url: str) -> None:
    apps = crudkit.Apps(example_settings(sqlite_url)).populate()

    def allow_everything(app: FastAPI) -> None:  # what an app's own middleware might do
        app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_credentials=True)

    apps.on_app(allow_everything)

    result = Cli(sqlite_url)("check", project=Project(apps=apps))

    assert result.exit_code == 1
    assert ids(result.stdout) == ["crudkit.E005"]
    assert "allows every origin with credentials" in result.stdout


GADGETS_RESOURCES = """
import crudkit
from tests.models import Gadget


@crudkit.register(Gadget)
class GadgetResource(crudkit.Resource):
    search_fields = ["name", "colour_name"]
"""


@pytest.fixture
def gadgets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An app whose resource names a column the model does not have."""
    package = tmp_path / "apps" / "gadgets"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "resources.py").write_text(GADGETS_RESOURCES)
    monkeypatch.syspath_prepend(str(tmp_path / "apps"))
    yield "gadgets"
    for name in [name for name in sys.modules if name.split(".")[0] == "gadgets"]:
        del sys.modules[name]


def test_a_project_that_cannot_load_is_a_finding(sqlite_url: str, gadgets: str) -> None:
    cli = Cli(sqlite_url, installed_apps=["crudkit.contrib.auth", gadgets])

    result = cli("check")

    assert result.exit_code == 1
    assert ids(result.stdout) == ["crudkit.E002"]
    assert "crudkit.E002 (error): the project cannot be loaded: " in result.stdout
    assert "colour_name" in result.stdout
    assert result.stdout.endswith("System check identified 1 issue.\n")
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("key", "weakness"),
    [
        ("a" * 64, "it has little entropy (about 0 bits)"),
        ("ab" * 32, "it has little entropy (about 64 bits)"),
        ("please-changeme-" + secrets.token_urlsafe(48), "it is a well-known value"),
        (secrets.token_urlsafe(48), None),
        (secrets.token_hex(32), None),
    ],
)
def test_secret_key_weakness(key: str, weakness: str | None) -> None:
    assert secret_key_weakness(key) == weakness


def test_hosts_are_required_without_debug(sqlite_url: str) -> None:
    result = Cli(sqlite_url, **{**SECURE, "allowed_hosts": []})("check")

    assert result.exit_code == 1
    assert ids(result.stdout) == ["crudkit.E006"]
    assert "allowed_hosts is empty and debug is off: the app refuses to start" in result.stdout
    assert "HINT: set CRUDKIT_ALLOWED_HOSTS" in result.stdout


def test_deploy_warns_about_any_host_and_public_docs(sqlite_url: str) -> None:
    cli = Cli(sqlite_url, **{**SECURE, "allowed_hosts": ["*"], "docs_url": "/api-docs"})

    result = cli("check", "--deploy")

    assert result.exit_code == 0, result.output
    assert ids(result.stdout) == ["crudkit.W002", "crudkit.W004", "crudkit.W006"]
    assert "the API docs (/api-docs, /redoc, /openapi.json) are served to anyone" in result.stdout
    assert "HINT: set CRUDKIT_DOCS_URL= (empty)" in result.stdout
    assert "allowed_hosts is '*'" in result.stdout


@pytest.mark.parametrize(
    ("token", "finding"),
    [
        (None, None),  # /metrics answers 404
        (secrets.token_urlsafe(32), None),
        (
            "short-" + secrets.token_hex(4),
            "metrics_token is weak: it is shorter than 32 characters",
        ),
        (
            "changeme-" + secrets.token_urlsafe(32),
            "metrics_token is weak: it is a well-known value",
        ),
    ],
)
def test_deploy_checks_the_metrics_token(sqlite_url: str, token: str, finding: str | None) -> None:
    result = Cli(sqlite_url, **{**SECURE, "metrics_token": token})("check", "--deploy")

    if finding is None:
        assert ids(result.stdout) == ["crudkit.W002"], result.stdout
        assert result.exit_code == 0
    else:
        assert ids(result.stdout) == ["crudkit.E008", "crudkit.W002"]
        assert f"crudkit.E008 (error): {finding}" in result.stdout
        assert result.exit_code == 1


def test_deploy_errors_on_metrics_open_to_anyone(sqlite_url: str) -> None:
    cli = Cli(sqlite_url, **{**SECURE, "debug": True})

    result = cli("check", "--deploy")

    assert "crudkit.E007" in ids(result.stdout)
    assert "/metrics answers anyone: debug is on and no metrics_token is set" in result.stdout
    assert "HINT: set CRUDKIT_METRICS_TOKEN" in result.stdout
    with_token = Cli(sqlite_url, **{**SECURE, "debug": True, "metrics_token": STRONG_KEY})
    assert "crudkit.E007" not in ids(with_token("check", "--deploy").stdout)
