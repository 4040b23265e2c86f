"""`crudkit.openapi_diff`: each rule of what breaks a client, on small documents."""

from __future__ import annotations

import copy
from typing import Any

from crudkit.openapi_diff import breaking_changes

REF = "#/components/schemas/"


def document() -> dict[str, Any]:
    """A list and a create of products, their bodies and answers behind `$ref`s."""
    status = {"type": "string", "enum": ["draft", "live"]}
    return {
        "openapi": "3.1.0",
        "info": {"title": "shop", "version": "1"},
        "paths": {
            "/products": {
                "get": {
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                        {
                            "name": "ordering",
                            "in": "query",
                            "style": "form",
                            "explode": False,
                            "schema": {"type": "array", "items": {"enum": ["name", "-name"]}},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "A page",
                            "content": {"application/json": {"schema": {"$ref": REF + "Page"}}},
                        }
                    },
                },
                "post": {
                    "requestBody": {
                        "content": {"application/json": {"schema": {"$ref": REF + "ProductCreate"}}}
                    },
                    "responses": {
                        "201": {
                            "description": "Created",
                            "content": {
                                "application/json": {"schema": {"$ref": REF + "ProductOut"}}
                            },
                        }
                    },
                },
            },
            "/products/{id}": {
                "delete": {
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        }
                    ],
                    "responses": {"204": {"description": "Deleted"}},
                }
            },
        },
        "components": {
            "schemas": {
                "Page": {
                    "type": "object",
                    "properties": {
                        "items": {"type": "array", "items": {"$ref": REF + "ProductOut"}},
                        "total": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                    },
                },
                "ProductOut": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "name": {"type": "string"},
                        "status": status,
                        "note": {"type": "string"},
                    },
                },
                "ProductCreate": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "price": {"anyOf": [{"type": "number"}, {"type": "string"}]},
                        "status": status,
                    },
                    "required": ["name"],
                },
            }
        },
    }


def changed(edit: Any) -> list[str]:
    """The breaking changes once `edit` has changed a copy of `document()`."""
    new = copy.deepcopy(document())
    edit(new)
    return breaking_changes(document(), new)


def schemas(doc: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = doc["components"]["schemas"]
    return result


def list_parameters(doc: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = doc["paths"]["/products"]["get"]["parameters"]
    return result


def test_the_same_document_breaks_nothing() -> None:
    assert breaking_changes(document(), document()) == []


def test_additions_break_nothing() -> None:
    def add(doc: dict[str, Any]) -> None:
        doc["paths"]["/tags"] = {"get": {"responses": {"200": {"description": "Tags"}}}}
        doc["paths"]["/products/{id}"]["get"] = {"responses": {"200": {"description": "One"}}}
        list_parameters(doc).append({"name": "search", "in": "query", "schema": {}})
        schemas(doc)["ProductOut"]["properties"]["sku"] = {"type": "string"}
        schemas(doc)["ProductCreate"]["properties"]["sku"] = {"type": "string"}
        schemas(doc)["ProductOut"]["properties"]["status"]["enum"].append("archived")
        # A request field that accepts more types than it did.
        schemas(doc)["ProductCreate"]["properties"]["name"] = {"type": ["string", "null"]}

    assert changed(add) == []


def test_a_removed_path() -> None:
    assert changed(lambda doc: doc["paths"].pop("/products/{id}")) == [
        "/products/{id}: path removed"
    ]


def test_a_removed_operation() -> None:
    assert changed(lambda doc: doc["paths"]["/products"].pop("post")) == [
        "POST /products: operation removed"
    ]


def test_a_removed_response_field_through_refs_and_list_items() -> None:
    found = changed(lambda doc: schemas(doc)["ProductOut"]["properties"].pop("note"))

    assert found == [
        "GET /products 200: response field 'items[].note' removed",
        "POST /products 201: response field 'note' removed",
    ]


def test_a_removed_request_field_is_not_breaking() -> None:
    # What clients send is no longer read (or refused): they learn it from the 422.
    assert changed(lambda doc: schemas(doc)["ProductCreate"]["properties"].pop("price")) == []


def test_a_removed_parameter() -> None:
    assert changed(lambda doc: list_parameters(doc).pop(0)) == [
        "GET /products: parameter 'limit' (query) removed"
    ]


def test_a_removed_enum_value_of_a_parameter() -> None:
    def narrow(doc: dict[str, Any]) -> None:
        list_parameters(doc)[1]["schema"]["items"]["enum"] = ["name"]

    assert changed(narrow) == [
        "GET /products: parameter 'ordering' (query) enum value '-name' removed"
    ]


def test_a_removed_enum_value_of_a_field() -> None:
    def narrow(doc: dict[str, Any]) -> None:
        status = {"type": "string", "enum": ["live"]}
        schemas(doc)["ProductCreate"]["properties"]["status"] = status
        schemas(doc)["ProductOut"]["properties"]["status"] = status

    assert changed(narrow) == [
        "GET /products 200: response field 'items[].status' enum value 'draft' removed",
        "POST /products: request field 'status' enum value 'draft' removed",
        "POST /products 201: response field 'status' enum value 'draft' removed",
    ]


def test_a_request_field_newly_required() -> None:
    def require(doc: dict[str, Any]) -> None:
        create = schemas(doc)["ProductCreate"]
        create["required"] = ["name", "price"]
        create["properties"]["sku"] = {"type": "string"}
        create["required"].append("sku")

    assert changed(require) == [
        "POST /products: request field 'price' is now required",
        "POST /products: request field 'sku' new and required",
    ]


def test_a_parameter_newly_required() -> None:
    def require(doc: dict[str, Any]) -> None:
        list_parameters(doc)[0]["required"] = True
        list_parameters(doc).append({"name": "tenant", "in": "header", "required": True})

    assert changed(require) == [
        "GET /products: parameter 'limit' (query) is now required",
        "GET /products: new required parameter 'tenant' (header)",
    ]


def test_a_changed_type_of_a_parameter() -> None:
    def retype(doc: dict[str, Any]) -> None:
        doc["paths"]["/products/{id}"]["delete"]["parameters"][0]["schema"] = {"type": "string"}
        list_parameters(doc)[0]["schema"] = {"type": "string"}

    assert changed(retype) == [
        "GET /products: parameter 'limit' (query) type changed from integer to string",
        "DELETE /products/{id}: parameter 'id' (path) type changed from integer to string",
    ]


def test_a_changed_type_of_a_field() -> None:
    def retype(doc: dict[str, Any]) -> None:
        schemas(doc)["ProductCreate"]["properties"]["price"] = {"type": "number"}  # no string
        schemas(doc)["ProductOut"]["properties"]["id"] = {"type": "string"}

    assert changed(retype) == [
        "GET /products 200: response field 'items[].id' type changed from integer to string",
        "POST /products: request field 'price' type changed from number|string to number",
        "POST /products 201: response field 'id' type changed from integer to string",
    ]


def test_a_response_field_that_may_now_be_null_is_breaking() -> None:
    def nullable(doc: dict[str, Any]) -> None:
        schemas(doc)["ProductOut"]["properties"]["name"] = {"type": ["string", "null"]}

    assert changed(nullable) == [
        "GET /products 200: response field 'items[].name' type changed from string to null|string",
        "POST /products 201: response field 'name' type changed from string to null|string",
    ]
