"""The admin asks each resource's own policy, exactly as the API does.

sqladmin names what a page does (`list`, `details`, `create`, `edit`,
`delete`, `export`); `AdminPolicy` translates that into crudkit's `Action` and
puts the question to the resource's policy (`Resource.policy`), passing the
resource as the API does. So a staff user sees a model when the API would let
them read some of its rows, the list holds exactly the rows the API would list
for them (`public_read` rows included), and create, edit and delete are offered
and accepted exactly where the API would accept them: a staff user who owns a
row edits it here as through the API. Users, groups, permissions and the
history have no owner and are not public, so their pages need their model
permissions, as in Django's admin.

Row scoping is the policy's own `get_query_filter`, applied in SQL to the
list, its count, and every single-row lookup, so a row out of scope is 404.
A view may be given another policy (`AdminPolicy(resource, policy)`).

A resource's `@crudkit.action(admin=True)` is offered to whoever the API would
let run it (`AdminPolicy.action_checks`, filled by `actions.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqladmin.authorization import Action as AdminAction
from sqladmin.authorization import AuthorizationBackend
from sqlalchemy import Select
from starlette.requests import Request

from crudkit.contrib.admin.context import set_current_request
from crudkit.permissions import Action, BasePermission

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


class AdminPolicy:
    """One resource's policy, asked on behalf of an admin page."""

    def __init__(self, resource: Resource, policy: BasePermission | None = None) -> None:
        self.resource = resource
        self.permissions = policy if policy is not None else resource.policy
        self.action_checks: dict[str, Callable[[Request], bool]] = {}
        """Who may run each admin action, by sqladmin's name for it (`action:<slug>`)."""

    def has_permission(self, request: Request, action: Action) -> bool:
        return self.permissions.has_permission(request, self.resource, action)

    def has_object_permission(self, request: Request, action: Action, obj: Any) -> bool:
        return self.has_permission(request, action) and self.permissions.has_object_permission(
            request, self.resource, action, obj
        )

    def scope(self, stmt: Select[Any], request: Request, action: Action) -> Select[Any]:
        """`stmt` narrowed to the rows the caller may see for `action`."""
        condition = self.permissions.get_query_filter(request, self.resource, action)
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
        check = policy.action_checks.get(action)
        if check is not None:
            return check(request)
        crudkit_action = admin_action(action)
        if obj is None:
            return policy.has_permission(request, crudkit_action)
        return policy.has_object_permission(request, crudkit_action, obj)
