"""Reading users for a request: the user row and every permission, in one query.

`AuthUser` is an immutable snapshot of a user and their permission codenames,
loaded once per request, so `has_perm` never queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, bindparam, case, func, literal_column, not_, null, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from crudkit.contrib.auth.identity import normalize_username
from crudkit.contrib.auth.models import (
    Permission,
    User,
    group_permissions,
    user_groups,
    user_permissions,
)
from crudkit.db import Reader, table_of

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

    @classmethod
    def from_row(cls, row: Row[Any]) -> AuthUser:
        """A user read from a row of `auth_user` (no permissions loaded)."""
        return _from_row(row, frozenset())

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


SEPARATOR = ","  # never part of a codename (`app.action_model`)


def _granted_codenames() -> Any:
    """Codenames granted to the row's user directly or through groups, joined by commas;
    NULL for superusers and inactive users, who need none loaded."""
    permission = table_of(Permission)
    user_id = user_table.c.id
    # Correlated explicitly: two levels deep, auto-correlation would not reach auth_user
    # and every user would get every granted permission.
    direct = (
        select(user_permissions.c.permission_id)
        .where(user_permissions.c.user_id == user_id)
        .correlate(user_table)
    )
    via_groups = (
        select(group_permissions.c.permission_id)
        .join(user_groups, user_groups.c.group_id == group_permissions.c.group_id)
        .where(user_groups.c.user_id == user_id)
        .correlate(user_table)
    )
    # The separator as SQL text: a bound one would be rendered into the statement at
    # every execution (`aggregate_strings` binds it as a literal-execute parameter).
    separator: Any = literal_column(f"'{SEPARATOR}'")
    codenames = (
        select(func.aggregate_strings(permission.c.codename, separator))
        .where(or_(permission.c.id.in_(direct), permission.c.id.in_(via_groups)))
        .correlate(user_table)
        .scalar_subquery()
    )
    needed = and_(user_table.c.is_active, not_(user_table.c.is_superuser))
    return case((needed, codenames), else_=null()).label("granted")


# Built once: a request authenticates with one statement and no query building.
_GRANTED = _granted_codenames()
BY_ID = select(user_table, _GRANTED).where(user_table.c.id == bindparam("user_id"))
# Case-insensitive through the unique index on lower(username): `Admin` logs in as `admin`.
BY_USERNAME = select(user_table, _GRANTED).where(
    func.lower(user_table.c.username) == func.lower(bindparam("username"))
)


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
    source: Reader | AsyncConnection,
    *,
    user_id: int | None = None,
    username: str | None = None,
) -> AuthUser | None:
    """The user by id or username (normalised, any case), with permissions (none loaded
    for superusers: not needed)."""
    if username is not None and "\x00" in username:
        return None  # no username holds NUL, and PostgreSQL refuses it in a query
    params: dict[str, Any]
    if user_id is not None:
        stmt, params = BY_ID, {"user_id": user_id}
    else:
        stmt, params = BY_USERNAME, {"username": normalize_username(username or "")}
    if isinstance(source, Reader):
        row = await source.first(stmt, params)
    else:
        row = (await source.execute(stmt, params)).first()
    if row is None:
        return None
    granted = row._mapping["granted"]
    return _from_row(row, frozenset(granted.split(SEPARATOR)) if granted else frozenset())
