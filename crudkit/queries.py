"""SQL for one resource, built with SQLAlchemy Core and read as rows, not ORM objects.

Generated endpoints are hot paths: a `SELECT` read into a `Row`, an
`INSERT ... RETURNING` and an `UPDATE ... RETURNING` cost one round trip each and
skip the unit of work. Rows keep attribute access (`row.owner_id`), so permission
objects treat them like model instances.
"""

from __future__ import annotations

import hashlib
from collections import namedtuple
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    types,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.expression import Executable

from crudkit.db import Database, Reader, Writer
from crudkit.fields import to_base64

if TYPE_CHECKING:
    from crudkit.resources import Resource

_PK = "crudkit_pk"
"""Name of the bind parameter holding the primary key in prebuilt statements."""

# Types whose values do not compare reliably with `=` (json has no equality operator
# in PostgreSQL; a float4 column differs from the float8 parameter read back from it).
# They are left out of compare-and-swap checks.
_UNCOMPARABLE = (types.JSON, types.LargeBinary, types.ARRAY, types.Float)


def row_etag(row: Row[Any] | Sequence[Any]) -> str:
    """A strong validator of the row's full content (a `Row` of `ResourceQueries.select()`,
    or the same values in the same order, read from a model instance by the admin)."""
    digest = hashlib.blake2b(repr(tuple(row)).encode(), digest_size=12).hexdigest()
    return f'"{digest}"'


def etag_matches(header: str, etag: str) -> bool:
    """Whether an `If-Match` / `If-None-Match` header lists `etag` (or is `*`)."""
    candidates = [part.strip() for part in header.split(",")]
    return "*" in candidates or any(c.removeprefix("W/") == etag for c in candidates)


class Explain(Executable, ClauseElement):
    """`EXPLAIN (FORMAT JSON) <select>`, with the select's parameters bound as usual."""

    inherit_cache = False

    def __init__(self, stmt: Select[Any]) -> None:
        self.stmt = stmt


@compiles(Explain, "postgresql")
def _compile_explain(element: Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + str(compiler.process(element.stmt, **kw))


class ResourceQueries:
    """The statements of one resource; every lookup takes the caller's scope condition."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.table = resource.table
        self.pk = resource.pk
        infos = list(resource.columns.values())
        # Every column (for ETags and permission checks), labelled by attribute name.
        self.all_columns = [info.column.label(info.key) for info in infos]
        self.all_keys = [info.key for info in infos]
        self.readable_keys = [info.key for info in resource.readable_columns()]
        self._comparable = [
            info for info in infos if not isinstance(info.column.type, _UNCOMPARABLE)
        ]
        # Built once, executed with parameters: requests skip statement construction.
        by_pk = self.pk == bindparam(_PK)
        self._select_all = select(*self.all_columns)
        self._get = self._select_all.where(by_pk)
        # Reads served to clients also select the SQL computed fields, after the columns
        # (writes, ETags and permission checks see the columns only).
        computed = list(resource.sql_computed.values())
        self._row_keys = self.all_keys + [info.key for info in computed]
        self._read_all = (
            select(*self.all_columns, *(info.column.label(info.key) for info in computed))
            if computed
            else self._select_all
        )
        self._read_get = self._read_all.where(by_pk) if computed else self._get
        self._column_count = len(self.all_keys)
        self._padded = namedtuple("_Row", self._row_keys, rename=True)  # type: ignore[misc]
        self._insert = insert(self.table).returning(*self.all_columns)
        # Rows come back in the order of the parameters sent (SQLAlchemy's "insertmanyvalues").
        self._insert_many = insert(self.table).returning(
            *self.all_columns, sort_by_parameter_order=True
        )
        self._update = update(self.table).where(by_pk).returning(*self.all_columns)
        self._count = select(func.count()).select_from(self.table)
        # Without write-only fields a row's values are the item's, in the same order.
        shown = self.readable_keys + [info.key for info in computed]
        self._readable: list[tuple[str, int]] | None = (
            None if shown == self._row_keys else [(key, self._row_keys.index(key)) for key in shown]
        )
        self._binary_keys = [info.key for info in resource.readable_columns() if info.is_binary]
        self._methods = [(key, field.function) for key, field in resource.python_computed.items()]
        self._public_columns: Callable[[Row[Any]], dict[str, Any]] = (
            self._public_base64 if self._binary_keys else self._public
        )
        self.public: Callable[[Row[Any]], dict[str, Any]] = (
            self._public_computed if self._methods else self._public_columns
        )
        """The readable fields of a row of `select()` / `read()`, ready for JSON (binary
        content as base64 text, Python computed fields added; chosen once, so a model
        without binary columns or computed fields pays nothing per row)."""
        self.etag: Callable[[Row[Any]], str] = row_etag if not computed else self._column_etag
        """`row_etag` of a row of `select()` / `read()`: of its columns only, as the write
        pipeline and the admin compute it (a computed value is not the row's content)."""
        self.read: Callable[
            [Reader | AsyncConnection, Any, ColumnElement[bool] | None],
            Awaitable[Row[Any] | None],
        ] = self._read_computed if computed else self.get
        """`get`, with the SQL computed fields: the row a client is served."""

    def select(self, condition: ColumnElement[bool] | None = None) -> Select[Any]:
        """The rows served to clients (the SQL computed fields included), under `condition`."""
        return self._read_all if condition is None else self._read_all.where(condition)

    def _public(self, row: Row[Any]) -> dict[str, Any]:
        if self._readable is None:
            return dict(zip(self._row_keys, row, strict=True))
        return {key: row[index] for key, index in self._readable}

    def _public_computed(self, row: Row[Any]) -> dict[str, Any]:
        item = self._public_columns(row)
        for key, function in self._methods:
            item[key] = function(row)
        return item

    def _column_etag(self, row: Row[Any]) -> str:
        return row_etag(tuple(row)[: self._column_count])

    async def _read_computed(
        self, source: Reader | AsyncConnection, pk: Any, condition: ColumnElement[bool] | None
    ) -> Row[Any] | None:
        stmt = self._read_get if condition is None else self._read_get.where(condition)
        if isinstance(source, Reader):
            return await source.first(stmt, {_PK: pk})
        row: Row[Any] | None = (await source.execute(stmt, {_PK: pk})).first()
        return row

    async def written(self, db: Database, row: Row[Any]) -> dict[str, Any]:
        """The item of a row just written (`insert`/`update` return the columns only):
        with SQL computed fields, read once more to get them, after the commit."""
        if self._read_get is self._get:
            return self.public(row)
        async with db.reader() as reader:
            fresh = await self._read_computed(reader, row._mapping[self.resource.pk_info.key], None)
        return self.public(fresh if fresh is not None else self._without_computed(row))

    async def written_many(self, db: Database, rows: Sequence[Row[Any]]) -> list[dict[str, Any]]:
        """`written` for many rows: their SQL computed fields read with one query."""
        if self._read_get is self._get or not rows:
            return [self.public(row) for row in rows]
        key = self.resource.pk_info.key
        async with db.reader() as reader:
            found = await reader.rows(self._read_all.where(self.pk.in_(keys_of(rows, key))))
        fresh = {row._mapping[key]: row for row in found}
        return [
            self.public(fresh.get(row._mapping[key]) or self._without_computed(row)) for row in rows
        ]

    def _without_computed(self, row: Row[Any]) -> Row[Any]:
        """A row deleted since it was written: its SQL computed fields unknown (null)."""
        nulls = (None for _ in range(len(self._row_keys) - len(row)))
        return self._padded(*row, *nulls)  # type: ignore[return-value]  # reads like a Row

    def _public_base64(self, row: Row[Any]) -> dict[str, Any]:
        item = self._public(row)
        for key in self._binary_keys:
            value = item[key]
            if value is not None:
                item[key] = to_base64(value)
        return item

    async def get(
        self, source: Reader | AsyncConnection, pk: Any, condition: ColumnElement[bool] | None
    ) -> Row[Any] | None:
        stmt = self._get if condition is None else self._get.where(condition)
        if isinstance(source, Reader):
            return await source.first(stmt, {_PK: pk})
        row: Row[Any] | None = (await source.execute(stmt, {_PK: pk})).first()
        return row

    async def count(self, reader: Reader, stmt: Select[Any], mode: str) -> int | None:
        if mode == "none":
            return None
        if mode == "estimate" and reader.connection.dialect.name == "postgresql":
            estimate = await self._estimate(reader, stmt)
            if estimate is not None:
                return estimate
        # The rows of `stmt` are those of one table under its WHERE clause: counting them
        # needs no subquery (cheaper to build, and its cache key cheaper to compute).
        where = stmt.whereclause
        counted = self._count if where is None else self._count.where(where)
        return int(await reader.scalar(counted))

    async def _estimate(self, reader: Reader, stmt: Select[Any]) -> int | None:
        plan = await reader.scalar(Explain(stmt.order_by(None)))
        try:
            return int(plan[0]["Plan"]["Plan Rows"])
        except (KeyError, IndexError, TypeError, ValueError):
            return None

    async def insert(self, writer: Writer, values: Mapping[str, Any]) -> Row[Any]:
        (row,) = await writer.rows(self._insert, self._by_column(values))
        return row

    async def insert_many(
        self, writer: Writer, rows: Sequence[Mapping[str, Any]]
    ) -> list[Row[Any]]:
        """Insert `rows`, returning them in the same order: each run of rows naming the
        same columns in one statement (its rows sent in pages by SQLAlchemy)."""
        if len(rows) == 1:
            return [await self.insert(writer, rows[0])]
        params = [self._by_column(values) for values in rows]
        written: list[Row[Any]] = []
        start = 0
        while start < len(params):  # each run of rows naming the same columns
            names = params[start].keys()
            end = start + 1
            while end < len(params) and params[end].keys() == names:
                end += 1
            result = await writer.connection.execute(self._insert_many, params[start:end])
            written += result.all()
            start = end
        return written

    async def update(
        self,
        writer: Writer,
        current: Row[Any],
        values: Mapping[str, Any],
        *,
        if_unchanged: bool = False,
    ) -> Row[Any] | None:
        """Write `values` to the row; with `if_unchanged`, only if it still holds `current`.

        `None` means the row is gone, or changed meanwhile.
        """
        params = {**self._by_column(values), _PK: current._mapping[self.resource.pk_info.key]}
        stmt = self._update
        if if_unchanged:
            stmt = stmt.where(self._unchanged(current))
        return await writer.first(stmt, params)

    async def delete(
        self, writer: Writer, current: Row[Any], *, if_unchanged: bool = False
    ) -> bool:
        stmt = delete(self.table).where(self._identity(current, if_unchanged))
        return bool(await writer.rows(stmt.returning(self.pk)))

    def _identity(self, current: Row[Any], if_unchanged: bool) -> ColumnElement[bool]:
        pk_matches: ColumnElement[bool] = self.pk == current._mapping[self.resource.pk_info.key]
        if not if_unchanged:
            return pk_matches
        return and_(pk_matches, self._unchanged(current))

    def _unchanged(self, current: Row[Any]) -> ColumnElement[bool]:
        # Compare-and-swap on the values read: a concurrent writer makes this match nothing.
        mapping = current._mapping
        return and_(
            *(
                info.column.is_(None)
                if mapping[info.key] is None
                else info.column == mapping[info.key]
                for info in self._comparable
            ),
        )

    async def missing_reference(
        self, conn: AsyncConnection, values: Mapping[str, Any]
    ) -> str | None:
        """The first field of `values` whose foreign key points at no row (SQLite does not say)."""
        for key, value in values.items():
            info = self.resource.columns.get(key)
            if info is None or value is None:
                continue
            for foreign_key in info.column.foreign_keys:
                target = foreign_key.column
                found = await conn.execute(select(target).where(target == value).limit(1))
                if found.first() is None:
                    return key
        return None

    def _by_column(self, values: Mapping[str, Any]) -> dict[str, Any]:
        columns = self.resource.columns
        return {columns[key].column.name: value for key, value in values.items()}


def keys_of(rows: Sequence[Row[Any]], key: str) -> list[Any]:
    return list(dict.fromkeys(row._mapping[key] for row in rows if row._mapping[key] is not None))
