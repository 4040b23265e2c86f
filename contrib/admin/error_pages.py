"""Admin pages for failures on the server side: 503 while the database is down, 500 otherwise.

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
