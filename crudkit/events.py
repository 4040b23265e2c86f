"""Write events: what an installed app hears when a row is created, changed or deleted.

Hooks run inside the write's own transaction, so what they record (the admin's
history, say) commits or rolls back with the row. Every channel reports: the API,
the admin and the command line::

    async def audit(conn: AsyncConnection, event: WriteEvent) -> None:
        ...

    class AuditConfig(crudkit.AppConfig):
        def ready(self) -> None:
            self.apps.on_write(audit)

A hook may use `conn` as any `AsyncConnection`; `crudkit.db.execute(conn, stmt,
params)` runs a statement the way the API's own write does (on PostgreSQL straight
on the driver, in the same transaction), which is cheaper for a hook on every write.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

if TYPE_CHECKING:
    from crudkit.authentication import UserLike
    from crudkit.permissions import Action
    from crudkit.resources import Resource

Channel = Literal["api", "admin", "cli"]


@dataclass(frozen=True)
class WriteEvent:
    """One row written through a resource."""

    resource: Resource
    action: Action
    """CREATE, UPDATE or DELETE."""
    channel: Channel
    user: UserLike | None
    request_id: str | None
    object_id: Any
    before: Mapping[str, Any] | None
    """Every field of the row before the write (None on create)."""
    after: Mapping[str, Any] | None
    """Every field of the row after the write (None on delete)."""

    def changes(self) -> dict[str, tuple[Any, Any]]:
        """Fields whose value differs, as (old, new); write-only fields never appear."""
        hidden = set(self.resource.write_only_fields)
        before, after = self.before or {}, self.after or {}
        return {
            key: (before.get(key), after.get(key))
            for key in dict.fromkeys([*before, *after])
            if key not in hidden and before.get(key) != after.get(key)
        }


WriteHook = Callable[[AsyncConnection, WriteEvent], Awaitable[object]]
WritesHook = Callable[[AsyncConnection, Sequence[WriteEvent]], Awaitable[object]]
"""A write hook that takes the events of many rows written together (a bulk request's
batch) at once: one statement for all of them instead of one each."""
