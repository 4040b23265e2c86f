"""`migrate`, `showmigrations`, `makemigrations` and `check` on the example project."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_support import ROOT, Cli, fresh_database

# The admin app's migrations, whatever they are when the suite runs.
ADMIN_MIGRATIONS = sorted(path.stem for path in (ROOT / "contrib/admin/migrations").glob("0*.py"))


@pytest.fixture
def cli(tmp_path: Path, backend: str) -> Iterator[Cli]:
    with fresh_database(tmp_path, backend) as url:
        yield Cli(url)


def tables(cli: Cli) -> set[str]:
    if cli.database_url.startswith("sqlite"):
        rows = cli.query("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = cli.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row[0] for row in rows}


def test_migrate_from_empty_to_head(cli: Cli) -> None:
    before = cli("showmigrations")
    assert before.exit_code == 0, before.output
    assert before.stdout == (
        "auth\n [ ] 0001_initial\n [ ] 0002_username_case_insensitive\n"
        "admin\n [ ] 0001_initial\nshop\n [ ] 0001_initial\n [ ] 0002_tags_and_order_status\n"
        " [ ] 0003_product_list_indexes\n"
    )

    result = cli("migrate")

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "Operations to perform:\n"
        "  Apply all migrations: auth, admin, shop\n"
        "Running migrations:\n"
        "  Applying auth.0001_initial... OK\n"
        "  Applying auth.0002_username_case_insensitive... OK\n"
        "  Applying shop.0001_initial... OK\n"
        "  Applying shop.0002_tags_and_order_status... OK\n"
        "  Applying shop.0003_product_list_indexes... OK\n"
        "  Applying admin.0001_initial... OK\n"
    )
    assert {"auth_user", "auth_permission", "shop_product", "shop_order", "shop_tag"} <= tables(cli)
    after = cli("showmigrations")
    assert after.stdout == (
        "auth\n [X] 0001_initial\n [X] 0002_username_case_insensitive\n"
        "admin\n [X] 0001_initial\nshop\n [X] 0001_initial\n [X] 0002_tags_and_order_status\n"
        " [X] 0003_product_list_indexes\n"
    )


def test_migrate_runs_post_migrate_hooks(cli: Cli) -> None:
    cli("migrate")
    codenames = {row[0] for row in cli.query("SELECT codename FROM auth_permission")}
    assert {"shop.view_product", "shop.delete_order", "auth.change_user"} <= codenames

    again = cli("migrate")

    assert again.exit_code == 0, again.output
    assert "  No migrations to apply.\n" in again.stdout
    count = cli.query("SELECT count(*) FROM auth_permission")[0][0]
    assert count == len(codenames)  # the hook is idempotent


def test_unapply_an_app_and_migrate_it_back(cli: Cli) -> None:
    cli("migrate")

    down = cli("migrate", "shop", "zero")

    assert down.exit_code == 0, down.output
    assert "  Unapplying shop.0002_tags_and_order_status... OK\n" in down.stdout
    assert "  Unapplying shop.0001_initial... OK\n" in down.stdout
    assert "shop_product" not in tables(cli)
    assert "auth_user" in tables(cli)
    assert cli("showmigrations").stdout.endswith(
        "shop\n [ ] 0001_initial\n [ ] 0002_tags_and_order_status\n [ ] 0003_product_list_indexes\n"
    )
    assert "No migrations to apply." in cli("migrate", "shop", "zero").stdout

    up = cli("migrate", "shop", "0001")

    assert up.exit_code == 0, up.output
    assert "  Applying shop.0001_initial... OK\n" in up.stdout
    assert "shop_product" in tables(cli)
    assert "shop_tag" not in tables(cli)
    assert "Applying shop.0002_tags_and_order_status" in cli("migrate", "shop").stdout
    assert "No migrations to apply." in cli("migrate", "shop").stdout


def test_unapplying_an_app_unapplies_the_apps_that_depend_on_it(cli: Cli) -> None:
    cli("migrate")

    result = cli("migrate", "auth", "zero")

    assert result.exit_code == 0, result.output
    assert result.stdout.index("Unapplying shop.0001_initial") < result.stdout.index(
        "Unapplying auth.0001_initial"
    )
    assert tables(cli) <= {"alembic_version"}


def test_migrating_one_app_applies_its_dependencies_first(cli: Cli) -> None:
    result = cli("migrate", "shop")

    assert result.exit_code == 0, result.output
    applied = result.stdout
    assert applied.index("Applying auth.0001_initial") < applied.index("Applying shop.0001_initial")
    # 0002 refers to the users as they are after the auth app's 0002.
    assert applied.index("Applying auth.0002") < applied.index("Applying shop.0002")


def test_committed_migrations_match_the_models(cli: Cli) -> None:
    result = cli("makemigrations", "--check")

    assert result.exit_code == 0, result.output
    assert result.stdout == "No changes detected\n"
    assert cli("makemigrations", "shop", "--check").stdout == "No changes detected in app 'shop'\n"
    # Nothing was read from, or written to, the project's database.
    assert tables(cli) == set()


def test_committed_migrations_carry_constraints_and_names() -> None:
    root = Path(__file__).resolve().parent.parent
    auth = (root / "contrib/auth/migrations/0001_initial.py").read_text()
    shop = (root / "example_project/shop/migrations/0001_initial.py").read_text()

    assert "revision: str = 'auth_0001'" in auth
    assert "branch_labels: str | Sequence[str] | None = ('auth',)" in auth
    assert "depends_on: str | Sequence[str] | None = 'auth_0001'" in shop
    assert (
        "sa.CheckConstraint('price >= 0', name=op.f('ck_shop_product_price_non_negative'))" in shop
    )
    assert "name=op.f('ck_shop_order_quantity_range')" in shop
    assert "name=op.f('fk_shop_product_owner_id_auth_user')" in shop
    assert "sa.DateTime(timezone=True)" in shop
    assert "crudkit" not in shop + auth  # migration files import nothing from crudkit


def test_check_passes_on_the_example_project(cli: Cli) -> None:
    result = cli("check")

    assert result.exit_code == 0, result.output
    assert result.stdout == "System check identified no issues.\n"


def test_check_warns_about_debug(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        result = Cli(url, debug=True)("check")

    assert result.exit_code == 0, result.output
    assert "crudkit.W001 (warning): debug is on" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["migrate", "nope"],
            "Error: no installed app with label 'nope' (installed: auth, admin, shop)\n",
        ),
        (
            ["migrate", "shop", "0042"],
            "Error: app 'shop' has no migration '0042' "
            "(it has: 0001_initial, 0002_tags_and_order_status, 0003_product_list_indexes)\n",
        ),
        (
            ["makemigrations", "nope"],
            "Error: no installed app with label 'nope' (installed: auth, admin, shop)\n",
        ),
    ],
)
def test_mistakes_are_one_line_errors(cli: Cli, args: list[str], message: str) -> None:
    result = cli(*args)

    assert result.exit_code == 1
    assert result.stderr.endswith(message)
    assert "Traceback" not in result.output


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    cli = Cli("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")

    result = cli("migrate")

    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: cannot connect to postgresql+asyncpg://postgres@127.0.0.1:1/nowhere: "
    )
    assert result.stderr.count("\n") == 1


LEDGER_INITIAL = """
import sqlalchemy as sa
from alembic import op

revision = "ledger_0001"
down_revision = None
branch_labels = ("ledger",)
depends_on = None


def upgrade() -> None:
    op.create_table("ledger_account", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("ledger_account")
"""

LEDGER_SECOND = """
import sqlalchemy as sa
from alembic import op

revision = "ledger_0002"
down_revision = "ledger_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("ledger_entry", sa.Column("id", sa.Integer(), primary_key=True))
    {statement}


def downgrade() -> None:
    op.drop_table("ledger_entry")
"""


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An importable app `ledger` with migrations and no models (nothing joins the metadata)."""
    package = tmp_path / "apps" / "ledger"
    (package / "migrations").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "migrations" / "__init__.py").write_text("")
    (package / "migrations" / "0001_initial.py").write_text(LEDGER_INITIAL)
    monkeypatch.syspath_prepend(str(tmp_path / "apps"))
    yield package / "migrations"
    for name in [name for name in sys.modules if name.split(".")[0] == "ledger"]:
        del sys.modules[name]


def test_a_failing_migration_is_rolled_back_and_named(cli: Cli, ledger: Path) -> None:
    broken = ledger / "0002_entries.py"
    broken.write_text(
        LEDGER_SECOND.format(statement='op.execute("UPDATE no_such_table SET x = 1")')
    )
    cli.settings["installed_apps"] = ["crudkit.contrib.auth", "ledger"]

    result = cli("migrate")

    assert result.exit_code == 1
    assert "  Applying ledger.0001_initial... OK\n" in result.stdout
    assert result.stdout.endswith("  Applying ledger.0002_entries... FAILED\n")
    assert result.stderr.startswith(
        "Error: migration ledger.0002_entries failed and was rolled back: database error: "
    )
    assert "no_such_table" in result.stderr
    assert result.stderr.endswith("; app 'ledger' stays at 0001_initial\n")
    assert "Traceback" not in result.output
    # The table the failing migration created before its error went with it, on SQLite too.
    assert "ledger_entry" not in tables(cli)
    assert "ledger_account" in tables(cli)
    versions = {row[0] for row in cli.query("SELECT version_num FROM alembic_version")}
    assert "ledger_0001" in versions
    assert "ledger_0002" not in versions

    broken.write_text(LEDGER_SECOND.format(statement="pass  # fixed, and a different length"))
    fixed = cli("migrate", "ledger")

    assert fixed.exit_code == 0, fixed.output
    assert "  Applying ledger.0002_entries... OK\n" in fixed.stdout
    assert "ledger_entry" in tables(cli)


def test_a_demo_database_of_the_first_edition_migrates_forward(cli: Cli) -> None:
    # The database as the first edition left it: shop at 0001, with its rows.
    assert cli("migrate", "shop", "0001").exit_code == 0
    cli.query(
        "INSERT INTO auth_user (username, email, hashed_password, is_active, is_staff,"
        " is_superuser, token_version, date_joined)"
        " VALUES ('demo', 'demo@example.com', '', true, false, false, 0, CURRENT_TIMESTAMP)"
    )
    cli.query("INSERT INTO shop_category (name) VALUES ('Books')")
    cli.query(
        "INSERT INTO shop_product (name, price, in_stock, category_id, owner_id, created_at,"
        " updated_at) VALUES ('Fluent Python', 49.90, true, 1, 1, CURRENT_TIMESTAMP,"
        " CURRENT_TIMESTAMP)"
    )
    cli.query(
        "INSERT INTO shop_order (product_id, quantity, owner_id, created_at)"
        " VALUES (1, 2, 1, CURRENT_TIMESTAMP)"
    )

    result = cli("migrate")

    assert result.exit_code == 0, result.output
    assert "Applying shop.0002_tags_and_order_status... OK" in result.stdout
    assert cli.query("SELECT name FROM shop_product") == [("Fluent Python",)]
    assert cli.query("SELECT quantity, status FROM shop_order") == [(2, "pending")]
    assert cli.query("SELECT count(*) FROM shop_tag")[0][0] == 0
    assert cli("makemigrations", "--check").exit_code == 0
    # And back: 0002 unapplies cleanly, keeping the first edition's rows.
    down = cli("migrate", "shop", "0001")
    assert down.exit_code == 0, down.output
    assert cli.query("SELECT quantity FROM shop_order") == [(2,)]
