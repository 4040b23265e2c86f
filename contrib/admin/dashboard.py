"""The admin's index page: the apps and models the user may see, grouped as Django groups them.

Each installed app with a model the user may open gets a card listing those
models, in the order the apps are installed, with a link to each list and an
"Add" link where the user may create rows. Beside them, the user's own recent
actions, from the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from starlette.requests import Request

from crudkit.apps import Apps
from crudkit.contrib.admin.models import LogEntry
from crudkit.contrib.admin.views import ResourceView
from crudkit.permissions import get_user

RECENT_ACTIONS = 10


@dataclass
class ModelEntry:
    name: str
    list_url: str
    add_url: str | None


@dataclass
class AppGroup:
    label: str
    name: str
    models: list[ModelEntry] = field(default_factory=list)


async def app_groups(apps: Apps, views: list[Any], request: Request) -> list[AppGroup]:
    """The apps with a model the user may see, each with those models."""
    groups = {config.label: AppGroup(config.label, config.verbose_name) for config in apps}
    for view in views:
        if not isinstance(view, ResourceView):
            continue
        if not (view.is_visible(request) and view.is_accessible(request)):
            continue
        label = view.resource.app_label or ""
        group = groups.setdefault(label, AppGroup(label, label.replace("_", " ").title()))
        may_add = view.can_create and await view.check_can_create(request)
        group.models.append(
            ModelEntry(
                name=view.name_plural,
                list_url=str(request.url_for("admin:list", identity=view.identity)),
                add_url=str(request.url_for("admin:create", identity=view.identity))
                if may_add
                else None,
            )
        )
    return [group for group in groups.values() if group.models]


@dataclass
class RecentAction:
    entry: LogEntry
    url: str | None
    """The row's details page, while the row exists and the user may open its model."""


async def recent_actions(
    session_maker: Any, views: list[Any], request: Request
) -> list[RecentAction]:
    """The user's latest changes, newest first."""
    identities = {
        (view.resource.app_label, view.resource.model_name): view.identity
        for view in views
        if isinstance(view, ResourceView) and view.is_accessible(request)
    }
    stmt = (
        select(LogEntry)
        .where(LogEntry.user_id == get_user(request).id)
        .order_by(LogEntry.action_time.desc(), LogEntry.id.desc())
        .limit(RECENT_ACTIONS)
    )
    async with session_maker() as session:
        entries = list((await session.execute(stmt)).scalars())
    found = []
    for entry in entries:
        identity = identities.get((entry.app_label, entry.model))
        url = None
        if identity is not None and entry.action != "delete":
            url = str(request.url_for("admin:details", identity=identity, pk=entry.object_id))
        found.append(RecentAction(entry, url))
    return found
