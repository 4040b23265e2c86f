"""Many-to-many relationships in the API: keys under the relationship's name in `Create`,
`Update` and `Out`, each key checked against the related resource's read scope, PATCH
replacing the set, `expand=`, and one query per page for the keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import ColumnElement, insert
from starlette.requests import Request

import crudkit
from crudkit.contrib.auth.models import User
from crudkit.contrib.auth.resources import UserResource
from crudkit.contrib.auth.testing import auth_headers, create_user
from crudkit.db import table_of
from crudkit.permissions import Action, BasePermission, DefaultPolicy
from crudkit.testing import client_for, count_queries, database
from tests.admin_support import history
from tests.models import Article, Tag, article_tags
from tests.test_openapi import Conformance

ARTICLES = "/api/v1/articles"


class VisibleTags(BasePermission):
    """Anyone reads tags, but never the hidden ones."""

    def get_query_filter(
        self, request: Request, resource: crudkit.Resource, action: Action
    ) -> ColumnElement[bool] | None:
        return Tag.hidden.is_(False)


class TagResource(crudkit.Resource):
    permissions = [VisibleTags()]


class Unlocked(BasePermission):
    """Articles titled "locked" cannot be changed."""

    def get_query_filter(
        self, request: Request, resource: crudkit.Resource, action: Action
    ) -> ColumnElement[bool] | None:
        return Article.title != "locked" if action is Action.UPDATE else None


class ArticleResource(crudkit.Resource):
    public_read = True
    permissions = [DefaultPolicy(), Unlocked()]
    filter_fields = ["title", "tags"]


@pytest.fixture
async def articles_app(settings: crudkit.Settings) -> AsyncIterator[FastAPI]:
    registry = crudkit.Registry()
    registry.register(User, UserResource)
    registry.register(Tag, TagResource)
    registry.register(Article, ArticleResource)
    app = crudkit.create_app(settings, registry=registry)
    yield app
    await app.state.db.dispose()


@pytest.fixture
async def client(articles_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(articles_app) as test_client:
        yield test_client


@pytest.fixture
async def headers(articles_app: FastAPI) -> dict[str, str]:
    root = await create_user(articles_app, "root", is_staff=True, is_superuser=True)
    return await auth_headers(articles_app, root)


@pytest.fixture
async def tags(articles_app: FastAPI) -> dict[str, int]:
    """Tags by name: `secret` is hidden."""
    async with database(articles_app).transaction() as conn:
        result = await conn.execute(
            insert(table_of(Tag)).returning(table_of(Tag).c.id, table_of(Tag).c.name),
            [
                {"name": "red", "hidden": False},
                {"name": "green", "hidden": False},
                {"name": "blue", "hidden": False},
                {"name": "secret", "hidden": True},
            ],
        )
        return {name: id_ for id_, name in result}


async def links(app: FastAPI) -> list[tuple[int, int]]:
    async with database(app).transaction() as conn:
        result = await conn.execute(article_tags.select().order_by(*article_tags.c))
        return [tuple(row) for row in result]


async def test_create_update_and_read_the_keys(
    articles_app: FastAPI, client: httpx.AsyncClient, headers: dict[str, str], tags: Any
) -> None:
    api = await Conformance.of(client)
    schemas = api.document["components"]["schemas"]
    keys = schemas["ArticleCreate"]["properties"]["tags"]
    assert (keys["type"], keys["items"]["type"]) == ("array", "integer")
    assert "tags" in schemas["ArticleOut"]["required"]
    assert "tags" not in schemas["ArticleUpdate"].get("required", [])
    parameters = api.document["paths"][ARTICLES]["get"]["parameters"]
    assert {"tags", "tags__in"} <= {parameter["name"] for parameter in parameters}
    red, green, blue = tags["red"], tags["green"], tags["blue"]
    created = await client.post(
        ARTICLES, json={"title": "A", "tags": [blue, red, blue]}, headers=headers
    )
    assert created.status_code == 201, created.text
    api.check("post", ARTICLES, created)
    article = created.json()
    assert article["tags"] == [red, blue]
    one = f"{ARTICLES}/{article['id']}"
    assert (await client.get(one)).json()["tags"] == [red, blue]

    # PATCH without the key leaves the set alone; with it, replaces the whole set.
    patched = await client.patch(one, json={"title": "B"}, headers=headers)
    assert patched.json()["tags"] == [red, blue]
    patched = await client.patch(one, json={"tags": [green]}, headers=headers)
    assert patched.status_code == 200, patched.text
    api.check("patch", ARTICLES + "/{id}", patched)
    assert patched.json()["tags"] == [green]
    assert await links(articles_app) == [(article["id"], green)]
    listed = await client.get(ARTICLES)
    api.check("get", ARTICLES, listed)
    assert listed.json()["items"][0]["tags"] == [green]
    cleared = await client.patch(one, json={"tags": []}, headers=headers)
    assert cleared.json()["tags"] == []

    # Without the key, a create links nothing.
    bare = await client.post(ARTICLES, json={"title": "C"}, headers=headers)
    assert bare.json()["tags"] == []

    entries = await history(articles_app, model="article", object_id=str(article["id"]))
    assert [e["action"] for e in entries] == ["create", "update", "update", "update"]
    assert entries[2]["changes"] == {"tags": [[red, blue], [green]]}


@pytest.mark.parametrize("key", ["secret", "missing"])
async def test_a_key_the_caller_may_not_read_is_refused_like_a_missing_one(
    articles_app: FastAPI,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    tags: dict[str, int],
    key: str,
) -> None:
    bad = tags.get(key, 10_000)
    refused = await client.post(
        ARTICLES, json={"title": "A", "tags": [tags["red"], bad]}, headers=headers
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"] == [
        {"loc": ["body", "tags", 1], "msg": f"no tags item with key {bad}", "type": "value_error"}
    ]
    assert (await client.get(ARTICLES)).json()["items"] == []
    assert await links(articles_app) == []
    assert await history(articles_app, model="article") == []

    created = await client.post(ARTICLES, json={"title": "B"}, headers=headers)
    one = f"{ARTICLES}/{created.json()['id']}"
    refused = await client.patch(one, json={"tags": [bad]}, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "tags", 0]
    assert await links(articles_app) == []


async def test_a_key_already_linked_is_not_checked_again(
    articles_app: FastAPI, client: httpx.AsyncClient, headers: dict[str, str], tags: Any
) -> None:
    async with database(articles_app).transaction() as conn:
        [(article,)] = await conn.execute(
            insert(table_of(Article)).returning(table_of(Article).c.id), [{"title": "A"}]
        )
        await conn.execute(
            insert(article_tags), [{"article_id": article, "tag_id": tags["secret"]}]
        )
    one = f"{ARTICLES}/{article}"
    read = (await client.get(one)).json()
    assert read["tags"] == [tags["secret"]]
    sent_back = await client.patch(
        one, json={"tags": [*read["tags"], tags["red"]]}, headers=headers
    )
    assert sent_back.status_code == 200, sent_back.text
    assert sent_back.json()["tags"] == sorted([tags["secret"], tags["red"]])


async def test_links_of_a_row_out_of_scope_are_not_told(
    articles_app: FastAPI, client: httpx.AsyncClient, headers: dict[str, str], tags: Any
) -> None:
    async with database(articles_app).transaction() as conn:
        [(article,)] = await conn.execute(
            insert(table_of(Article)).returning(table_of(Article).c.id), [{"title": "locked"}]
        )
        await conn.execute(
            insert(article_tags), [{"article_id": article, "tag_id": tags["secret"]}]
        )
    one = f"{ARTICLES}/{article}"
    for key in (tags["secret"], 10_000):  # linked or not: the same answer
        refused = await client.patch(one, json={"tags": [key]}, headers=headers)
        assert refused.status_code == 422, refused.text
    assert (await client.patch(one, json={"tags": []}, headers=headers)).status_code == 404


async def test_bad_keys_are_refused_by_the_schema(
    client: httpx.AsyncClient, headers: dict[str, str], tags: Any
) -> None:
    for body in ({"title": "A", "tags": ["x"]}, {"title": "A", "tags": 3}):
        refused = await client.post(ARTICLES, json=body, headers=headers)
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"][:2] == ["body", "tags"]


async def seed(app: FastAPI, count: int, tag_ids: list[int]) -> None:
    async with database(app).transaction() as conn:
        result = await conn.execute(
            insert(table_of(Article)).returning(table_of(Article).c.id),
            [{"title": f"T{n}"} for n in range(count)],
        )
        rows = [{"article_id": a, "tag_id": t} for (a,) in result for t in tag_ids]
        await conn.execute(insert(article_tags), rows)


@pytest.mark.parametrize("expand", [False, True])
async def test_a_list_loads_the_keys_of_a_page_in_one_query(
    articles_app: FastAPI, client: httpx.AsyncClient, tags: dict[str, int], expand: bool
) -> None:
    url = ARTICLES + ("?expand=tags" if expand else "")
    counts = []
    for count in (1, 19):
        await seed(articles_app, count, [tags["red"], tags["secret"]])
        with count_queries(articles_app) as log:
            response = await client.get(url)
        assert response.status_code == 200, response.text
        counts.append(len(log))
    assert counts[0] == counts[1] == (3 if expand else 2)  # page (+ expansion), keys
    item = response.json()["items"][0]
    if expand:  # the related items the caller may read
        assert item["tags"] == [{"id": tags["red"], "name": "red", "hidden": False}]
    else:
        assert item["tags"] == [tags["red"], tags["secret"]]


async def test_retrieve_expands_and_sparse_fields_name_the_keys(
    articles_app: FastAPI, client: httpx.AsyncClient, tags: dict[str, int]
) -> None:
    green, blue = tags["green"], tags["blue"]
    await seed(articles_app, 1, [green, blue])
    [item] = (await client.get(ARTICLES)).json()["items"]
    one = f"{ARTICLES}/{item['id']}"
    expanded = (await client.get(f"{one}?expand=tags")).json()
    assert [tag["name"] for tag in expanded["tags"]] == ["green", "blue"]

    with count_queries(articles_app) as log:
        sparse = (await client.get(f"{ARTICLES}?fields=title")).json()
    assert sparse["items"] == [{"title": "T0"}]
    assert log.on("test_article_tags") == []  # keys not named, not read
    sparse = (await client.get(f"{ARTICLES}?fields=tags")).json()
    assert sparse["items"] == [{"tags": [green, blue]}]
    sparse = (await client.get(f"{ARTICLES}?fields=title,tags&expand=tags")).json()
    assert [tag["id"] for tag in sparse["items"][0]["tags"]] == [green, blue]
    assert (await client.get(f"{one}?fields=tags")).json() == {"tags": [green, blue]}
    assert (await client.get(f"{one}?fields=title")).json() == {"title": "T0"}


async def test_resources_without_many_to_many_read_as_before(
    articles_app: FastAPI, client: httpx.AsyncClient, tags: dict[str, int]
) -> None:
    with count_queries(articles_app) as log:
        response = await client.get("/api/v1/tags")
    assert len(log) == 1
    assert "tags" not in response.json()["items"][0]


async def test_filters_on_related_keys(
    articles_app: FastAPI, client: httpx.AsyncClient, tags: dict[str, int]
) -> None:
    red, green, blue = tags["red"], tags["green"], tags["blue"]
    await seed(articles_app, 1, [red, green])
    await seed(articles_app, 1, [blue])
    first, second = (item["id"] for item in (await client.get(ARTICLES)).json()["items"])

    async def found(query: str) -> list[int]:
        response = await client.get(f"{ARTICLES}?{query}")
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await found(f"tags={red}") == [first]
    assert await found(f"tags={blue}") == [second]
    assert await found(f"tags__in={red},{green},{blue}") == [first, second]  # never repeated
    assert await found(f"tags__in={green}&title=T0") == [first]
    assert await found("tags=10000") == []
    refused = await client.get(f"{ARTICLES}?tags=x")
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["query", "tags"]
    assert (await client.get(f"{ARTICLES}?tags__gt=1")).status_code == 422


async def _root_user(app: FastAPI) -> Any:
    from crudkit.contrib.auth.users import load_user

    root = await create_user(app, "writer", is_staff=True, is_superuser=True)
    async with app.state.db.read() as conn:
        return await load_user(conn, user_id=root)


async def test_the_python_write_api_checks_the_keys_as_the_api_does(
    articles_app: FastAPI, tags: dict[str, int]
) -> None:
    user = await _root_user(articles_app)
    red, secret = tags["red"], tags["secret"]
    for bad in (secret, 10_000):  # hidden or missing: the same refusal
        with pytest.raises(crudkit.Invalid) as refused:
            await crudkit.create(
                Article, {"title": "A", "tags": [red, bad]}, user=user, app=articles_app
            )
        assert refused.value.detail == [
            {
                "loc": ["body", "tags", 1],
                "msg": f"no tags item with key {bad}",
                "type": "value_error",
            }
        ]
    assert await links(articles_app) == []
    assert await history(articles_app, model="article") == []

    row = await crudkit.create(Article, {"title": "B", "tags": [red]}, user=user, app=articles_app)
    with pytest.raises(crudkit.Invalid) as refused:
        await crudkit.update(Article, row.id, {"tags": [red, secret]}, user=user, app=articles_app)
    assert refused.value.detail[0]["loc"] == ["body", "tags", 1]
    assert await links(articles_app) == [(row.id, red)]

    # A trusted caller links what it likes; a key already linked is then sent back freely.
    await crudkit.update(Article, row.id, {"tags": [red, secret]}, app=articles_app, check=False)
    trusted = await crudkit.create(
        Article, {"title": "C", "tags": [secret]}, app=articles_app, check=False
    )
    await crudkit.update(Article, row.id, {"tags": [secret]}, user=user, app=articles_app)
    assert await links(articles_app) == [(row.id, secret), (trusted.id, secret)]


async def test_a_write_without_keys_reads_nothing_more(
    articles_app: FastAPI, client: httpx.AsyncClient, headers: dict[str, str], tags: Any
) -> None:
    created = await client.post(ARTICLES, json={"title": "A", "tags": []}, headers=headers)
    one = f"{ARTICLES}/{created.json()['id']}"
    with count_queries(articles_app) as log:
        assert (await client.patch(one, json={"title": "B"}, headers=headers)).status_code == 200
    assert log.on("test_tag") == []
    with count_queries(articles_app) as log:
        patched = await client.patch(one, json={"tags": []}, headers=headers)
    assert patched.status_code == 200
    assert log.on("test_tag") == []
