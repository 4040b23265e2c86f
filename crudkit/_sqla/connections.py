"""Which executor runs a request's statements, and the one connection a request shares.

    connections = Connections(engine, direct=True)
    async with connections.request_connection():      # one checkout for the block
        async with connections.reader() as reader:
            user = await reader.first(stmt, params)
        async with connections.writer() as writer:    # BEGIN ... COMMIT
            await writer.rows(insert_stmt, values)

`Database` delegates its `reader()`, `writer()` and `request_connection()` here.
The connection a request shares, and the writer `execute()` finds for a write
hook, are kept in context variables that nothing outside this module reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.expression import Executable

from crudkit._sqla.compiled import StatementCache
from crudkit._sqla.driver import DriverReader, DriverWriter
from crudkit._sqla.executor import Reader, Writer
from crudkit._sqla.plain import PlainReader, PlainWriter


class Connections:
    """The readers and writers of one engine."""

    def __init__(self, engine: AsyncEngine, *, direct: bool) -> None:
        self.engine = engine
        direct = direct and engine.dialect.driver == "asyncpg"
        self._statements = StatementCache(engine.dialect) if direct else None

    @property
    def direct(self) -> bool:
        """Whether statements run straight on the driver where they can."""
        return self._statements is not None

    def _reader(self, conn: AsyncConnection) -> PlainReader:
        if self._statements is None:
            return PlainReader(conn)
        return DriverReader(conn, self._statements)

    def _writer(self, conn: AsyncConnection) -> Writer:
        if self._statements is None:
            return PlainWriter(conn)
        return DriverWriter(conn, self._statements)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[Reader]:
        """The statements of a read-only request: no transaction round trips."""
        lease = self._lease()
        if lease is not None:
            conn = await lease.connection()
            # Inside a write of the request (a hook's read): the read joins its transaction.
            joined = conn.in_transaction()
            reader = self._reader(conn)
            try:
                yield reader
            finally:
                lease.autocommit = lease.autocommit or reader.autocommit
                if not joined and conn.in_transaction():  # SQLAlchemy's autobegin: no I/O
                    await conn.rollback()
            return
        async with self.engine.connect() as conn:
            reader = self._reader(conn)
            if self._statements is None:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                reader.autocommit = True
            yield reader

    @asynccontextmanager
    async def writer(self) -> AsyncIterator[Writer]:
        """The statements of one write, in one transaction: committed on exit, rolled
        back on error."""
        lease = self._lease()
        if lease is None:
            async with self.engine.connect() as conn, conn.begin():
                with _current(self._writer(conn)) as writer:
                    yield writer
            return
        conn = await lease.connection()
        if lease.autocommit:  # a read of this request needed it; a write must not have it
            await conn.execution_options(isolation_level=conn.default_isolation_level)
            lease.autocommit = False
        async with conn.begin():
            with _current(self._writer(conn)) as writer:
                yield writer

    @asynccontextmanager
    async def request_connection(self) -> AsyncIterator[None]:
        """Share one pooled connection among the `reader()`s and `writer()`s of the block.

        A request's statements (the caller's lookup, then its read or write) then
        cost one checkout from the pool instead of one each; the connection goes back
        when the block ends. Only on the driver path, whose reads leave no transaction
        open behind them.
        """
        if self._statements is None:
            yield
            return
        lease = _Lease(self.engine)
        token = _current_lease.set(lease)
        try:
            yield
        finally:
            _current_lease.reset(token)
            if lease.conn is not None:
                await lease.conn.close()

    def _lease(self) -> _Lease | None:
        lease = _current_lease.get()
        return lease if lease is not None and lease.engine is self.engine else None


class _Lease:
    """The connection `request_connection()` shares, checked out on first use."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.conn: AsyncConnection | None = None
        self.autocommit = False
        """A read switched the connection to autocommit."""

    async def connection(self) -> AsyncConnection:
        if self.conn is None:
            self.conn = await self.engine.connect().start()
        return self.conn


_current_lease: ContextVar[_Lease | None] = ContextVar("crudkit_connection", default=None)
_current_writer: ContextVar[Writer | None] = ContextVar("crudkit_writer", default=None)


@contextmanager
def _current(writer: Writer) -> Iterator[Writer]:
    """Make `writer` the one `execute()` finds for its connection."""
    token = _current_writer.set(writer)
    try:
        yield writer
    finally:
        _current_writer.reset(token)


async def execute(
    conn: AsyncConnection, stmt: Executable, params: Mapping[str, Any] | None = None
) -> list[Row[Any]]:
    """Run `stmt` on `conn` and return its rows (none for a statement without RETURNING).

    For code handed a connection inside a write (write hooks): when `conn` is the
    current writer's, the statement runs as the write's own statements do.
    """
    writer = _current_writer.get()
    if writer is not None and writer.connection is conn:
        return await writer.rows(stmt, params)
    result = await conn.execute(stmt, params)
    return list(result.all()) if result.returns_rows else []
