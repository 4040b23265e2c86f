"""The admin asks each resource's own permission objects, as the API does.

sqladmin names what a page does (`list`, `details`, `create`, `edit`,
`delete`, `export`); `AdminPolicy` translates that into crudkit's `Action` and
puts the question to the resource's permissions (`Resource.get_permissions()`),
with `request.user` and `request.state.resource` set exactly as the API sets
them. Two admin rules sit on top, as in Django's admin:

- `public_read` opens a resource to anonymous API readers, not to the admin:
  the admin sees the resource with it off, so a model without the `view`
  permission stays hidden (owner-scoped models still show their own rows);
- creating, changing and deleting need the model's `add`/`change`/`delete`
  permission, even where the API lets owners write their own rows.

Row scoping is the resource's own `get_query_filter`, applied in SQL to the
list, its count, and every single-row lookup, so a row out of scope is 404.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from sqladmin.authorization import Action as AdminAction
from sqladmin.authorization import AuthorizationBackend
from sqlalchemy import Select
from starlette.requests import Request

from crudkit.contrib.admin.context import set_current_request
from crudkit.permissions import Action, has_model_permission

if TYPE_CHECKING:
    from crudkit.resources import Resource

ACTIONS: dict[str, Action] = {
    AdminAction.LIST: Action.LIST,
    AdminAction.DETAILS: Action.RETRIEVE,
    AdminAction.CREATE: Action.CREATE,
    AdminAction.EDIT: Action.UPDATE,
    AdminAction.DELETE: Action.DELETE,
    AdminAction.EXPORT: Action.LIST,
    AdminAction.IMPORT: Action.CREATE,
}
"""sqladmin's actions as crudkit's; a custom `@action` counts as a change."""


def admin_action(name: str) -> Action:
    return ACTIONS.get(name, Action.UPDATE)


def _as_admin_sees_it(resource: Resource) -> Resource:
    """The resource with `public_read` off: public reading is for the API, not the admin."""
    if not resource.public_read:
        return resource
    clone = copy.copy(resource)
    vars(clone)["public_read"] = False
    return clone


class AdminPolicy:
    """One resource's permissions, asked on behalf of an admin page."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.scoped_resource = _as_admin_sees_it(resource)
        self.permissions = resource.get_permissions()

    def _enter(self, request: Request) -> None:
        # Permission objects read the resource from the request, as in the API.
        request.state.resource = self.scoped_resource

    def has_permission(self, request: Request, action: Action) -> bool:
        self._enter(request)
        if not action.is_read and not has_model_permission(request, action):
            return False
        return self.permissions.has_permission(request, action)

    def has_object_permission(self, request: Request, action: Action, obj: Any) -> bool:
        self._enter(request)
        return self.has_permission(request, action) and self.permissions.has_object_permission(
            request, action, obj
        )

    def scope(self, stmt: Select[Any], request: Request, action: Action) -> Select[Any]:
        """`stmt` narrowed to the rows the caller may see for `action`."""
        self._enter(request)
        condition = self.permissions.get_query_filter(request, action)
        return stmt if condition is None else stmt.where(condition)


class ResourceAuthorization(AuthorizationBackend):
    """sqladmin's authorization backend over every view's `AdminPolicy`."""

    def __init__(self) -> None:
        self.policies: dict[str, AdminPolicy] = {}

    def add(self, identity: str, policy: AdminPolicy) -> None:
        self.policies[identity] = policy

    async def load(self, request: Request) -> None:
        # The user is already at request.user (authentication put it there).
        set_current_request(request)

    def has_permission(
        self, request: Request, identity: str, action: str, obj: Any | None = None
    ) -> bool:
        policy = self.policies.get(identity)
        if policy is None:  # a custom page: any admin user
            return True
        crudkit_action = admin_action(action)
        if obj is None:
            return policy.has_permission(request, crudkit_action)
        return policy.has_object_permission(request, crudkit_action, obj)
