"""`/openapi.json`: valid OpenAPI 3.1, stable operation ids, and responses that match it.

The document is checked with `openapi-spec-validator` for the example project and
for an app serving the test models (their column types, a string primary key, a
private resource, an expandable relation). Then a sample of real requests (list,
retrieve, create, update, delete and the error statuses) is checked against what
the document says of that operation: the status is documented, the documented
headers are sent, and the body validates against the documented schema.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from sqlalchemy import Column, DateTime, Integer, Interval, func

import crudkit
from crudkit.contrib.auth.testing import auth_headers, create_user
from crudkit.fields import describe_column
from crudkit.openapi import with_article
from crudkit.schemas import build_create_schema, build_update_schema
from crudkit.testing import client_for, create_tables
from tests.conftest import Caller
from tests.models import Code, Gadget, Note, Shelf, ShelfItem

PRODUCTS = "/api/v1/products"
DOCUMENT = "urn:crudkit:openapi"


class Conformance:
    """Checks responses against the document `client` serves."""

    def __init__(self, client: httpx.AsyncClient, document: dict[str, Any]) -> None:
        self.client = client
        self.document = document
        # Schemas are looked up in the document, so `#/components/...` resolves within it.
        self.registry: Registry[Any] = Registry().with_resource(
            DOCUMENT, DRAFT202012.create_resource(document)
        )

    @classmethod
    async def of(cls, client: httpx.AsyncClient) -> Conformance:
        response = await client.get("/openapi.json")
        assert response.status_code == 200
        return cls(client, response.json())

    async def request(
        self, method: str, template: str, path: str | None = None, **options: Any
    ) -> httpx.Response:
        """Send `method` to `path` (default: `template`), then check the answer against the
        operation documented at `template`."""
        response = await self.client.request(method, path or template, **options)
        self.check(method.lower(), template, response)
        return response

    def check(self, method: str, template: str, response: httpx.Response) -> None:
        where = f"{method.upper()} {template} -> {response.status_code}"
        operation = self.document["paths"][template][method]
        documented = operation["responses"].get(str(response.status_code))
        assert documented is not None, f"{where}: status not documented ({response.text})"
        for header in documented.get("headers", {}):
            assert header.lower() in response.headers, f"{where}: no {header} header"
        content = documented.get("content")
        if not content:
            assert response.content == b"", f"{where}: a body where none is documented"
            return
        media_type = response.headers["content-type"].split(";")[0]
        assert media_type in content, f"{where}: {media_type} not documented"
        pointer = "/".join(
            part.replace("~", "~0").replace("/", "~1")
            for part in ("paths", template, method, "responses", str(response.status_code),
                         "content", media_type, "schema")
        )  # fmt: skip
        validator = Draft202012Validator(
            {"$ref": f"{DOCUMENT}#/{pointer}"},
            registry=self.registry,
            format_checker=FormatChecker(),
        )
        errors = [
            f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator.iter_errors(response.json())
        ]
        assert not errors, f"{where}: {errors}\n{response.text}"


def operation_ids(document: dict[str, Any], template: str) -> dict[str, str]:
    return {
        method: operation["operationId"]
        for method, operation in document["paths"][template].items()
    }


def assert_crud_operation_ids(document: dict[str, Any], base: str) -> None:
    name = base.rsplit("/", 1)[-1]
    assert operation_ids(document, base) == {"get": f"{name}_list", "post": f"{name}_create"}
    assert operation_ids(document, base + "/{id}") == {
        "get": f"{name}_retrieve",
        "patch": f"{name}_update",
        "delete": f"{name}_delete",
    }


def assert_valid(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    validate(document)
    every_id = [
        operation["operationId"]
        for path in document["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict)
    ]
    assert len(every_id) == len(set(every_id)), "operation ids must be unique"


# The example project.


async def test_example_document_is_valid_openapi_with_stable_operation_ids(
    client: httpx.AsyncClient,
) -> None:
    document = (await Conformance.of(client)).document
    assert_valid(document)
    for base in (PRODUCTS, "/api/v1/categories", "/api/v1/orders"):
        assert_crud_operation_ids(document, base)
    update = document["components"]["schemas"]["ProductUpdate"]
    # PATCH: an omitted key keeps its value; no default is claimed for it.
    assert all("default" not in field for field in update["properties"].values())
    out = document["components"]["schemas"]["ProductOut"]
    assert set(out["required"]) == set(out["properties"])  # null or not, always sent


def test_summaries_take_the_article_their_noun_is_said_with() -> None:
    assert [with_article(noun) for noun in ("order", "product", "item", "user", "unit")] == [
        "an order", "a product", "an item", "a user", "a unit",
    ]  # fmt: skip
    assert [with_article(noun) for noun in ("hour", "house", "one-off", "umbrella")] == [
        "an hour", "a house", "a one-off", "an umbrella",
    ]  # fmt: skip


async def test_example_document_speaks_of_each_resource(client: httpx.AsyncClient) -> None:
    document = (await Conformance.of(client)).document
    orders, one = document["paths"]["/api/v1/orders"], document["paths"]["/api/v1/orders/{id}"]
    assert orders["get"]["summary"] == "List orders"
    assert orders["post"]["summary"] == "Create an order"
    assert [one[m]["summary"] for m in ("get", "patch", "delete")] == [
        "Retrieve an order", "Update an order", "Delete an order",
    ]  # fmt: skip
    assert document["paths"]["/api/v1/orders/{id}/cancel"]["post"]["summary"] == "Cancel an order"
    assert document["paths"][PRODUCTS]["post"]["summary"] == "Create a product"
    for path, tag in ((PRODUCTS, "Products"), ("/api/v1/categories", "Categories")):
        for operation in (
            *document["paths"][path].values(),
            *document["paths"][path + "/{id}"].values(),
        ):
            assert operation["tags"] == [tag]

    parameters = {p["name"]: p for p in document["paths"][PRODUCTS]["get"]["parameters"]}
    ordering = parameters["ordering"]
    assert (ordering["style"], ordering["explode"]) == ("form", False)
    assert ordering["schema"]["items"]["enum"] == [
        "price", "-price", "name", "-name", "created_at", "-created_at",
    ]  # fmt: skip
    assert parameters["fields"]["schema"]["items"]["enum"][:2] == ["id", "name"]
    assert parameters["in_stock"]["schema"] == {"type": "boolean"}  # typed by column

    # Request bodies come with an example that is a valid body: the columns' own
    # `examples` (Product's name and price), else a value of the field's type.
    registry: Registry[Any] = Registry().with_resource(
        DOCUMENT, DRAFT202012.create_resource(document)
    )
    examples = {}
    bodies = [
        (PRODUCTS, "post"), (PRODUCTS + "/{id}", "patch"),
        ("/api/v1/orders", "post"), ("/api/v1/categories", "post"),
    ]  # fmt: skip
    for template, method in bodies:
        body = document["paths"][template][method]["requestBody"]["content"]["application/json"]
        ref = body["schema"]["$ref"]
        Draft202012Validator({"$ref": DOCUMENT + ref}, registry=registry).validate(body["example"])
        examples[ref.rsplit("/", 1)[-1]] = body["example"]
    assert examples["ProductCreate"]["name"] == "Desk lamp"
    assert examples["ProductCreate"]["price"] == "19.90"
    assert examples["OrderCreate"]["quantity"] == 1  # within the column's 1..1000
    assert examples["CategoryCreate"] == {"name": "string"}


async def test_example_responses_match_the_document(
    client: httpx.AsyncClient, alice: Caller, bob: Caller, superuser: Caller
) -> None:
    api = await Conformance.of(client)
    one = PRODUCTS + "/{id}"
    category = await api.request(
        "POST", "/api/v1/categories", json={"name": "Lamps"}, headers=superuser.headers
    )
    assert category.status_code == 201
    body = {"name": "Desk lamp", "price": "19.90", "category_id": category.json()["id"]}
    created = await api.request("POST", PRODUCTS, json=body, headers=alice.headers)
    assert created.status_code == 201
    product = created.json()
    url = f"{PRODUCTS}/{product['id']}"
    shade = {"name": "Shade", "price": 3}
    plain = await api.request("POST", PRODUCTS, json=shade, headers=alice.headers)
    assert plain.json()["description"] is None  # nullable columns are sent as null

    ordered = {"ordering": "-price", "limit": 1}
    listed = await api.request("GET", PRODUCTS, params=ordered)
    cursor = listed.json()["next_cursor"]
    page = await api.request("GET", PRODUCTS, params={**ordered, "cursor": cursor})
    assert page.status_code == 200
    assert page.json()["total"] is None  # not counted on cursor pages
    expanded = await api.request("GET", PRODUCTS, params={"expand": "category", "in_stock": "true"})
    assert expanded.json()["items"][0]["category"]["name"] == "Lamps"
    retrieved = await api.request("GET", one, url, params={"expand": "category"})
    assert retrieved.status_code == 200
    etag = retrieved.headers["etag"]
    not_modified = await api.request("GET", one, url, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304

    updated = await api.request(
        "PATCH", one, url, json={"price": "21.00", "description": None}, headers=alice.headers
    )
    assert updated.status_code == 200
    stale = await api.request(
        "PATCH", one, url, json={"name": "x"}, headers={**alice.headers, "If-Match": etag}
    )
    assert stale.status_code == 412

    for response in (
        await api.request("PATCH", one, url, json={"price": -1}, headers=alice.headers),
        await api.request("PATCH", one, url, json={"name": None}, headers=alice.headers),
        await api.request("POST", PRODUCTS, json={"price": "1", "x": 1}, headers=alice.headers),
        await api.request("GET", PRODUCTS, params={"nope": "1"}),
        await api.request("GET", one, f"{PRODUCTS}/not-a-number"),
    ):
        assert response.status_code == 422, response.text
    assert (await api.request("POST", PRODUCTS, json=body)).status_code == 401
    assert (await api.request("DELETE", one, url, headers=bob.headers)).status_code == 403
    assert (await api.request("GET", one, f"{PRODUCTS}/999999")).status_code == 404
    assert (await api.request("GET", "/api/v1/orders", headers=alice.headers)).status_code == 200
    assert (await api.request("DELETE", one, url, headers=alice.headers)).status_code == 204


# The test models: every column type the schema builder maps.


def models_registry() -> crudkit.Registry:
    registry = crudkit.Registry()

    @registry.register(Gadget)
    class GadgetResource(crudkit.Resource):
        owner_field = "owner_id"
        public_read = True
        ordering_fields = ["rating", "name"]
        filter_fields = ["colour", "released", "token", "active", "weight", "seen_at"]
        search_fields = ["name"]
        write_only_fields = ["secret"]

    @registry.register(Shelf)
    class ShelfResource(crudkit.Resource):
        public_read = True
        path = "shelves"

    @registry.register(ShelfItem)
    class ShelfItemResource(crudkit.Resource):
        owner_field = "owner_id"

    registry.register(Note)
    registry.register(Code)
    return registry


@pytest.fixture
async def models_app(settings: crudkit.Settings) -> AsyncIterator[FastAPI]:
    app = crudkit.create_app(settings, registry=models_registry())
    await create_tables(app)
    try:
        yield app
    finally:
        await app.state.db.dispose()


async def test_models_document_is_valid_openapi(models_app: FastAPI) -> None:
    async with client_for(models_app) as client:
        document = (await Conformance.of(client)).document
    assert_valid(document)
    for resource in models_app.state.apps.resources:
        assert_crud_operation_ids(document, "/api/v1" + resource.path_segment)
    schemas = document["components"]["schemas"]
    gadget = schemas["GadgetCreate"]["properties"]
    assert gadget["count"]["default"] == 0
    assert gadget["colour"]["default"] == "red"
    assert gadget["notes"]["default"] is None  # nullable, no default: null is what is stored
    assert all("default" not in field for field in schemas["GadgetUpdate"]["properties"].values())


async def test_models_responses_match_the_document(models_app: FastAPI) -> None:
    owner = await create_user(models_app, "alice")
    root = await create_user(models_app, "root", is_staff=True, is_superuser=True)
    headers = await auth_headers(models_app, owner)
    root_headers = await auth_headers(models_app, root)
    gadgets, one = "/api/v1/gadgets", "/api/v1/gadgets/{id}"
    full = {
        "name": "widget",
        "notes": "long text",
        "count": 3,
        "small": -5,
        "big": 2**40,
        "weight": "12.125",
        "ratio": 0.5,
        "active": False,
        "colour": "green",
        "released": "2024-02-29",
        "alarm": "07:30:00",
        "seen_at": "2024-03-01T12:00:00+02:00",
        "extra": {"tags": ["a", "b"], "n": 1},
        "secret": "hidden",
    }
    async with client_for(models_app) as client:
        api = await Conformance.of(client)
        created = await api.request("POST", gadgets, json=full, headers=headers)
        assert created.status_code == 201, created.text
        minimal = await api.request("POST", gadgets, json={"name": "bare"}, headers=headers)
        assert minimal.status_code == 201
        url = f"{gadgets}/{created.json()['id']}"
        for params in (
            {},
            {"colour": "green", "ordering": "-rating"},
            {"released__gte": "2024-01-01", "search": "wid"},
            {"limit": 1},
        ):
            assert (await api.request("GET", gadgets, params=params)).status_code == 200
        assert (await api.request("GET", one, url)).status_code == 200
        patched = await api.request(
            "PATCH", one, url, json={"extra": [1, "two"], "alarm": None}, headers=headers
        )
        assert patched.status_code == 200
        for response in (
            await api.request("PATCH", one, url, json={"colour": "blue"}, headers=headers),
            await api.request("PATCH", one, url, json={"count": None}, headers=headers),
            await api.request("GET", gadgets, params={"released": "yesterday"}),
        ):
            assert response.status_code == 422
        assert (await api.request("DELETE", one, url, headers=headers)).status_code == 204

        code = await api.request(
            "POST", "/api/v1/codes", json={"code": "AB", "label": "x"}, headers=root_headers
        )
        assert code.status_code == 201
        code_url = "/api/v1/codes/AB"
        assert (await api.request("GET", "/api/v1/codes/{id}", code_url)).status_code == 401
        retrieved = await api.request("GET", "/api/v1/codes/{id}", code_url, headers=root_headers)
        assert retrieved.status_code == 200
        shelf = await api.request(
            "POST", "/api/v1/shelves", json={"label": "top"}, headers=root_headers
        )
        shelf_url = f"/api/v1/shelves/{shelf.json()['id']}"
        item = {"name": "cup", "shelf_id": shelf.json()["id"]}
        added = await api.request("POST", "/api/v1/shelf_items", json=item, headers=headers)
        assert added.status_code == 201
        expanded = await api.request(
            "GET", "/api/v1/shelves/{id}", shelf_url, params={"expand": "items"}, headers=headers
        )
        assert [row["name"] for row in expanded.json()["items"]] == ["cup"]
        note = await api.request(
            "POST", "/api/v1/notes", json={"text": "hello"}, headers=root_headers
        )
        assert note.status_code == 201
        assert (await api.request("GET", "/api/v1/notes")).status_code == 401
        assert (await api.request("GET", "/api/v1/notes", headers=headers)).status_code == 403


async def test_boolean_fields_take_only_what_the_document_says(models_app: FastAPI) -> None:
    owner = await create_user(models_app, "alice")
    headers = await auth_headers(models_app, owner)
    async with client_for(models_app) as client:
        api = await Conformance.of(client)
        for active in (0, 1, "true", "yes"):  # lax JSON parsing would take these
            body = {"name": "widget", "active": active}
            refused = await api.request("POST", "/api/v1/gadgets", json=body, headers=headers)
            assert refused.status_code == 422, active
            assert refused.json()["detail"][0]["loc"] == ["body", "active"]
        for field in ("count", "weight", "ratio"):  # nor is true a number
            body = {"name": "widget", field: True}
            refused = await api.request("POST", "/api/v1/gadgets", json=body, headers=headers)
            assert refused.status_code == 422, field
            assert refused.json()["detail"][0]["loc"] == ["body", field]
        body = {"name": "widget", "active": False, "count": 2, "weight": "1.5", "ratio": 0.5}
        created = await api.request("POST", "/api/v1/gadgets", json=body, headers=headers)
        assert created.status_code == 201
        assert created.json()["active"] is False


def test_columns_the_test_models_lack() -> None:
    span = describe_column("span", Column("span", Interval, nullable=True))
    counter = describe_column("counter", Column("counter", Integer, server_default="0"))
    stamped = describe_column(
        "stamped", Column("stamped", DateTime(timezone=True), server_default=func.now())
    )
    assert span.python_type is dt.timedelta  # not the DateTime it is emulated with
    assert stamped.server_set  # the database's now(): never written
    assert not counter.server_set  # a literal fallback: writable
    create = build_create_schema("ProbeCreate", [span, counter]).model_json_schema()
    assert create["properties"]["span"]["anyOf"][0]["format"] == "duration"
    # Omitted, the database writes its own default: optional, and no default claimed.
    assert "default" not in create["properties"]["counter"]
    assert "required" not in create
    update = build_update_schema("ProbeUpdate", [span, counter]).model_json_schema()
    validate(
        {
            "openapi": "3.1.0",
            "info": {"title": "probe", "version": "1"},
            "paths": {},
            "components": {"schemas": {"ProbeCreate": create, "ProbeUpdate": update}},
        }
    )
