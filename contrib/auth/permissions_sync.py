"""Create the view/add/change/delete permissions of every registered model, and the
resource's `extra_permissions`.

Runs after `migrate` (Django's post-migrate step): idempotent, it inserts only
the codenames that are missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection

from crudkit.contrib.auth.models import Permission
from crudkit.db import table_of

if TYPE_CHECKING:
    from crudkit.apps import Apps
    from crudkit.resources import Resource

ACTIONS = ("view", "add", "change", "delete")

permissions = table_of(Permission)


def expected_permissions(resources: list[Resource]) -> list[dict[str, str]]:
    rows = []
    for resource in resources:
        for action in ACTIONS:
            rows.append(
                {
                    "codename": resource.get_permission_codename(action),
                    "name": f"Can {action} {resource.name}",
                    "app_label": resource.app_label or "",
                    "model": resource.model_name,
                }
            )
        for codename, name in resource.extra_permissions:  # checked at registration
            rows.append(
                {
                    "codename": resource.get_permission_codename(codename),
                    "name": name,
                    "app_label": resource.app_label or "",
                    "model": resource.model_name,
                }
            )
    return rows


async def create_permissions(apps: Apps, conn: AsyncConnection) -> int:
    """Insert the missing permissions of the project's resources; how many were added."""
    if not await conn.run_sync(lambda sync: inspect(sync).has_table(permissions.name)):
        return 0  # auth is not migrated yet (`migrate other_app` came first), as in Django
    existing = set((await conn.execute(select(permissions.c.codename))).scalars())
    missing = [
        row for row in expected_permissions(apps.resources) if row["codename"] not in existing
    ]
    if missing:
        await conn.execute(insert(permissions), missing)
    return len(missing)
