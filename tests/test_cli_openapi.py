"""`manage.py openapi`: the document, written the same way every time, and `--check`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from tests.cli_support import EXAMPLE, Cli, fresh_database, manage

COMMITTED = EXAMPLE / "openapi.json"


@pytest.fixture
def cli(tmp_path: Path, backend: str) -> Iterator[Cli]:
    with fresh_database(tmp_path, backend) as url:
        yield Cli(url)


def test_writes_the_document_to_stdout_or_a_file(cli: Cli, tmp_path: Path) -> None:
    printed = cli("openapi")
    target = tmp_path / "openapi.json"
    written = cli("openapi", "-o", str(target))

    assert printed.exit_code == 0, printed.output
    assert written.exit_code == 0
    assert written.stdout == ""
    assert target.read_text(encoding="utf-8") == printed.stdout
    document = json.loads(printed.stdout)
    validate(document)
    assert "/api/v1/products/{id}" in document["paths"]
    # Sorted keys, 2-space indent, one final newline: the committed form.
    assert printed.stdout == json.dumps(document, indent=2, sort_keys=True) + "\n"


def test_check_against_the_same_document_passes(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    cli("openapi", "-o", str(target))

    result = cli("openapi", "--check", str(target))

    assert result.exit_code == 0
    assert result.stdout == "No breaking changes.\n"


def test_check_lists_breaking_changes_and_fails(cli: Cli, tmp_path: Path) -> None:
    document = json.loads(cli("openapi").stdout)
    # The previous contract had a path, a parameter and a response field that are gone.
    document["paths"]["/api/v1/gone"] = {"get": {"responses": {"200": {"description": "x"}}}}
    listed = document["paths"]["/api/v1/products"]["get"]
    listed["parameters"].append({"name": "colour", "in": "query", "schema": {"type": "string"}})
    document["components"]["schemas"]["CategoryOut"]["properties"]["slug"] = {"type": "string"}
    old = tmp_path / "old.json"
    old.write_text(json.dumps(document), encoding="utf-8")

    result = cli("openapi", "--check", str(old))

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Breaking changes since {old} (")
    assert "  /api/v1/gone: path removed" in lines
    assert "  GET /api/v1/products: parameter 'colour' (query) removed" in lines
    assert "  GET /api/v1/categories/{id} 200: response field 'slug' removed" in lines


def test_check_refuses_a_file_that_is_not_json(cli: Cli, tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text("{not json", encoding="utf-8")

    result = cli("openapi", "--check", str(old))

    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {old} is not JSON: ")
    assert result.stderr.count("\n") == 1


def test_check_refuses_json_that_is_not_openapi(cli: Cli, tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text('{"paths": {}}', encoding="utf-8")

    result = cli("openapi", "--check", str(old))

    assert result.exit_code == 1
    assert result.stderr == f'Error: {old} is not an OpenAPI document (no "openapi" or "paths")\n'


def test_check_reports_a_missing_file(cli: Cli, tmp_path: Path) -> None:
    result = cli("openapi", "--check", str(tmp_path / "missing.json"))

    assert result.exit_code == 1
    assert (
        result.stderr
        == f"Error: cannot read {tmp_path / 'missing.json'}: No such file or directory\n"
    )


def test_output_and_check_together_are_refused(cli: Cli, tmp_path: Path) -> None:
    result = cli("openapi", "-o", str(tmp_path / "a.json"), "--check", str(tmp_path / "b.json"))

    assert result.exit_code == 2
    assert "use either -o or --check, not both" in result.stderr


def test_the_document_is_the_same_bytes_every_run() -> None:
    # Separate processes with different hash seeds: no set or dict order leaks in.
    first = manage(["openapi"], env={"PYTHONHASHSEED": "1"})
    second = manage(["openapi"], env={"PYTHONHASHSEED": "2"})

    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout


def test_the_committed_document_is_current() -> None:
    generated = manage(["openapi"])

    assert generated.returncode == 0, generated.stderr
    assert COMMITTED.read_text(encoding="utf-8") == generated.stdout, (
        "example_project/openapi.json is out of date: the API changed. Regenerate it in the"
        " same commit: cd example_project && ../.venv/bin/python manage.py openapi -o openapi.json"
    )
