"""The history of changes: one `LogEntry` per row created, changed or deleted.

Like Django's admin `LogEntry`, but written for every channel (the API, the
admin and the command line), by the write hook in `history.py`, inside the
write's own transaction: an entry exists exactly when its change was committed.

The actor is kept twice: `user_id` links to the user while they exist, and
`username` still says who it was once they are deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from crudkit.db import Model

ACTIONS = ("create", "update", "delete")
CHANNELS = ("api", "admin", "cli")


def utcnow() -> datetime:
    return datetime.now(UTC)


class LogEntry(Model):
    """Who changed which row, when, through which channel, and what changed."""

    __tablename__ = "crudkit_log_entry"
    __table_args__ = (Index("ix_crudkit_log_entry_object", "app_label", "model", "object_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    action_time: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("auth_user.id", ondelete="SET NULL"), index=True
    )
    username: Mapped[str] = mapped_column(String(150), default="")
    """The actor's username when the change was made (empty when anonymous)."""
    channel: Mapped[str] = mapped_column(String(10))
    """`api`, `admin` or `cli`."""
    request_id: Mapped[str | None] = mapped_column(String(128))
    app_label: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(100))
    """The model's name in lower case, as in permission codenames: `product`."""
    object_id: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(10))
    """`create`, `update` or `delete`."""
    object_repr: Mapped[str] = mapped_column(String(200))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """`{"field": [old, new]}` for every field that changed; secrets never appear."""

    def __str__(self) -> str:
        return f"{self.action} {self.app_label}.{self.model} {self.object_repr}"
