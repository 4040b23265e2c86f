"""Admin actions in Chromium: the list's Actions menu and a details page's button post the
action with the CSRF token (sqladmin's links would GET it)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from crudkit.contrib.auth.testing import create_user
from tests.admin_support import rows
from tests.models import Gadget
from tests.test_admin_actions import app, gadget  # noqa: F401 - the app with admin actions
from tests.test_admin_browser import live_url, log_in, page  # noqa: F401 - its fixtures

pytestmark = pytest.mark.browser


async def test_actions_are_posted_from_the_list_and_the_details_page(
    app: FastAPI,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    from playwright.async_api import expect

    await create_user(app, "root", is_staff=True, is_superuser=True)
    lamp, desk, sofa = [await gadget(app, name) for name in ("lamp", "desk", "sofa")]
    await log_in(page, "root")

    await page.goto("/admin/gadget/list")
    for key in (lamp, sofa):
        await page.locator(f'tr:has(input[type=hidden][value="{key}"]) .select-box').check()
    await page.click("#dropdownMenuButton")
    await page.click("#action-custom-mark-seen")
    await expect(page.locator(".toast-body")).to_contain_text("Mark seen: done on 2 gadgets.")
    assert page.url.endswith("/admin/gadget/list")

    await page.goto(f"/admin/gadget/details/{desk}")
    await page.click("a.btn:has-text('Mark featured')")
    await expect(page.locator(".toast-body")).to_contain_text("Mark featured: done on 1 gadget.")
    assert page.url.endswith(f"/admin/gadget/details/{desk}")

    found = {row["id"]: (row["notes"], row["rating"]) for row in await rows(app, Gadget)}
    assert found == {lamp: ("seen", None), desk: (None, 5), sofa: ("seen", None)}
