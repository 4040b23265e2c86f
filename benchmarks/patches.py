"""Prototypes of changes to crudkit, applied in the benchmark process only.

Each is measured as its own app (`run.py --variant NAME[,NAME]`); none is applied
by default, so the main table measures crudkit as it is. docs/performance.md
gives each as the diff it stands for.

- `no-pre-ping`: the engine without `pool_pre_ping` (the upper bound of the fix).
- `ping-if-idle`: the proposed fix: ping a pooled connection only when it sat idle
  for more than `IDLE_PING_AFTER` seconds, so a busy server never pings.
- `auth-one-query`: bearer authentication loads the user and their permission
  codenames in one statement instead of two (PostgreSQL `array_agg`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

IDLE_PING_AFTER = 10.0


def _engine_without_pre_ping(ping_if_idle: bool) -> Callable[[], None]:
    def apply() -> None:
        from sqlalchemy import event, exc

        import crudkit.db
        from crudkit.conf import Settings

        original = crudkit.db.make_engine

        def make_engine(settings: Settings) -> Any:
            engine = original(settings)
            engine.sync_engine.pool._pre_ping = False  # as if `pool_pre_ping=True` were gone
            if ping_if_idle:
                _install_idle_ping(engine.sync_engine, exc.DisconnectionError, event)
            return engine

        crudkit.db.make_engine = make_engine

    return apply


def _install_idle_ping(sync_engine: Any, disconnection: type[Exception], event: Any) -> None:
    def checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_AFTER:
            return
        try:
            sync_engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise disconnection() from error  # the pool reconnects and retries the checkout

    event.listen(sync_engine, "checkin", checkin)
    event.listen(sync_engine, "checkout", checkout)


def _auth_one_query() -> None:
    from sqlalchemy import Row, func, or_, select
    from sqlalchemy.ext.asyncio import AsyncConnection

    from crudkit.contrib.auth import deps, users
    from crudkit.contrib.auth.models import (
        Permission,
        group_permissions,
        user_groups,
        user_permissions,
    )
    from crudkit.db import table_of

    user_table = users.user_table
    permission = table_of(Permission)
    direct = select(user_permissions.c.permission_id).where(
        user_permissions.c.user_id == user_table.c.id
    )
    via_groups = (
        select(group_permissions.c.permission_id)
        .join(user_groups, user_groups.c.group_id == group_permissions.c.group_id)
        .where(user_groups.c.user_id == user_table.c.id)
    )
    codenames = (
        select(func.array_agg(permission.c.codename))
        .where(or_(permission.c.id.in_(direct), permission.c.id.in_(via_groups)))
        .scalar_subquery()
    )

    async def load_user(
        conn: AsyncConnection, *, user_id: int | None = None, username: str | None = None
    ) -> users.AuthUser | None:
        stmt = select(user_table, codenames.label("permission_codenames"))
        if user_id is not None:
            stmt = stmt.where(user_table.c.id == user_id)
        else:
            stmt = stmt.where(user_table.c.username == username)
        row: Row[Any] | None = (await conn.execute(stmt)).first()
        if row is None:
            return None
        granted = row._mapping["permission_codenames"] or ()
        return users._from_row(row, frozenset(granted))

    deps.load_user = load_user  # type: ignore[attr-defined]


PATCHES: dict[str, Callable[[], None]] = {
    "no-pre-ping": _engine_without_pre_ping(ping_if_idle=False),
    "ping-if-idle": _engine_without_pre_ping(ping_if_idle=True),
    "auth-one-query": _auth_one_query,
}


def apply_patches(names: str) -> None:
    """Apply the comma-separated prototypes in `names` (unknown names are an error)."""
    for name in filter(None, (part.strip() for part in names.split(","))):
        PATCHES[name]()
