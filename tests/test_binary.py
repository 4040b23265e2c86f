"""Binary columns: base64 text in JSON both ways (`format: byte`), whatever the bytes, and
base64 text in the admin's form; never a 500 or a raw SQL error."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate

import crudkit
from crudkit.contrib.auth.models import User
from crudkit.contrib.auth.resources import UserResource
from crudkit.contrib.auth.testing import auth_headers, create_user
from crudkit.testing import client_for
from tests.admin_support import form_version, history, insert, login, rows, submit
from tests.conftest import Caller
from tests.models import Attachment

PATH = "/api/v1/attachments"
NOT_UTF8 = b"\xff\xfe\x00\x80binary\xc3\x28"
OTHER = bytes(range(256))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class AttachmentResource(crudkit.Resource):
    public_read = True
    search_fields = ["name"]
    filter_fields = ["name"]
    ordering_fields = ["name"]


@pytest.fixture
async def attachments_app(settings: crudkit.Settings) -> AsyncIterator[FastAPI]:
    registry = crudkit.Registry()
    registry.register(User, UserResource)
    registry.register(Attachment, AttachmentResource)
    app = crudkit.create_app(settings, registry=registry)
    yield app
    await app.state.db.dispose()


@pytest.fixture
async def client(attachments_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(attachments_app) as test_client:
        yield test_client


@pytest.fixture
async def root(attachments_app: FastAPI) -> Caller:
    user_id = await create_user(attachments_app, "root", is_staff=True, is_superuser=True)
    return Caller(user_id, await auth_headers(attachments_app, user_id))


async def test_bytes_that_are_not_utf8_round_trip_as_base64(
    attachments_app: FastAPI, client: httpx.AsyncClient, root: Caller
) -> None:
    created = await client.post(
        PATH, json={"name": "raw", "data": b64(NOT_UTF8)}, headers=root.headers
    )
    assert created.status_code == 201, created.text
    assert created.json()["data"] == b64(NOT_UTF8)
    assert created.json()["thumbnail"] is None
    [row] = await rows(attachments_app, Attachment)
    assert row["data"] == NOT_UTF8  # the bytes, not their base64 text

    item = created.headers["location"]
    retrieved = await client.get(item)
    assert retrieved.status_code == 200, retrieved.text
    assert retrieved.json() == created.json()
    assert (
        await client.get(item, headers={"If-None-Match": retrieved.headers["etag"]})
    ).status_code == 304

    patched = await client.patch(
        item, json={"data": b64(OTHER), "thumbnail": b64(b"")}, headers=root.headers
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["data"], patched.json()["thumbnail"]) == (b64(OTHER), "")
    [row] = await rows(attachments_app, Attachment)
    assert (row["data"], row["thumbnail"]) == (OTHER, b"")

    listed = await client.get(PATH, params={"search": "ra", "ordering": "-name"})
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"] == [patched.json()]
    [entry] = [e for e in await history(attachments_app) if e["action"] == "update"]
    assert entry["changes"]["data"] == ["<12 bytes>", "<256 bytes>"]


async def test_rows_written_elsewhere_are_read_whatever_their_bytes(
    attachments_app: FastAPI, client: httpx.AsyncClient
) -> None:
    first = await insert(attachments_app, Attachment, name="a", data=NOT_UTF8, thumbnail=OTHER)
    await insert(attachments_app, Attachment, name="b", data=b"\x80")

    retrieved = await client.get(f"{PATH}/{first}")
    assert retrieved.status_code == 200, retrieved.text
    assert retrieved.json()["data"] == b64(NOT_UTF8)
    assert base64.b64decode(retrieved.json()["thumbnail"]) == OTHER

    listed = await client.get(PATH)
    assert listed.status_code == 200, listed.text
    assert [item["data"] for item in listed.json()["items"]] == [b64(NOT_UTF8), "gA=="]


@pytest.mark.parametrize(
    "value",
    [
        "not base64!",
        "_w==",  # the URL-safe alphabet
        "/w",  # padding left out
        "/w==\n",
        123,
        ["AA=="],
    ],
)
async def test_invalid_base64_is_422_on_the_field(
    attachments_app: FastAPI, client: httpx.AsyncClient, root: Caller, value: Any
) -> None:
    refused = await client.post(PATH, json={"name": "x", "data": value}, headers=root.headers)
    assert refused.status_code == 422, refused.text
    assert [error["loc"] for error in refused.json()["detail"]] == [["body", "data"]]

    item = await insert(attachments_app, Attachment, name="kept", data=b"kept")
    refused = await client.patch(f"{PATH}/{item}", json={"thumbnail": value}, headers=root.headers)
    assert refused.status_code == 422, refused.text
    assert [error["loc"] for error in refused.json()["detail"]] == [["body", "thumbnail"]]
    assert [row["thumbnail"] for row in await rows(attachments_app, Attachment)] == [None]


async def test_the_python_write_api_takes_bytes_or_base64_text(
    attachments_app: FastAPI,
) -> None:
    row = await crudkit.create(
        Attachment, {"name": "a", "data": NOT_UTF8}, check=False, app=attachments_app
    )
    assert row.data == NOT_UTF8
    row = await crudkit.update(
        Attachment, row.id, {"data": b64(OTHER)}, check=False, app=attachments_app
    )
    assert row.data == OTHER


async def test_openapi_documents_binary_columns_as_base64_strings(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    validate(document)
    schemas = document["components"]["schemas"]
    byte = {"type": "string", "format": "byte"}
    assert schemas["AttachmentOut"]["properties"]["data"] == {**byte, "title": "Data"}
    assert schemas["AttachmentCreate"]["properties"]["data"] == {**byte, "title": "Data"}
    assert {"anyOf": [byte, {"type": "null"}]}.items() <= schemas["AttachmentOut"]["properties"][
        "thumbnail"
    ].items()


@pytest.mark.parametrize("option", ["search_fields", "filter_fields", "ordering_fields"])
def test_register_refuses_searching_filtering_or_ordering_by_binary_columns(option: str) -> None:
    resource = type("BadResource", (crudkit.Resource,), {option: ["data"]})
    with pytest.raises(crudkit.ImproperlyConfigured, match=rf"{option}: 'data' is a binary column"):
        crudkit.Registry().register(Attachment, resource)


# The admin: base64 text in a textarea, sizes in lists.

_TEXTAREA = re.compile(r'<textarea[^>]*name="data"[^>]*>(.*?)</textarea>', re.DOTALL)


async def test_admin_edits_binary_columns_as_base64_text(
    attachments_app: FastAPI, client: httpx.AsyncClient
) -> None:
    await create_user(attachments_app, "root", is_staff=True, is_superuser=True)
    assert (await login(client, "root")).status_code == 302

    created = await submit(
        client, "/admin/attachment/create", {"name": "raw", "data": b64(NOT_UTF8)}
    )
    assert created.status_code == 302, created.text
    [row] = await rows(attachments_app, Attachment)
    assert (row["data"], row["thumbnail"]) == (NOT_UTF8, None)

    listed = await client.get("/admin/attachment/list")
    assert listed.status_code == 200
    assert "12 bytes" in listed.text
    assert "\\xff" not in listed.text
    details = await client.get(f"/admin/attachment/details/{row['id']}")
    assert "12 bytes" in details.text

    edit = f"/admin/attachment/edit/{row['id']}"
    page = await client.get(edit)
    assert page.status_code == 200
    match = _TEXTAREA.search(page.text)
    assert match, page.text
    assert html.unescape(match.group(1)).strip() == b64(NOT_UTF8)

    wrapped = "\n".join(re.findall(".{1,76}", b64(OTHER)))  # as a MIME encoder writes it
    saved = await submit(
        client,
        edit,
        {"name": "raw", "data": wrapped, "crudkit_version": await form_version(client, edit)},
        form_page=edit,
    )
    assert saved.status_code == 302, saved.text
    [row] = await rows(attachments_app, Attachment)
    assert row["data"] == OTHER


async def test_admin_refuses_invalid_base64_on_the_field(
    attachments_app: FastAPI, client: httpx.AsyncClient
) -> None:
    await create_user(attachments_app, "root", is_staff=True, is_superuser=True)
    assert (await login(client, "root")).status_code == 302
    item = await insert(attachments_app, Attachment, name="kept", data=NOT_UTF8)
    edit = f"/admin/attachment/edit/{item}"

    for path, data in (
        ("/admin/attachment/create", {"name": "new", "data": "b'\\xff'"}),
        (edit, {"name": "kept", "data": "not base64!", "thumbnail": "%%%"}),
    ):
        if path == edit:
            data["crudkit_version"] = await form_version(client, edit)
        response = await submit(client, path, data, form_page=path)
        assert response.status_code == 400, response.text
        assert "Not valid base64 text." in response.text
        assert "SQL" not in response.text
        assert "memoryview" not in response.text
    assert [
        (r["name"], r["data"], r["thumbnail"]) for r in await rows(attachments_app, Attachment)
    ] == [("kept", NOT_UTF8, None)]
