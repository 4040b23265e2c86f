"""Health check, request ids, security headers, body limits, errors without 500s."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

import crudkit
from crudkit.logs import JSONFormatter, RequestIdFilter
from crudkit.testing import client_for
from tests.conftest import Caller
from tests.test_throttle import REDIS_URL


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_healthz_is_503_when_the_database_is_unreachable(settings: crudkit.Settings) -> None:
    broken = settings.model_copy(
        update={"database_url": "postgresql+asyncpg://nobody@127.0.0.1:1/none"}
    )
    app = crudkit.create_app(broken)
    async with client_for(app) as client:
        response = await client.get("/healthz")
        assert response.status_code == 503
        listed = await client.get("/api/v1/products")
        assert listed.status_code == 503
        assert "database" in listed.json()["detail"].lower()


async def test_request_id_is_generated_or_kept(client: httpx.AsyncClient) -> None:
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) >= 16
    kept = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    # Something that could inject into logs or headers is replaced.
    replaced = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert replaced.headers["x-request-id"] != "bad id\twith spaces"


async def test_one_json_log_line_per_request(client: httpx.AsyncClient, alice: Caller) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JSONFormatter())
    logger = logging.getLogger("crudkit.access")
    logger.addHandler(handler)
    try:
        await client.get("/api/v1/auth/me", headers={**alice.headers, "X-Request-ID": "req-42"})
    finally:
        logger.removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["method"] == "GET"
    assert entry["path"] == "/api/v1/auth/me"
    assert entry["status"] == 200
    assert entry["user_id"] == alice.id
    assert entry["request_id"] == "req-42"
    assert entry["pid"] == os.getpid()
    assert entry["level"] == "info"
    assert entry["duration_ms"] >= 0


async def test_security_headers(client: httpx.AsyncClient) -> None:
    for url in ("/healthz", "/api/v1/products", "/api/v1/products/999", "/nowhere"):
        response = await client.get(url)
        assert response.headers["x-content-type-options"] == "nosniff", url
        assert response.headers["referrer-policy"]


async def test_admin_pages_forbid_framing(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/login")
    assert response.headers["x-frame-options"] == "DENY"


async def test_oversized_body_is_413_before_parsing(
    client: httpx.AsyncClient, alice: Caller
) -> None:
    body = b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'", "price": "1"}'
    response = await client.post(
        "/api/v1/products",
        content=body,
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 413


async def test_oversized_streamed_body_is_413(client: httpx.AsyncClient, alice: Caller) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 100_000

    response = await client.post(
        "/api/v1/products",
        content=chunks(),
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 413


async def test_unknown_route_is_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


@pytest.mark.parametrize(
    ("method", "path"), [("PUT", "/api/v1/products/1"), ("POST", "/api/v1/products/1")]
)
async def test_wrong_method_is_405(client: httpx.AsyncClient, method: str, path: str) -> None:
    assert (await client.request(method, path)).status_code == 405


async def test_wrong_content_type_is_422(client: httpx.AsyncClient, alice: Caller) -> None:
    response = await client.post(
        "/api/v1/products",
        content=b"name=Lamp&price=1",
        headers={**alice.headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 422


async def test_docs_can_be_turned_off(settings: crudkit.Settings) -> None:
    app: FastAPI = crudkit.create_app(settings.model_copy(update={"docs_url": None}))
    async with client_for(app) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await client.get(path)).status_code == 404, path
    await app.state.db.dispose()


async def test_405_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    collection = await client.request("PUT", "/api/v1/products")
    assert collection.status_code == 405
    assert {"GET", "POST"} <= set(collection.headers["allow"].split(", "))
    item = await client.request("OPTIONS", "/api/v1/products/1")
    assert {"GET", "PATCH", "DELETE"} <= set(item.headers["allow"].split(", "))


async def test_validation_errors_do_not_echo_input(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register", json={"username": "a b", "password": "s3cret-s3cret", "x": 1}
    )
    assert response.status_code == 422
    for error in response.json()["detail"]:
        assert set(error) == {"loc", "msg", "type"}
    assert "s3cret" not in response.text


async def test_readyz_reports_each_check(client: httpx.AsyncClient) -> None:
    # The test schema is built without migrations: readiness says which are missing.
    response = await client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["migrations"].startswith("pending: ")
    assert "auth_0002" in checks["migrations"]


async def test_readyz_is_ok_on_a_migrated_database(tmp_path: Path) -> None:
    from crudkit.migrator import Migrations

    settings = crudkit.Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'ready.sqlite3'}",
        secret_key="s" * 40,
        installed_apps=["crudkit.contrib.auth", "crudkit.contrib.admin", "shop"],
        redis_url=REDIS_URL,
        allowed_hosts=["testserver"],
        _env_file=None,  # type: ignore[call-arg]
    )
    app = crudkit.create_app(settings)
    async with app.state.db.engine.begin() as conn:
        await conn.run_sync(Migrations(app.state.apps).upgrade)
    async with client_for(app) as client:
        response = await client.get("/readyz")
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "migrations": "ok", "redis": "ok"},
    }
    # Without Redis the app still serves (logins count in each worker's memory): it
    # stays ready, and says what it does without.
    broken = crudkit.create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    async with client_for(broken) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "checks": {
            "database": "ok",
            "migrations": "ok",
            "redis": "unavailable (login throttling falls back to each worker's memory)",
        },
    }
    for each in (app, broken):
        await each.state.db.dispose()


def sample(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


async def test_metrics_by_route_template(settings: crudkit.Settings) -> None:
    token = "metrics-" + "x1y2z3" * 8
    app = crudkit.create_app(settings.model_copy(update={"metrics_token": token}))
    scrape = {"Authorization": f"Bearer {token}"}
    labels = {"method": "GET", "route": "/api/v1/products/{id}", "status": "404"}
    async with client_for(app) as client:
        metrics = await client.get("/metrics", headers=scrape)
        before = sample(metrics.text, "crudkit_http_requests_total", **labels)
        await client.get("/api/v1/products/1")
        await client.get("/api/v1/products/2")
        await client.get("/api/v1/products")
        text = (await client.get("/metrics", headers=scrape)).text
        assert sample(text, "crudkit_http_requests_total", **labels) == before + 2
        listed = sample(text, "crudkit_http_requests_total", route="/api/v1/products", status="200")
        assert listed >= 1
        assert "crudkit_http_request_duration_seconds_bucket" in text
        assert 'crudkit_db_pool_connections{state="checked_out"}' in text
        assert "/metrics" not in (await client.get("/openapi.json")).text
    await app.state.db.dispose()
