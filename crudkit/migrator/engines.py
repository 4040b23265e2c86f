"""Engines for commands: transactions that are real on SQLite too.

Python's sqlite3 driver (under aiosqlite) opens a transaction only before
INSERT, UPDATE and DELETE: DDL runs outside any transaction and SAVEPOINTs do
not nest, so a migration that fails halfway would leave half its tables, and a
fixture could not be loaded all-or-nothing. Commands therefore use SQLAlchemy's
documented recipe for the pysqlite family: the driver's own transaction
handling is turned off and SQLAlchemy emits `BEGIN` itself. On PostgreSQL the
engine is the project's, unchanged::

    engine = command_engine(settings)
    async with engine.connect() as conn:
        await set_sqlite_foreign_keys(conn, on=False)   # outside any transaction
        async with conn.begin():
            ...                                         # DDL rolls back on SQLite too
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crudkit.conf import Settings
from crudkit.db import make_engine


def command_engine(settings: Settings) -> AsyncEngine:
    """The project's engine, with real transactions on SQLite (see the module docstring)."""
    engine = make_engine(settings)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _no_driver_transactions)
        event.listen(engine.sync_engine, "begin", _emit_begin)
    return engine


def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _emit_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


async def set_sqlite_foreign_keys(conn: AsyncConnection, *, on: bool) -> None:
    """Turn SQLite's foreign key enforcement on or off for this connection.

    The pragma is ignored inside a transaction, so it goes to the driver
    directly rather than through SQLAlchemy, which would begin one first.
    """
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    await driver.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
