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

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import CheckConstraint, Table
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

    def __init__(
        self,
        detail: Any = None,
        *,
        fields: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail, headers=headers)
        self.fields = tuple(fields)
        """The columns whose values clash, when the database names them."""


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


MAX_ERRORS = 50
"""Items of a 422 body at most; the ones left out are counted in a last item."""
MAX_ERRORS_SIZE = 12 * 1024
"""Bytes of JSON the items of a 422 body take at most, so the body stays under 16 KiB."""
_MAX_MSG = 4096
_MAX_LOC_PART = 100
_MAX_LOC_DEPTH = 8


def _clip(text: str, limit: int) -> str:
    text = text if len(text) <= limit else text[:limit] + "\u2026"
    # A lone surrogate (from a JSON key, say) could not be encoded as UTF-8 at all.
    return text.encode("utf-8", "replace").decode()


def _error_item(error: Mapping[str, Any], max_msg: int = _MAX_MSG) -> dict[str, Any]:
    loc = list(error.get("loc", ()))[:_MAX_LOC_DEPTH]
    return {
        "loc": [_clip(part, _MAX_LOC_PART) if isinstance(part, str) else part for part in loc],
        "msg": _clip(str(error.get("msg", "")), max_msg),
        "type": _clip(str(error.get("type", "value_error")), _MAX_LOC_PART),
    }


def _size(item: Mapping[str, Any]) -> int:
    return len(json.dumps(item, ensure_ascii=False).encode())


def limit_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The items of a 422 body in FastAPI's shape, bounded whatever the request sent.

    A request with thousands of bad values, or a huge name or value echoed in a
    location or message, gets its first problems in full and the rest counted in one
    last item (`type` `too_many_errors`).
    """
    kept: list[dict[str, Any]] = []
    size = 0
    omitted = 0
    omitted_loc: list[Any] = []
    for error in errors:
        if omitted:
            omitted += 1
            continue
        item = _error_item(error)
        cost = _size(item)
        if not kept and cost > MAX_ERRORS_SIZE:  # escaped control characters, say
            item = _error_item(error, max_msg=512)
            cost = _size(item)
        if len(kept) == MAX_ERRORS or size + cost > MAX_ERRORS_SIZE:
            omitted, omitted_loc = 1, item["loc"][:1]
            continue
        kept.append(item)
        size += cost
    if omitted:
        kept.append(
            {
                "loc": omitted_loc,
                "msg": f"{omitted} more error{'s' if omitted > 1 else ''} not shown",
                "type": "too_many_errors",
            }
        )
    return kept


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


_DATA_ERRORS = {
    "22001": "A value is too long for its column.",
    "22003": "A number is out of range for its column.",
    "22021": "A value holds a character the database cannot store (such as NUL).",
    "22P05": "A value holds a character the database cannot store (such as NUL).",
}
"""PostgreSQL's data exceptions (SQLSTATE class 22) worth their own message."""

_SQLITE_COLUMNS = re.compile(r"constraint failed: (?P<cols>[\w.,\s]+)", re.IGNORECASE)


def sqlstate(exc: DBAPIError) -> str | None:
    """The SQLSTATE code of a PostgreSQL error (asyncpg's or psycopg's), if any."""
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
    # SQLite names an index on an expression (`lower(username)`) instead of its columns.
    match = re.search(r"UNIQUE constraint failed: index '([^']+)'", message)
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


def _check_columns(table: Table | None, name: str | None) -> list[str]:
    """The columns a CHECK constraint's SQL text mentions (`price >= 0`: `price`)."""
    if table is None:
        return []
    for constraint in table.constraints:
        if constraint.name == name and isinstance(constraint, CheckConstraint):
            sql = str(constraint.sqltext)
            return [c.name for c in table.columns if re.search(rf"\b{re.escape(c.name)}\b", sql)]
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
    state = sqlstate(exc) or ""
    columns = _constraint_columns(table, _constraint_name(exc))
    if isinstance(exc, IntegrityError):
        if state == "23505" or "unique constraint" in lowered:
            columns = columns or _sqlite_columns(message)
            field = ", ".join(columns) or "a field"
            return Conflict(f"A row with this {field} already exists.", fields=columns)
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
            columns = columns or _check_columns(table, name)
            loc = ["body", columns[0]] if len(columns) == 1 else ["body"]
            return Invalid.single(loc, f"Value violates {name}.", "check")
        return Invalid.single(["body"], "The data violates a database constraint.", "integrity")
    if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
        return ServiceUnavailable()
    if state.startswith("22"):  # data exception: numeric overflow, bad datetime, ...
        message = _DATA_ERRORS.get(state, "A value is out of range for its column.")
        return Invalid.single(["body"], message, "data")
    raise exc
