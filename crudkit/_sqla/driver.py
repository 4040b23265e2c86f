"""The driver executor: a request's statements straight on asyncpg.

SQLAlchemy's asyncio adapter costs most of a cheap request's CPU: per statement a
greenlet switch, the compiled-cache lookup, the DBAPI cursor emulation and the
result machinery. A `DriverReader` compiles each statement shape once
(`crudkit._sqla.compiled`), runs its SQL on the driver connection and builds the
same `Row`s SQLAlchemy would.

Nothing is skipped that a user can see. When the engine has listeners, or the
statement has a Python-side column default that takes the execution context, the
statement runs through a real execution context and fires the engine's events
(`crudkit._sqla.context`). With neither it runs without one, which is where the
speed comes from: a check of a few flags per statement is all that costs, and
defaults that take no context (`default=utcnow`) are filled in as SQLAlchemy would.
Statements SQLAlchemy must finish itself (no cache key, execution options) run
through it, in autocommit for a read.

The connection is checked out of the engine's pool, so pool size, timeouts, idle
pings and disconnect handling stay those of the engine. A driver error goes
through SQLAlchemy's own error handling: it is raised as the same `DBAPIError`,
and a lost connection invalidates the pool just as on the plain path. A
connection found dead by a request's first read is replaced and the read run
again, once.

A `DriverWriter` runs its statements inside the transaction SQLAlchemy owns: it
opens it on the connection's adapter (so statements other code runs on
`Writer.connection`, such as write hooks, join it) and SQLAlchemy commits or
rolls it back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from sqlalchemy import Row
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import Executable
from sqlalchemy.util import greenlet_spawn

from crudkit._sqla.compiled import Bound, Compiled, StatementCache
from crudkit._sqla.context import (
    driver_error,
    listened,
    needs_sqlalchemy,
    raise_as_sqlalchemy,
    run_in_context,
)
from crudkit._sqla.executor import Writer
from crudkit._sqla.plain import PlainReader


class DriverReader(PlainReader):
    """Runs the read statements of one request on one pooled connection."""

    def __init__(self, conn: AsyncConnection, statements: StatementCache) -> None:
        super().__init__(conn)
        self._statements = statements
        self._driver: Any = None
        self._adapter: Any = None
        self._used = False
        """A statement ran (or failed) on this connection: no more silent retries."""

    async def rows(
        self, stmt: Executable, params: Mapping[str, Any] | None = None
    ) -> list[Row[Any]]:
        shape = self._statements.lookup(stmt, params)
        if shape is None:
            self._used = True
            return await super().rows(stmt, params)
        compiled, bound = shape
        conn = self.connection.sync_connection
        assert conn is not None  # started by `Database.reader()`/`writer()`
        in_context = compiled.needs_context or listened(conn)
        if in_context and needs_sqlalchemy(conn):
            self._used = True
            return await super().rows(stmt, params)
        try:
            records = await self._run(conn, compiled, bound, stmt, params, in_context)
        except DBAPIError as error:
            # A pooled connection that broke while it sat in the pool (the database
            # restarted, say) fails its first statement. Nothing was read on it yet, and
            # a read changes nothing: read again on a new connection, once, instead of
            # answering 503 while the database is up. The failure invalidated the pool.
            if self._used or not error.connection_invalidated:
                raise
            self._driver = None
            records = await self._run(conn, compiled, bound, stmt, params, in_context)
        finally:
            self._used = True
        return compiled.rows(records)

    async def _run(
        self,
        conn: Connection,
        compiled: Compiled,
        bound: Bound,
        stmt: Executable,
        params: Mapping[str, Any] | None,
        in_context: bool,
    ) -> list[Any]:
        driver = self._driver or await self._driver_connection()
        if in_context:
            fetch = partial(self._fetch, driver, compiled)
            return await greenlet_spawn(run_in_context, conn, compiled, stmt, params, bound, fetch)
        try:
            sql, arguments = compiled.arguments(params, bound)
        except Exception as error:
            parameters = [params] if params is not None else []
            await greenlet_spawn(raise_as_sqlalchemy, conn, error, compiled.sql, parameters)
            raise  # pragma: no cover - always raises
        try:
            return await self._fetch(driver, compiled, sql, arguments)
        except Exception as error:
            await greenlet_spawn(raise_as_sqlalchemy, conn, error, sql, tuple(arguments))
            raise  # pragma: no cover - always raises

    async def _fetch(
        self, driver: Any, compiled: Compiled, sql: str, arguments: Sequence[Any]
    ) -> list[Any]:
        """The records of one statement on the driver; its errors as the adapter's."""
        try:
            if compiled.processors is None:
                prepared = await driver.prepare(sql)
                compiled.describe([attribute.type.oid for attribute in prepared.get_attributes()])
                records: list[Any] = await prepared.fetch(*arguments)
                return records
            records = await driver.fetch(sql, *arguments)
        except Exception as error:
            driver_error(self._adapter, error)
        return records

    async def _driver_connection(self) -> Any:
        conn = self.connection.sync_connection
        if conn is not None and not conn.invalidated:
            # Checked out and valid: reading the pooled connection does no I/O.
            pooled = conn.connection
        else:
            pooled = await self.connection.get_raw_connection()
        self._adapter = pooled.dbapi_connection
        self._driver = pooled.driver_connection
        return self._driver


class DriverWriter(DriverReader, Writer):
    """Runs the statements of one write transaction on one pooled connection.

    The transaction is SQLAlchemy's (`Database.writer()` begins it and commits or
    rolls it back); the first statement sent to the driver opens it on the adapter.
    """

    def __init__(self, conn: AsyncConnection, statements: StatementCache) -> None:
        super().__init__(conn, statements)
        self._used = True  # a write is never silently run again

    async def _driver_connection(self) -> Any:
        driver = await super()._driver_connection()
        if not driver.is_in_transaction():
            # The adapter's own BEGIN: SQLAlchemy then ends the transaction, and what
            # runs through `self.connection` (write hooks) joins it.
            try:
                await self._adapter._start_transaction()
            except Exception as error:
                conn = self.connection.sync_connection
                await greenlet_spawn(raise_as_sqlalchemy, conn, error, "BEGIN", ())
        return driver
