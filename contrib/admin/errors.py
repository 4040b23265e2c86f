"""Failed saves become messages on the form, never a 500 page or a leaked SQL statement.

sqladmin shows `str(exception)` above the form when a save raises. Left alone
that would be the database driver's message, SQL and bound parameters
included (a new user's password hash among them). Views raise `FormError`
instead, with a sentence built from crudkit's own error translation, so the
admin says what the API would: "A row with this name already exists."
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError

from crudkit.exceptions import HTTPError, translate_db_error


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


def describe_db_error(exc: DBAPIError, table: Table) -> str:
    """What a failed write means, in the words the API would use."""
    try:
        error = translate_db_error(exc, table)
    except DBAPIError:
        return "The database refused the change."
    return describe_http_error(error)


def describe_validation_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    return "; ".join(f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in errors)
