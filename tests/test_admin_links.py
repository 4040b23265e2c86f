"""Many-to-many fields of admin forms: the keys chosen are checked by the write pipeline,
as the API's and the Python write API's are; a row the user may not read is an error on
the field, and nothing is written."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI
from sqlalchemy import insert

from crudkit.db import table_of
from crudkit.testing import database
from tests import test_many_to_many_api as m2m
from tests.admin_support import history, rows, staff, submit
from tests.models import Article, Tag, article_tags

# The app of the many-to-many API tests, and its client (fixtures).
articles_app = m2m.articles_app
client = m2m.client
links = m2m.links


def field_errors(page: str, field: str) -> list[str]:
    """The error messages shown under `field` (the form's last field) on a form page."""
    start = page.index(f'name="{field}"')
    section = page[start : page.index("</fieldset>", start)]
    return re.findall(r'<div class="invalid-feedback">([^<]*)</div>', section)


async def test_a_tag_the_user_may_not_read_is_an_error_on_the_field(
    articles_app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(articles_app, client, "root", superuser=True)
    async with database(articles_app).transaction() as conn:
        result = await conn.execute(
            insert(table_of(Tag)).returning(table_of(Tag).c.id),
            [{"name": "red", "hidden": False}, {"name": "secret", "hidden": True}],
        )
        red, secret = (id_ for (id_,) in result)

    refused = await submit(
        client, "/admin/article/create", {"title": "A", "tags": [str(red), str(secret)]}
    )
    assert refused.status_code == 400, refused.text
    assert field_errors(refused.text, "tags") == [f"no tags item with key {secret}"]
    assert await rows(articles_app, Article) == []
    assert await links(articles_app) == []
    assert await history(articles_app) == []

    saved = await submit(client, "/admin/article/create", {"title": "B", "tags": [str(red)]})
    assert saved.status_code == 302, saved.text
    [article] = await rows(articles_app, Article)
    edit = f"/admin/article/edit/{article['id']}"
    refused = await submit(client, edit, {"title": "B", "tags": [str(secret)]})
    assert refused.status_code == 400, refused.text
    assert field_errors(refused.text, "tags") == [f"no tags item with key {secret}"]
    assert await links(articles_app) == [(article["id"], red)]
    assert len(await history(articles_app)) == 1


async def test_a_tag_already_linked_is_kept_without_being_checked(
    articles_app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(articles_app, client, "root", superuser=True)
    async with database(articles_app).transaction() as conn:
        result = await conn.execute(
            insert(table_of(Tag)).returning(table_of(Tag).c.id),
            [{"name": "red", "hidden": False}, {"name": "secret", "hidden": True}],
        )
        red, secret = (id_ for (id_,) in result)
        [(article,)] = await conn.execute(
            insert(table_of(Article)).returning(table_of(Article).c.id), [{"title": "A"}]
        )
        await conn.execute(insert(article_tags), [{"article_id": article, "tag_id": secret}])

    saved = await submit(
        client, f"/admin/article/edit/{article}", {"title": "B", "tags": [str(secret), str(red)]}
    )
    assert saved.status_code == 302, saved.text
    assert await links(articles_app) == sorted([(article, red), (article, secret)])
