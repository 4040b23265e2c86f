"""Every use of sqladmin's non-public API, in one place (pyproject caps sqladmin to the
versions the suite runs on).

sqladmin documents `ModelView`'s options and hooks; what a view computes from
them (`_form_prop_names`, `_list_prop_names`, `_list_relations`,
`_column_labels`, `_form_ajax_refs`), how a save hands its response back to the edit page
(`_queries.Query._store_after_change_response`) and how it names the routes of
`@action` endpoints are its own business. crudkit needs them, so they are read
and written here and nowhere else.
"""

from __future__ import annotations

from typing import Any

from sqladmin import Admin, ModelView
from sqladmin._queries import Query
from sqladmin.authorization import custom_action
from sqladmin.helpers import slugify_action_name
from starlette.requests import Request
from starlette.routing import Route


def form_prop_names(view: ModelView) -> list[str]:
    """The properties on the view's form, as sqladmin resolved `form_columns`."""
    return list(view._form_prop_names)


def list_prop_names(view: ModelView) -> list[str]:
    """The properties in the view's list, as sqladmin resolved `column_list`."""
    return list(view._list_prop_names)


def list_relations(view: ModelView) -> list[Any]:
    """The relationships the view's list loads with each page (`selectinload`)."""
    return list(view._list_relations)


def column_labels(view: ModelView) -> dict[Any, str]:
    """The view's column labels, keyed by property name."""
    labels: dict[Any, str] = view._column_labels
    return labels


def set_ajax_lookups(view: ModelView, lookups: dict[str, Any]) -> None:
    """Render these form fields as ajax selects served by `lookups` (loader objects)."""
    view._form_ajax_refs = lookups


def store_after_change_response(request: Request, response: Any) -> None:
    """Hand `after_model_change`'s response to sqladmin's edit and create pages."""
    Query._store_after_change_response(request, response)


def _action_route_name(identity: str, name: str) -> str:
    return f"action-{identity}-{slugify_action_name(name)}"


def action_permission(name: str) -> str:
    """What sqladmin asks the authorization backend before offering or running the
    `@action(name=name)` endpoint."""
    return custom_action(slugify_action_name(name))


def action_url(request: Request, identity: str, name: str) -> str:
    """The URL of the view's `@action(name=name)` endpoint."""
    return str(request.url_for(f"admin:{_action_route_name(identity, name)}"))


def serve_actions_on_post(admin: Admin, identity: str, names: list[str]) -> None:
    """Serve these `@action` endpoints of the view on POST only (sqladmin serves them on
    GET): they change rows, so they must pass the CSRF check every POST gets."""
    wanted = {_action_route_name(identity, name) for name in names}
    for route in admin.admin.router.routes:
        if isinstance(route, Route) and route.name in wanted:
            route.methods = {"POST"}
