"""The executor interface: what the rest of crudkit runs its statements through.

    async with db.reader() as reader:
        row = await reader.first(stmt, {"crudkit_pk": 3})
        total = await reader.scalar(count_stmt)

    async with db.writer() as writer:        # one transaction: COMMIT on exit
        row = await writer.first(insert_stmt, values)
        await hook(writer.connection)        # the same transaction

A `Reader` runs the statements of one request on one pooled connection, a
`Writer` those of one transaction. Two implementations stand behind them: the
plain one hands every statement to `AsyncConnection.execute`
(`crudkit._sqla.plain`); the driver one runs what it can straight on asyncpg
(`crudkit._sqla.driver`). Both answer the same rows, raise the same errors and
fire the same engine events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import Executable


class Reader:
    """Runs the statements of one request on one pooled connection."""

    in_transaction: ClassVar[bool] = False
    """Whether the statements run inside a transaction the caller commits."""

    connection: AsyncConnection
    """The SQLAlchemy connection, for anything beyond running statements."""

    async def rows(
        self, stmt: Executable, params: Mapping[str, Any] | None = None
    ) -> list[Row[Any]]:
        """The rows of `stmt` (none for a statement without RETURNING)."""
        raise NotImplementedError

    async def first(
        self, stmt: Executable, params: Mapping[str, Any] | None = None
    ) -> Row[Any] | None:
        rows = await self.rows(stmt, params)
        return rows[0] if rows else None

    async def scalar(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> Any:
        rows = await self.rows(stmt, params)
        return rows[0][0] if rows else None


class Writer(Reader):
    """Runs the statements of one write transaction (`Database.writer()` commits it)."""

    in_transaction = True
