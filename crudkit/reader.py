"""`Reader` and `Writer`: a request's statements, on PostgreSQL straight through asyncpg.

    async with db.reader() as reader:
        row = await reader.first(stmt, {"crudkit_pk": 3})
        total = await reader.scalar(count_stmt)

    async with db.writer() as writer:        # one transaction: COMMIT on exit
        row = await writer.first(insert_stmt, values)

SQLAlchemy's asyncio adapter costs most of a cheap request's CPU: per statement a
greenlet switch, the compiled-cache lookup, the DBAPI cursor emulation and the
result machinery. On the asyncpg dialect a `Reader` compiles each statement shape
once (`Compiled`), runs the SQL text on the driver connection and builds the same
`Row`s with the result processors SQLAlchemy would apply to each column: a
response does not depend on the path its rows took.

The connection is still checked out of the engine's pool, so pool size, timeouts,
idle pings and disconnect handling stay those of the engine. A driver error goes
through SQLAlchemy's own error handling: it is raised as the same `DBAPIError`,
and a lost connection invalidates the pool just as on the slow path. A connection
found dead by a request's first read is replaced and the read run again, once. Statements
that SQLAlchemy must finish at execution time (an expanding `IN`, a statement
without a cache key), and every other dialect (SQLite), run on the
`AsyncConnection` in autocommit, as before.

A `Writer` runs its statements the same way inside the transaction SQLAlchemy
owns: it opens it on the connection's adapter (so statements other code runs on
`Writer.connection`, such as write hooks, join the same transaction) and SQLAlchemy
commits or rolls it back. Column defaults computed in Python (`default=`,
`onupdate=`) are filled in as SQLAlchemy's execution context would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Dialect, Row
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn


class Compiled:
    """One statement shape compiled for asyncpg: SQL text, parameter order, processors."""

    def __init__(self, compiled: SQLCompiler) -> None:
        self.compiled = compiled
        self.sql = compiled.string
        self.names = list(compiled.positiontup or ())
        self.bind_processors: Mapping[str, Any] = compiled._bind_processors
        # An expanding IN, or a value rendered into the SQL, changes the text per execution.
        self.expands = bool(compiled.literal_execute_params or compiled.post_compile_params)
        # Python-side defaults of an INSERT/UPDATE: (parameter name, default), computed
        # per execution (`_prefetched` checked that SQLAlchemy need not fire them).
        self.defaults = _prefetched(compiled)
        columns = compiled._result_columns
        self.types = [column.type for column in columns]
        self.metadata = SimpleResultMetaData([column.keyname for column in columns])
        self.processors: list[Any] | None = None
        """Per column, known once the driver has described the result's types."""

    def statement(self, params: Mapping[str, Any] | None, extracted: Any) -> tuple[str, list[Any]]:
        """The SQL and positional arguments of one execution (the values bound in the
        statement itself come from its cache key, as SQLAlchemy does)."""
        if self.defaults:
            params = _with_defaults(params or {}, self.defaults)
        values: Mapping[str, Any] = self.compiled.construct_params(
            params, extracted_parameters=extracted, escape_names=False
        )
        sql, processors = self.sql, self.bind_processors
        names: Sequence[str] = self.names
        if self.expands:
            expanded = self.compiled._process_parameters_for_postcompile(dict(values))
            sql, values = expanded.statement, expanded.parameters
            names = expanded.positiontup or ()
            processors = {**processors, **expanded.processors}
        arguments = []
        for name in names:
            process = processors.get(name)
            arguments.append(values[name] if process is None else process(values[name]))
        return sql, arguments

    def describe(self, dialect: Dialect, type_oids: list[int]) -> None:
        """Pick each column's result processor, as SQLAlchemy does, by the driver's type."""
        if len(type_oids) != len(self.types):
            raise ValueError("the result does not have the compiled columns")
        processors = [
            type_._cached_result_processor(dialect, oid)
            for type_, oid in zip(self.types, type_oids, strict=True)
        ]
        self.processors = processors if any(processors) else []


def _prefetched(compiled: SQLCompiler) -> list[tuple[str, Any]]:
    """(parameter name, default) of the columns whose default is computed before an
    INSERT/UPDATE runs rather than in its SQL."""
    prefetch = [(column, column.default) for column in compiled.insert_prefetch]
    prefetch += [(column, column.onupdate) for column in compiled.update_prefetch]
    if not prefetch:
        return []
    name_of = compiled._within_exec_param_key_getter
    return [(name_of(column), default) for column, default in prefetch]


def _with_defaults(params: Mapping[str, Any], defaults: list[tuple[str, Any]]) -> dict[str, Any]:
    """`params` with the Python-side column defaults the statement needs, as SQLAlchemy's
    execution context computes them (a callable default may read the other values)."""
    filled = dict(params)
    context = _DefaultContext(filled)
    for name, default in defaults:
        filled[name] = default.arg(context) if default.is_callable else default.arg
    return filled


class _DefaultContext:
    """What a context-sensitive default is handed: the statement's parameters."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.current_parameters = params

    def get_current_parameters(self, isolate_multiinsert_groups: bool = True) -> dict[str, Any]:
        return self.current_parameters


class StatementCache:
    """Compiled statement shapes of one engine, keyed like SQLAlchemy's compiled cache."""

    def __init__(self, dialect: Dialect, size: int = 500) -> None:
        self.dialect = dialect
        self.size = size
        self._compiled: dict[Any, Compiled | None] = {}
        self.listeners: list[Callable[[str], object]] = []
        """Called with the SQL of each statement run on the driver (`count_queries`)."""

    def get(
        self, stmt: Executable, cache_key: Any, params: Mapping[str, Any] | None = None
    ) -> Compiled | None:
        """The compiled shape of `stmt`; None when it must run through SQLAlchemy.

        An INSERT or UPDATE compiles differently for each set of values given (the
        columns it sets), as in SQLAlchemy's own cache.
        """
        keys = tuple(sorted(params)) if params and stmt.is_dml else ()
        try:
            return self._compiled[cache_key.key, keys]
        except KeyError:
            pass
        compiled = self._compile(stmt, cache_key, keys)
        if len(self._compiled) >= self.size:
            self._compiled.clear()  # shapes come from a bounded set of options
        self._compiled[cache_key.key, keys] = compiled
        return compiled

    def _compile(self, stmt: Executable, cache_key: Any, keys: tuple[str, ...]) -> Compiled | None:
        compile_for: Any = stmt._compiler  # type: ignore[attr-defined]
        compiled = compile_for(self.dialect, cache_key=cache_key, column_keys=list(keys))
        if not isinstance(compiled, SQLCompiler) or not compiled.positional:
            return None
        if any(not (d.is_scalar or d.is_callable) for _, d in _prefetched(compiled)):
            return None  # a sequence or SQL expression SQLAlchemy fires itself
        return Compiled(compiled)


class Reader:
    """Runs the read statements of one request on one pooled connection."""

    in_transaction = False

    def __init__(self, conn: AsyncConnection, cache: StatementCache | None) -> None:
        self.connection = conn
        """The SQLAlchemy connection, for anything beyond plain reads."""
        self._cache = cache
        self._driver: Any = None
        self._autocommit = cache is None
        self._used = False
        """A statement ran (or failed) on this connection: no more silent retries."""

    async def rows(
        self, stmt: Executable, params: Mapping[str, Any] | None = None
    ) -> list[Row[Any]]:
        compiled, cache_key = self._direct(stmt, params)
        if compiled is None:
            return await self._through_sqlalchemy(stmt, params)
        sql, arguments = compiled.statement(params, cache_key.bindparams)
        for listener in self._cache.listeners:  # type: ignore[union-attr]
            listener(sql)
        try:
            records = await self._fetch(compiled, sql, arguments)
        except DBAPIError as error:
            # A pooled connection that broke while it sat in the pool (the database
            # restarted, say) fails its first statement. Nothing was read on it yet, and
            # a read changes nothing: read again on a new connection, once, instead of
            # answering 503 while the database is up. The failure invalidated the pool.
            if self._used or not error.connection_invalidated:
                raise
            self._driver = None
            records = await self._fetch(compiled, sql, arguments)
        finally:
            self._used = True
        metadata, processors = compiled.metadata, compiled.processors or None
        key_to_index = metadata._key_to_index
        return [Row(metadata, processors, key_to_index, record) for record in records]

    async def _fetch(self, compiled: Compiled, sql: str, arguments: list[Any]) -> list[Any]:
        """The records of one statement on the driver; its errors as SQLAlchemy's."""
        if self._driver is None:
            self._driver = await self._driver_connection()
        try:
            if compiled.processors is None:
                prepared = await self._driver.prepare(sql)
                compiled.describe(
                    self.connection.dialect,
                    [attribute.type.oid for attribute in prepared.get_attributes()],
                )
                records: list[Any] = await prepared.fetch(*arguments)
            else:
                records = await self._driver.fetch(sql, *arguments)
        except Exception as error:
            await greenlet_spawn(self._raise, error, sql, arguments)
            raise  # pragma: no cover - `_raise` always raises
        return records

    @property
    def autocommit(self) -> bool:
        """Whether this reader switched (or found) its connection in autocommit."""
        return self._autocommit

    async def first(
        self, stmt: Executable, params: Mapping[str, Any] | None = None
    ) -> Row[Any] | None:
        rows = await self.rows(stmt, params)
        return rows[0] if rows else None

    async def scalar(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> Any:
        rows = await self.rows(stmt, params)
        return rows[0][0] if rows else None

    async def _driver_connection(self) -> Any:
        sync_connection = self.connection.sync_connection
        if sync_connection is not None and not sync_connection.invalidated:
            # Checked out and valid: reading the pooled connection does no I/O.
            return sync_connection.connection.driver_connection
        return (await self.connection.get_raw_connection()).driver_connection

    def _direct(
        self, stmt: Executable, params: Mapping[str, Any] | None
    ) -> tuple[Compiled | None, Any]:
        if self._cache is None:
            return None, None
        cache_key = stmt._generate_cache_key()  # type: ignore[attr-defined]
        if cache_key is None or (len(cache_key) > 2 and cache_key[2]):
            return None, None
        return self._cache.get(stmt, cache_key, params), cache_key

    async def _through_sqlalchemy(
        self, stmt: Executable, params: Mapping[str, Any] | None
    ) -> list[Row[Any]]:
        self._used = True
        if not self._autocommit and not self.in_transaction:
            await self.connection.execution_options(isolation_level="AUTOCOMMIT")
            self._autocommit = True
        result = await self.connection.execute(stmt, params)
        return list(result.all()) if result.returns_rows else []

    def _raise(self, error: Exception, sql: str, arguments: list[Any]) -> None:
        """Raise `error` as SQLAlchemy would have (inside a greenlet, as it may invalidate
        the connection): the driver's error as the DBAPI error, then as `DBAPIError`."""
        sync_connection = self.connection.sync_connection
        assert sync_connection is not None
        dbapi_connection: Any = sync_connection.connection.dbapi_connection
        try:
            dbapi_connection._handle_exception(error)
        except Exception as translated:
            sync_connection._handle_dbapi_exception(translated, sql, tuple(arguments), None, None)


class Writer(Reader):
    """Runs the statements of one write transaction on one pooled connection.

    The transaction is SQLAlchemy's (`Database.writer()` begins it and commits or
    rolls it back); the first statement sent to the driver opens it on the adapter.
    """

    in_transaction = True
    """Statements SQLAlchemy runs stay in the transaction (no switch to autocommit)."""

    def __init__(self, conn: AsyncConnection, cache: StatementCache | None) -> None:
        super().__init__(conn, cache)
        self._used = True  # a write is never silently run again

    async def _driver_connection(self) -> Any:
        driver = await super()._driver_connection()
        if not driver.is_in_transaction():
            # The adapter's own BEGIN: SQLAlchemy then ends the transaction, and what
            # runs through `self.connection` (write hooks) joins it.
            sync_connection = self.connection.sync_connection
            assert sync_connection is not None
            adapter: Any = sync_connection.connection.dbapi_connection
            try:
                await adapter._start_transaction()
            except Exception as error:
                await greenlet_spawn(self._raise, error, "BEGIN", [])
        return driver

    @contextmanager
    def current(self) -> Iterator[Writer]:
        """Make this the writer `execute()` finds for its connection."""
        token = _current_writer.set(self)
        try:
            yield self
        finally:
            _current_writer.reset(token)


_current_writer: ContextVar[Writer | None] = ContextVar("crudkit_writer", default=None)


async def execute(
    conn: AsyncConnection, stmt: Executable, params: Mapping[str, Any] | None = None
) -> list[Row[Any]]:
    """Run `stmt` on `conn` and return its rows (none for a statement without RETURNING).

    For code handed a connection inside a write (write hooks): when `conn` is the
    current `Writer`'s, the statement runs on the driver like the write itself.
    """
    writer = _current_writer.get()
    if writer is not None and writer.connection is conn:
        return await writer.rows(stmt, params)
    result = await conn.execute(stmt, params)
    return list(result.all()) if result.returns_rows else []
