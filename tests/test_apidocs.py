"""`/docs` and `/redoc` work offline: every script, style and icon they load is the app's own."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI

import crudkit
from crudkit import apidocs
from crudkit.testing import client_for

EXTERNAL_URL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.IGNORECASE)
ASSET_URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


async def assets_of(client: httpx.AsyncClient, page: str) -> list[str]:
    """The URLs a docs page loads, after checking that none is another site's."""
    response = await client.get(page)
    assert response.status_code == 200, page
    html = response.text
    # The browser is told so too: nothing but the app's own.
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "http" not in policy
    assert not EXTERNAL_URL.search(html), html
    assert not re.search(r"https?://(?!testserver)", html), html
    urls = [url for url in ASSET_URL.findall(html) if not url.startswith("#")]
    assert urls, html
    return urls


async def check_served(client: httpx.AsyncClient, urls: list[str]) -> None:
    for url in urls:
        served = await client.get(url)
        assert served.status_code == 200, url
        suffix = "." + urlsplit(url).path.rsplit(".", 1)[-1]
        assert CONTENT_TYPES[suffix] in served.headers["content-type"], url
        assert len(served.content) > 100, url


async def test_swagger_ui_loads_only_local_assets(client: httpx.AsyncClient) -> None:
    urls = await assets_of(client, "/docs")
    assert any(url.endswith("swagger-ui-bundle.js") for url in urls), urls
    assert any(url.endswith("swagger-ui.css") for url in urls), urls
    await check_served(client, urls)
    html = (await client.get("/docs")).text
    assert "'/openapi.json'" in html
    assert "/docs/oauth2-redirect" in html
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200


async def test_redoc_loads_only_local_assets(client: httpx.AsyncClient) -> None:
    urls = await assets_of(client, "/redoc")
    assert any(url.endswith("redoc.standalone.js") for url in urls), urls
    await check_served(client, urls)
    assert "fonts.googleapis.com" not in (await client.get("/redoc")).text


async def test_assets_follow_docs_url(settings: crudkit.Settings) -> None:
    app: FastAPI = crudkit.create_app(settings.model_copy(update={"docs_url": "/api-docs"}))
    try:
        async with client_for(app) as client:
            for page in ("/api-docs", "/redoc"):
                urls = await assets_of(client, page)
                assert all(url.startswith("/api-docs/static/") for url in urls), urls
                await check_served(client, urls)
            assert (await client.get("/docs/static/redoc/redoc.standalone.js")).status_code == 404
    finally:
        await app.state.db.dispose()


async def test_docs_off_serve_no_assets(settings: crudkit.Settings) -> None:
    app: FastAPI = crudkit.create_app(settings.model_copy(update={"docs_url": None}))
    try:
        async with client_for(app) as client:
            for path in (
                "/docs",
                "/redoc",
                "/openapi.json",
                "/docs/oauth2-redirect",
                "/docs/static/swagger-ui/swagger-ui-bundle.js",
                "/docs/static/redoc/redoc.standalone.js",
            ):
                assert (await client.get(path)).status_code == 404, path
    finally:
        await app.state.db.dispose()


async def test_assets_ship_with_their_licences() -> None:
    static = apidocs.STATIC_DIR
    for name in ("swagger-ui/LICENSE", "swagger-ui/NOTICE", "redoc/LICENSE"):
        assert (static / name).read_text().strip(), name
