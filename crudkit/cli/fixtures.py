"""`dumpdata` and `loaddata`: the database as JSON fixtures, and back.

    python manage.py dumpdata > all.json              # every installed app
    python manage.py dumpdata shop auth.user -o some.json.gz
    python manage.py loaddata all.json

The format is Django's (`crudkit.cli.serialization`). Both commands stream, so
memory stays flat however many rows there are: `dumpdata` reads with a
server-side cursor and writes each row as it comes; `loaddata` parses a fixture
object by object. `dumpdata` reads one consistent snapshot (a REPEATABLE READ
transaction on PostgreSQL, one read transaction on SQLite) and writes the
tables parents first, so its output loads in file order.

`loaddata` loads all the fixtures given in one transaction. An object whose
primary key exists updates that row, as Django's does, so a dump loads into a
freshly migrated database (whose permissions `migrate` has created). Rows go in
by batches inside a savepoint; when a batch fails it is replayed row by row to
name the culprit, and the error rolls everything back and says which object it
was: its fixture, position, model and pk. On PostgreSQL the loaded tables'
sequences are then moved past the largest id, so new rows do not collide.

Loaded rows are not sent to the apps' write hooks (`Apps.notify_write`): as
with Django's loaddata, a fixture is raw data rather than someone's change, and
a history row per loaded object would double the cost of a large load.
"""

from __future__ import annotations

import asyncio
import codecs
import gzip
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TextIO

import click
from sqlalchemy import Insert, Integer, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection

from crudkit.cli.progress import progress
from crudkit.cli.project import CommandError, Project, describe_error, pass_project
from crudkit.cli.serialization import (
    CHUNK_SIZE,
    FixtureError,
    FixtureTable,
    FixtureWriter,
    fixture_tables,
    read_objects,
)

BATCH_SIZE = 1000
"""Rows fetched per round trip when dumping, and inserted per statement when loading."""
Batch = list[tuple[str, dict[str, Any]]]
"""Rows waiting to be inserted, each with how an error would name it."""


@click.command()
@click.argument("labels", nargs=-1, metavar="[APP[.MODEL]]...")
@click.option(
    "-e", "--exclude", multiple=True, metavar="APP[.MODEL]", help="Leave out an app or model."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to FILE instead of stdout (FILE.gz: compressed).",
)
@pass_project
def dumpdata(
    project: Project, labels: tuple[str, ...], exclude: tuple[str, ...], output: Path | None
) -> None:
    """Write the rows of every installed app (or of the APPs and models named) as JSON."""
    tables = _tables(project)
    chosen = _select(project, tables, labels) if labels else tables
    left_out = {table.name for table in _select(project, tables, exclude)}
    chosen = [table for table in chosen if table.name not in left_out]
    with _output(output, sys.stdout) as stream:
        # No bar (nor the row counts it needs) when piped, or when it would garble the data.
        quiet = not sys.stderr.isatty() or (output is None and sys.stdout.isatty())
        asyncio.run(_dump(project, chosen, FixtureWriter(stream), quiet=quiet))


@click.command()
@click.argument("fixtures", nargs=-1, required=True, metavar="FIXTURE...")
@pass_project
def loaddata(project: Project, fixtures: tuple[str, ...]) -> None:
    """Load JSON fixtures (as dumpdata writes them; `-` reads stdin), all in one transaction.

    FILE.gz is read compressed. A bad object rolls the whole load back and is named.
    """
    tables = {table.name: table for table in _tables(project)}
    count = asyncio.run(_load(project, tables, fixtures))
    click.echo(f"Installed {count} object(s) from {len(fixtures)} fixture(s)")


def _tables(project: Project) -> list[FixtureTable]:
    return fixture_tables(project.apps, project.migrations.owners)


def _select(
    project: Project, tables: list[FixtureTable], labels: Sequence[str]
) -> list[FixtureTable]:
    """The tables `labels` name (`shop`, `shop.Product`), in dependency order."""
    names: set[str] = set()
    for spec in labels:
        label, _, model = spec.partition(".")
        label = project.get_app_label(label)
        own = [table for table in tables if table.app_label == label]
        if not model:
            names.update(table.name for table in own)
            continue
        name = f"{label}.{model.lower()}"
        if not any(table.name == name for table in own):
            known = ", ".join(table.name.split(".", 1)[1] for table in own) or "none"
            raise CommandError(f"app {label!r} has no model {model!r} (it has: {known})")
        names.add(name)
    return [table for table in tables if table.name in names]


@contextmanager
def _output(path: Path | None, stdout: TextIO) -> Iterator[TextIO]:
    if path is None:
        yield stdout
        return
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as compressed:
            yield compressed
    else:
        with path.open("w", encoding="utf-8") as plain:
            yield plain


async def _dump(
    project: Project, tables: list[FixtureTable], writer: FixtureWriter, *, quiet: bool
) -> None:
    async with project.database() as db, db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # One snapshot for every table, so the dump's foreign keys agree.
            await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            total = None if quiet else await _count(conn, tables)
            with progress(total, "Dumping", quiet=quiet) as bar:
                for table in tables:
                    query = select(table.table).order_by(*table.table.primary_key.columns)
                    result = await conn.stream(query.execution_options(yield_per=BATCH_SIZE))
                    async for rows in result.partitions(BATCH_SIZE):
                        for row in rows:
                            writer.write(table.encode(row))
                        bar.update(len(rows))
    writer.close()


async def _count(conn: AsyncConnection, tables: list[FixtureTable]) -> int:
    total = 0
    for table in tables:
        total += await conn.scalar(select(func.count()).select_from(table.table)) or 0
    return total


async def _load(project: Project, tables: dict[str, FixtureTable], paths: Sequence[str]) -> int:
    async with project.database() as db, db.engine.connect() as conn:
        loader = _Loader(conn)
        async with conn.begin():
            for path in paths:
                size = None if path == "-" else _size(path)
                with progress(size, f"Loading {path}") as bar, _chunks(path, bar.update) as chunks:
                    for index, obj in enumerate(_objects(path, chunks), start=1):
                        table, values, where = _decode(tables, obj, f"{path}, object {index}")
                        await loader.add(table, values, where)
                    await loader.flush()
            await loader.reset_sequences()
        return loader.count


def _objects(path: str, chunks: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The fixture's objects; a reading error names the fixture."""
    try:
        yield from read_objects(chunks)
    except FixtureError as exc:
        raise FixtureError(f"{path}: {exc}") from None


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError as exc:
        raise CommandError(f"cannot read fixture {path}: {exc.strerror}") from None


def _decode(
    tables: dict[str, FixtureTable], obj: dict[str, Any], position: str
) -> tuple[FixtureTable, dict[str, Any], str]:
    """The table and column values of one fixture object, and how errors name it."""
    name = obj.get("model")
    where = f"{position} ({name}" + (f", pk {obj['pk']!r})" if "pk" in obj else ")")
    if not isinstance(name, str):
        raise FixtureError(f'{position}: no "model" (expected e.g. "shop.product")')
    table = tables.get(name.lower())
    if table is None:
        raise FixtureError(f"{where}: unknown model {name!r} (is its app installed?)")
    try:
        return table, table.decode(obj), where
    except ValueError as exc:
        raise FixtureError(f"{where}: {exc}") from None


@contextmanager
def _chunks(path: str, on_read: Callable[[int], None]) -> Iterator[Iterator[str]]:
    """The text of a fixture in chunks (gzip-compressed when it ends in .gz); `on_read(bytes)`."""
    try:
        raw: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise CommandError(f"cannot read fixture {path}: {exc.strerror}") from None
    try:
        stream: IO[bytes] | gzip.GzipFile = raw
        if path.endswith(".gz"):
            stream = gzip.GzipFile(fileobj=raw)
        yield _decode_chunks(stream, raw, on_read)
    finally:
        if path != "-":
            raw.close()


def _decode_chunks(
    stream: IO[bytes] | gzip.GzipFile, raw: IO[bytes], on_read: Callable[[int], None]
) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()  # a BOM is tolerated
    position = 0
    while True:
        try:
            data = stream.read(CHUNK_SIZE)
        except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
            raise FixtureError(f"cannot read the fixture: {exc}") from None
        now = raw.tell() if raw.seekable() else position + len(data)
        on_read(now - position)
        position = now
        try:
            yield decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise FixtureError(f"the fixture is not UTF-8 text ({exc.reason})") from None
        if not data:
            return


class _Loader:
    """Inserts (or updates) fixture rows in batches, naming the row that fails."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.count = 0
        self.loaded: dict[str, FixtureTable] = {}
        self.pending: Batch = []
        self.key: tuple[str, tuple[str, ...]] | None = None
        self.table: FixtureTable | None = None

    async def add(self, table: FixtureTable, values: dict[str, Any], where: str) -> None:
        key = (table.name, tuple(values))
        if key != self.key or len(self.pending) >= BATCH_SIZE:
            await self.flush()
            self.key, self.table = key, table
        self.pending.append((where, values))

    async def flush(self) -> None:
        if not self.pending or self.table is None:
            return
        batch, self.pending = self.pending, []
        statement = self._statement(self.table, list(batch[0][1]))
        try:
            async with self.conn.begin_nested():
                await self.conn.execute(statement, [values for _, values in batch])
        except StatementError:
            await self._find_culprit(statement, batch)
        self.count += len(batch)
        self.loaded[self.table.name] = self.table

    async def _find_culprit(self, statement: Insert, batch: Batch) -> None:
        """Replay a failed batch row by row; raise naming the first row that fails."""
        for where, values in batch:
            try:
                async with self.conn.begin_nested():
                    await self.conn.execute(statement, [values])
            except DBAPIError as exc:  # refused by the database
                raise FixtureError(f"{where}: {describe_error(exc, hint=False)}") from exc
            except StatementError as exc:  # refused by the column's type before sending
                reason = f"{type(exc.orig).__name__}: {exc.orig}"
                raise FixtureError(f"{where}: cannot store the values ({reason})") from exc

    def _statement(self, table: FixtureTable, keys: list[str]) -> Insert:
        """INSERT, updating the row instead when its primary key exists (Django's loaddata)."""
        dialect = postgresql if self.conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(table.table)
        pk = list(table.table.primary_key.columns)
        upsert: Insert = statement
        if not pk or not {column.key for column in pk} <= set(keys):
            return upsert
        others = [table.table.c[key] for key in keys if key not in {c.key for c in pk}]
        if others:
            excluded = {column: statement.excluded[column.key] for column in others}
            upsert = statement.on_conflict_do_update(index_elements=pk, set_=excluded)
        else:
            upsert = statement.on_conflict_do_nothing(index_elements=pk)
        return upsert

    async def reset_sequences(self) -> None:
        """Move PostgreSQL's sequences past the ids just loaded (SQLite needs nothing)."""
        if self.conn.dialect.name != "postgresql":
            return
        preparer = self.conn.dialect.identifier_preparer
        for table in self.loaded.values():
            if table.pk is None or not isinstance(table.pk.type, Integer):
                continue
            name = preparer.format_table(table.table)
            column = preparer.quote(table.pk.name)
            await self.conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence(:table, :column), "
                    f"coalesce(max({column}), 0) + 1, false) FROM {name}"
                ),
                {"table": name, "column": table.pk.name},
            )
