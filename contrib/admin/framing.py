"""Admin pages refuse to be framed by any site, so a page of theirs cannot be overlaid
with a decoy to steer a staff user's clicks (clickjacking).

`DenyFramingMiddleware` wraps the whole admin, outside its error pages, so every
response the admin serves says so: `X-Frame-Options: DENY` for older browsers,
and `Content-Security-Policy: frame-ancestors 'none'` unless the response sets
its own policy. The API's JSON needs neither, so the project's middleware leaves
them to the admin.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class DenyFramingMiddleware:
    """Adds the headers that forbid framing to every HTTP response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Frame-Options"] = "DENY"
                headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
            await send(message)

        await self.app(scope, receive, send_wrapper)
