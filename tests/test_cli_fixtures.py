"""`dumpdata` and `loaddata`: a round trip of every row, one transaction, flat memory."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import sys
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.pool import NullPool

import crudkit
from crudkit.cli.progress import progress
from crudkit.contrib.auth.testing import create_user, login
from crudkit.db import Model
from crudkit.testing import client_for
from tests.cli_support import EXAMPLE_APPS, Cli, example_settings, fresh_database
from tests.conftest import engine_for
from tests.models import Colour, Gadget

EXAMPLE_TABLES = [
    "auth_permission",
    "auth_group",
    "auth_user",
    "auth_group_permissions",
    "auth_refresh_token",
    "auth_user_groups",
    "auth_user_user_permissions",
    "crudkit_log_entry",
    "shop_category",
    "shop_order",
    "shop_product",
    "shop_product_tags",
    "shop_tag",
]


@pytest.fixture
def source(tmp_path: Path, backend: str) -> Iterator[Cli]:
    with fresh_database(tmp_path, backend, "source") as url:
        cli = Cli(url)
        assert cli("migrate").exit_code == 0
        yield cli


@pytest.fixture
def target(tmp_path: Path, backend: str) -> Iterator[Cli]:
    """A freshly migrated database: the permissions `migrate` creates are already there."""
    with fresh_database(tmp_path, backend, "target") as url:
        cli = Cli(url)
        assert cli("migrate").exit_code == 0
        yield cli


async def _use_the_api(url: str) -> None:
    """Rows in every table: users, a login (refresh token), writes (history), groups."""
    app = crudkit.create_app(example_settings(url))
    async with client_for(app) as client:
        alice = await create_user(app, "alice", permissions=["shop.view_order"])
        headers = await login(client, "alice", "correct-horse-battery")
        product = await client.post(
            "/api/v1/products", json={"name": "Lamp", "price": "9.99"}, headers=headers
        )
        assert product.status_code == 201, product.text
        order = await client.post(
            "/api/v1/orders",
            json={"product_id": product.json()["id"], "quantity": 2, "note": "Ünïcode ✓"},
            headers=headers,
        )
        assert order.status_code == 201, order.text
    engine = engine_for(url, poolclass=NullPool)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("INSERT INTO auth_group (name) VALUES ('editors')")
        await conn.exec_driver_sql(
            f"INSERT INTO auth_user_groups (user_id, group_id) VALUES ({alice}, 1)"
        )
        await conn.exec_driver_sql(
            "INSERT INTO auth_group_permissions (group_id, permission_id) VALUES (1, 1)"
        )
    await engine.dispose()


def contents(cli: Cli, table: str) -> list[Any]:
    return cli.query(f"SELECT * FROM {table} ORDER BY 1, 2")


def test_dump_and_load_round_trip_every_row(source: Cli, target: Cli, tmp_path: Path) -> None:
    assert source("seed").exit_code == 0
    asyncio.run(_use_the_api(source.database_url))
    for table in EXAMPLE_TABLES:
        assert contents(source, table), f"{table} has no rows to round-trip"
    fixture = tmp_path / "all.json"

    dumped = source("dumpdata", "-o", str(fixture))
    loaded = target("loaddata", str(fixture))

    assert dumped.exit_code == 0, dumped.output
    assert dumped.output == ""  # no progress bar when not on a terminal
    objects = json.loads(fixture.read_text())  # a plain JSON array, Django's shape
    assert {"model": "shop.category", "pk": 1, "fields": {"name": "Books"}} in objects
    assert loaded.exit_code == 0, loaded.output
    assert loaded.stdout == f"Installed {len(objects)} object(s) from 1 fixture(s)\n"
    for table in EXAMPLE_TABLES:
        assert contents(target, table) == contents(source, table), table
    assert target("dumpdata").stdout == fixture.read_text()
    # Ids continue after the loaded ones (PostgreSQL's sequences were moved).
    target.query("INSERT INTO shop_category (name) VALUES ('Tools')")
    assert target.query("SELECT max(id) FROM shop_category") == [(5,)]


def test_loading_twice_updates_rows_in_place(source: Cli, tmp_path: Path) -> None:
    source("seed")
    fixture = tmp_path / "shop.json"
    source("dumpdata", "shop", "-o", str(fixture))
    source.query("UPDATE shop_category SET name = 'Renamed' WHERE id = 1")

    result = source("loaddata", str(fixture))

    assert result.exit_code == 0, result.output
    assert source.query("SELECT name FROM shop_category WHERE id = 1") == [("Books",)]
    assert source.query("SELECT count(*) FROM shop_category") == [(4,)]


def test_choosing_apps_and_models(source: Cli) -> None:
    source("seed")

    def models(*args: str) -> set[str]:
        result = source("dumpdata", *args)
        assert result.exit_code == 0, result.output
        return {obj["model"] for obj in json.loads(result.stdout)}

    shop = {"shop.category", "shop.tag", "shop.product", "shop.shop_product_tags"}
    assert models("shop") == shop
    assert models("shop.Category", "auth.user") == {"shop.category", "auth.user"}
    assert models("shop", "-e", "shop.product") == shop - {"shop.product"}
    assert models("-e", "auth", "-e", "admin") == shop
    empty = source("dumpdata", "auth.auth_user_groups")  # a link table: named by its table
    assert (empty.exit_code, empty.stdout) == (0, "[\n]\n")
    unknown_app = source("dumpdata", "nope")
    unknown_model = source("dumpdata", "shop.nope")
    assert unknown_app.exit_code == unknown_model.exit_code == 1
    assert unknown_app.stderr == (
        "Error: no installed app with label 'nope' (installed: auth, admin, shop)\n"
    )
    assert unknown_model.stderr == (
        "Error: app 'shop' has no model 'nope' "
        "(it has: category, tag, product, order, shop_product_tags)\n"
    )


def test_stdin_and_gzip(source: Cli, target: Cli, tmp_path: Path) -> None:
    source("seed")
    compressed = tmp_path / "shop.json.gz"
    plain = source("dumpdata", "auth.user", "shop").stdout  # products need their owner

    source("dumpdata", "auth.user", "shop", "-o", str(compressed))
    from_stdin = target("loaddata", "-", input=plain)
    from_gzip = target("loaddata", str(compressed))

    assert gzip.decompress(compressed.read_bytes()).decode() == plain
    assert from_stdin.exit_code == 0, from_stdin.output
    # A user, 4 categories, 3 tags, 8 products and their 7 tags.
    assert from_gzip.stdout == "Installed 23 object(s) from 1 fixture(s)\n"


def _fixture(tmp_path: Path, objects: list[dict[str, Any]], name: str = "bad.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(objects, indent=2))  # hand-written style: indented
    return str(path)


GOOD = [
    {"model": "shop.category", "pk": 1, "fields": {"name": "Books"}},
    {"model": "shop.category", "pk": 2, "fields": {"name": "Garden"}},
    {
        "model": "auth.user",
        "pk": 7,
        "fields": {"username": "ann", "email": "", "hashed_password": "", "is_active": True},
    },
]
PRODUCT = {
    "name": "Lamp",
    "price": "9.99",
    "owner_id": 7,
    "created_at": "2025-01-01T00:00:00+00:00",
    "updated_at": "2025-01-01T00:00:00+00:00",
}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            {"model": "shop.product", "pk": 9, "fields": {**PRODUCT, "price": "-1.00"}},
            "bad.json, object 4 (shop.product, pk 9): database error: ",
        ),
        (
            {"model": "shop.product", "pk": 9, "fields": {**PRODUCT, "owner_id": 99}},
            "bad.json, object 4 (shop.product, pk 9): database error: ",
        ),
        (
            {"model": "shop.category", "pk": 3, "fields": {"name": "Books"}},
            "bad.json, object 4 (shop.category, pk 3): database error: ",
        ),
        (
            {"model": "shop.product", "pk": 9, "fields": {**PRODUCT, "price": "cheap"}},
            "bad.json, object 4 (shop.product, pk 9): field 'price': 'cheap' is not a valid "
            "Numeric\n",
        ),
        (
            {"model": "shop.product", "pk": 9, "fields": {**PRODUCT, "colour": "red"}},
            "bad.json, object 4 (shop.product, pk 9): unknown field(s) colour (columns: ",
        ),
        (
            {"model": "shop.widget", "pk": 1, "fields": {}},
            "bad.json, object 4 (shop.widget, pk 1): unknown model 'shop.widget' "
            "(is its app installed?)\n",
        ),
    ],
    ids=["check", "foreign-key", "unique", "value", "field", "model"],
)
def test_a_bad_object_rolls_back_the_whole_load(
    target: Cli, tmp_path: Path, bad: dict[str, Any], message: str
) -> None:
    users = target.query("SELECT count(*) FROM auth_user")
    fixture = _fixture(tmp_path, [*GOOD, bad, {"model": "shop.category", "fields": {"name": "X"}}])

    result = target("loaddata", fixture)

    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {fixture.rsplit('/', 1)[0]}/{message}")
    assert "Traceback" not in result.output
    assert target.query("SELECT count(*) FROM shop_category") == [(0,)]
    assert target.query("SELECT count(*) FROM auth_user") == users


def test_a_bad_row_is_found_inside_a_large_batch(target: Cli, tmp_path: Path) -> None:
    categories = [
        {"model": "shop.category", "pk": i, "fields": {"name": f"c{i}"}} for i in range(1, 1500)
    ]
    categories[1234]["fields"]["name"] = "c7"  # a duplicate: refused by the unique constraint
    fixture = _fixture(tmp_path, categories)

    result = target("loaddata", fixture)

    assert result.exit_code == 1
    assert "object 1235 (shop.category, pk 1235): database error: " in result.stderr
    assert target.query("SELECT count(*) FROM shop_category") == [(0,)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"model": "shop.category"}', "a fixture is a JSON array of objects (line 1)"),
        ('[\n{"model": "shop.category", "pk": 1,\n "fields": {"name": }}\n]', "invalid JSON"),
        ('[{"model": "shop.category", "pk": 1, "fields": {"name": "A"}}', "ends before its"),
        ("[\n[1, 2]\n]", "expected an object (line 2)"),
    ],
)
def test_a_malformed_fixture_is_named(target: Cli, tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(text)

    result = target("loaddata", str(path))

    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {path}: ")
    assert message in result.stderr
    assert target.query("SELECT count(*) FROM shop_category") == [(0,)]


def test_a_missing_fixture_is_one_line(target: Cli) -> None:
    result = target("loaddata", "no-such-file.json")

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: cannot read fixture no-such-file.json: No such file or directory\n"
    )


def _gadget_tables() -> list[Any]:
    return [table for table in Model.metadata.sorted_tables if table.name == "test_gadget"]


async def _create_gadgets(url: str, rows: list[dict[str, Any]]) -> None:
    engine = engine_for(url, poolclass=NullPool)
    async with engine.begin() as conn:
        await conn.run_sync(Model.metadata.create_all, tables=_gadget_tables())
        for row in rows:
            await conn.execute(insert(Gadget), row)
    await engine.dispose()


async def _gadgets(url: str) -> list[Any]:
    engine = engine_for(url, poolclass=NullPool)
    async with engine.connect() as conn:
        rows = list(await conn.execute(select(Gadget.__table__).order_by(Gadget.id)))
    await engine.dispose()
    return rows


def test_every_column_type_round_trips(source: Cli, target: Cli, tmp_path: Path) -> None:
    """The test models' `Gadget` has a column of each kind: enums, UUIDs, times, JSON..."""
    rows = [
        {
            "name": "full",
            "notes": "line\nbreak",
            "count": 3,
            "small": -2,
            "big": 2**40,
            "weight": Decimal("1.250"),
            "ratio": 0.1,
            "active": False,
            "colour": Colour.GREEN,
            "released": date(2024, 2, 29),
            "alarm": time(7, 30, 15),
            "seen_at": datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
            "token": uuid.UUID("12345678-1234-5678-1234-567812345678"),
            "extra": {"tags": ["a", "b"], "n": 1, "nested": {"ok": True}},
        },
        {"name": "empty"},
    ]
    asyncio.run(_create_gadgets(source.database_url, rows))
    asyncio.run(_create_gadgets(target.database_url, []))
    apps = [*EXAMPLE_APPS, "tests"]  # the test models, installed as an app
    fixture = tmp_path / "gadgets.json"

    dumped = Cli(source.database_url, installed_apps=apps)(
        "dumpdata", "tests.gadget", "-o", str(fixture)
    )
    loaded = Cli(target.database_url, installed_apps=apps)("loaddata", str(fixture))

    assert dumped.exit_code == 0, dumped.output
    assert loaded.exit_code == 0, loaded.output
    first = json.loads(fixture.read_text())[0]["fields"]
    assert first["colour"] == "GREEN"
    assert first["weight"] == "1.250"
    assert first["token"] == "12345678-1234-5678-1234-567812345678"
    assert asyncio.run(_gadgets(target.database_url)) == asyncio.run(_gadgets(source.database_url))


def _fill_categories(cli: Cli, first: int, last: int) -> None:
    if cli.database_url.startswith("sqlite"):
        cli.query(
            f"WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n WHERE i < "
            f"{last}) INSERT INTO shop_category (name) SELECT 'category ' || i FROM n"
        )
    else:
        cli.query(
            "INSERT INTO shop_category (name) "
            f"SELECT 'category ' || i FROM generate_series({first}, {last}) AS i"
        )


def _peak(cli: Cli, *args: str) -> int:
    tracemalloc.start()
    try:
        result = cli(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        assert result.exit_code == 0, result.output


def test_memory_stays_flat(source: Cli, target: Cli, tmp_path: Path) -> None:
    """Ten times the rows, about the same peak: rows are streamed, never all held."""
    small, large = tmp_path / "small.json", tmp_path / "large.json"
    _fill_categories(source, 1, 1_500)
    source("dumpdata", "shop", "-o", str(small))  # warm caches (compiled SQL, imports)
    dump_small = _peak(source, "dumpdata", "shop", "-o", str(small))
    _fill_categories(source, 1_501, 15_000)
    dump_large = _peak(source, "dumpdata", "shop", "-o", str(large))
    load_small = _peak(target, "loaddata", str(small))
    load_large = _peak(target, "loaddata", str(large))

    assert len(json.loads(large.read_text())) == 15_000
    held_per_row = 200  # bytes: far below what keeping a row (dict, strings) costs
    assert dump_large - dump_small < 13_500 * held_per_row, (dump_small, dump_large)
    assert load_large - load_small < 13_500 * held_per_row, (load_small, load_large)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress(10, "Loading") as bar:
        bar.update(10)
    with progress(10, "Dumping", quiet=True) as bar:  # the data goes to this terminal
        bar.update(10)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # piped
    with progress(10, "Piped") as bar:
        bar.update(10)

    assert "Loading" in terminal.getvalue()
    assert "10/10" in terminal.getvalue()
    assert "Dumping" not in terminal.getvalue()
    assert sys.stderr.getvalue() == ""
