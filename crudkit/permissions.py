"""Permissions: small objects asked before and after a row is fetched, DRF style.

Each permission answers three questions for an `Action` on a `Resource` (the
resource is passed, as DRF passes the view):

- `has_permission(request, resource, action)`: may the caller attempt this at all?
- `get_query_filter(request, resource, action)`: which rows may the caller see for
  it? A SQL condition (or `None` for every row), applied to lists, counts and
  single-row lookups alike, so a row out of scope is 404 everywhere.
- `has_object_permission(request, resource, action, obj)`: may the caller do it to
  this row?

They compose with `&`, `|` and `~`; a list of them means all must agree::

    @crudkit.register(Note)
    class NoteResource(crudkit.Resource):
        permissions = [IsAuthenticated(), IsOwner() | HasModelPermission()]

`request.user` is the caller. Without `permissions`, a resource uses
`DefaultPolicy`: the ownership table of the documentation's "Permissions".
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, false, not_, or_, true

if TYPE_CHECKING:
    from starlette.requests import Request

    from crudkit.authentication import UserLike
    from crudkit.resources import Resource


class Action(StrEnum):
    """What a request does to a resource."""

    LIST = "list"
    RETRIEVE = "retrieve"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"

    @property
    def is_read(self) -> bool:
        return self in (Action.LIST, Action.RETRIEVE)

    @property
    def model_permission(self) -> str:
        """The Django-style permission action this needs: view, add, change or delete."""
        return _MODEL_PERMISSION[self]


_MODEL_PERMISSION = {
    Action.LIST: "view",
    Action.RETRIEVE: "view",
    Action.CREATE: "add",
    Action.UPDATE: "change",
    Action.DELETE: "delete",
}

QueryFilter = ColumnElement[bool] | None


def get_user(request: Request) -> UserLike:
    from crudkit.authentication import ANONYMOUS

    user: UserLike = request.scope.get("user") or ANONYMOUS
    return user


def has_model_permission(request: Request, resource: Resource, action: Action | str) -> bool:
    """Whether the caller holds the model permission `action` needs (an `Action`, or a
    permission action such as `change` or an extra one like `publish`)."""
    user = get_user(request)
    name = action.model_permission if isinstance(action, Action) else action
    codename = resource.get_permission_codename(name)
    return bool(user.is_active and (user.is_superuser or user.has_perm(codename)))


def can_read(request: Request, resource: Resource) -> bool:
    """Whether the caller may read `resource`'s rows at all (its policy's list
    permission): asked wherever its rows are shown or chosen from another resource
    (an expansion, a many-to-many key)."""
    return resource.policy.has_permission(request, resource, Action.LIST)


def read_filter(request: Request, resource: Resource) -> QueryFilter:
    """The rows of `resource` the caller may read (its policy's list filter)."""
    return resource.policy.get_query_filter(request, resource, Action.LIST)


def _owner_condition(request: Request, resource: Resource) -> ColumnElement[bool]:
    user = get_user(request)
    if not user.is_authenticated:
        return false()
    condition: ColumnElement[bool] = resource.owner_column == user.id
    return condition


def _is_owner(request: Request, resource: Resource, obj: Any) -> bool:
    user = get_user(request)
    owner_field = resource.owner_field
    if owner_field is None or not user.is_authenticated:
        return False
    return bool(getattr(obj, owner_field) == user.id)


def _as_condition(condition: QueryFilter) -> ColumnElement[bool]:
    return true() if condition is None else condition


class BasePermission:
    """Allows everything; subclasses override the questions they care about."""

    def has_permission(self, request: Request, resource: Resource, action: Action) -> bool:
        return True

    def get_query_filter(self, request: Request, resource: Resource, action: Action) -> QueryFilter:
        return None

    def has_object_permission(
        self, request: Request, resource: Resource, action: Action, obj: Any
    ) -> bool:
        return True

    def __and__(self, other: BasePermission) -> BasePermission:
        return AND(self, other)

    def __or__(self, other: BasePermission) -> BasePermission:
        return OR(self, other)

    def __invert__(self) -> BasePermission:
        return NOT(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class AND(BasePermission):
    def __init__(self, *operands: BasePermission) -> None:
        self.operands = operands

    def has_permission(self, request: Request, resource: Resource, action: Action) -> bool:
        return all(op.has_permission(request, resource, action) for op in self.operands)

    def get_query_filter(self, request: Request, resource: Resource, action: Action) -> QueryFilter:
        conditions = [
            condition
            for op in self.operands
            if (condition := op.get_query_filter(request, resource, action)) is not None
        ]
        if not conditions:
            return None
        return conditions[0] if len(conditions) == 1 else and_(*conditions)

    def has_object_permission(
        self, request: Request, resource: Resource, action: Action, obj: Any
    ) -> bool:
        return all(op.has_object_permission(request, resource, action, obj) for op in self.operands)

    def __repr__(self) -> str:
        return "(" + " & ".join(map(repr, self.operands)) + ")"


class OR(BasePermission):
    """Either operand may allow; rows visible under either are visible."""

    def __init__(self, left: BasePermission, right: BasePermission) -> None:
        self.operands = (left, right)

    def has_permission(self, request: Request, resource: Resource, action: Action) -> bool:
        return any(op.has_permission(request, resource, action) for op in self.operands)

    def get_query_filter(self, request: Request, resource: Resource, action: Action) -> QueryFilter:
        allowed = [op for op in self.operands if op.has_permission(request, resource, action)]
        conditions = [op.get_query_filter(request, resource, action) for op in allowed]
        if not conditions:
            return false()
        if any(condition is None for condition in conditions):
            return None
        return or_(*(_as_condition(condition) for condition in conditions))

    def has_object_permission(
        self, request: Request, resource: Resource, action: Action, obj: Any
    ) -> bool:
        return any(
            op.has_permission(request, resource, action)
            and op.has_object_permission(request, resource, action, obj)
            for op in self.operands
        )

    def __repr__(self) -> str:
        return f"({self.operands[0]!r} | {self.operands[1]!r})"


class NOT(BasePermission):
    def __init__(self, operand: BasePermission) -> None:
        self.operand = operand

    def has_permission(self, request: Request, resource: Resource, action: Action) -> bool:
        return not self.operand.has_permission(request, resource, action)

    def get_query_filter(self, request: Request, resource: Resource, action: Action) -> QueryFilter:
        condition = self.operand.get_query_filter(request, resource, action)
        return None if condition is None else not_(condition)

    def has_object_permission(
        self, request: Request, resource: Resource, action: Action, obj: Any
    ) -> bool:
        return not self.operand.has_object_permission(request, resource, action, obj)

    def __repr__(self) -> str:
        return f"~{self.operand!r}"


class AllowAny(BasePermission):
    """Anyone, authenticated or not."""


class IsAuthenticated(BasePermission):
    """Any authenticated, active user."""

    def has_permission(self, request: Request, resource: Resource, action: Action) -> bool:
        return get_user(request).is_authenticated


class IsStaff(BasePermission):
    """Active staff users (and superusers)."""

    def has_permission(self, request: Request, resource: Resource, action: Action) -> bool:
        user = get_user(request)
        return user.is_authenticated and user.is_active and (user.is_staff or user.is_superuser)


class IsSuperuser(BasePermission):
    """Active superusers only."""

    def has_permission(self, request: Request, resource: Resource, action: Action) -> bool:
        user = get_user(request)
        return user.is_authenticated and user.is_active and user.is_superuser


class HasModelPermission(BasePermission):
    """The Django model permission of the action: `<app>.view_<model>` for reads, and so on."""

    def has_permission(self, request: Request, resource: Resource, action: Action) -> bool:
        return has_model_permission(request, resource, action)


class IsOwner(BasePermission):
    """Authenticated users, on the rows whose `owner_field` is theirs."""

    def has_permission(self, request: Request, resource: Resource, action: Action) -> bool:
        return get_user(request).is_authenticated

    def get_query_filter(self, request: Request, resource: Resource, action: Action) -> QueryFilter:
        return _owner_condition(request, resource)

    def has_object_permission(
        self, request: Request, resource: Resource, action: Action, obj: Any
    ) -> bool:
        return _is_owner(request, resource, obj)


class IsOwnerOrReadOnly(BasePermission):
    """Anyone reads every row; authenticated users create, and change only their own rows."""

    def has_permission(self, request: Request, resource: Resource, action: Action) -> bool:
        return action.is_read or get_user(request).is_authenticated

    def has_object_permission(
        self, request: Request, resource: Resource, action: Action, obj: Any
    ) -> bool:
        return action.is_read or _is_owner(request, resource, obj)


class PublicRead(BasePermission):
    """Anyone reads every row; nobody writes (combine with `|` to allow writes)."""

    def has_permission(self, request: Request, resource: Resource, action: Action) -> bool:
        return action.is_read


class DefaultPolicy(BasePermission):
    """The default of every resource.

    Superusers may do everything. With an `owner_field`, authenticated users create
    rows (owned by them), read their own rows (every row with `public_read` or the
    `view` permission) and change or delete their own rows (any row with the
    `change`/`delete` permission). Without one, every action needs its model
    permission, reads excepted when `public_read`. Anonymous callers only read,
    and only when `public_read`.
    """

    def has_permission(self, request: Request, resource: Resource, action: Action) -> bool:
        user = get_user(request)
        if action.is_read and resource.public_read:
            return True
        if not user.is_authenticated or not user.is_active:
            return False
        if user.is_superuser or resource.owner_field is not None:
            return True
        return has_model_permission(request, resource, action)

    def get_query_filter(self, request: Request, resource: Resource, action: Action) -> QueryFilter:
        if resource.owner_field is None or resource.public_read:
            return None
        if has_model_permission(request, resource, Action.RETRIEVE):
            return None
        if not action.is_read and has_model_permission(request, resource, action):
            return None  # "any row with the change/delete permission"
        # Otherwise writes look rows up in the caller's read scope: the rest is 404.
        return _owner_condition(request, resource)

    def has_object_permission(
        self, request: Request, resource: Resource, action: Action, obj: Any
    ) -> bool:
        if action.is_read or resource.owner_field is None or action is Action.CREATE:
            return True
        return _is_owner(request, resource, obj) or has_model_permission(request, resource, action)
