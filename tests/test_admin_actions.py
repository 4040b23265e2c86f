"""Admin actions (`@crudkit.action(admin=True)`): offered and checked as the API checks
them, run on one row or on the rows ticked, all or none, on POST with the CSRF token;
and computed fields shown read-only on the list and details pages."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel
from sqlalchemy.engine import Row

import crudkit
from crudkit.contrib.admin.models import LogEntry
from crudkit.contrib.auth.models import User
from crudkit.contrib.auth.resources import UserResource
from crudkit.testing import client_for, count_queries
from tests.admin_support import ORIGIN, insert, page_token, rows, staff
from tests.models import Crate, Gadget, Note
from tests.test_computed_fields import CrateResource, seed

FEATURE = "/admin/gadget/action/mark-featured"
MARK_SEEN = "/admin/gadget/action/mark-seen"


class GadgetResource(crudkit.Resource):
    owner_field = "owner_id"
    extra_permissions = [("feature", "Can feature gadgets")]

    @crudkit.action(detail=True, methods=["POST"], permission="feature", admin=True)
    async def mark_featured(self, request: Request, obj: Row[Any]) -> Gadget:
        await crudkit.update(Gadget, obj.id, {"rating": 5}, request=request, check=False)
        if obj.name.startswith("locked"):  # after the write: it must be rolled back
            raise crudkit.Conflict("A locked gadget cannot be featured.")
        return await crudkit.update(Gadget, obj.id, {"count": 1}, request=request, check=False)  # type: ignore[return-value]

    @crudkit.action(detail=True, methods=["POST"], permission="change", admin=True)
    async def mark_seen(self, request: Request, obj: Row[Any]) -> None:
        await crudkit.update(Gadget, obj.id, {"notes": "seen"}, request=request)

    @crudkit.action(detail=True, methods=["POST"], permission="change")
    async def api_only(self, request: Request, obj: Row[Any]) -> None:
        """Not offered in the admin."""


@pytest.fixture
async def app(settings: crudkit.Settings) -> AsyncIterator[FastAPI]:
    registry = crudkit.Registry()
    registry.register(User, UserResource)
    registry.register(Gadget, GadgetResource)
    registry.register(Crate, CrateResource)
    app = crudkit.create_app(settings, registry=registry)
    yield app
    await app.state.db.dispose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as test_client:
        yield test_client


async def run(client: httpx.AsyncClient, url: str, *pks: int) -> httpx.Response:
    """The admin's script posting an action: the page's token in the form."""
    token = await page_token(client, "/admin/gadget/list")
    return await client.post(
        url,
        params={"pks": ",".join(map(str, pks))},
        data={"csrf_token": token},
        headers={"Origin": ORIGIN},
    )


async def gadget(app: FastAPI, name: str, owner: int | None = None) -> int:
    return await insert(app, Gadget, name=name, owner_id=owner)


async def values(app: FastAPI, *ids: int) -> list[tuple[Any, Any, Any]]:
    found = {row["id"]: row for row in await rows(app, Gadget)}
    return [(found[i]["rating"], found[i]["count"], found[i]["notes"]) for i in ids]


def toast(page: httpx.Response) -> str:
    match = re.search(r'<div class="toast-body">(.*?)</div>', page.text, re.S)
    assert match, "no message on the page"
    return match.group(1).strip().replace("&#39;", "'")


async def test_a_superuser_runs_an_action_on_one_row_and_on_several(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    root = await staff(app, client, "root", superuser=True)
    one, two, three = [await gadget(app, name) for name in ("lamp", "desk", "sofa")]

    details = await client.get(f"/admin/gadget/details/{one}")
    assert details.status_code == 200
    assert f'content="http://testserver{FEATURE}"' in details.text  # posted by the script
    assert f"{FEATURE}?pks={one}" in details.text
    assert ">\n              Mark featured" in details.text
    assert "Mark seen" in details.text
    assert "api-only" not in details.text
    listed = await client.get("/admin/gadget/list")
    assert f'data-url="http://testserver{FEATURE}"' in listed.text

    done = await run(client, FEATURE, one)
    assert done.status_code == 302
    assert done.headers["location"] == f"http://testserver/admin/gadget/details/{one}"
    assert "Mark featured: done on 1 gadget." in toast(await client.get(done.headers["location"]))
    assert await values(app, one, two) == [(5, 1, None), (None, 0, None)]

    several = await run(client, MARK_SEEN, two, three)
    assert several.status_code == 302
    assert several.headers["location"] == "http://testserver/admin/gadget/list"
    assert "Mark seen: done on 2 gadgets." in toast(await client.get("/admin/gadget/list"))
    assert await values(app, one, two, three) == [
        (5, 1, None),
        (None, 0, "seen"),
        (None, 0, "seen"),
    ]

    entries = await rows(app, LogEntry, model="gadget")
    assert [(e["object_id"], e["action"], e["user_id"], e["channel"]) for e in entries] == [
        (str(one), "update", root, "admin"),
        (str(one), "update", root, "admin"),
        (str(two), "update", root, "admin"),
        (str(three), "update", root, "admin"),
    ]


async def test_one_failing_row_leaves_every_row_unchanged(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(app, client, "root", superuser=True)
    first = await gadget(app, "lamp")
    locked = await gadget(app, "locked desk")

    refused = await run(client, FEATURE, first, locked)

    assert refused.status_code == 302
    assert refused.headers["location"] == "http://testserver/admin/gadget/list"
    message = toast(await client.get("/admin/gadget/list"))
    assert message == (
        f"Mark featured was not done on gadget #{locked}: A locked gadget cannot be featured. "
        "Nothing was changed."
    )
    assert await values(app, first, locked) == [(None, 0, None), (None, 0, None)]
    assert await rows(app, LogEntry, model="gadget") == []

    alone = await run(client, FEATURE, locked)  # back to the row's page
    assert alone.headers["location"] == f"http://testserver/admin/gadget/details/{locked}"


async def test_staff_without_the_permission_are_not_offered_the_action(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    carol = await staff(app, client, "carol")
    mine = await gadget(app, "lamp", carol)

    details = await client.get(f"/admin/gadget/details/{mine}")
    assert details.status_code == 200
    assert f"{FEATURE}?pks=" not in details.text  # not theirs to run
    assert f"{MARK_SEEN}?pks={mine}" in details.text  # their own row: they may change it
    listed = await client.get("/admin/gadget/list")
    assert f'data-url="http://testserver{FEATURE}"' not in listed.text

    refused = await run(client, FEATURE, mine)
    assert refused.status_code == 403
    assert await values(app, mine) == [(None, 0, None)]


async def test_rows_out_of_scope_are_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    editor = await staff(app, client, "editor", "tests.feature_gadget")
    mine = await gadget(app, "lamp", editor)
    theirs = await gadget(app, "desk", None)

    refused = await run(client, FEATURE, mine, theirs)
    assert refused.status_code == 302
    message = toast(await client.get("/admin/gadget/list"))
    assert message.startswith(f"Mark featured was not done on gadget #{theirs}: it does not exist")
    assert await values(app, mine, theirs) == [(None, 0, None), (None, 0, None)]
    alone = await run(client, FEATURE, theirs)  # its page would be a 404: back to the list
    assert alone.headers["location"] == "http://testserver/admin/gadget/list"
    # Changing it needs ownership or the change permission, as in the API.
    other = await run(client, MARK_SEEN, theirs)
    assert "it does not exist" in toast(await client.get("/admin/gadget/list"))
    assert other.status_code == 302

    done = await run(client, FEATURE, mine)
    assert done.status_code == 302
    assert await values(app, mine) == [(5, 1, None)]


async def test_actions_need_a_post_with_the_token(app: FastAPI, client: httpx.AsyncClient) -> None:
    await staff(app, client, "root", superuser=True)
    one = await gadget(app, "lamp")

    link = await client.get(FEATURE, params={"pks": str(one)})
    assert link.status_code == 405
    forged = await client.post(FEATURE, params={"pks": str(one)}, headers={"Origin": ORIGIN})
    assert forged.status_code == 403
    elsewhere = await client.post(
        FEATURE,
        params={"pks": str(one)},
        data={"csrf_token": await page_token(client, "/admin/gadget/list")},
        headers={"Origin": "http://evil.example"},
    )
    assert elsewhere.status_code == 403
    assert await values(app, one) == [(None, 0, None)]


async def test_the_chosen_rows_are_checked(app: FastAPI, client: httpx.AsyncClient) -> None:
    await staff(app, client, "root", superuser=True)
    assert (await run(client, FEATURE)).status_code == 400
    assert (await run(client, FEATURE, *range(1, 1002))).status_code == 400  # page_size_max
    token = await page_token(client, "/admin/gadget/list")
    malformed = await client.post(
        FEATURE, params={"pks": "x"}, data={"csrf_token": token}, headers={"Origin": ORIGIN}
    )
    assert malformed.status_code == 404


class NoteIn(BaseModel):
    text: str


def _refused(settings: crudkit.Settings, resource: type[crudkit.Resource], match: str) -> None:
    registry = crudkit.Registry()
    registry.register(User, UserResource)
    registry.register(Note, resource)
    with pytest.raises(crudkit.ImproperlyConfigured, match=match):
        crudkit.create_app(settings, registry=registry)


def test_list_actions_and_actions_with_a_body_are_refused_in_the_admin(
    settings: crudkit.Settings,
) -> None:
    class ListNoteResource(crudkit.Resource):
        @crudkit.action(detail=False, methods=["POST"], admin=True)
        async def purge(self, request: Request) -> None: ...

    class BodyNoteResource(crudkit.Resource):
        @crudkit.action(detail=True, methods=["POST"], admin=True)
        async def retext(self, request: Request, obj: Row[Any], body: NoteIn) -> None: ...

    class AdminOnlyNoteResource(crudkit.Resource):
        api = False

        @crudkit.action(detail=False, methods=["POST"], admin=True)
        async def purge(self, request: Request) -> None: ...

    _refused(settings, ListNoteResource, r"ListNoteResource\.purge: admin=True needs detail=True")
    _refused(settings, BodyNoteResource, r"BodyNoteResource\.retext: admin=True takes no body")
    _refused(settings, AdminOnlyNoteResource, r"AdminOnlyNoteResource\.purge: admin=True needs")
    with pytest.raises(crudkit.ImproperlyConfigured, match=r"admin=\.\.\.\) must be True or False"):
        crudkit.action(detail=True, admin="yes")  # type: ignore[arg-type]


# Computed fields.


async def test_computed_fields_are_listed_and_detailed_read_only(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await staff(app, client, "root", superuser=True)
    alder, _ = await seed(app, [("alder", "2.50", 4, 3), ("birch", "1.00", 1, 0)])

    listed = await client.get("/admin/crate/list", params={"sortBy": "bottle_count"})
    assert listed.status_code == 200, listed.text
    for label in ("Bottle count", "Total", "Display price"):
        assert f"{label}" in listed.text
    assert "2.50 EUR" in listed.text
    assert "10.00" in listed.text
    assert listed.text.index("birch") < listed.text.index("alder")  # by bottle count
    assert "sortBy=bottle_count" in listed.text
    assert "sortBy=total" in listed.text
    assert "sortBy=display_price" not in listed.text  # computed in Python: not sortable

    details = await client.get(f"/admin/crate/details/{alder}")
    assert details.status_code == 200
    cells = re.sub(r"\s+", " ", details.text)
    assert "<td>Bottle count</td> <td>3</td>" in cells
    assert "<td>Total</td> <td>10.00</td>" in cells
    assert "<td>Display price</td> <td>2.50 EUR</td>" in cells

    form = await client.get(f"/admin/crate/edit/{alder}")
    assert form.status_code == 200
    for key in ("bottle_count", "total", "display_price"):
        assert f'name="{key}"' not in form.text


async def test_the_list_runs_no_query_per_row(app: FastAPI, client: httpx.AsyncClient) -> None:
    await staff(app, client, "root", superuser=True)
    await seed(app, [("alder", "1", 1, 1)])
    with count_queries(app) as few:
        assert (await client.get("/admin/crate/list")).status_code == 200
    await seed(app, [(f"crate {n}", "1", 2, 2) for n in range(8)])
    with count_queries(app) as many:
        page = await client.get("/admin/crate/list")
    assert page.status_code == 200
    assert "crate 7" in page.text
    assert len(many.statements) == len(few.statements)
