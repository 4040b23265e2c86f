"""The admin request being served, for the code sqladmin calls without one.

sqladmin builds its WTForms forms as `Form()` / `Form(form_data)`, with no
request, yet a form must know who is asking: which fields they may write, and
the session's CSRF token to render. The authorization backend records the
request here once authentication has passed (`AuthorizationBackend.load`),
before any view code runs; forms read it back.
"""

from __future__ import annotations

from contextvars import ContextVar

from starlette.requests import Request

_current: ContextVar[Request | None] = ContextVar("crudkit_admin_request", default=None)


def set_current_request(request: Request) -> None:
    _current.set(request)


def current_request() -> Request:
    """The authenticated admin request in progress."""
    request = _current.get()
    if request is None:
        raise RuntimeError("no admin request in progress (forms are built inside admin views)")
    return request
