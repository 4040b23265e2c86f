"""Staff give no one more than they hold, themselves included.

Every write of a user, a group or a permission checks these rules, whatever
the channel (the admin, a project's own endpoint, a script writing as a user),
for a caller who is not an active superuser; trusted callers (`check=False`:
the user commands, registration) are not restricted:

- a permission is granted only by someone who holds it: directly
  (`user_permissions`), through a group a user is added to (`groups`), or to a
  group (`permissions`), their own groups included;
- only superusers set `is_superuser`;
- a user is changed or deleted only by someone holding every permission that
  user holds, directly or through groups, active or not: never a superuser.
  Otherwise a new password, say, would let the caller log in as them;
- from a group, only permissions the caller holds are removed, and a group is
  deleted only by someone holding all it carries: what the caller lacks they
  could not give back. Its members are not looked at: through the group they
  can lose only permissions the caller holds, which gains the caller nothing;
- a permission's codename is what it grants: only superusers change one or
  delete a permission.

Grants are field errors (`crudkit.ValidationError`), refusals to touch a user
or a group 403s with a sentence; both are raised before anything is written.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from starlette.requests import Request

from crudkit.authentication import UserLike
from crudkit.contrib.auth.models import (
    Group,
    Permission,
    group_permissions,
    user_groups,
    user_permissions,
)
from crudkit.db import Writer, table_of
from crudkit.exceptions import PermissionDenied, ValidationError
from crudkit.permissions import get_user
from crudkit.writes import WritePipeline, current_caller

permission_table = table_of(Permission)
group_table = table_of(Group)

SHOWN = 5
"""Codenames named in one message; more are counted."""


def restricted_caller(request: Request) -> UserLike | None:
    """The caller the rules apply to, or None for superusers and trusted callers."""
    caller = current_caller()
    if caller is not None and not caller.check:
        return None
    user = get_user(request)
    if user.is_active and user.is_superuser:
        return None
    return user


def _named(codenames: Iterable[str]) -> str:
    ordered = sorted(codenames)
    shown = ", ".join(ordered[:SHOWN])
    more = len(ordered) - SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def _lacking(user: UserLike, codenames: Iterable[str]) -> set[str]:
    return {codename for codename in codenames if not user.has_perm(codename)}


# Reading, inside the write's transaction.


async def _column(writer: Writer, column: Any, condition: ColumnElement[bool]) -> set[Any]:
    return {row[0] for row in await writer.rows(select(column).where(condition))}


async def _codenames(writer: Writer, permission_ids: Collection[Any]) -> set[str]:
    if not permission_ids:
        return set()
    condition = permission_table.c.id.in_(list(permission_ids))
    return await _column(writer, permission_table.c.codename, condition)


async def _group_codenames(writer: Writer, group_ids: Collection[Any]) -> dict[str, set[str]]:
    """The codenames each group carries, by group name."""
    if not group_ids:
        return {}
    stmt = (
        select(group_table.c.name, permission_table.c.codename)
        .select_from(
            group_permissions.join(
                group_table, group_table.c.id == group_permissions.c.group_id
            ).join(permission_table, permission_table.c.id == group_permissions.c.permission_id)
        )
        .where(group_permissions.c.group_id.in_(list(group_ids)))
    )
    found: dict[str, set[str]] = {}
    for row in await writer.rows(stmt):
        found.setdefault(row._mapping["name"], set()).add(row._mapping["codename"])
    return found


async def held_by(writer: Writer, user_id: Any) -> set[str]:
    """Every codename granted to the user, directly or through groups, active or not."""
    direct = select(user_permissions.c.permission_id).where(user_permissions.c.user_id == user_id)
    via_groups = (
        select(group_permissions.c.permission_id)
        .join(user_groups, user_groups.c.group_id == group_permissions.c.group_id)
        .where(user_groups.c.user_id == user_id)
    )
    condition = or_(permission_table.c.id.in_(direct), permission_table.c.id.in_(via_groups))
    return await _column(writer, permission_table.c.codename, condition)


def _writer(request: Request) -> AbstractAsyncContextManager[Writer]:
    """The write in progress (joined, not a new transaction)."""
    return WritePipeline.of(request.app).transaction()


# Users.


async def _check_target(writer: Writer, user: UserLike, target: Any, verb: str) -> None:
    if target.is_superuser:
        raise PermissionDenied(
            f"You cannot {verb} {target.username}: only a superuser may {verb} a superuser."
        )
    if _lacking(user, await held_by(writer, target.id)):
        raise PermissionDenied(
            f"You cannot {verb} {target.username}: they hold permissions you do not have."
        )


async def check_user_write(request: Request, values: Mapping[str, Any], obj: Any = None) -> None:
    """Refuse a create or change of a user (`obj`: the row, None on create) the caller may
    not make: a target beyond them, `is_superuser`, or a grant of what they lack."""
    user = restricted_caller(request)
    if user is None:
        return
    async with _writer(request) as writer:
        current_groups: set[Any] = set()
        current_permissions: set[Any] = set()
        if obj is not None:
            await _check_target(writer, user, obj, "change")
            current_groups = await _column(
                writer, user_groups.c.group_id, user_groups.c.user_id == obj.id
            )
            current_permissions = await _column(
                writer, user_permissions.c.permission_id, user_permissions.c.user_id == obj.id
            )
        errors: dict[str | None, str] = {}
        wanted = bool(values.get("is_superuser"))
        if "is_superuser" in values and wanted != bool(obj is not None and obj.is_superuser):
            errors["is_superuser"] = "Only a superuser may make a user a superuser."
        added_groups = set(values.get("groups") or ()) - current_groups
        if "groups" in values and added_groups:
            beyond = {
                name: lacking
                for name, codenames in (await _group_codenames(writer, added_groups)).items()
                if (lacking := _lacking(user, codenames))
            }
            if beyond:
                names = ", ".join(sorted(beyond))
                errors["groups"] = (
                    f"You cannot add a user to {names}: it grants permissions you do not "
                    f"have ({_named(set().union(*beyond.values()))})."
                )
        added = set(values.get("user_permissions") or ()) - current_permissions
        if "user_permissions" in values and added:
            lacking = _lacking(user, await _codenames(writer, added))
            if lacking:
                errors["user_permissions"] = (
                    f"You cannot grant permissions you do not have: {_named(lacking)}."
                )
        if errors:
            raise ValidationError(errors)


async def check_user_delete(request: Request, obj: Any) -> None:
    """Refuse deleting a user beyond the caller."""
    user = restricted_caller(request)
    if user is None:
        return
    async with _writer(request) as writer:
        await _check_target(writer, user, obj, "delete")


# Groups.


async def check_group_write(request: Request, values: Mapping[str, Any], obj: Any = None) -> None:
    """Refuse adding to (or removing from) a group a permission the caller lacks."""
    user = restricted_caller(request)
    if user is None or "permissions" not in values:
        return
    async with _writer(request) as writer:
        wanted = set(values["permissions"] or ())
        current: set[Any] = set()
        if obj is not None:
            current = await _column(
                writer, group_permissions.c.permission_id, group_permissions.c.group_id == obj.id
            )
        added = _lacking(user, await _codenames(writer, wanted - current))
        removed = _lacking(user, await _codenames(writer, current - wanted))
        problems = []
        if added:
            problems.append(f"You cannot grant permissions you do not have: {_named(added)}.")
        if removed:
            problems.append(f"You cannot remove permissions you do not have: {_named(removed)}.")
        if problems:
            raise ValidationError({"permissions": " ".join(problems)})


async def check_group_delete(request: Request, obj: Any) -> None:
    """Refuse deleting a group that carries a permission the caller lacks."""
    user = restricted_caller(request)
    if user is None:
        return
    async with _writer(request) as writer:
        codenames = await _column(
            writer,
            permission_table.c.codename,
            permission_table.c.id.in_(
                select(group_permissions.c.permission_id).where(
                    group_permissions.c.group_id == obj.id
                )
            ),
        )
    if lacking := _lacking(user, codenames):
        raise PermissionDenied(
            f"You cannot delete the group {obj.name}: it grants permissions you do not "
            f"have ({_named(lacking)})."
        )


# Permissions.


async def check_permission_write(
    request: Request, values: Mapping[str, Any], obj: Any = None
) -> None:
    """Refuse a new codename for an existing permission unless the caller is a superuser."""
    if obj is None or values.get("codename", obj.codename) == obj.codename:
        return
    if restricted_caller(request) is not None:
        raise ValidationError(
            {"codename": "Only a superuser may change what a permission grants (its codename)."}
        )


async def check_permission_delete(request: Request, obj: Any) -> None:
    """Refuse deleting a permission unless the caller is a superuser."""
    if restricted_caller(request) is not None:
        raise PermissionDenied(f"Only a superuser may delete a permission ({obj.codename}).")
