"""Users, groups and permissions in the admin; not served by the REST API
(users reach their own record through `/auth/me`)."""

from __future__ import annotations

import crudkit
from crudkit.contrib.auth.models import Group, Permission, User


@crudkit.register(User)
class UserResource(crudkit.Resource):
    api = False
    search_fields = ["username", "email"]
    filter_fields = ["is_active", "is_staff", "is_superuser"]
    ordering_fields = ["username", "date_joined", "last_login"]
    read_only_fields = ["date_joined", "last_login", "token_version"]
    write_only_fields = ["hashed_password"]


@crudkit.register(Group)
class GroupResource(crudkit.Resource):
    api = False
    search_fields = ["name"]
    ordering_fields = ["name"]


@crudkit.register(Permission)
class PermissionResource(crudkit.Resource):
    api = False
    search_fields = ["codename", "name"]
    filter_fields = ["app_label", "model"]
    ordering_fields = ["codename"]
