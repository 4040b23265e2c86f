"""Recording the history: the write hook that turns every `WriteEvent` into a `LogEntry` row.

    apps.on_writes(record)         # from AdminConfig.ready()

The hook runs inside the write's own transaction (the API's, the admin's, a
command's), so an entry is committed with its change or not at all: a refused
or failed write leaves none. Values are stored as JSON (decimals, dates, times,
UUIDs and enums as strings). Secrets never are: `WriteEvent.changes()` drops
write-only fields, and `recorded_changes` drops any field named like a
password or a secret as well.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from types import SimpleNamespace
from typing import Any
from uuid import UUID

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from crudkit.contrib.admin.models import LogEntry, utcnow
from crudkit.contrib.auth.models import User
from crudkit.db import execute, table_of
from crudkit.events import WriteEvent
from crudkit.permissions import Action
from crudkit.resources import Resource

SECRET_NAME = re.compile(r"password|passwd|passphrase|secret", re.IGNORECASE)
"""Fields never recorded, whatever their resource declares."""

REPR_LENGTH = 200

log_entries = table_of(LogEntry)
_INSERT_ENTRY = insert(log_entries)
"""Built once; each write passes its values as parameters (no statement building)."""


def jsonable(value: Any) -> Any:
    """`value` as JSON can hold it: numbers and text as they are, the rest as strings."""
    if isinstance(value, Enum):  # before str and int: StrEnum and IntEnum are both
        inner = value.value
        return inner if isinstance(inner, str) else value.name
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | UUID | timedelta):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"  # binary content is not copied into the history
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    return str(value)


def recorded_changes(event: WriteEvent) -> dict[str, list[Any]]:
    """`{"field": [old, new]}` for the fields that changed, secrets left out."""
    return {
        key: [jsonable(old), jsonable(new)]
        for key, (old, new) in event.changes().items()
        if not SECRET_NAME.search(key)
    }


def object_repr(resource: Resource, values: Mapping[str, Any], object_id: Any) -> str:
    """What the row is called: its model's `__str__`, as the admin shows it.

    The hook sees column values, not a model instance, so `__str__` is called on
    an object holding them (as permission objects are handed rows). A `__str__`
    that needs more than the columns falls back to `Product #12`.
    """
    method: Any = resource.model.__str__
    text = ""
    if method is not object.__str__:
        try:
            text = str(method(SimpleNamespace(**values)))
        except Exception:  # a project's __str__ may use anything (a relationship, say)
            text = ""
    if not text:
        text = f"{resource.name[:1].upper()}{resource.name[1:]} #{object_id}"
    return text[:REPR_LENGTH]


def _actor_id(event: WriteEvent) -> Any:
    user = event.user
    if user is None or not user.is_authenticated:
        return None
    if (
        event.action is Action.DELETE
        and event.resource.model is User
        and event.object_id == user.id
    ):
        return None  # the user deleted their own account: only `username` can name them
    return user.id


async def record(conn: AsyncConnection, events: Sequence[WriteEvent]) -> None:
    """Write the `LogEntry` of each of `events`, in the transaction of their write: one
    INSERT for all of them (a bulk request's batch)."""
    entries = [_entry(event) for event in events if event.resource.model is not LogEntry]
    if len(entries) == 1:
        await execute(conn, _INSERT_ENTRY, entries[0])
    elif entries:
        await conn.execute(_INSERT_ENTRY, entries)  # executemany: one round trip


def _entry(event: WriteEvent) -> dict[str, Any]:
    resource = event.resource
    values = event.after if event.after is not None else event.before or {}
    user = event.user
    return {
        "action_time": utcnow(),
        "user_id": _actor_id(event),
        "username": user.username if user is not None and user.is_authenticated else "",
        "channel": event.channel,
        "request_id": event.request_id,
        "app_label": resource.app_label,
        "model": resource.model_name,
        "object_id": str(event.object_id)[:255],
        "action": event.action.value,
        "object_repr": object_repr(resource, values, event.object_id),
        "changes": recorded_changes(event),
    }
