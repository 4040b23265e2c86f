"""Reading the history in the admin: the History list, and what a row's History page shows.

`HistoryView` serves `LogEntry` read-only: nothing can be added, edited or
deleted, through the admin or otherwise (the resource has no API). It needs
`admin.view_logentry`, as Django's does, and filters by app, model, object
id, user, action and channel. A row's own History page (`ResourceView.
object_history`) needs only the right to see that row, and reads its entries
with `entries_of`.

A many-to-many change is recorded as lists of keys; every page names the rows
they refer to (`link_names`), with one query per relationship per page, within
the user's read scope of the related rows. A row they may not read, or one
since deleted, is shown by its key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from markupsafe import Markup
from sqladmin.helpers import slugify_class_name
from sqladmin.pagination import Pagination
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from crudkit.contrib.admin.models import LogEntry
from crudkit.contrib.admin.options import timestamp
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


LinkNames = dict[str, dict[Any, str]]
"""Per many-to-many field, the names of the related rows, by their recorded key."""


def _named(keys: Any, names: Mapping[Any, str]) -> Any:
    """A recorded list of keys as the rows' names, `#key` for a row not named."""
    if not isinstance(keys, list):
        return keys
    return ", ".join(names.get(key, f"#{key}") if _is_key(key) else str(key) for key in keys)


def _is_key(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def change_lines(
    changes: Mapping[str, Any] | None, link_names: Mapping[str, Mapping[Any, str]] | None = None
) -> list[str]:
    """`price: 1.00 → 2.00`, one line per changed field (`name: Desk` on create); the keys
    of a many-to-many field in `link_names` as the related rows' names."""
    lines = []
    for field, pair in (changes or {}).items():
        old, new = pair if isinstance(pair, list | tuple) and len(pair) == 2 else (None, pair)
        if link_names is not None and field in link_names:
            names = link_names[field]
            old, new = _named(old, names), _named(new, names)
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


def _recorded_keys(changes: Iterable[Mapping[str, Any] | None], field: str) -> set[Any]:
    found: set[Any] = set()
    for change in changes:
        pair = (change or {}).get(field)
        sides = pair if isinstance(pair, list) else []
        for side in sides:
            if isinstance(side, list):
                found.update(key for key in side if _is_key(key))
    return found


async def link_names(
    view: ResourceView, request: Request, changes: Iterable[Mapping[str, Any] | None]
) -> LinkNames:
    """The names of the rows the many-to-many changes of `view`'s model refer to: one
    query per relationship, for the rows `request`'s user may read."""
    changes = list(changes)
    names: LinkNames = {}
    for field, loader in view.link_loaders.items():
        recorded = _recorded_keys(changes, field)
        keys = {loader.parse(key): key for key in recorded}
        keys.pop(None, None)
        found = await loader.visible(request, keys) if keys else {}
        names[field] = {keys[key]: loader.label(row) for key, row in found.items()}
    return names


def _view_of(request: Request, app_label: str, model: str) -> ResourceView | None:
    for view in request.app.state.admin.views:
        if isinstance(view, ResourceView) and (
            (view.resource.app_label, view.resource.model_name) == (app_label, model)
        ):
            return view
    return None


async def name_links(request: Request, entries: Sequence[LogEntry]) -> None:
    """Name the many-to-many rows the changes in `entries` refer to, for `_summary` and
    `_details`: one query per model and relationship."""
    by_model: dict[tuple[str, str], list[LogEntry]] = {}
    for entry in entries:
        by_model.setdefault((entry.app_label, entry.model), []).append(entry)
    names: dict[tuple[str, str], LinkNames] = {}
    for (app_label, model), group in by_model.items():
        view = _view_of(request, app_label, model)
        if view is not None and view.link_loaders:
            names[app_label, model] = await link_names(view, request, (e.changes for e in group))
    request.state.crudkit_link_names = names


def _entry_lines(entry: LogEntry, request: Request) -> list[str]:
    names = getattr(request.state, "crudkit_link_names", {})
    return change_lines(entry.changes, names.get((entry.app_label, entry.model)))


def _object_link(identities: Mapping[tuple[str, str], str]) -> Callable[..., Any]:
    def link(entry: LogEntry, name: str, request: Request) -> Any:
        identity = identities.get((entry.app_label, entry.model))
        if identity is None or entry.action == "delete":
            return entry.object_repr
        url = request.url_for("admin:details", identity=identity, pk=entry.object_id)
        return Markup('<a href="{}">{}</a>').format(url, entry.object_repr)

    return link


def _summary(entry: LogEntry, name: str, request: Request) -> str:
    text = "; ".join(_entry_lines(entry, request))
    return text if len(text) <= SUMMARY_LENGTH else text[: SUMMARY_LENGTH - 1] + "…"


def _details(entry: LogEntry, name: str, request: Request) -> Markup:
    return Markup("<br>").join(_entry_lines(entry, request))


class HistoryView(ResourceView):
    """The history of every change, read-only."""

    can_create = False
    can_edit = False
    can_delete = False
    page_size = 25

    async def list(self, request: Request) -> Pagination:
        found = await super().list(request)
        await name_links(request, found.rows)
        return found

    async def details_context(self, request: Request) -> dict[str, Any]:
        context = await super().details_context(request)
        context.pop("history_url")  # an entry has no history of its own
        entry = await self.get_object_for_details(request)
        await name_links(request, [entry])
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
        "action_time": timestamp,
        "object_repr": link,
        "changes": _summary,
    }
    view.column_formatters_detail = {
        **view.column_formatters_detail,
        "object_repr": link,
        "changes": _details,
    }
    return view
