"""Prometheus metrics at `/metrics`, when the `metrics` extra (prometheus-client) is installed.

    crudkit_http_requests_total{method, route, status}
    crudkit_http_request_duration_seconds{method, route}     (histogram)
    crudkit_db_pool_connections{state}                        (checked_out, idle)

Routes are labelled by their template (`/api/v1/products/{id}`), never by the raw
path, so ids do not explode the number of series. Each app has its own registry;
with several worker processes, set PROMETHEUS_MULTIPROC_DIR as prometheus-client
documents to aggregate them.

They are not for everyone: with setting `metrics_token`, `/metrics` wants it as a
bearer token (`Authorization: Bearer <token>`, Prometheus' `authorization`
scrape option) and answers 401 without it; with no token, only `debug` serves
them, and otherwise `/metrics` answers 404 and nothing is counted.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crudkit.exceptions import NotAuthenticated

if TYPE_CHECKING:
    from fastapi import FastAPI


def available() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


class Metrics:
    """The collectors of one app."""

    def __init__(self, app: FastAPI, *, token: str | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.token = token.encode() if token else None
        """The bearer token `/metrics` wants; None: anyone may read them (`debug`)."""
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "crudkit_http_requests",
            "HTTP requests answered.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "crudkit_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            registry=self.registry,
        )
        pool = Gauge(
            "crudkit_db_pool_connections",
            "Database connections of this process's pool.",
            ["state"],
            registry=self.registry,
        )
        engine_pool: Any = app.state.db.engine.pool
        pool.labels("checked_out").set_function(lambda: _call(engine_pool, "checkedout"))
        pool.labels("idle").set_function(lambda: _call(engine_pool, "checkedin"))

    async def endpoint(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if self.token is not None and not self._authorized(request):
            raise NotAuthenticated("A valid metrics token is required.")
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    def _authorized(self, request: Request) -> bool:
        assert self.token is not None
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        given = credentials.strip().encode()
        # Compared in constant time whatever the scheme, so timing tells nothing.
        return secrets.compare_digest(given, self.token) and scheme.lower() == "bearer"


def _call(pool: Any, name: str) -> float:
    method = getattr(pool, name, None)
    return float(method()) if callable(method) else 0.0


class MetricsMiddleware:
    """Counts and times every HTTP request by route template."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        """Counter and histogram children per (method, route template, status): few."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or _mounted(scope) or "unmatched"
            key = (scope["method"], route, status)
            series = self._series.get(key)
            if series is None:  # `labels()` takes a lock and checks its values: once per key
                series = self._series[key] = (
                    self.metrics.requests.labels(key[0], route, str(status)),
                    self.metrics.latency.labels(key[0], route),
                )
            series[0].inc()
            series[1].observe(time.perf_counter() - started)


def _mounted(scope: Scope) -> str | None:
    root = scope.get("root_path", "")
    return f"{root}/*" if root else None


def install(app: FastAPI) -> None:
    """Serve `/metrics` and count requests (no-op without prometheus-client, or when
    nobody may read them: no `metrics_token` and `debug` off)."""
    settings = app.state.settings
    if not available() or not (settings.metrics_token or settings.debug):
        return
    metrics = Metrics(app, token=settings.metrics_token)
    app.state.metrics = metrics
    app.add_api_route("/metrics", metrics.endpoint, include_in_schema=False)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
