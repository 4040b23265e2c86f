"""The plain executor: every statement through SQLAlchemy's `AsyncConnection.execute`.

What runs on SQLite, on PostgreSQL with `db_direct_reads` off, and, on the
driver path, for every statement SQLAlchemy must finish itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import Executable

from crudkit._sqla.executor import Reader, Writer


class PlainReader(Reader):
    """Reads in autocommit: no BEGIN/ROLLBACK round trips around them."""

    def __init__(self, conn: AsyncConnection, *, autocommit: bool = False) -> None:
        self.connection = conn
        self.autocommit = autocommit
        """The connection is in autocommit (found so, or switched by a read here)."""

    async def rows(
        self, stmt: Executable, params: Mapping[str, Any] | None = None
    ) -> list[Row[Any]]:
        if not self.autocommit and not self.in_transaction:
            await self.connection.execution_options(isolation_level="AUTOCOMMIT")
            self.autocommit = True
        result = await self.connection.execute(stmt, params)
        return list(result.all()) if result.returns_rows else []


class PlainWriter(PlainReader, Writer):
    """Runs its statements inside the transaction begun on its connection."""
