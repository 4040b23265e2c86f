"""Reading users for a request: the user row and every permission, in two queries.

`AuthUser` is an immutable snapshot of a user and their permission codenames,
loaded once per request, so `has_perm` never queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, union
from sqlalchemy.ext.asyncio import AsyncConnection

from crudkit.contrib.auth.models import (
    Permission,
    User,
    group_permissions,
    user_groups,
    user_permissions,
)
from crudkit.db import table_of

user_table = table_of(User)


@dataclass(frozen=True)
class AuthUser:
    """An authenticated user as seen by permissions (`crudkit.UserLike`)."""

    id: int
    username: str
    email: str
    is_active: bool
    is_staff: bool
    is_superuser: bool
    date_joined: datetime
    last_login: datetime | None
    token_version: int
    hashed_password: str = field(repr=False, default="")
    permissions: frozenset[str] = frozenset()

    is_authenticated = True

    def has_perm(self, codename: str) -> bool:
        """Django's rule: active superusers have every permission, inactive users none."""
        if not self.is_active:
            return False
        return self.is_superuser or codename in self.permissions

    def has_perms(self, codenames: list[str]) -> bool:
        return all(self.has_perm(codename) for codename in codenames)

    def public(self) -> dict[str, Any]:
        """What `/auth/me` shows: never the password hash or the token version."""
        return {
            "id": self.id,
            "username": self.username,
            "email": self.email,
            "is_active": self.is_active,
            "is_staff": self.is_staff,
            "is_superuser": self.is_superuser,
            "date_joined": self.date_joined,
            "last_login": self.last_login,
        }


def permissions_query(user_id: int) -> Any:
    """Codenames granted to the user directly or through their groups."""
    codename = table_of(Permission).c.codename
    perm_id = table_of(Permission).c.id
    direct = (
        select(codename)
        .join(user_permissions, user_permissions.c.permission_id == perm_id)
        .where(user_permissions.c.user_id == user_id)
    )
    via_groups = (
        select(codename)
        .join(group_permissions, group_permissions.c.permission_id == perm_id)
        .join(user_groups, user_groups.c.group_id == group_permissions.c.group_id)
        .where(user_groups.c.user_id == user_id)
    )
    return union(direct, via_groups)


def _from_row(row: Row[Any], permissions: frozenset[str]) -> AuthUser:
    mapping = row._mapping
    return AuthUser(
        id=mapping["id"],
        username=mapping["username"],
        email=mapping["email"],
        is_active=mapping["is_active"],
        is_staff=mapping["is_staff"],
        is_superuser=mapping["is_superuser"],
        date_joined=mapping["date_joined"],
        last_login=mapping["last_login"],
        token_version=mapping["token_version"],
        hashed_password=mapping["hashed_password"],
        permissions=permissions,
    )


async def load_user(
    conn: AsyncConnection, *, user_id: int | None = None, username: str | None = None
) -> AuthUser | None:
    """The user by id or username, with permissions (none loaded for superusers: not needed)."""
    if username is not None and "\x00" in username:
        return None  # no username holds NUL, and PostgreSQL refuses it in a query
    stmt = select(user_table)
    if user_id is not None:
        stmt = stmt.where(user_table.c.id == user_id)
    else:
        stmt = stmt.where(user_table.c.username == username)
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    permissions: frozenset[str] = frozenset()
    if row._mapping["is_active"] and not row._mapping["is_superuser"]:
        result = await conn.execute(permissions_query(row._mapping["id"]))
        permissions = frozenset(result.scalars())
    return _from_row(row, permissions)
