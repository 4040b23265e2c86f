"""Admin error pages: refusals (403, 404, 400) inside the admin, failures on the server side.

A refusal sqladmin answers itself (`sqladmin/error.html`) is shown inside the
admin's layout, menu included, with a way back (`way_back`): the model's list
when the user may see it, else the admin's index. Before login there is no
menu to show, and the page is sqladmin's own.

Left alone, an exception escaping an admin view reaches Starlette's last
resort: a bare "Internal Server Error" in plain text, a 500 even when the
database is only unreachable. `ErrorPageMiddleware` wraps the whole admin
(outside its session and CSRF middleware) and answers with an admin page
instead: 503 with `Retry-After` when the database cannot be reached (a lost
or refused connection, a full pool), so users and load balancers know to
retry; 500 for anything else. The traceback goes to the log with the request
id, never to the page. Expected refusals (403, 404, a failed save) never get
here: sqladmin and the views answer those themselves.
"""

from __future__ import annotations

import logging
from typing import Any

from sqladmin import ModelView
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("crudkit.admin")

TEMPLATE = "crudkit_admin/error.html"
RETRY_AFTER = "30"

OUTAGE = (
    "The database is unavailable",
    "The server cannot reach its database right now. Nothing was changed; "
    "please try again in a moment.",
)
FAILURE = (
    "Something went wrong",
    "The server could not complete this request. The error has been logged.",
)


EXPLANATIONS = {
    403: "You do not have permission to see this page.",
    404: "There is nothing here, or nothing you may see.",
}


def way_back(request: Request) -> dict[str, str]:
    """Where a refused page leads back to: the list of the model whose URL it was, when
    the user may see it (and it is not the list refused), else the admin's index."""
    index = request.url_for("admin:index")
    rest = request.url.path.removeprefix(index.path)
    identity, _, page = rest.partition("/")
    if page != "list" and "user" in request.scope:
        for view in request.app.state.admin.views:
            if isinstance(view, ModelView) and view.identity == identity:
                if view.is_accessible(request):
                    url = request.url_for("admin:list", identity=identity)
                    return {"url": str(url), "label": f"Back to {view.name_plural}"}
                break
    return {"url": str(index), "label": "Back to the admin"}


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be reached (rather than a bug)."""
    if isinstance(exc, PoolTimeout | OperationalError | InterfaceError | OSError):
        return True  # OSError covers refused and reset connections, and timeouts
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class ErrorPageMiddleware:
    """Renders the admin's 500 and 503 pages for exceptions no view handled."""

    def __init__(self, app: ASGIApp, admin: Any) -> None:
        self.app = app
        self.admin = admin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            if started:  # too late for a page: let the server close the connection
                raise
            response = await self.page(Request(scope), exc)
            await response(scope, receive, send)

    async def page(self, request: Request, exc: Exception) -> Response:
        if is_outage(exc):
            logger.warning("admin: database unavailable: %s", exc)
            status, (title, message) = 503, OUTAGE
        else:
            logger.exception("admin: unhandled error", exc_info=exc)
            status, (title, message) = 500, FAILURE
        headers = {"Retry-After": RETRY_AFTER} if status == 503 else {}
        context = {
            "status_code": status,
            "title": title,
            "message": message,
            "request_id": getattr(request.state, "request_id", None),
        }
        try:
            response: Response = await self.admin.templates.TemplateResponse(
                request, TEMPLATE, context, status_code=status
            )
        except Exception:  # the page itself failed: say it plainly
            logger.exception("admin: cannot render the error page")
            return PlainTextResponse(f"{title}. {message}", status, headers)
        response.headers.update(headers)
        return response
