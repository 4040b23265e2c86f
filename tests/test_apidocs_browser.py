"""`/docs` in Chromium with every request that is not the app's refused: Swagger UI and
ReDoc still render the API, from the assets the package ships."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI

from tests.test_admin_browser import live_url, page  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


async def test_docs_render_without_internet(
    app: FastAPI,
    live_url: str,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    from playwright.async_api import expect

    browser_page = page
    live = urlsplit(live_url)
    refused: list[str] = []

    async def local_only(route: Any) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in ("data", "blob") or url.netloc == live.netloc:
            await route.continue_()
        else:
            refused.append(route.request.url)
            await route.abort()

    await browser_page.route("**/*", local_only)
    await browser_page.goto("/docs")
    products = browser_page.locator(".opblock-tag", has_text="Products").first
    await expect(products).to_be_visible()
    operation = browser_page.locator(".opblock-summary-path", has_text="/api/v1/products")
    await expect(operation.first).to_be_visible()
    assert refused == []

    await browser_page.goto("/redoc")
    menu = browser_page.locator(".menu-content", has_text="Products")
    await expect(menu.first).to_be_visible()
    await expect(browser_page.get_by_text("/api/v1/products").first).to_be_attached()
    assert refused == []
