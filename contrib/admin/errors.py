"""Failed saves become messages on the form, never a 500 page or a leaked SQL statement.

sqladmin shows `str(exception)` above the form when a save raises. Left alone
that would be the database driver's message, SQL and bound parameters
included (a new user's password hash among them). Views raise `FormError`
instead, with a sentence built from crudkit's own error translation, so the
admin says what the API would: "A row with this name already exists.", on
the `name` field when the database names the column, above the form too.

A database error crudkit cannot explain (one a hook's own SQL caused, say)
is logged in full and shown as `UNEXPLAINED`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError

from crudkit.exceptions import Conflict, HTTPError, Invalid, ValidationError, translate_db_error

UNEXPLAINED = "The database refused this change, so nothing was changed. The error has been logged."
"""The message for a database error crudkit has no words for."""


class FormError(Exception):
    """A save the admin refuses, with the message shown above the form."""


def _location(error: Mapping[str, Any]) -> str:
    parts = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
    return ".".join(parts)


def describe_http_error(exc: HTTPError) -> str:
    """One line per problem: `price: Input should be greater than or equal to 0`."""
    detail = exc.detail
    if isinstance(detail, list):
        lines = []
        for error in detail:
            where = _location(error)
            lines.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
        return "; ".join(lines)
    return str(detail)


def field_messages(exc: HTTPError) -> dict[str | None, list[str]]:
    """A refused write's messages by the field they are about (`None`: the whole form)."""
    if isinstance(exc, ValidationError):
        return exc.messages
    found: dict[str | None, list[str]] = {}
    if isinstance(exc, Invalid):
        for error in exc.detail:
            where = _location(error) or None
            found.setdefault(where, []).append(str(error.get("msg")))
    elif isinstance(exc, Conflict) and len(exc.fields) == 1:
        found[exc.fields[0]] = [str(exc.detail)]
    return found


def explain_db_error(exc: SQLAlchemyError | OverflowError, table: Table) -> HTTPError | None:
    """What a database error means, in the words the API would use; `None` when crudkit
    cannot tell (the caller shows `UNEXPLAINED`). An `OverflowError` is a number the
    driver could not send (aiosqlite raises its own, unwrapped)."""
    if isinstance(exc, DBAPIError):
        try:
            return translate_db_error(exc, table)
        except DBAPIError:
            return None
    if isinstance(exc, OverflowError):
        return Invalid.single(["body"], "A number is out of range for its column.", "data")
    if isinstance(exc, StatementError):  # a value the driver could not even send
        if isinstance(exc.orig, OverflowError):
            return Invalid.single(["body"], "A number is out of range for its column.", "data")
        if isinstance(exc.orig, TypeError | ValueError | ArithmeticError):
            return Invalid.single(["body"], "A value does not fit the type of its column.", "data")
    return None
