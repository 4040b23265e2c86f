"""A new app's life: makemigrations sees its models, writes migrations that migrate.

The project lives in a temporary directory and runs in child processes (its
models change between steps, which one Python process cannot redefine); each
child runs a batch of commands as `crudkit --settings settings ...`.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_support import BATCH, TEST_SECRET, fresh_database, manage, query

SETTINGS = """
import crudkit

class Settings(crudkit.Settings):
    installed_apps: list[str] = ["crudkit.contrib.auth", "library"]

settings = Settings()
"""

MODELS = """
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

import crudkit


class Book(crudkit.Model):
    __tablename__ = "library_book"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[int] = mapped_column(ForeignKey("auth_user.id"))
{extra}
"""


class Project:
    def __init__(self, root: Path, database_url: str) -> None:
        self.root = root
        self.database_url = database_url
        (root / "settings.py").write_text(SETTINGS)
        (root / "library").mkdir()
        (root / "library" / "__init__.py").write_text("")
        self.set_models()

    def set_models(self, extra: str = "") -> None:
        (self.root / "library" / "models.py").write_text(
            MODELS.format(extra=textwrap.indent(extra, "    "))
        )

    def run(self, *commands: list[str]) -> list[tuple[int, str, str]]:
        """Exit code, stdout and stderr of each command, run in one child process."""
        batch = [["--settings", "settings", *args] for args in commands]
        result = manage(
            [json.dumps(batch)],
            cwd=self.root,
            env={"CRUDKIT_DATABASE_URL": self.database_url, "CRUDKIT_SECRET_KEY": TEST_SECRET},
            script=("-c", BATCH),
        )
        assert result.returncode == 0, result.stderr
        outcomes = [(code, out, err) for code, out, err in json.loads(result.stdout)]
        for _, _, err in outcomes:
            assert "Traceback" not in err, err
        return outcomes

    @property
    def migrations(self) -> list[str]:
        return sorted(path.name for path in (self.root / "library" / "migrations").glob("*.py"))


@pytest.fixture
def project(tmp_path: Path, backend: str) -> Iterator[Project]:
    root = tmp_path / "project"
    root.mkdir()
    with fresh_database(tmp_path, backend) as url:
        yield Project(root, url)


def test_new_app_gets_migrations_that_migrate(project: Project) -> None:
    too_early, check, make, migrate, check_again = project.run(
        ["migrate", "library"],
        ["makemigrations", "--check"],
        ["makemigrations"],
        ["migrate"],
        ["makemigrations", "--check"],
    )

    assert too_early[:3] == (1, "", "Error: app 'library' has no migrations\n")
    assert check[0] == 1
    assert "Migrations for 'library':\n" in check[1]
    assert "library/migrations/0001_initial.py (not written)\n" in check[1]
    assert "    + Create table library_book\n" in check[1]
    assert make[0] == 0, make[2]
    assert "library/migrations/0001_initial.py\n" in make[1]
    assert project.migrations == ["0001_initial.py", "__init__.py"]
    initial = (project.root / "library" / "migrations" / "0001_initial.py").read_text()
    assert "revision: str = 'library_0001'" in initial
    assert "depends_on: str | Sequence[str] | None = 'auth_0002'" in initial
    assert migrate[0] == 0, migrate[2]
    assert (
        "  Applying auth.0001_initial... OK\n"
        "  Applying auth.0002_username_case_insensitive... OK\n"
        "  Applying library.0001_initial... OK\n" in (migrate[1])
    )
    assert check_again[:2] == (0, "No changes detected\n")


def test_changing_models(project: Project) -> None:
    project.run(["makemigrations"], ["migrate"])
    # Rows survive the table copies SQLite needs to alter a table.
    query(
        project.database_url,
        "INSERT INTO auth_user (username, email, hashed_password, is_active, is_staff, "
        "is_superuser, date_joined, token_version) "
        "VALUES ('ann', '', '', true, false, false, CURRENT_TIMESTAMP, 0)",
    )
    query(project.database_url, "INSERT INTO library_book (title, owner_id) VALUES ('Dune', 1)")

    # A new column.
    project.set_models("isbn: Mapped[str | None] = mapped_column(String(13))")
    pending, make, up, down, up_again, empty, show = project.run(
        ["makemigrations", "--check"],
        ["makemigrations"],
        ["migrate"],
        ["migrate", "library", "0001"],
        ["migrate"],
        ["makemigrations", "library", "--empty", "-m", "backfill titles"],
        ["showmigrations"],
    )

    assert pending[0] == 1  # `--check` sees the change and writes nothing
    assert "0002_book_isbn.py (not written)\n    + Add column isbn to library_book\n" in pending[1]
    assert make[0] == 0, make[2]
    assert (
        "library/migrations/0002_book_isbn.py\n    + Add column isbn to library_book\n" in (make[1])
    )
    assert "  Applying library.0002_book_isbn... OK\n" in up[1]
    assert "  Unapplying library.0002_book_isbn... OK\n" in down[1]
    assert "  Applying library.0002_book_isbn... OK\n" in up_again[1]
    assert query(project.database_url, "SELECT title, isbn FROM library_book") == [("Dune", None)]
    assert "library/migrations/0003_backfill_titles.py\n    (empty)\n" in empty[1]
    assert show[1].endswith(
        "library\n [X] 0001_initial\n [X] 0002_book_isbn\n [ ] 0003_backfill_titles\n"
    )

    # A dropped column: data would be lost, so it takes consent.
    project.set_models()
    refused, written, migrate = project.run(
        ["makemigrations"],
        ["makemigrations", "--allow-destructive", "-m", "drop isbn"],
        ["migrate"],
    )

    assert refused[0] == 1
    assert "library/migrations/0004_remove_book_isbn.py (not written)\n" in refused[1]
    assert "    - Drop column isbn from library_book\n" in refused[1]
    assert "--allow-destructive" in refused[2]
    assert written[0] == 0, written[2]
    assert "library/migrations/0004_drop_isbn.py\n" in written[1]
    assert "  Applying library.0003_backfill_titles... OK\n" in migrate[1]
    assert "  Applying library.0004_drop_isbn... OK\n" in migrate[1]
    assert query(project.database_url, "SELECT title FROM library_book") == [("Dune",)]
