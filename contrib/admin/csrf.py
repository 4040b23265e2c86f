"""CSRF protection for the admin: a token per session, checked on every state-changing request.

The token lives in the signed admin session. Pages carry it in a hidden
`csrf_token` form field (forms) and in a `<meta name="csrf-token">` tag that the
admin's script copies into an `X-CSRF-Token` header (the delete dialog, CSV
import, logout). `CSRFMiddleware` sits inside the admin, after the session
middleware, and refuses with 403, before any view runs, every POST, PUT, PATCH
or DELETE that

- comes from another origin (`Origin`, or `Referer` when a browser sends no
  `Origin`), even with a valid token, or
- does not carry the session's token.

    <form method="post">{{ csrf_input(request) }} ...</form>
"""

from __future__ import annotations

import secrets
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup
from starlette.datastructures import URL
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_KEY = "csrf_token"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def get_token(session: MutableMapping[str, Any]) -> str:
    """The session's token, created on first use."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return token


def csrf_token(request: Request) -> str:
    """Template global: the token of the request's session."""
    return get_token(request.session)


def csrf_input(request: Request) -> Markup:
    """Template global: the hidden form field carrying the token."""
    return hidden_input(csrf_token(request))


def hidden_input(token: str) -> Markup:
    return Markup('<input type="hidden" name="{}" value="{}">').format(FORM_FIELD, token)


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_problem(connection: HTTPConnection) -> str | None:
    """Why the request's origin is refused, or `None` when it is this site's.

    Browsers send `Origin` with every POST and DELETE; when a privacy setting
    strips it, the `Referer` tells the origin instead. A request with neither
    comes from a non-browser client, which cannot be forged cross-site, so only
    the token is checked.
    """
    claimed = connection.headers.get("origin")
    header = "Origin"
    if claimed is None:
        referer = connection.headers.get("referer")
        if referer is None:
            return None
        claimed, header = _origin_of(referer), "Referer"
    url: URL = connection.url
    expected = f"{url.scheme}://{url.netloc}".lower()
    if claimed.lower() != expected:
        return f"{header} {claimed!r} does not match {expected!r}"
    return None


class CSRFMiddleware:
    """Refuses state-changing admin requests without this site's origin and session token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        problem = origin_problem(connection)
        if problem is None:
            try:
                body = await _read_body(receive)
            except HTTPException as exc:  # the app's body-size limit: 413
                await PlainTextResponse(str(exc.detail), exc.status_code)(scope, receive, send)
                return
            receive = _replay(body, receive)
            submitted = connection.headers.get(HEADER) or await _form_token(scope, body)
            expected = scope.get("session", {}).get(SESSION_KEY)
            if not (
                isinstance(expected, str)
                and submitted
                and secrets.compare_digest(submitted.encode(), expected.encode())
            ):
                problem = "CSRF token missing or incorrect"
        if problem is not None:
            response = PlainTextResponse(f"Forbidden: {problem}.", status_code=403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    # Bounded: past the app's `max_body_size`, `receive` raises a 413 HTTPException.
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the already-read body to the app, then defers to the client."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _form_token(scope: Scope, body: bytes) -> str | None:
    content_type = HTTPConnection(scope).headers.get("content-type", "")
    if not content_type.startswith(_FORM_TYPES):
        return None
    request = Request(scope, _replay(body, _no_more_body))
    try:
        async with request.form() as form:
            value = form.get(FORM_FIELD)
    except (HTTPException, MultiPartException):  # a malformed body carries no token
        return None
    return value if isinstance(value, str) else None


async def _no_more_body() -> Message:
    return {"type": "http.disconnect"}
