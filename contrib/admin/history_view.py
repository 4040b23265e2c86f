"""Reading the history in the admin: the History list, and what a row's History page shows.

`HistoryView` serves `LogEntry` read-only: nothing can be added, edited or
deleted, through the admin or otherwise (the resource has no API). It needs
`admin.view_logentry`, as Django's does, and filters by app, model, object
id, user, action and channel. A row's own History page (`ResourceView.
object_history`) needs only the right to see that row, and reads its entries
with `entries_of`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from markupsafe import Markup
from sqladmin.helpers import slugify_class_name
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from crudkit.contrib.admin.models import LogEntry
from crudkit.contrib.admin.views import ResourceView, view_for
from crudkit.resources import Resource

LABELS: dict[Any, str] = {
    "action_time": "Time",
    "username": "User",
    "user_id": "User ID",
    "app_label": "App",
    "object_id": "Object ID",
    "object_repr": "Object",
}
SUMMARY_LENGTH = 120


def change_lines(changes: Mapping[str, Any] | None) -> list[str]:
    """`price: 1.00 → 2.00`, one line per changed field (`name: Desk` on create)."""
    lines = []
    for field, pair in (changes or {}).items():
        old, new = pair if isinstance(pair, list | tuple) and len(pair) == 2 else (None, pair)
        if old is None:
            lines.append(f"{field}: {new}")
        elif new is None:
            lines.append(f"{field}: {old} → (none)")
        else:
            lines.append(f"{field}: {old} → {new}")
    return lines


async def entries_of(
    session: AsyncSession, resource: Resource, object_id: str, limit: int
) -> list[LogEntry]:
    """The newest `limit` entries of one row of `resource`."""
    stmt = (
        select(LogEntry)
        .where(
            LogEntry.app_label == resource.app_label,
            LogEntry.model == resource.model_name,
            LogEntry.object_id == object_id,
        )
        .order_by(LogEntry.action_time.desc(), LogEntry.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


def _object_link(identities: Mapping[tuple[str, str], str]) -> Callable[..., Any]:
    def link(entry: LogEntry, name: str, request: Request) -> Any:
        identity = identities.get((entry.app_label, entry.model))
        if identity is None or entry.action == "delete":
            return entry.object_repr
        url = request.url_for("admin:details", identity=identity, pk=entry.object_id)
        return Markup('<a href="{}">{}</a>').format(url, entry.object_repr)

    return link


def _time(entry: LogEntry, name: str) -> str:
    return f"{entry.action_time:%Y-%m-%d %H:%M:%S}"


def _summary(entry: LogEntry, name: str) -> str:
    text = "; ".join(change_lines(entry.changes))
    return text if len(text) <= SUMMARY_LENGTH else text[: SUMMARY_LENGTH - 1] + "…"


def _details(entry: LogEntry, name: str) -> Markup:
    return Markup("<br>").join(change_lines(entry.changes))


class HistoryView(ResourceView):
    """The history of every change, read-only."""

    can_create = False
    can_edit = False
    can_delete = False
    page_size = 25

    async def details_context(self, request: Request) -> dict[str, Any]:
        context = await super().details_context(request)
        context.pop("history_url")  # an entry has no history of its own
        return context


def history_view(resource: Resource) -> type[ResourceView]:
    """The view of the `LogEntry` resource."""
    view = view_for(resource, base=HistoryView)
    view.name = "History entry"
    view.name_plural = "History"
    view.column_labels = {**view.column_labels, **LABELS}
    view.column_list = [
        "action_time",
        "username",
        "action",
        "app_label",
        "model",
        "object_repr",
        "changes",
        "channel",
    ]
    registry = resource.registry
    identities = {
        (other.app_label or "", other.model_name): slugify_class_name(other.model.__name__)
        for other in (registry or [])
        if other.admin
    }
    link = _object_link(identities)
    view.column_formatters = {
        **view.column_formatters,
        "action_time": _time,
        "object_repr": link,
        "changes": _summary,
    }
    view.column_formatters_detail = {
        **view.column_formatters_detail,
        "object_repr": link,
        "changes": _details,
    }
    return view
