"""Users, groups and permissions in the admin; not served by the REST API
(users reach their own record through `/auth/me`). Whoever writes them is held to
`escalation`'s rules: no one grants what they do not hold."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

import crudkit
from crudkit.contrib.auth import escalation, identity
from crudkit.contrib.auth.models import Group, Permission, User


@crudkit.register(User)
class UserResource(crudkit.Resource):
    api = False
    search_fields = ["username", "email"]
    filter_fields = ["is_active", "is_staff", "is_superuser"]
    ordering_fields = ["username", "date_joined", "last_login"]
    read_only_fields = ["date_joined", "last_login", "token_version"]
    write_only_fields = ["hashed_password"]

    async def validate(
        self, request: Request, values: dict[str, Any], obj: Any = None
    ) -> dict[str, Any]:
        await escalation.check_user_write(request, values, obj)
        return await identity.clean_user_write(request, values, obj)

    async def before_delete(self, request: Request, obj: Any) -> None:
        await escalation.check_user_delete(request, obj)

    async def before_update(
        self, request: Request, obj: Any, values: dict[str, Any]
    ) -> dict[str, Any]:
        """A new password or a deactivation ends every session, whoever makes the change."""
        password_changed = values.get("hashed_password", obj.hashed_password) != obj.hashed_password
        deactivated = obj.is_active and values.get("is_active", True) is False
        if (password_changed or deactivated) and "token_version" not in values:
            values["token_version"] = (obj.token_version or 0) + 1
        return values


@crudkit.register(Group)
class GroupResource(crudkit.Resource):
    api = False
    search_fields = ["name"]
    ordering_fields = ["name"]

    async def validate(
        self, request: Request, values: dict[str, Any], obj: Any = None
    ) -> dict[str, Any]:
        await escalation.check_group_write(request, values, obj)
        return values

    async def before_delete(self, request: Request, obj: Any) -> None:
        await escalation.check_group_delete(request, obj)


@crudkit.register(Permission)
class PermissionResource(crudkit.Resource):
    api = False
    search_fields = ["codename", "name"]
    filter_fields = ["app_label", "model"]
    ordering_fields = ["codename"]

    async def validate(
        self, request: Request, values: dict[str, Any], obj: Any = None
    ) -> dict[str, Any]:
        await escalation.check_permission_write(request, values, obj)
        return values

    async def before_delete(self, request: Request, obj: Any) -> None:
        await escalation.check_permission_delete(request, obj)
