"""`routes`: every URL of the project, its methods and the permission it needs.

    METHODS  PATH                     PERMISSION
    GET      /api/v1/products         public read
    POST     /api/v1/products         authenticated; becomes the owner
    PATCH    /api/v1/products/{id}    shop.change_product, or the owner

Routes of registered resources say what the default policy asks (or name the
resource's own permission classes). Other routes can only be described by what
they depend on: `public` when they never look at the caller, else the endpoint
checks the user itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import click
import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from crudkit.authentication import get_user
from crudkit.cli.project import Project, pass_project
from crudkit.permissions import Action
from crudkit.resources import Resource


@click.command()
@pass_project
def routes(project: Project) -> None:
    """List every URL with its methods and the permission it requires."""
    from crudkit.app import create_app

    app = create_app(project.settings, apps=project.apps)
    served = {
        f"{resource.app_label}.{resource.model_name}-{action.value}": (resource, action)
        for resource in project.apps.resources
        for action in Action
    }
    rows = [("METHODS", "PATH", "PERMISSION")]
    rows.extend(_describe(path, route, served) for path, route in _iter_routes(app))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for methods, path, permission in rows:
        click.echo(f"{methods:<{widths[0]}}  {path:<{widths[1]}}  {permission}".rstrip())


def _iter_routes(app: FastAPI) -> Iterator[tuple[str, BaseRoute]]:
    """(full path, route) of every route, included routers flattened."""
    # FastAPI >= 0.137 keeps included routers whole in `app.routes`; its own OpenAPI
    # code walks them with `iter_route_contexts`. Older versions flattened them.
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_contexts is None:  # pragma: no cover - FastAPI < 0.137
        for route in app.routes:
            yield getattr(route, "path", "?"), route
        return
    for context in iter_contexts(app.routes):
        yield context.path or "?", context.original_route


def _describe(
    path: str, route: BaseRoute, served: dict[str, tuple[Resource, Action]]
) -> tuple[str, str, str]:
    if isinstance(route, Mount):
        if isinstance(route.app, StaticFiles):  # the docs' scripts and styles
            return "GET", path, "public (static files)"
        return "*", path, "mounted app: its own checks"
    methods = set(getattr(route, "methods", None) or {"*"})
    if "GET" in methods:
        methods.discard("HEAD")
    found = served.get(getattr(route, "name", ""))
    if found is not None:
        permission = resource_permission(*found)
    elif isinstance(route, APIRoute) and _depends_on(route.dependant, get_user):
        permission = "checked by the endpoint (uses the caller)"
    else:
        permission = "public"
    return ",".join(sorted(methods)), path, permission


def resource_permission(resource: Resource, action: Action) -> str:
    """What the resource's policy asks of a caller for `action`, in words."""
    if resource.permissions is not None:
        names = ", ".join(type(permission).__name__ for permission in resource.permissions)
        return f"custom: {names}"
    codename = resource.get_permission_codename(action.model_permission)
    owned = resource.owner_field is not None
    if action.is_read:
        if resource.public_read:
            return "public read"
        return f"{codename}, or the owner's rows" if owned else codename
    if action is Action.CREATE and owned:
        return "authenticated; becomes the owner"
    return f"{codename}, or the owner" if owned else codename


def _depends_on(dependant: Dependant, call: Any) -> bool:
    return any(dep.call is call or _depends_on(dep, call) for dep in dependant.dependencies)
