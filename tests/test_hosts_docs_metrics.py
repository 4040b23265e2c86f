"""What production answers only to the right caller: hosts (`allowed_hosts`), the API docs
(`docs_url`) and Prometheus metrics (`metrics_token`); and misspelt `CRUDKIT_` variables."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import crudkit
from crudkit.exceptions import ImproperlyConfigured
from crudkit.testing import client_for
from tests.cli_support import EXAMPLE, TEST_SECRET, manage

METRICS_TOKEN = "prometheus-scrapes-with-this-" + "q7Rw2" * 6

Build = Callable[..., Any]


@pytest.fixture
def build(settings: crudkit.Settings) -> Build:
    """An app of the test settings with some changed, served at `base_url`."""

    @asynccontextmanager
    async def serve(
        base_url: str = "http://testserver", **changes: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        app: FastAPI = crudkit.create_app(settings.model_copy(update=changes))
        try:
            async with client_for(app, base_url=base_url) as client:
                yield client
        finally:
            await app.state.db.dispose()

    return serve


# Hosts


async def test_another_host_is_refused(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/api/v1/products", "/admin/", "/admin/login"):
        refused = await client.get(path, headers={"Host": "evil.example"})
        assert refused.status_code == 400, path
        assert "location" not in refused.headers
        assert refused.headers["x-request-id"]  # still tagged and logged
    assert (await client.get("/healthz", headers={"Host": "testserver:8000"})).status_code == 200
    # The admin's redirects name the host asked for, which can only be an allowed one.
    redirected = await client.get("/admin/")
    assert redirected.status_code in (302, 303, 307)
    assert redirected.headers["location"].startswith(("http://testserver/", "/"))


async def test_allowed_host_forms(build: Build) -> None:
    async with build(
        "http://example.com", allowed_hosts=[".example.com", "*.shop.test", "[::1]"]
    ) as client:
        answered = {
            host: (await client.get("/healthz", headers={"Host": host})).status_code
            for host in (
                "example.com",
                "api.example.com",
                "EXAMPLE.com:443",
                "a.shop.test",
                "shop.test",  # `*.` is for subdomains only
                "notexample.com",
                "evil.example",
                "[::1]:8000",
                "localhost",  # not in debug
            )
        }
    assert answered == {
        "example.com": 200,
        "api.example.com": 200,
        "EXAMPLE.com:443": 200,
        "a.shop.test": 200,
        "shop.test": 400,
        "notexample.com": 400,
        "evil.example": 400,
        "[::1]:8000": 200,
        "localhost": 400,
    }


async def test_any_host_with_a_star(build: Build) -> None:
    async with build("http://evil.example", allowed_hosts=["*"]) as client:
        assert (await client.get("/healthz")).status_code == 200


async def test_debug_allows_the_localhost_names(build: Build) -> None:
    async with build("http://localhost", debug=True, allowed_hosts=[]) as client:
        for host in ("localhost", "app.localhost", "127.0.0.1:8000", "[::1]:8000"):
            assert (await client.get("/healthz", headers={"Host": host})).status_code == 200, host
        for host in ("evil.example", "testserver", "localhost.evil.example"):
            assert (await client.get("/healthz", headers={"Host": host})).status_code == 400, host
    async with build("http://localhost", debug=True, allowed_hosts=["dev.test"]) as client:
        assert (await client.get("/healthz", headers={"Host": "dev.test"})).status_code == 200
        assert (await client.get("/healthz")).status_code == 200


def test_hosts_are_required_without_debug(settings: crudkit.Settings) -> None:
    with pytest.raises(ImproperlyConfigured, match="CRUDKIT_ALLOWED_HOSTS") as caught:
        crudkit.create_app(settings.model_copy(update={"allowed_hosts": []}))
    assert "debug is off" in str(caught.value)


def test_runserver_without_hosts_fails_in_one_line() -> None:
    env = {"CRUDKIT_DEBUG": "false", "CRUDKIT_SECRET_KEY": TEST_SECRET}
    result = manage(["runserver", "--port", "0"], env=env, cwd=EXAMPLE)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: allowed_hosts is empty and debug is off: set ")
    assert "CRUDKIT_ALLOWED_HOSTS" in result.stderr
    assert result.stderr.count("\n") == 1


async def test_client_for_says_when_testserver_is_not_allowed(settings: crudkit.Settings) -> None:
    app = crudkit.create_app(settings.model_copy(update={"allowed_hosts": ["api.example.com"]}))
    with pytest.raises(ImproperlyConfigured, match=r"allowed_hosts=\['testserver'\]"):
        async with client_for(app):
            pass
    async with client_for(app, base_url="http://api.example.com") as client:
        assert (await client.get("/healthz")).status_code == 200
    await app.state.db.dispose()


# Docs


async def test_docs_off(build: Build) -> None:
    async with build(docs_url=None) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await client.get(path)).status_code == 404, path


async def test_docs_elsewhere(build: Build) -> None:
    async with build(docs_url="/api-docs") as client:
        assert (await client.get("/docs")).status_code == 404
        for path in ("/api-docs", "/redoc", "/openapi.json"):
            assert (await client.get(path)).status_code == 200, path


# Metrics


async def test_metrics_in_production_without_a_token_are_not_served(
    client: httpx.AsyncClient,
) -> None:
    for headers in ({}, {"Authorization": "Bearer anything"}):
        assert (await client.get("/metrics", headers=headers)).status_code == 404


async def test_metrics_need_the_bearer_token(build: Build) -> None:
    async with build(metrics_token=METRICS_TOKEN) as client:
        missing = await client.get("/metrics")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert "crudkit_http_requests" not in missing.text
        for wrong in (
            "Bearer " + METRICS_TOKEN[:-1],
            "Bearer " + METRICS_TOKEN + "x",
            "Basic " + METRICS_TOKEN,
            METRICS_TOKEN,
            "Bearer",
        ):
            response = await client.get("/metrics", headers={"Authorization": wrong})
            assert response.status_code == 401, wrong
        scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert scraped.status_code == 200
        assert "crudkit_http_requests_total" in scraped.text
        assert (await client.get("/openapi.json")).status_code == 200  # not in the schema
        assert "/metrics" not in (await client.get("/openapi.json")).text


async def test_metrics_in_debug(build: Build) -> None:
    async with build("http://localhost", debug=True) as client:
        assert (await client.get("/metrics")).status_code == 200
    async with build("http://localhost", debug=True, metrics_token=METRICS_TOKEN) as client:
        assert (await client.get("/metrics")).status_code == 401  # a token set is wanted


# Misspelt settings, as a command meets them


def test_a_misspelt_variable_fails_commands_in_one_line() -> None:
    env = {"CRUDKIT_HTTPS_ONY": "true", "CRUDKIT_TEST_ANYTHING": "is the suite's own"}
    for command in (["showmigrations"], ["runserver", "--port", "0"]):
        result = manage(command, env=env, cwd=EXAMPLE)
        assert result.returncode == 1, command
        assert result.stderr == (
            "Error: invalid settings: CRUDKIT_HTTPS_ONY names no setting: "
            "did you mean CRUDKIT_HTTPS_ONLY?\n"
        ), command
    checked = manage(["check"], env=env, cwd=EXAMPLE)
    assert checked.returncode == 1
    assert "crudkit.E002" in checked.stdout
    assert "did you mean CRUDKIT_HTTPS_ONLY?" in checked.stdout
    assert "Traceback" not in checked.stdout + checked.stderr


def test_commands_accept_the_variables_that_are_not_settings() -> None:
    env = {
        "CRUDKIT_DEBUG": "false",
        "CRUDKIT_SECRET_KEY": TEST_SECRET,
        "CRUDKIT_ALLOWED_HOSTS": "api.example.com",
        "CRUDKIT_SUPERUSER_PASSWORD": "not-a-setting-but-read",
        "CRUDKIT_TEST_DATABASE_URL": "sqlite+aiosqlite:///unused.sqlite3",
    }
    result = manage(["routes"], env=env, cwd=EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert "/api/v1/products" in result.stdout
