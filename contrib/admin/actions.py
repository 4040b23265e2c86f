"""A resource's `@crudkit.action(admin=True)` methods as admin actions.

    add_admin_actions(view, settings)    # before the view is added to the admin

Each one is a button on a row's details page and an entry of the list's Actions
menu (the rows ticked), labelled by its name ("Mark paid"). It is checked as the
API checks it (`crudkit.actions.ResourceAction`): offered only to users the policy
lets run it, each row looked up within their scope and checked by
`has_object_permission`, then the method called with the request and the row as
the API calls it. The rows are done in one transaction: when one fails (out of
scope, refused, or the action raises a 409), nothing is written and the page
says which row and why. sqladmin would serve the action on GET; it is served on
POST only, so the CSRF check covers it (the admin's script posts the token).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqladmin import Flash, action
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from crudkit.actions import ResourceAction, admin_actions
from crudkit.conf import Settings
from crudkit.contrib.admin._sqladmin import action_permission
from crudkit.contrib.admin.errors import describe_http_error, explain_db_error
from crudkit.contrib.admin.options import label_for
from crudkit.exceptions import HTTPError, NotFound, PermissionDenied
from crudkit.writes import Caller, WritePipeline

if TYPE_CHECKING:
    from crudkit.contrib.admin.views import ResourceView


def add_admin_actions(view: type[ResourceView], settings: Settings) -> list[str]:
    """Give `view` an sqladmin `@action` per admin action of its resource; their names."""
    found = admin_actions(view.resource, settings)
    for item in found:
        setattr(view, f"crudkit_action_{item.key}", _endpoint(item))
        view.policy.action_checks[action_permission(item.key)] = _offered(item)
    view.admin_actions = tuple(item.key for item in found)
    view.admin_action_items = tuple(found)
    return [item.key for item in found]


_REFUSED_HERE = "crudkit_refused_actions"
"""`request.state` key: the actions the details page's row refuses (`refuse_on_row`)."""


def _offered(item: ResourceAction) -> Callable[[Request], bool]:
    def offered(request: Request) -> bool:
        refused: set[str] = getattr(request.state, _REFUSED_HERE, set())
        return item.key not in refused and item.has_permission(request)

    return offered


async def refuse_on_row(view: ResourceView, request: Request, pk: Any) -> None:
    """On a row's details page, offer only the actions the API would run on that row
    (within the action's scope, and allowed by `has_object_permission`)."""
    refused = set()
    for item in view.admin_action_items:
        if not item.has_permission(request):
            continue
        try:
            await item.get_row(request, pk, await item.authorize(request))
        except HTTPError:
            refused.add(item.key)
    setattr(request.state, _REFUSED_HERE, refused)


def _endpoint(item: ResourceAction) -> Any:
    async def endpoint(view: ResourceView, request: Request) -> Response:
        return await run_action(view, item, request)

    endpoint.__name__ = endpoint.__qualname__ = f"crudkit_action_{item.key}"
    return action(name=item.key, label=label_for(item.key))(endpoint)


def _reason(exc: HTTPError) -> str:
    if isinstance(exc, NotFound):  # out of the user's scope reads as missing, as in the API
        return "it does not exist or is out of your reach"
    if isinstance(exc, PermissionDenied):
        return "you may not do this to it"
    return describe_http_error(exc).rstrip(".")


async def run_action(view: ResourceView, item: ResourceAction, request: Request) -> Response:
    """Run `item` on the rows in `pks`, all or none; back to the page with a message."""
    raw = [part for part in request.query_params.get("pks", "").split(",") if part]
    if not raw:
        raise HTTPException(400, "No rows were chosen.")
    limit = request.app.state.settings.page_size_max
    if len(raw) > limit:  # each row is checked with its own queries
        raise HTTPException(400, f"At most {limit} rows can be acted on at once.")
    keys = list(dict.fromkeys(view.parse_pk(part) for part in raw))
    resource = view.resource
    label = label_for(item.key)
    if len(keys) == 1:
        back = request.url_for("admin:details", identity=view.identity, pk=str(keys[0]))
    else:
        back = request.url_for("admin:list", identity=view.identity)
    try:
        scope = await item.authorize(request)
    except HTTPError as exc:
        raise HTTPException(exc.status_code) from None
    key: Any = None
    try:
        # One transaction: the writes of every row's action join it, so a failure on
        # any row leaves nothing written.
        async with WritePipeline.of(request.app).transaction(Caller(request, via="admin")):
            for key in keys:
                row = await item.get_row(request, key, scope)
                await item.method(request, row)
    except (HTTPError, SQLAlchemyError) as exc:
        if isinstance(exc, SQLAlchemyError):
            error = explain_db_error(exc, resource.table)
            if error is None:  # not crudkit's to explain: the error page, and the log
                raise
            exc = error
        if len(keys) == 1 and isinstance(exc, NotFound):
            back = request.url_for("admin:list", identity=view.identity)
        Flash.error(
            request,
            f"{label} was not done on {resource.name} #{key}: {_reason(exc)}. Nothing was changed.",
        )
        return RedirectResponse(back, status_code=302)
    noun = resource.name if len(keys) == 1 else resource.name_plural
    Flash.success(request, f"{label}: done on {len(keys)} {noun}.")
    return RedirectResponse(back, status_code=302)
