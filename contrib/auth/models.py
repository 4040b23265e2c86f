"""Users, groups and Django-style permissions (`shop.change_product`).

Tables follow Django's: `auth_user`, `auth_group`, `auth_permission` and the link
tables `auth_user_groups`, `auth_user_user_permissions`, `auth_group_permissions`.
`auth_refresh_token` keeps issued refresh tokens so each is used once.

Relationships raise instead of lazy-loading: in async code an implicit query is
a bug, and it should fail loudly in tests.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crudkit.db import Model


def utcnow() -> datetime:
    return datetime.now(UTC)


def _link_table(name: str, left: str, right: str) -> Table:
    left_table, left_column = left.split(".")
    right_table, right_column = right.split(".")
    return Table(
        name,
        Model.metadata,
        Column(
            left_column,
            ForeignKey(f"{left_table}.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column(
            right_column,
            ForeignKey(f"{right_table}.id", ondelete="CASCADE"),
            primary_key=True,
            index=True,
        ),
    )


user_groups = _link_table("auth_user_groups", "auth_user.user_id", "auth_group.group_id")
user_permissions = _link_table(
    "auth_user_user_permissions", "auth_user.user_id", "auth_permission.permission_id"
)
group_permissions = _link_table(
    "auth_group_permissions", "auth_group.group_id", "auth_permission.permission_id"
)


class Permission(Model):
    """A model permission: `codename` is `<app_label>.<action>_<model>`."""

    __tablename__ = "auth_permission"

    id: Mapped[int] = mapped_column(primary_key=True)
    codename: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    app_label: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(100))

    def __str__(self) -> str:
        return self.codename


class Group(Model):
    """A named set of permissions given to its members."""

    __tablename__ = "auth_group"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(150), unique=True)
    permissions: Mapped[list[Permission]] = relationship(secondary=group_permissions, lazy="raise")

    def __str__(self) -> str:
        return self.name


class User(Model):
    """A person who logs in to the API or the admin."""

    __tablename__ = "auth_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    email: Mapped[str] = mapped_column(String(254), default="")
    hashed_password: Mapped[str] = mapped_column(String(255), default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_staff: Mapped[bool] = mapped_column(Boolean, default=False)
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False)
    date_joined: Mapped[datetime] = mapped_column(default=utcnow)
    last_login: Mapped[datetime | None] = mapped_column()
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    """Bumped by logout, a password change or deactivation: older tokens stop working."""

    groups: Mapped[list[Group]] = relationship(secondary=user_groups, lazy="raise")
    user_permissions: Mapped[list[Permission]] = relationship(
        secondary=user_permissions, lazy="raise"
    )

    __table_args__ = (
        # `Admin` cannot join `admin`, even in a race between two writes. lower() folds
        # only ASCII on SQLite; `auth.identity` compares the full Unicode case folding.
        Index("uq_auth_user_username_lower", func.lower(username), unique=True),
    )

    def __str__(self) -> str:
        return self.username


class RefreshToken(Model):
    """An issued refresh token; used once, then replaced by the next of its family."""

    __tablename__ = "auth_refresh_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    jti: Mapped[str] = mapped_column(String(64), unique=True)
    family: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("auth_user.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
