"""ASGI middleware every crudkit app runs: request ids, security headers, an access log,
and a body size limit that answers 413 as JSON before the body is parsed.

Written as plain ASGI callables (no `BaseHTTPMiddleware`) because they sit in
front of every request.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import MutableMapping
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crudkit.logs import request_id_var

access_logger = logging.getLogger("crudkit.access")

_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class RequestContextMiddleware:
    """Tags each request with an `X-Request-ID`, adds security headers, logs one line.

    The headers are those every response needs; an app that serves pages adds its
    own (the admin forbids framing its pages).
    """

    def __init__(
        self, app: ASGIApp, *, https_only: bool = False, in_flight: InFlight | None = None
    ) -> None:
        self.app = app
        self.https_only = https_only
        self.in_flight = in_flight or InFlight()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = (
            incoming if incoming and _VALID_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        )
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        path: str = scope["path"]
        started = time.perf_counter()
        status = 500
        responding = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, responding
            if message["type"] == "http.response.start":
                status, responding = message["status"], True
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                headers["X-Content-Type-Options"] = "nosniff"
                headers.setdefault("Referrer-Policy", "same-origin")
                if self.https_only:
                    headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
            await send(message)

        self.in_flight.enter()
        try:
            await self.app(scope, receive, send_wrapper)
        except asyncio.CancelledError:
            # The server stopped waiting for this request (past `shutdown_timeout`); what it
            # had not committed rolled back. 503: stopped, not a bug (uvicorn's plain 500).
            if responding:
                raise
            await _stopping(send_wrapper)
        finally:
            self.in_flight.leave()
            if access_logger.isEnabledFor(logging.INFO):
                # `Logger.info` without its search of the stack for the caller (known).
                user = scope.get("user")
                method = scope["method"]
                record = access_logger.makeRecord(
                    access_logger.name,
                    logging.INFO,
                    __file__,
                    0,
                    "%s %s %s",
                    (method, path, status),
                    None,
                    extra={
                        "method": method,
                        "path": path,
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "user_id": getattr(user, "id", None),
                        "client": (scope.get("client") or (None,))[0],
                    },
                )
                access_logger.handle(record)
            request_id_var.reset(token)


class InFlight:
    """How many requests an app is serving: its shutdown waits for the last ones."""

    def __init__(self) -> None:
        self.count = 0
        self._drained: asyncio.Event | None = None

    def enter(self) -> None:
        self.count += 1

    def leave(self) -> None:
        self.count -= 1
        if not self.count and self._drained is not None:
            self._drained.set()

    async def drained(self) -> None:
        """Until no request is left (bound it with `asyncio.timeout`)."""
        if self.count:
            self._drained = asyncio.Event()  # of the loop that waits
            await self._drained.wait()


async def _stopping(send: Send) -> None:
    body = b'{"detail": "The server is shutting down: the request was cut short."}'
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(HTTPException):
    """Raised from `receive`; an HTTPException so every framework layer answers 413."""

    def __init__(self, max_size: int) -> None:
        super().__init__(413, f"Request body exceeds {max_size} bytes.")


class BodySizeLimitMiddleware:
    """Refuses request bodies over `max_size` bytes with 413 before they are parsed."""

    def __init__(self, app: ASGIApp, *, max_size: int) -> None:
        self.app = app
        self.max_size = max_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.isdigit():
                await _too_large(send, 400, "Invalid Content-Length header.")
                return
            if int(length) > self.max_size:
                await _too_large(send, 413, f"Request body exceeds {self.max_size} bytes.")
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_size:
                    raise BodyTooLarge(self.max_size)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _too_large(send, 413, f"Request body exceeds {self.max_size} bytes.")


async def _too_large(send: Send, status: int, detail: str) -> None:
    import json

    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: MutableMapping[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
