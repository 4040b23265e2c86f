"""The distribution: contrib ships as crudkit.contrib, with its data; the public API is curated."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import crudkit

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        check=True,
    )
    (built,) = out.glob("crudkit-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_wheel_maps_contrib_into_crudkit(wheel_names: set[str]) -> None:
    assert "crudkit/__init__.py" in wheel_names
    assert "crudkit/py.typed" in wheel_names
    assert "crudkit/contrib/auth/models.py" in wheel_names
    assert "crudkit/contrib/admin/apps.py" in wheel_names
    assert "crudkit/contrib/auth/common-passwords.txt.gz" in wheel_names
    assert not any(name.startswith("contrib/") for name in wheel_names)
    assert not any(name.startswith(("tests/", "example_project/")) for name in wheel_names)


def test_wheel_ships_the_migration_engine_and_auth_test_helpers(wheel_names: set[str]) -> None:
    assert "crudkit/migrator/__init__.py" in wheel_names
    assert "crudkit/migrator/engines.py" in wheel_names
    assert "crudkit/migrations_env/env.py" in wheel_names
    assert "crudkit/contrib/auth/testing.py" in wheel_names


def test_wheel_ships_migrations(wheel_names: set[str]) -> None:
    assert any(name.startswith("crudkit/contrib/auth/migrations/0001") for name in wheel_names), (
        sorted(name for name in wheel_names if "migrations" in name)
    )


def test_wheel_ships_the_scaffold_templates(wheel_names: set[str]) -> None:
    source = Path(__file__).resolve().parent.parent / "crudkit" / "cli" / "templates"
    templates = {f"crudkit/cli/templates/{p.relative_to(source)}" for p in source.rglob("*-tpl")}
    assert "crudkit/cli/templates/project/settings.py-tpl" in templates
    assert templates <= wheel_names


def test_wheel_ships_the_api_docs_assets(wheel_names: set[str]) -> None:
    # `/docs` and `/redoc` load these from the app, not from a CDN.
    for name in (
        "swagger-ui/swagger-ui-bundle.js",
        "swagger-ui/swagger-ui.css",
        "swagger-ui/favicon-32x32.png",
        "swagger-ui/LICENSE",
        "swagger-ui/NOTICE",
        "redoc/redoc.standalone.js",
        "redoc/LICENSE",
    ):
        assert f"crudkit/statics/docs/{name}" in wheel_names, name


def test_wheel_declares_the_console_script(wheel: Path, wheel_names: set[str]) -> None:
    entry_points = next(name for name in wheel_names if name.endswith("entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(entry_points).decode()
    assert "crudkit = crudkit.cli:main" in text


def test_public_api_is_complete_and_sorted() -> None:
    exported = crudkit.__all__
    assert exported == sorted(exported)
    public = {
        name
        for name, value in vars(crudkit).items()
        if not name.startswith("_") and not isinstance(value, type(crudkit))
    }
    assert public == set(exported)
