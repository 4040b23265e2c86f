"""Deep pages of admin lists: past `keyset_from` rows, "next" and "previous" page by key."""

from __future__ import annotations

import base64
import html
import json
import re
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert as sql_insert

from crudkit.contrib.admin.views import ResourceView
from crudkit.db import table_of
from crudkit.testing import count_queries
from shop.models import Category, Product
from tests.admin_support import staff

ROWS = 35
LIST = "/admin/product/list"
_NEXT = re.compile(r'<a class="page-link" href="([^"]+)">\s*(?:<i[^>]*></i>\s*)?next')
_PREV = re.compile(r'<a class="page-link" href="([^"]+)">\s*<i[^>]*></i>\s*prev')
_NAME = re.compile(r"Lamp \d\d")


@pytest.fixture
def keyset_from(monkeypatch: pytest.MonkeyPatch) -> int:
    """Page by key from row 15 on: pages of ten rows from the third on."""
    monkeypatch.setattr(ResourceView, "keyset_from", 15)
    return 15


async def _products(app: FastAPI, owner: int) -> None:
    # Prices repeat (three rows each), so the primary key decides between equals.
    rows = [
        {"name": f"Lamp {n:02d}", "price": Decimal(n // 3), "owner_id": owner} for n in range(ROWS)
    ]
    async with app.state.db.transaction() as conn:
        await conn.execute(sql_insert(table_of(Product)), rows)


def names(page: httpx.Response) -> list[str]:
    assert page.status_code == 200, page.text
    return _NAME.findall(page.text)


def link(pattern: re.Pattern[str], page: httpx.Response) -> str | None:
    match = pattern.search(page.text)
    return html.unescape(match[1]) if match and match[1] != "#" else None  # "#": disabled


async def walk(client: httpx.AsyncClient, params: dict[str, str]) -> list[httpx.Response]:
    """Every page of a list, by its "next" links."""
    pages = [await client.get(LIST, params=params)]
    while (url := link(_NEXT, pages[-1])) is not None:
        pages.append(await client.get(url))
        assert len(pages) <= ROWS
    return pages


def expected(order: str) -> list[str]:
    numbers = list(range(ROWS))
    if order == "price desc":
        numbers.sort(key=lambda n: (n // 3, n), reverse=True)
    return [f"Lamp {n:02d}" for n in numbers]


@pytest.mark.parametrize(
    ("params", "order"),
    [
        ({}, "default"),
        ({"sortBy": "price", "sort": "asc"}, "price asc"),
        ({"sortBy": "price", "sort": "desc"}, "price desc"),
        ({"sortBy": "name", "sort": "asc"}, "name asc"),
    ],
)
async def test_next_links_show_every_row_once_in_order(
    app: FastAPI, client: httpx.AsyncClient, keyset_from: int, params: dict[str, str], order: str
) -> None:
    root = await staff(app, client, "root", superuser=True)
    await _products(app, root)

    pages = await walk(client, params)

    assert [name for page in pages for name in names(page)] == expected(order)
    assert len(pages) == 4
    next_urls = [link(_NEXT, page) for page in pages[:-1]]
    assert "after=" not in (next_urls[0] or "")  # page 2 skips 10 rows: by number
    assert all("after=" in (url or "") for url in next_urls[1:])
    assert "Showing 31 to 35 of 35 items" in pages[-1].text


async def test_previous_links_past_the_limit_page_by_key(
    app: FastAPI, client: httpx.AsyncClient, keyset_from: int
) -> None:
    root = await staff(app, client, "root", superuser=True)
    await _products(app, root)
    pages = await walk(client, {"sortBy": "price", "sort": "desc"})

    back = link(_PREV, pages[-1])
    assert back is not None
    assert "before=" in back
    assert "page=3" in back
    third = await client.get(back)

    assert names(third) == names(pages[2])
    assert "Showing 21 to 30 of 35 items" in third.text
    to_second = link(_PREV, third)
    assert to_second is not None
    assert "before=" not in to_second  # it skips 10 rows: by number
    assert names(await client.get(to_second)) == names(pages[1])


async def test_a_key_carried_into_another_sort_is_ignored(
    app: FastAPI, client: httpx.AsyncClient, keyset_from: int
) -> None:
    root = await staff(app, client, "root", superuser=True)
    await _products(app, root)
    pages = await walk(client, {"sortBy": "price", "sort": "desc"})
    keyed = link(_NEXT, pages[1])
    assert keyed is not None

    # The sort header's link keeps the query string, key and all.
    resorted = await client.get(httpx.URL(keyed).copy_merge_params({"sort": "asc"}))

    assert names(resorted) == expected("price asc")[20:30]  # page 3 by number


@pytest.mark.parametrize("key", ["%%%", "bm90IGpzb24", "WyJ4Il0"])
async def test_a_malformed_key_is_400(
    app: FastAPI, client: httpx.AsyncClient, keyset_from: int, key: str
) -> None:
    await staff(app, client, "root", superuser=True)

    page = await client.get(LIST, params={"page": "3", "after": key})

    assert page.status_code == 400


async def test_a_key_does_not_sort_on_a_column_the_list_does_not(
    app: FastAPI, client: httpx.AsyncClient, keyset_from: int
) -> None:
    root = await staff(app, client, "root", superuser=True)
    await _products(app, root)
    pages = await walk(client, {})
    keyed = link(_NEXT, pages[1])
    assert keyed is not None

    page = await client.get(httpx.URL(keyed).copy_merge_params({"sortBy": "owner_id"}))

    assert page.status_code == 400


async def test_a_key_whose_values_are_not_the_columns_is_400(
    app: FastAPI, client: httpx.AsyncClient, keyset_from: int
) -> None:
    root = await staff(app, client, "root", superuser=True)
    await _products(app, root)
    pages = await walk(client, {"sortBy": "price", "sort": "asc"})
    keyed = link(_NEXT, pages[1])
    assert keyed is not None
    key = httpx.URL(keyed).params["after"]
    made_for, values = json.loads(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)))
    assert len(values) == 2  # price, id
    for bad in (["cheap", values[1]], [values[0], "x"], values[:1]):
        tampered = base64.urlsafe_b64encode(json.dumps([made_for, bad]).encode()).decode()
        params = {"sortBy": "price", "sort": "asc", "after": tampered}

        page = await client.get(LIST, params=params)

        assert page.status_code == 400, bad


async def test_deep_pages_offer_no_numbered_links_that_skip_rows(
    app: FastAPI, client: httpx.AsyncClient, keyset_from: int
) -> None:
    root = await staff(app, client, "root", superuser=True)
    await _products(app, root)
    pages = await walk(client, {})

    numbered = re.findall(r'href="([^"]*page=(\d+)[^"]*)">\d+</a>', pages[2].text)

    assert sorted(int(number) for _, number in numbered) == [1, 2, 3, 4]
    # Pages 1 and 2 by number (they skip fewer rows than `keyset_from`), 4 by key;
    # page 3 is the one shown. Page 4's own neighbours past it are not offered.
    keyed = {n for url, n in numbered if "after=" in url or "before=" in url}
    assert keyed == {"4"}
    numbered = re.findall(r'href="([^"]*page=(\d+)[^"]*)">\d+</a>', pages[3].text)
    assert sorted(int(number) for _, number in numbered) == [1, 2, 3, 4]


async def test_the_export_of_a_keyed_page_writes_the_whole_list(
    app: FastAPI, client: httpx.AsyncClient, keyset_from: int
) -> None:
    root = await staff(app, client, "root", superuser=True)
    await _products(app, root)
    pages = await walk(client, {})

    export = re.search(r'href="([^"]*/export/csv[^"]*)"', pages[2].text)

    assert export is not None
    assert "after" not in export[1]
    assert "page=" not in export[1]


async def test_listed_foreign_keys_are_named_without_computed_fields(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # Naming a product's category must not count the category's products (a
    # `column_property`), a scan of the whole product table per category named.
    root = await staff(app, client, "root", superuser=True)
    async with app.state.db.transaction() as conn:
        await conn.execute(sql_insert(table_of(Category)), [{"id": 1, "name": "Lamps"}])
        await conn.execute(
            sql_insert(table_of(Product)),
            [{"name": "Lamp 00", "price": Decimal(1), "owner_id": root, "category_id": 1}],
        )

    with count_queries(app) as log:
        page = await client.get(LIST)

    assert "Lamps" in page.text
    named = list(log.on("shop_category"))
    assert named
    assert not any("shop_product" in statement for statement in named)
