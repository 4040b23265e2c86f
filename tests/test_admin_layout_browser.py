"""The admin's layout in Chromium at a laptop's size: date-times in the browser's locale and
time zone, and a wide list that scrolls inside its card while its first columns stay put.

With CRUDKIT_TEST_UPDATE_SCREENSHOTS=1 the wide list is saved as `docs/admin-wide-list.png`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from crudkit.contrib.auth.testing import create_user
from shop.models import Category, Product
from tests.admin_support import insert
from tests.test_admin_browser import (  # noqa: F401 - fixtures
    CHROMIUM_ARGS,
    _chromium,
    choose,
    live_url,
    log_in,
    screenshots,
)

playwright = pytest.importorskip("playwright.async_api")

pytestmark = pytest.mark.browser

WHEN = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)


@pytest.fixture
async def laptop(live_url: str) -> AsyncIterator[Any]:  # noqa: F811 - a fixture
    """A page 1366 by 768 pixels, in German, in Berlin's time zone."""
    async with playwright.async_playwright() as driver:
        try:
            browser = await driver.chromium.launch(
                executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS
            )
        except playwright.Error as exc:  # no browser on this machine
            if os.environ.get("CI"):
                pytest.fail(f"Chromium is not available: {exc}")
            pytest.skip(f"Chromium is not available: {exc}")
        context = await browser.new_context(
            base_url=live_url,
            viewport={"width": 1366, "height": 768},
            color_scheme="light",
            locale="de-DE",
            timezone_id="Europe/Berlin",
        )
        context.set_default_timeout(10_000)
        yield await context.new_page()
        await browser.close()


async def test_date_times_in_the_browsers_locale(app: FastAPI, laptop: Any) -> None:
    root = await create_user(app, "root", is_staff=True, is_superuser=True)
    lamp = await insert(
        app, Product, name="Lamp", price=Decimal(1), owner_id=root, created_at=WHEN, updated_at=WHEN
    )
    await log_in(laptop, "root")

    await laptop.goto(f"/admin/product/details/{lamp}")

    created = laptop.locator("time[data-crudkit-time]").first
    assert await created.get_attribute("datetime") == "2026-03-14T15:09:26+00:00"
    assert await created.get_attribute("title") == "2026-03-14 15:09:26 UTC"
    text = await created.inner_text()
    assert "16:09:26" in text  # Berlin is an hour ahead of UTC in March
    assert "14." in text  # a German date
    assert "2026" in text
    assert "UTC" not in text


async def test_a_wide_list_scrolls_in_its_card(
    app: FastAPI,
    laptop: Any,
    screenshots: Path,  # noqa: F811 - a fixture
) -> None:
    root = await create_user(app, "root", is_staff=True, is_superuser=True)
    rugs = await insert(app, Category, name="Rugs and carpets for every room")
    for n in range(12):
        await insert(
            app,
            Product,
            name=f"Hand-woven wool rug no. {n}",
            description="Thick, soft and warm: a rug to keep for a lifetime. " * 2,
            price=Decimal(100 + n),
            owner_id=root,
            category_id=rugs,
        )
    await log_in(laptop, "root")

    await laptop.goto("/admin/product/list")
    await laptop.locator("table.crudkit-pinned").wait_for()
    await laptop.screenshot(path=str(screenshots / "admin-wide-list.png"))

    sizes = await laptop.evaluate(
        """() => {
          const scroller = document.querySelector(".table-responsive");
          return {
            page: document.documentElement.scrollWidth,
            body: document.body.scrollWidth,
            window: window.innerWidth,
            table: scroller.scrollWidth,
            box: scroller.clientWidth,
          };
        }"""
    )
    assert sizes["page"] <= sizes["window"], sizes  # the page itself never scrolls sideways
    assert sizes["body"] <= sizes["window"], sizes
    assert sizes["table"] > sizes["box"], sizes  # the table does

    def first_cells() -> Any:
        return laptop.evaluate(
            """() => Array.from(document.querySelectorAll("tbody tr:first-child > td"))
                 .slice(0, 4).map((cell) => Math.round(cell.getBoundingClientRect().left))"""
        )

    before = await first_cells()
    await laptop.evaluate("document.querySelector('.table-responsive').scrollLeft = 400")
    after = await first_cells()
    assert after[:3] == before[:3]  # selection, row links and name stay in view
    assert after[3] < before[3]  # the other columns scroll


async def test_a_foreign_key_filter_is_chosen_by_name(app: FastAPI, laptop: Any) -> None:
    from playwright.async_api import expect

    root = await create_user(app, "root", is_staff=True, is_superuser=True)
    lamps = await insert(app, Category, name="Lamps")
    rugs = await insert(app, Category, name="Rugs")
    await insert(
        app, Product, name="Desk lamp", price=Decimal(30), owner_id=root, category_id=lamps
    )
    await insert(app, Product, name="Wool rug", price=Decimal(90), owner_id=root, category_id=rugs)
    await log_in(laptop, "root")
    await laptop.goto("/admin/product/list?search=o")

    await choose(laptop, "category_id", "rug", "Rugs")
    await (
        laptop.locator("form.filter-form", has=laptop.locator('select[name="category_id"]'))
        .locator('button[type="submit"]')
        .click()
    )

    await expect(laptop.locator("table")).to_contain_text("Wool rug")
    await expect(laptop.locator("table")).not_to_contain_text("Desk lamp")
    assert "search=o" in laptop.url  # the search is kept
    await expect(laptop.locator("#filter-sidebar")).to_contain_text("Current: Rugs")
    selection = laptop.locator('select[name="category_id"] + .select2 .select2-selection')
    await expect(selection).to_contain_text("Rugs")
