"""crudkit: declare a SQLAlchemy model, get an API, an admin and migrations.

import crudkit

class Product(crudkit.Model):
    ...

crudkit.register(Product)
app = crudkit.create_app()
"""

from crudkit.actions import action
from crudkit.app import create_app
from crudkit.apps import AppConfig, Apps
from crudkit.authentication import AnonymousUser, CurrentUser, UserLike, get_user
from crudkit.conf import Settings, load_settings
from crudkit.db import Database, DatabaseDep, Model, SessionDep
from crudkit.exceptions import (
    Conflict,
    CrudkitError,
    HTTPError,
    ImproperlyConfigured,
    Invalid,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ServiceUnavailable,
    Throttled,
    ValidationError,
)
from crudkit.pagination import Page
from crudkit.permissions import (
    Action,
    AllowAny,
    BasePermission,
    DefaultPolicy,
    HasModelPermission,
    IsAuthenticated,
    IsOwner,
    IsOwnerOrReadOnly,
    IsStaff,
    IsSuperuser,
    PublicRead,
)
from crudkit.registry import Registry, default_registry, register
from crudkit.resources import Resource, computed
from crudkit.writes import create, delete, on_commit, update

__all__ = [
    "Action",
    "AllowAny",
    "AnonymousUser",
    "AppConfig",
    "Apps",
    "BasePermission",
    "Conflict",
    "CrudkitError",
    "CurrentUser",
    "Database",
    "DatabaseDep",
    "DefaultPolicy",
    "HTTPError",
    "HasModelPermission",
    "ImproperlyConfigured",
    "Invalid",
    "IsAuthenticated",
    "IsOwner",
    "IsOwnerOrReadOnly",
    "IsStaff",
    "IsSuperuser",
    "Model",
    "NotAuthenticated",
    "NotFound",
    "Page",
    "PermissionDenied",
    "PreconditionFailed",
    "PublicRead",
    "Registry",
    "Resource",
    "ServiceUnavailable",
    "SessionDep",
    "Settings",
    "Throttled",
    "UserLike",
    "ValidationError",
    "action",
    "computed",
    "create",
    "create_app",
    "default_registry",
    "delete",
    "get_user",
    "load_settings",
    "on_commit",
    "register",
    "update",
]
