"""A statement on the driver, run the way SQLAlchemy's `Connection` runs it.

When something listens to the engine, or the statement has column defaults
computed in Python, the driver executor does what `Connection._execute_context`
does, with the driver call in place of the DBAPI cursor's:

1. a real execution context from the dialect (`_init_compiled`) on the checked-out
   connection: Python-side defaults are computed there, so a `default=` callable
   gets `context.connection`, `context.get_current_parameters()` and the rest;
2. `before_cursor_execute` with the sync `Connection`, a cursor, the statement and
   the positional parameters SQLAlchemy sends asyncpg, the context and
   `executemany=False`; a listener registered with `retval=True` may replace the
   statement and parameters, and what it returns is what runs;
3. the statement on the driver, then `after_cursor_execute`;
4. on failure, SQLAlchemy's own error handling (`handle_error`, invalidation of
   a lost connection, `DBAPIError`).

It runs in one greenlet, as SQLAlchemy's execution does, so a listener or a
default may itself run statements through `context.connection`. Listeners this
path does not stand in for (`before_execute`/`after_execute`, which may swap the
statement object; the dialect's `do_execute` hooks, which replace the execution;
`echo` logging) send the statement through SQLAlchemy instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NoReturn

from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import CacheStats
from sqlalchemy.sql.expression import Executable
from sqlalchemy.util import await_only

from crudkit._sqla.compiled import Bound, Compiled

Fetch = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]
"""Runs SQL with positional arguments on the driver and returns its records."""


def _flagged(conn: Connection) -> bool:
    """SQLAlchemy's own per-statement check: set once any listener was ever added."""
    return bool(
        conn._has_events or conn.engine._has_events or conn.dialect._has_events or conn._echo
    )


def listened(conn: Connection) -> bool:
    """Whether something must see `conn`'s statements run.

    Three flags are all a statement costs when nothing ever listened; the flags stay
    set after a listener is removed, so then the listeners themselves are looked at.
    """
    if not _flagged(conn):
        return False
    dispatch: Any = conn.dispatch
    return bool(
        dispatch.before_cursor_execute
        or dispatch.after_cursor_execute
        or conn.dialect.dispatch.handle_error
        or needs_sqlalchemy(conn)
    )


def needs_sqlalchemy(conn: Connection) -> bool:
    """Whether `conn` has listeners only SQLAlchemy's own execution can serve."""
    if not _flagged(conn):
        return False
    dispatch: Any = conn.dispatch
    dialect_dispatch: Any = conn.dialect.dispatch
    return bool(
        conn._echo
        or dispatch.before_execute
        or dispatch.after_execute
        or dialect_dispatch.do_execute
        or dialect_dispatch.do_execute_no_params
    )


def run_in_context(
    conn: Connection,
    compiled: Compiled,
    stmt: Executable,
    params: Mapping[str, Any] | None,
    bound: Bound,
    fetch: Fetch,
) -> list[Any]:
    """The records of `compiled` run through a real execution context (in a greenlet)."""
    dialect = conn.dialect
    parameters = [params] if params is not None else []
    try:
        context: Any = dialect.execution_ctx_cls._init_compiled(
            dialect,
            conn,
            conn.connection,
            conn._execution_options,
            compiled.compiled,
            parameters,
            stmt,
            bound,
            CacheStats.CACHE_HIT,
        )
    except Exception as error:
        raise_as_sqlalchemy(conn, error, compiled.sql, parameters)  # as `_execute_context`
    context.pre_exec()
    cursor = context.cursor
    statement: str = context.statement
    arguments: Sequence[Any] = context.parameters[0]
    events = conn._has_events or conn.engine._has_events
    try:
        if events:
            for listener in conn.dispatch.before_cursor_execute:
                statement, arguments = listener(conn, cursor, statement, arguments, context, False)
        records = await_only(fetch(statement, arguments))
        if events:
            conn.dispatch.after_cursor_execute(conn, cursor, statement, arguments, context, False)
    except Exception as error:
        raise_as_sqlalchemy(conn, error, statement, arguments, cursor, context)
    cursor.close()
    return records


def raise_as_sqlalchemy(
    conn: Connection,
    error: Exception,
    statement: str,
    parameters: Any,
    cursor: Any = None,
    context: Any = None,
) -> NoReturn:
    """Raise `error` through the connection's error handling, as SQLAlchemy does for a
    failed execution: `handle_error` listeners, invalidation of a lost connection,
    wrapping in `DBAPIError` (a driver error, translated by `driver_error`) or
    `StatementError` (any other error raised before a context existed).

    In a greenlet: invalidating a connection does I/O.
    """
    try:
        raise error  # SQLAlchemy's handling reads the exception being handled
    except Exception as raised:
        conn._handle_dbapi_exception(raised, statement, parameters, cursor, context)
    raise AssertionError("SQLAlchemy's error handling returned")  # pragma: no cover


def driver_error(adapter: Any, error: Exception) -> NoReturn:
    """Raise the driver's `error` as the adapter's DBAPI error, as its cursor would
    (any other error as it is)."""
    adapter._handle_exception(error)
    raise AssertionError("the adapter did not raise")  # pragma: no cover
