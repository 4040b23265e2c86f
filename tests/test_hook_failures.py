"""A validation rule, a hook or an action raising anything but crudkit's errors: a 500
naming the request (its traceback in the log), and nothing written, on every channel;
never a half-done write. crudkit's own errors keep their status."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import insert
from sqlalchemy.engine import Row
from starlette.requests import Request

import crudkit
from crudkit.contrib.auth.models import User
from crudkit.contrib.auth.resources import UserResource
from crudkit.contrib.auth.testing import auth_headers, create_user
from crudkit.db import table_of
from crudkit.testing import database
from tests.admin_support import ORIGIN, delete, history, login, rows, submit
from tests.models import Article, Tag, article_tags

ARTICLES = "/api/v1/articles"

committed: list[str] = []
"""The `on_commit` callbacks that ran, one per hook call."""


def step(name: str, title: str) -> None:
    """A hook's work: a callback for after the commit, and a bug for one title."""
    crudkit.on_commit(lambda: committed.append(f"{name}: {title}"))
    if title == f"fail {name}":
        raise RuntimeError(f"{name} broke")
    if title == f"refuse {name}":
        raise crudkit.Conflict(f"{name} refused it.")
    if title == f"invalid {name}":
        raise crudkit.ValidationError({"title": f"{name} refused it."})


class Count(BaseModel):
    total: int


class TagResource(crudkit.Resource):
    public_read = True


class ArticleResource(crudkit.Resource):
    """Each hook fails for the title naming it (`fail after_create`, say)."""

    public_read = True

    async def validate(
        self, request: Request, values: dict[str, Any], obj: Any = None
    ) -> dict[str, Any]:
        step("validate", values.get("title") or obj.title)
        return values

    async def before_create(self, request: Request, values: dict[str, Any]) -> dict[str, Any]:
        step("before_create", values["title"])
        return values

    async def after_create(self, request: Request, obj: Any) -> None:
        step("after_create", obj.title)

    async def before_update(
        self, request: Request, obj: Any, values: dict[str, Any]
    ) -> dict[str, Any]:
        step("before_update", values.get("title", obj.title))
        return values

    async def after_update(self, request: Request, obj: Any, previous: Any) -> None:
        step("after_update", obj.title)

    async def before_delete(self, request: Request, obj: Any) -> None:
        step("before_delete", obj.title)

    async def after_delete(self, request: Request, obj: Any) -> None:
        step("after_delete", obj.title)

    @crudkit.action(detail=False, methods=["POST"], permission="add")
    async def import_one(self, request: Request) -> Article:
        tag = await crudkit.create(Tag, {"name": "imported"}, request=request)
        row = await crudkit.create(
            Article, {"title": "imported", "tags": [tag.id]}, request=request
        )
        raise RuntimeError(f"the import of {row.id} broke")

    @crudkit.action(detail=True, methods=["POST"], permission="change")
    async def retitle(self, request: Request, obj: Row[Any]) -> Count:
        await crudkit.update(Article, obj.id, {"title": "retitled", "tags": []}, request=request)
        return "not a count"  # type: ignore[return-value]  # the bug: a wrong answer

    @crudkit.action(detail=False, methods=["GET"], permission="view")
    async def stats(self, request: Request) -> Count:
        raise KeyError("total")


@pytest.fixture
async def articles_app(settings: crudkit.Settings) -> AsyncIterator[FastAPI]:
    registry = crudkit.Registry()
    registry.register(User, UserResource)
    registry.register(Tag, TagResource)
    registry.register(Article, ArticleResource)
    app = crudkit.create_app(settings, registry=registry)
    committed.clear()
    yield app
    await app.state.db.dispose()


@pytest.fixture
async def client(articles_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client that gets the app's 500 answers (the error is re-raised after it)."""
    async with articles_app.router.lifespan_context(articles_app):
        transport = httpx.ASGITransport(app=articles_app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as test_client:
            yield test_client


@pytest.fixture
async def headers(articles_app: FastAPI) -> dict[str, str]:
    root = await create_user(articles_app, "root", is_staff=True, is_superuser=True)
    return await auth_headers(articles_app, root)


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The records of crudkit's loggers (which do not propagate to the root logger)."""
    logger = logging.getLogger("crudkit")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.fixture
async def tags(articles_app: FastAPI) -> list[int]:
    async with database(articles_app).transaction() as conn:
        result = await conn.execute(
            insert(table_of(Tag)).returning(table_of(Tag).c.id),
            [{"name": "red"}, {"name": "green"}],
        )
        return [id_ for (id_,) in result]


async def seed(app: FastAPI, title: str, tag_ids: list[int]) -> int:
    """An article linked to `tag_ids`, written without the pipeline (no hook, no history)."""
    async with database(app).transaction() as conn:
        [(article,)] = await conn.execute(
            insert(table_of(Article)).returning(table_of(Article).c.id), [{"title": title}]
        )
        if tag_ids:
            await conn.execute(
                insert(article_tags), [{"article_id": article, "tag_id": t} for t in tag_ids]
            )
    return int(article)


async def links(app: FastAPI) -> list[tuple[int, int]]:
    async with database(app).transaction() as conn:
        result = await conn.execute(article_tags.select().order_by(*article_tags.c))
        return [(int(a), int(t)) for a, t in result]


async def state(app: FastAPI) -> tuple[list[dict[str, Any]], list[tuple[int, int]], int]:
    """What a failed write must leave as it was: the rows, the links, the history."""
    return await rows(app, Article), await links(app), len(await history(app))


def assert_500(response: httpx.Response, request_id: str, logged: pytest.LogCaptureFixture) -> None:
    assert response.status_code == 500, response.text
    assert response.json() == {"detail": "Internal server error.", "request_id": request_id}
    assert response.headers["X-Request-ID"] == request_id
    assert "broke" not in response.text  # never the error's own words
    [record] = [r for r in logged.records if r.exc_info and r.levelno >= logging.ERROR]
    assert getattr(record, "request_id", None) == request_id
    assert record.exc_info is not None
    assert record.exc_info[0] is not None
    assert issubclass(record.exc_info[0], RuntimeError | KeyError | ValueError)
    logged.clear()


CREATE_FAILURES = [
    "fail validates RuntimeError",
    "fail validates KeyError",
    "fail validate",
    "fail before_create",
    "fail after_create",
]


@pytest.mark.parametrize("title", CREATE_FAILURES)
async def test_a_create_whose_hook_fails_is_a_500_and_writes_nothing(
    articles_app: FastAPI,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    tags: list[int],
    logged: pytest.LogCaptureFixture,
    title: str,
) -> None:
    before = await state(articles_app)
    response = await client.post(
        ARTICLES,
        json={"title": title, "tags": tags},
        headers={**headers, "X-Request-ID": "req-create"},
    )
    assert_500(response, "req-create", logged)
    assert await state(articles_app) == before == ([], [], 0)
    assert committed == []


@pytest.mark.parametrize(
    "title",
    [
        "fail validates RuntimeError",
        "fail validates KeyError",
        "fail validate",
        "fail before_update",
        "fail after_update",
    ],
)
async def test_an_update_whose_hook_fails_is_a_500_and_writes_nothing(
    articles_app: FastAPI,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    tags: list[int],
    logged: pytest.LogCaptureFixture,
    title: str,
) -> None:
    red, green = tags
    article = await seed(articles_app, "kept", [red])
    before = await state(articles_app)
    response = await client.patch(
        f"{ARTICLES}/{article}",
        json={"title": title, "tags": [green]},
        headers={**headers, "X-Request-ID": "req-update"},
    )
    assert_500(response, "req-update", logged)
    assert await state(articles_app) == before
    assert before[1] == [(article, red)]
    assert committed == []


@pytest.mark.parametrize("title", ["fail before_delete", "fail after_delete"])
async def test_a_delete_whose_hook_fails_is_a_500_and_deletes_nothing(
    articles_app: FastAPI,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    tags: list[int],
    logged: pytest.LogCaptureFixture,
    title: str,
) -> None:
    article = await seed(articles_app, title, tags)
    before = await state(articles_app)
    response = await client.delete(
        f"{ARTICLES}/{article}", headers={**headers, "X-Request-ID": "req-delete"}
    )
    assert_500(response, "req-delete", logged)
    assert await state(articles_app) == before
    assert len(before[1]) == 2
    assert committed == []


async def test_a_write_that_does_not_fail_runs_its_hooks_and_callbacks(
    articles_app: FastAPI, client: httpx.AsyncClient, headers: dict[str, str], tags: list[int]
) -> None:
    # The hooks above fail for one title only: any other is written, callbacks run.
    created = await client.post(ARTICLES, json={"title": "fine", "tags": tags}, headers=headers)
    assert created.status_code == 201, created.text
    assert committed == ["validate: fine", "before_create: fine", "after_create: fine"]
    assert len(await links(articles_app)) == 2
    assert len(await history(articles_app)) == 1


@pytest.mark.parametrize(
    ("title", "status"),
    [
        ("refuse before_create", 409),
        ("refuse after_create", 409),
        ("invalid validate", 422),
        ("invalid after_create", 422),
    ],
)
async def test_a_hook_raising_a_crudkit_error_keeps_its_status(
    articles_app: FastAPI,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    tags: list[int],
    title: str,
    status: int,
) -> None:
    response = await client.post(ARTICLES, json={"title": title, "tags": tags}, headers=headers)
    assert response.status_code == status, response.text
    assert "refused it" in response.text
    assert await state(articles_app) == ([], [], 0)
    assert committed == []


async def test_the_python_write_api_raises_the_error_and_writes_nothing(
    articles_app: FastAPI, tags: list[int]
) -> None:
    for title in CREATE_FAILURES:
        with pytest.raises((RuntimeError, KeyError)):
            await crudkit.create(
                Article, {"title": title, "tags": tags}, app=articles_app, check=False
            )
    article = await seed(articles_app, "kept", tags[:1])
    before = await state(articles_app)
    with pytest.raises(RuntimeError, match="after_update broke"):
        await crudkit.update(
            Article,
            article,
            {"title": "fail after_update", "tags": []},
            app=articles_app,
            check=False,
        )
    assert await state(articles_app) == before
    assert committed == []


async def test_an_action_failing_after_a_write_is_a_500_and_writes_nothing(
    articles_app: FastAPI,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    tags: list[int],
    logged: pytest.LogCaptureFixture,
) -> None:
    tag_rows = await rows(articles_app, Tag)
    response = await client.post(
        f"{ARTICLES}/import_one", headers={**headers, "X-Request-ID": "req-action"}
    )
    assert_500(response, "req-action", logged)
    assert await state(articles_app) == ([], [], 0)
    assert await rows(articles_app, Tag) == tag_rows
    assert committed == []

    # An answer that does not fit the action's annotation fails it before the commit.
    article = await seed(articles_app, "kept", tags)
    before = await state(articles_app)
    response = await client.post(
        f"{ARTICLES}/{article}/retitle", headers={**headers, "X-Request-ID": "req-answer"}
    )
    assert_500(response, "req-answer", logged)
    assert await state(articles_app) == before
    assert committed == []


async def test_a_get_action_failing_is_a_500(
    client: httpx.AsyncClient, headers: dict[str, str], logged: pytest.LogCaptureFixture
) -> None:
    response = await client.get(f"{ARTICLES}/stats", headers={**headers, "X-Request-ID": "req-get"})
    assert_500(response, "req-get", logged)


def assert_error_page(
    response: httpx.Response, request_id: str, logged: pytest.LogCaptureFixture
) -> None:
    assert response.status_code == 500, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["X-Request-ID"] == request_id
    assert "Something went wrong" in response.text
    assert request_id in response.text
    assert "broke" not in response.text
    assert "Traceback" not in response.text
    assert any(
        r.exc_info and r.exc_info[0] is RuntimeError and r.name == "crudkit.admin"
        for r in logged.records
    )
    logged.clear()


async def test_an_admin_save_whose_hook_fails_is_the_error_page_and_writes_nothing(
    articles_app: FastAPI,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    tags: list[int],
    logged: pytest.LogCaptureFixture,
) -> None:
    assert (await login(client, "root")).status_code == 302
    red, green = tags

    for title in ("fail validate", "fail before_create", "fail after_create"):
        response = await submit(
            client,
            "/admin/article/create",
            {"title": title, "tags": [str(red), str(green)]},
        )
        assert_error_page(response, response.headers["X-Request-ID"], logged)
        assert await state(articles_app) == ([], [], 0)

    article = await seed(articles_app, "kept", [red])
    before = await state(articles_app)
    for title in ("fail before_update", "fail after_update"):
        token_page = f"/admin/article/edit/{article}"
        response = await submit(
            client,
            token_page,
            {"title": title, "tags": [str(green)]},
            form_page=token_page,
        )
        assert_error_page(response, response.headers["X-Request-ID"], logged)
        assert await state(articles_app) == before

    doomed = await seed(articles_app, "fail after_delete", [green])
    before = await state(articles_app)
    response = await delete(client, "article", doomed)
    assert_error_page(response, response.headers["X-Request-ID"], logged)
    assert await state(articles_app) == before
    assert committed == []

    # A crudkit error is still a message on the form.
    refused = await submit(
        client, "/admin/article/create", {"title": "invalid validate", "tags": [str(red)]}
    )
    assert refused.status_code == 400
    assert "validate refused it." in refused.text
    assert await state(articles_app) == before
