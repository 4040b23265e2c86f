"""Permission objects and their composition, asked directly (no HTTP)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from sqlalchemy import ColumnElement, insert
from sqlalchemy.dialects import postgresql
from starlette.requests import Request

import crudkit
from crudkit.contrib.auth.models import Group, Permission, group_permissions, user_groups
from crudkit.contrib.auth.testing import create_user
from crudkit.contrib.auth.users import load_user
from crudkit.db import table_of
from crudkit.permissions import Action
from crudkit.testing import database
from tests.models import Gadget


@dataclass(frozen=True)
class FakeUser:
    id: int | None = 7
    username: str = "u"
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    perms: frozenset[str] = frozenset()

    def has_perm(self, codename: str) -> bool:
        return self.is_active and (self.is_superuser or codename in self.perms)


@pytest.fixture(scope="module")
def resource() -> crudkit.Resource:
    registry = crudkit.Registry()

    @registry.register(Gadget)
    class GadgetResource(crudkit.Resource):
        owner_field = "owner_id"

    return registry[Gadget]


def request_for(user: object) -> Request:
    return Request({"type": "http", "user": user})


def sql(condition: ColumnElement[bool] | None) -> str | None:
    if condition is None:
        return None
    return str(
        condition.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )


ANON = crudkit.AnonymousUser()
OWN = SimpleNamespace(owner_id=7)
THEIRS = SimpleNamespace(owner_id=8)


def test_is_owner(resource: crudkit.Resource) -> None:
    permission = crudkit.IsOwner()
    request = request_for(FakeUser())
    assert permission.has_permission(request, resource, Action.LIST)
    assert (
        sql(permission.get_query_filter(request, resource, Action.LIST))
        == "test_gadget.owner_id = 7"
    )
    assert permission.has_object_permission(request, resource, Action.UPDATE, OWN)
    assert not permission.has_object_permission(request, resource, Action.UPDATE, THEIRS)
    assert not permission.has_permission(request_for(ANON), resource, Action.LIST)


def test_or_unions_rows_of_the_allowed_side(resource: crudkit.Resource) -> None:
    viewer = FakeUser(perms=frozenset({"tests.view_gadget"}))
    either = crudkit.IsOwner() | crudkit.HasModelPermission()
    assert sql(either.get_query_filter(request_for(viewer), resource, Action.LIST)) is None
    plain = request_for(FakeUser())
    # HasModelPermission refuses plain users, so only the owner's rows remain.
    assert sql(either.get_query_filter(plain, resource, Action.LIST)) == "test_gadget.owner_id = 7"
    assert either.has_object_permission(plain, resource, Action.RETRIEVE, OWN)
    assert not either.has_object_permission(plain, resource, Action.RETRIEVE, THEIRS)
    assert either.has_object_permission(request_for(viewer), resource, Action.RETRIEVE, THEIRS)


def test_and_and_not(resource: crudkit.Resource) -> None:
    request = request_for(FakeUser())
    both = crudkit.IsAuthenticated() & crudkit.IsOwner()
    assert both.has_permission(request, resource, Action.CREATE)
    assert sql(both.get_query_filter(request, resource, Action.LIST)) == "test_gadget.owner_id = 7"
    not_staff = ~crudkit.IsStaff()
    assert not_staff.has_permission(request, resource, Action.LIST)
    staff = request_for(FakeUser(is_staff=True))
    assert not not_staff.has_permission(staff, resource, Action.LIST)
    others = ~crudkit.IsOwner()
    assert (
        sql(others.get_query_filter(request, resource, Action.LIST)) == "test_gadget.owner_id != 7"
    )


def test_list_of_permissions_means_all(resource: crudkit.Resource) -> None:
    registry = crudkit.Registry()

    @registry.register(Gadget)
    class Strict(crudkit.Resource):
        owner_field = "owner_id"
        permissions = [crudkit.IsStaff(), crudkit.IsOwnerOrReadOnly()]

    strict = registry[Gadget]
    policy = strict.policy
    staff = request_for(FakeUser(is_staff=True))
    assert policy.has_permission(staff, strict, Action.UPDATE)
    assert policy.has_object_permission(staff, strict, Action.RETRIEVE, THEIRS)
    assert not policy.has_object_permission(staff, strict, Action.UPDATE, THEIRS)
    assert not policy.has_permission(request_for(FakeUser()), strict, Action.LIST)


def test_inactive_superuser_has_nothing(resource: crudkit.Resource) -> None:
    request = request_for(FakeUser(is_superuser=True, is_active=False))
    assert not crudkit.IsSuperuser().has_permission(request, resource, Action.LIST)
    assert not crudkit.HasModelPermission().has_permission(request, resource, Action.LIST)
    assert not crudkit.DefaultPolicy().has_permission(request, resource, Action.CREATE)


def test_public_read_and_allow_any(resource: crudkit.Resource) -> None:
    anonymous = request_for(ANON)
    assert crudkit.PublicRead().has_permission(anonymous, resource, Action.LIST)
    assert not crudkit.PublicRead().has_permission(anonymous, resource, Action.DELETE)
    assert crudkit.AllowAny().has_permission(anonymous, resource, Action.DELETE)


async def test_permissions_come_from_groups_and_directly(app: FastAPI) -> None:
    editor = await create_user(app, "editor", permissions=["shop.view_order"])
    plain = await create_user(app, "plain")
    inactive = await create_user(app, "gone", is_active=False, permissions=["shop.view_order"])
    await create_user(app, "other", permissions=["shop.delete_order"])
    permissions, groups = table_of(Permission), table_of(Group)
    async with database(app).transaction() as conn:
        group = await conn.execute(insert(groups).values(name="editors").returning(groups.c.id))
        group_id = group.scalar_one()
        change = await conn.execute(
            insert(permissions)
            .values(codename="shop.change_order", name="Can change order", app_label="shop",
                    model="order")
            .returning(permissions.c.id)
        )  # fmt: skip
        await conn.execute(
            insert(group_permissions).values(group_id=group_id, permission_id=change.scalar_one())
        )
        await conn.execute(insert(user_groups).values(user_id=editor, group_id=group_id))
    async with database(app).read() as conn:
        loaded = await load_user(conn, user_id=editor)
        nobody = await load_user(conn, user_id=plain)
        gone = await load_user(conn, user_id=inactive)
    assert loaded is not None
    assert loaded.permissions == {"shop.view_order", "shop.change_order"}
    assert nobody is not None
    assert nobody.permissions == frozenset()
    assert gone is not None
    assert not gone.has_perm("shop.view_order")
