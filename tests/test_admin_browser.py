"""The admin in Chromium, driven by Playwright: what staff do every day, clicked through.

The app is served by uvicorn on a free port, in the test's event loop; the
browser is Debian's Chromium (`/usr/bin/chromium`, or CRUDKIT_TEST_CHROMIUM),
headless. The tests are skipped when no Chromium can be started.

The README's screenshots come from here: with CRUDKIT_TEST_UPDATE_SCREENSHOTS=1 the
tour writes `docs/admin-products.png` and `docs/admin-edit.png`; otherwise it
takes them into a temporary directory, so the code path is exercised anyway.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from crudkit.contrib.auth.testing import create_user
from shop.models import Category, Product
from tests.admin_support import PASSWORD, history, insert, rows

playwright = pytest.importorskip("playwright.async_api")

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parent.parent / "docs"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium() -> str | None:
    configured = os.environ.get("CRUDKIT_TEST_CHROMIUM")
    if configured:
        return configured
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


@pytest.fixture
async def live_url(app: FastAPI) -> AsyncIterator[str]:
    """The app served by uvicorn on a free port, in the test's event loop."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def page(live_url: str) -> AsyncIterator[Any]:
    async with playwright.async_playwright() as driver:
        try:
            browser = await driver.chromium.launch(
                executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS
            )
        except playwright.Error as exc:  # no browser on this machine
            if os.environ.get("CI"):  # CI installs Chromium: not finding it is a failure
                pytest.fail(f"Chromium is not available: {exc}")
            pytest.skip(f"Chromium is not available: {exc}")
        context = await browser.new_context(
            base_url=live_url, viewport={"width": 1280, "height": 800}, color_scheme="light"
        )
        context.set_default_timeout(10_000)
        yield await context.new_page()
        await browser.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    return DOCS if os.environ.get("CRUDKIT_TEST_UPDATE_SCREENSHOTS") == "1" else tmp_path


async def log_in(page: Any, username: str) -> None:
    await page.goto("/admin/login")
    await page.fill('input[name="username"]', username)
    await page.fill('input[name="password"]', PASSWORD)
    await page.click('button[type="submit"]')


async def choose(page: Any, field: str, search: str, option: str) -> None:
    """Pick `option` in the searchable select of foreign key `field`, as a user does."""
    await page.click(f'select[name="{field}"] + .select2 .select2-selection')
    await page.fill(".select2-container--open .select2-search__field", search)
    await page.click(f'.select2-results__option:has-text("{option}")')


async def save(page: Any) -> None:
    await page.click('input[type="submit"][value="Save"]')


async def test_a_superusers_day(app: FastAPI, page: Any, screenshots: Path) -> None:
    from playwright.async_api import expect

    root = await create_user(app, "root", is_staff=True, is_superuser=True)
    rugs = await insert(app, Category, name="Rugs")
    for name, price in (("Wool rug", "80.00"), ("Jute rug", "45.00"), ("Runner", "30.00")):
        await insert(app, Product, name=name, price=Decimal(price), owner_id=root, category_id=rugs)

    await log_in(page, "root")
    await expect(page.locator("#app-shop")).to_contain_text("Products")
    await expect(page.locator("#app-auth")).to_contain_text("Users")

    # A category: created, then renamed.
    await page.goto("/admin/category/create")
    await page.fill('input[name="name"]', "Lighting")
    await save(page)
    await expect(page.locator("table")).to_contain_text("Lighting")
    [lighting] = await rows(app, Category, name="Lighting")
    await page.goto(f"/admin/category/edit/{lighting['id']}")
    await page.fill('input[name="name"]', "Lamps")
    await save(page)
    await expect(page.locator("table")).to_contain_text("Lamps")

    # A product, its category chosen in the searchable select.
    await page.goto("/admin/product/create")
    await page.fill('input[name="name"]', "Desk lamp")
    await page.fill('input[name="price"]', "12.50")
    await choose(page, "category_id", "lam", "Lamps")
    await save(page)
    await expect(page.locator("table")).to_contain_text("Desk lamp")
    [lamp] = await rows(app, Product, name="Desk lamp")
    assert (lamp["category_id"], lamp["owner_id"]) == (lighting["id"], root)

    # Edited: the form shows the current category, and saves a new price.
    await page.goto(f"/admin/product/edit/{lamp['id']}")
    await expect(page.locator('select[name="category_id"] + .select2')).to_contain_text("Lamps")
    await page.fill('input[name="price"]', "15.00")
    await page.screenshot(path=str(screenshots / "admin-edit.png"))
    await save(page)
    [lamp] = await rows(app, Product, name="Desk lamp")
    assert lamp["price"] == Decimal("15.00")

    # The list: a screenshot, a search, a filter.
    await page.goto("/admin/product/list")
    await expect(page.locator("table")).to_contain_text("Wool rug")
    await page.screenshot(path=str(screenshots / "admin-products.png"))
    await page.fill("#search-input", "rug")
    await page.press("#search-input", "Enter")
    await expect(page).to_have_url("/admin/product/list?search=rug")
    await expect(page.locator("table")).not_to_contain_text("Desk lamp")
    await expect(page.locator("table")).to_contain_text("Jute rug")
    price_filter = page.locator("form.filter-form", has=page.locator('select[name="price_op"]'))
    await price_filter.locator("select").select_option("gte")
    await price_filter.locator('input[name="price"]').fill("50")
    await price_filter.locator('button[type="submit"]').click()
    await expect(page.locator("table")).to_contain_text("Wool rug")
    await expect(page.locator("table")).not_to_contain_text("Jute rug")

    # A bulk delete: two rugs at once.
    await page.goto("/admin/product/list?search=rug")
    await page.check("tbody tr:has-text('Wool rug') .select-box")
    await page.check("tbody tr:has-text('Jute rug') .select-box")
    await page.click("#dropdownMenuButton")
    await page.click("#action-delete")
    await page.click("#modal-delete-button")  # at once: no waiting for the dialog's animation
    await expect(page.locator("table")).not_to_contain_text("Jute rug")
    assert sorted(row["name"] for row in await rows(app, Product)) == ["Desk lamp", "Runner"]

    # The lamp's history: created and changed, by root, in the admin.
    await page.goto(f"/admin/product/details/{lamp['id']}")
    await page.click("#history-link")
    table = page.locator("#history-table")
    await expect(table).to_contain_text("price: 12.50 → 15.00")
    await expect(table.locator("tbody tr")).to_have_count(2)
    await expect(table).to_contain_text("root")

    # A category deleted from its page; the history list shows it.
    await page.goto(f"/admin/category/details/{rugs}")
    await page.click('a[data-bs-target="#modal-delete"]')
    await page.click("#modal-delete-button")
    await expect(page.locator("table")).not_to_contain_text("Rugs")
    await page.goto("/admin/log-entry/list?model=category&model_op=exact")
    await expect(page.locator("table")).to_contain_text("Rugs")
    actions = [(entry["model"], entry["action"]) for entry in await history(app)]
    assert actions.count(("product", "delete")) == 2
    assert actions[-1] == ("category", "delete")

    # Dark and light, remembered across pages.
    root_element = page.locator("html")
    await expect(root_element).to_have_attribute("data-bs-theme", "light")
    await page.click("#crudkit-theme-toggle")
    await expect(root_element).to_have_attribute("data-bs-theme", "dark")
    await page.goto("/admin/")
    await expect(root_element).to_have_attribute("data-bs-theme", "dark")
    await page.click("#crudkit-theme-toggle")
    await expect(root_element).to_have_attribute("data-bs-theme", "light")


async def test_a_viewer_cannot_change_anything(app: FastAPI, page: Any) -> None:
    from playwright.async_api import expect

    # Categories are public but written only with their model permissions, as in the API.
    lighting = await insert(app, Category, name="Lighting")
    await create_user(app, "viewer", is_staff=True, permissions=["shop.view_category"])
    before = await rows(app, Category)

    await log_in(page, "viewer")
    await page.goto("/admin/category/list")
    await expect(page.locator("table")).to_contain_text("Lighting")
    await expect(page.locator("text=New Category")).to_have_count(0)
    await expect(page.locator("#dropdownMenuButton")).to_be_disabled()
    await expect(page.locator(f'a[href*="/admin/category/edit/{lighting}"]')).to_have_count(0)
    await expect(page.locator('a[data-bs-target="#modal-delete"]')).to_have_count(0)

    await page.goto(f"/admin/category/details/{lighting}")
    await expect(page.locator("body")).to_contain_text("Lighting")
    await expect(page.locator("a.btn", has_text="Edit")).to_have_count(0)
    await expect(page.locator("a.btn", has_text="Delete")).to_have_count(0)

    response = await page.goto("/admin/category/create")
    assert response is not None
    assert response.status == 403
    assert await rows(app, Category) == before


async def test_a_customer_is_refused(app: FastAPI, page: Any) -> None:
    from playwright.async_api import expect

    await create_user(app, "customer")

    await log_in(page, "customer")

    await expect(page.locator(".alert-danger")).to_contain_text("staff account")
    await page.goto("/admin/")
    await expect(page).to_have_url("/admin/login")


async def test_login_delete_and_logout_in_a_browser(app: FastAPI, page: Any) -> None:
    from playwright.async_api import expect

    await create_user(app, "root", is_staff=True, is_superuser=True)
    lighting = await insert(app, Category, name="Lighting")

    await log_in(page, "root")
    await expect(page.locator(".navbar-nav")).to_contain_text("Categories")

    # A form post carries the token rendered into the form.
    await page.goto("/admin/category/create")
    await page.fill('input[name="name"]', "Desks")
    await save(page)
    await expect(page.locator("table")).to_contain_text("Desks")

    # The delete dialog's DELETE carries the token in a header, added by our script.
    await page.click(f'a[data-bs-target="#modal-delete"][data-pk="{lighting}"]')
    await expect(page.locator("#modal-delete")).to_be_visible()
    await page.click("#modal-delete-button")
    await expect(page.locator("table")).not_to_contain_text("Lighting")
    assert [row["name"] for row in await rows(app, Category)] == ["Desks"]

    # The sidebar's logout link logs out with a POST, at once.
    await page.click("text=Logout")
    await expect(page.locator('input[name="username"]')).to_be_visible()
    await page.goto("/admin/")
    await expect(page).to_have_url("/admin/login")
