"""The README's tour, run as written: the example project gets `docs/examples/notes`.

`makemigrations notes` makes the app's first migration in a copy (docs/examples
ships none: the tour has the reader make it), `migrate` applies it, and the API
serves `/api/v1/notes` with the options the README shows.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.cli_support import ADMIN, EXAMPLE, ROOT, TempProject, fresh_database

NOTES = ROOT / "docs" / "examples" / "notes"
SKIP = shutil.ignore_patterns("__pycache__", "*.sqlite3*", ".crudkit-secret-key", ".demo-*")


def test_readme_tour(tmp_path: Path, backend: str) -> None:
    root = tmp_path / "example_project"
    shutil.copytree(EXAMPLE, root, ignore=SKIP)
    shutil.copytree(NOTES, root / "notes", ignore=SKIP)
    settings = root / "settings.py"
    text = settings.read_text()
    assert '"shop"]' in text
    settings.write_text(
        text.replace('"shop"]', '"shop", "notes"]')
    )  # "Add the app to installed_apps"
    assert sorted(p.name for p in (NOTES / "migrations").glob("*.py")) == ["__init__.py"]

    with fresh_database(tmp_path, backend) as url:
        (make, migrate, superuser, check), served = TempProject(root, url).run(
            ["makemigrations", "notes"],
            ["migrate"],
            ["createsuperuser", "--noinput", "--username", ADMIN[0]],
            ["makemigrations", "--check"],
            smoke=("notes", {"title": "Buy milk", "body": "and eggs", "pinned": True}),
        )

    assert make[0] == 0, make[2]
    assert make[1] == (
        "Migrations for 'notes':\n"
        "  notes/migrations/0001_initial.py\n"
        "    + Create table notes_note\n"
    )
    assert (
        "depends_on: str | Sequence[str] | None = 'auth_0002'"
        in (root / "notes" / "migrations" / "0001_initial.py").read_text()
    )
    assert "  Applying notes.0001_initial... OK\n" in migrate[1]
    assert superuser[0] == 0, superuser[2]
    assert check[:2] == (0, "No changes detected\n")
    status, bodies = served["status"], served["bodies"]
    assert status == {
        "token": 200,
        "create": 201,
        "list": 200,
        "anonymous": 401,
        "admin_login": 200,
    }
    assert bodies["create"]["title"] == "Buy milk"
    assert bodies["create"]["owner_id"] == 1  # `owner_field`: the caller owns the row
    assert bodies["list"]["total"] == 1
    # The tour's own app was left as shipped.
    assert sorted(p.name for p in (NOTES / "migrations").glob("*.py")) == ["__init__.py"]
