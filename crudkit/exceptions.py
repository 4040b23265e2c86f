"""One error tree for crudkit.

    CrudkitError
    ├── ImproperlyConfigured      a mistake in settings, models or resources, raised at start
    └── HTTPError                 answered to the client with `status_code` and `detail`
        ├── NotAuthenticated      401, with `WWW-Authenticate: Bearer`
        ├── PermissionDenied      403
        ├── NotFound              404 (also for rows the caller may not see)
        ├── Conflict              409 (unique constraint)
        ├── PreconditionFailed    412 (stale `If-Match`)
        ├── PayloadTooLarge       413
        ├── Invalid               422, in FastAPI's validation-error shape
        │   └── ValidationError   422 from `Resource.validate` or `@validates`, by field
        ├── Throttled             429, with `Retry-After`
        └── ServiceUnavailable    503 (database unreachable)

Database errors become HTTP errors in one place, `translate_db_error`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError


class CrudkitError(Exception):
    """Base of every error crudkit raises on purpose."""


class ImproperlyConfigured(CrudkitError):
    """Settings, a model or a resource declaration cannot work; raised at start."""


class HTTPError(CrudkitError):
    """An error answered to the client as `{"detail": ...}` with `status_code`."""

    status_code: int = 500
    default_detail: Any = "Internal server error."

    def __init__(self, detail: Any = None, *, headers: Mapping[str, str] | None = None) -> None:
        self.detail = self.default_detail if detail is None else detail
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(self.detail)


class NotAuthenticated(HTTPError):
    status_code = 401
    default_detail = "Not authenticated."

    def __init__(self, detail: Any = None, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer", **(headers or {})})


class PermissionDenied(HTTPError):
    status_code = 403
    default_detail = "You do not have permission to perform this action."


class NotFound(HTTPError):
    status_code = 404
    default_detail = "Not found."


class Conflict(HTTPError):
    status_code = 409
    default_detail = "Conflict with an existing row."


class PreconditionFailed(HTTPError):
    status_code = 412
    default_detail = "The row has changed since it was read (If-Match does not match)."


class PayloadTooLarge(HTTPError):
    status_code = 413
    default_detail = "Request body too large."


class Invalid(HTTPError):
    """422 in FastAPI's shape: `{"detail": [{"loc": [...], "msg": ..., "type": ...}]}`."""

    status_code = 422

    def __init__(self, errors: Sequence[Mapping[str, Any]]) -> None:
        super().__init__([dict(error) for error in errors])

    @classmethod
    def single(cls, loc: Sequence[str | int], msg: str, type: str = "value_error") -> Invalid:
        return cls([{"loc": list(loc), "msg": msg, "type": type}])


class ValidationError(Invalid):
    """A write's values are refused, field by field: `ValidationError({"name": "Too long."})`.

    Raised by `Resource.validate` (or made from a model's `@validates` `ValueError`);
    the API answers 422 with each message at `["body", field]`, the admin shows it
    on the field. A message without a field goes under the key `None`.
    """

    def __init__(self, errors: Mapping[str | None, str | Sequence[str]] | str) -> None:
        if isinstance(errors, str):
            errors = {None: errors}
        self.messages: dict[str | None, list[str]] = {
            field: [message] if isinstance(message, str) else list(message)
            for field, message in errors.items()
        }
        super().__init__(
            [
                {
                    "loc": ["body"] if field is None else ["body", field],
                    "msg": message,
                    "type": "value_error",
                }
                for field, messages in self.messages.items()
                for message in messages
            ]
        )


class Throttled(HTTPError):
    status_code = 429
    default_detail = "Too many failed attempts; try again later."

    def __init__(self, retry_after: int, detail: Any = None) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = retry_after


class ServiceUnavailable(HTTPError):
    status_code = 503
    default_detail = "The database is unavailable; try again shortly."


_SQLITE_COLUMNS = re.compile(r"constraint failed: (?P<cols>[\w.,\s]+)", re.IGNORECASE)


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    for candidate in (orig, getattr(orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def _constraint_name(exc: DBAPIError) -> str | None:
    orig = exc.orig
    for candidate in (orig, getattr(orig, "__cause__", None)):
        name = getattr(candidate, "constraint_name", None)
        if isinstance(name, str):
            return name
    message = str(orig)
    match = re.search(r'constraint "([^"]+)"', message)
    if match:
        return match.group(1)
    match = re.search(r"CHECK constraint failed: (\w+)", message)
    return match.group(1) if match else None


def _constraint_columns(table: Table | None, name: str | None) -> list[str]:
    if table is None or name is None:
        return []
    for constraint in table.constraints:
        if constraint.name == name:
            return [column.name for column in getattr(constraint, "columns", [])]
    for index in table.indexes:
        if index.name == name:
            return [column.name for column in index.columns]
    return []


def _sqlite_columns(message: str) -> list[str]:
    match = _SQLITE_COLUMNS.search(message)
    if not match:
        return []
    return [part.strip().rsplit(".", 1)[-1] for part in match.group("cols").split(",")]


def translate_db_error(exc: DBAPIError, table: Table | None = None) -> HTTPError:
    """Map a database error raised by a write on `table` to the HTTP error it means.

    Unique violations are 409; foreign-key, not-null and check violations 422;
    a lost connection 503. Anything else is re-raised by the caller.
    """
    message = str(exc.orig)
    lowered = message.lower()
    state = _sqlstate(exc) or ""
    columns = _constraint_columns(table, _constraint_name(exc))
    if isinstance(exc, IntegrityError):
        if state == "23505" or "unique constraint" in lowered:
            columns = columns or _sqlite_columns(message)
            field = ", ".join(columns) or "a field"
            return Conflict(f"A row with this {field} already exists.")
        if state == "23503" or "foreign key" in lowered:
            if columns:
                field = columns[0]
                return Invalid.single(
                    ["body", field], f"{field} refers to a row that does not exist.", "foreign_key"
                )
            return Invalid.single(
                ["body"], "A foreign key refers to a row that does not exist.", "foreign_key"
            )
        if state == "23502" or "not null" in lowered:
            columns = columns or _sqlite_columns(message)
            column = getattr(getattr(exc.orig, "__cause__", None), "column_name", None)
            field = column or (columns[0] if columns else "a field")
            return Invalid.single(["body", field], "Field may not be null.", "missing")
        if state == "23514" or "check constraint" in lowered:
            name = _constraint_name(exc) or "a check constraint"
            loc = ["body", columns[0]] if len(columns) == 1 else ["body"]
            return Invalid.single(loc, f"Value violates {name}.", "check")
        return Invalid.single(["body"], "The data violates a database constraint.", "integrity")
    if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
        return ServiceUnavailable()
    if state.startswith("22"):  # data exception: numeric overflow, bad datetime, ...
        return Invalid.single(["body"], "A value is out of range for its column.", "data")
    raise exc
