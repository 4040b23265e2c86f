"""OpenAPI documentation of what generated endpoints answer besides success.

Every status an endpoint can return is documented, so clients (and schema-driven
fuzzers) can rely on the schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import (
    get_openapi,
    validation_error_definition,
    validation_error_response_definition,
)
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from crudkit.conf import Settings
from crudkit.filters import FilterSet, query_adapter
from crudkit.requests import MAX_CURSOR, MAX_OFFSET, MAX_TEXT
from crudkit.resources import Resource


class ErrorDetail(BaseModel):
    """`{"detail": "..."}`: what every non-validation error looks like."""

    detail: str


_DESCRIPTIONS = {
    304: "Not modified: the `If-None-Match` ETag is current.",
    400: "The body could not be read (not UTF-8).",
    401: "Missing or invalid credentials.",
    403: "Authenticated, but not allowed.",
    404: "Not found, or not visible to the caller.",
    409: "Conflicts with an existing row (unique constraint).",
    412: "`If-Match` does not match the row's current ETag.",
    413: "Request body too large.",
    429: "Too many failed attempts.",
    503: "The database is unavailable.",
}

_REF = "#/components/schemas/"
BEARER = "OAuth2PasswordBearer"
"""The security scheme `crudkit.authentication.bearer_scheme` registers."""

_ETAG_HEADER = {"ETag": {"description": "Version of the row", "schema": {"type": "string"}}}


def error_responses(
    *statuses: int, etag: bool = False, created: bool = False
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: the listed error statuses, 503, and the success headers."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in (*statuses, 503):
        if status == 422:
            responses[422] = {
                "description": "Validation error",
                "content": {"application/json": {"schema": {"$ref": _REF + "HTTPValidationError"}}},
            }
            continue
        entry: dict[str, Any] = {"description": _DESCRIPTIONS[status]}
        if status != 304:
            entry["model"] = ErrorDetail
        responses[status] = entry
    if etag:
        responses[200] = {"headers": _ETAG_HEADER}
    if created:
        responses[201] = {
            "headers": {
                **_ETAG_HEADER,
                "Location": {"description": "URL of the new row", "schema": {"type": "string"}},
            }
        }
    return responses


def list_parameters(filters: FilterSet, allowed: set[str]) -> list[dict[str, Any]]:
    """OpenAPI parameters for the filters of a list endpoint (parsed by `FilterSet`)."""
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": param.json_schema(),
            "description": f"Filter on {param.info.key}"
            + (f" ({param.op})" if param.op else " (equals)"),
        }
        for name, param in filters.params.items()
        if name in allowed
    ]


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}  # fmt: skip


def _header(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "schema": {"type": "string"},
            "description": description}  # fmt: skip


_IF_MATCH = _header("If-Match", "The row's ETag as last read: a row changed since is a 412")
_IF_NONE_MATCH = _header("If-None-Match", "An ETag already held: 304 if the row still has it")


# Words spelt with a vowel but said with a consonant ("a user"), and the reverse ("an hour").
_SAID_WITH_CONSONANT = ("uni", "use", "usa", "usu", "uti", "ure", "eu", "one", "once", "ewe")
_SAID_WITH_VOWEL = ("hour", "honest", "honor", "honour", "heir")


def with_article(noun: str) -> str:
    """`an order`, `a user`, `an hour`: the indefinite article the noun's first sound takes."""
    word = noun.lower()
    vowel = word[:1] in set("aeiou")
    if word.startswith(_SAID_WITH_CONSONANT):
        vowel = False
    elif word.startswith(_SAID_WITH_VOWEL):
        vowel = True
    return f"{'an' if vowel else 'a'} {noun}"


# Sample values by JSON Schema `format`, then by `type`, for request body examples.
_FORMAT_EXAMPLES: dict[str, Any] = {
    "date": "2024-01-31",
    "date-time": "2024-01-31T12:00:00Z",
    "time": "12:00:00",
    "duration": "P1D",
    "uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "binary": "aGVsbG8=",
    "base64": "aGVsbG8=",
}
_NO_EXAMPLE = object()


def schema_example(schema: dict[str, Any], definitions: dict[str, Any], depth: int = 0) -> Any:
    """A plausible value of `schema`: its own `examples` (a column's `info={"examples":
    [...]}`) or `default` first, else one made from its type within its bounds.

    `_NO_EXAMPLE` when none can be made (a `pattern` to match): the caller leaves it out.
    """
    if "$ref" in schema:
        if depth > 5:
            return _NO_EXAMPLE
        target = definitions.get(schema["$ref"].rsplit("/", 1)[-1], {})
        return schema_example(target, definitions, depth + 1)
    if schema.get("examples"):
        return schema["examples"][0]
    if schema.get("default") is not None:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        branches = [b for b in schema.get(key, ()) if b.get("type") != "null"]
        for branch in branches:
            value = schema_example(branch, definitions, depth + 1)
            if value is not _NO_EXAMPLE:
                return value
        if key in schema:
            return None if len(branches) < len(schema[key]) else _NO_EXAMPLE
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return _object_example(schema, definitions, depth)
    if kind == "array":
        item = schema_example(schema.get("items", {}), definitions, depth + 1)
        return [] if item is _NO_EXAMPLE else [item] * max(1, schema.get("minItems", 1))
    if kind in ("integer", "number"):
        return _number_example(schema, 1 if kind == "integer" else 1.5)
    if kind == "boolean":
        return True
    if kind == "string":
        return _string_example(schema)
    if kind == "null":
        return None
    return {} if not schema else _NO_EXAMPLE


def _object_example(schema: dict[str, Any], definitions: dict[str, Any], depth: int) -> Any:
    if depth > 5:
        return _NO_EXAMPLE
    example = {}
    for name, field in schema.get("properties", {}).items():
        value = schema_example(field, definitions, depth + 1)
        if value is not _NO_EXAMPLE:
            example[name] = value
    return example


def _number_example(schema: dict[str, Any], value: float) -> float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    step = 1 if isinstance(value, int) else 0.5
    if low is not None and value <= low:
        value = low + step if "exclusiveMinimum" in schema else low
    if high is not None and value >= high:
        value = high - step if "exclusiveMaximum" in schema else high
    return value


def _string_example(schema: dict[str, Any]) -> Any:
    if schema.get("format") in _FORMAT_EXAMPLES:
        return _FORMAT_EXAMPLES[schema["format"]]
    if schema.get("contentEncoding") == "base64":
        return _FORMAT_EXAMPLES["base64"]
    if "pattern" in schema or "format" in schema:
        return _NO_EXAMPLE  # what the text must look like is not known here
    text = "string".ljust(schema.get("minLength", 0), "s")
    return text[: schema.get("maxLength", len(text))]


def body_example(model: type[BaseModel]) -> dict[str, Any]:
    """An example request body for `model`: every field with a plausible value."""
    schema = model.model_json_schema(ref_template=_REF + "{model}")
    example = _object_example(schema, schema.get("$defs", {}), 0)
    return example if isinstance(example, dict) else {}


def operation_prefix(resource: Resource) -> str:
    """`products` for `/products`: operation ids are `products_list`, `products_create`..."""
    return re.sub(r"\W", "_", resource.path_segment.strip("/"))


class ResourceDocs:
    """OpenAPI descriptions of a resource's operations, for endpoints that parse the
    request themselves (`crudkit.requests`): the same constraints, written out.

    Given the pieces it describes (the resource, its filters, the relations it may
    expand, the list's query parameters) rather than the endpoints that serve them.
    """

    def __init__(
        self,
        resource: Resource,
        settings: Settings,
        filters: FilterSet,
        *,
        expansions: Iterable[str],
        list_params: Iterable[str],
        fields: Iterable[str] = (),
    ) -> None:
        self.resource = resource
        self.settings = settings
        self.filters = filters
        self.expansions = list(expansions)
        self.list_params = set(list_params)
        self.fields = list(fields)
        self.prefix = operation_prefix(resource)
        info = resource.pk_info
        schema = query_adapter(
            info.python_type, tuple(sorted(info.type_constraints.items()))
        ).json_schema()
        self.id_parameter = {"name": "id", "in": "path", "required": True, "schema": schema}
        self.security: list[dict[str, list[str]]] = [{BEARER: []}]

    def operation_id(self, action: str) -> str:
        return f"{self.prefix}_{action}"

    def _expand(self) -> list[dict[str, Any]]:
        if not self.expansions:
            return []
        text = {"type": "string", "maxLength": MAX_TEXT}
        return [_query("expand", text, f"Relations to include: {', '.join(self.expansions)}")]

    def _fields(self) -> list[dict[str, Any]]:
        if not self.fields:
            return []
        # Comma-separated (`fields=id,name`): an array in the form style, not exploded.
        parameter = _query(
            "fields",
            {"type": "array", "items": {"type": "string", "enum": self.fields}, "minItems": 1},
            "Comma-separated fields to return (only those keys; expanded relations too)",
        )
        return [{**parameter, "style": "form", "explode": False}]

    def _ordering(self) -> dict[str, Any]:
        fields = list(self.resource.ordering_fields)
        if not fields:
            text = {"type": "string", "maxLength": MAX_TEXT}
            return _query("ordering", text, "Comma-separated fields: none allowed")
        # Comma-separated (`ordering=-price,name`), as `fields` is: an array, not exploded.
        allowed = [name for field in fields for name in (field, f"-{field}")]
        parameter = _query(
            "ordering",
            {"type": "array", "items": {"type": "string", "enum": allowed}},
            "Comma-separated fields, '-' for descending: " + ", ".join(fields),
        )
        return {**parameter, "style": "form", "explode": False}

    def list_operation(self) -> dict[str, Any]:
        settings = self.settings
        text = {"type": "string", "maxLength": MAX_TEXT}
        parameters = [
            _query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": settings.page_size_max,
                 "default": settings.page_size_default},
                "Rows per page",
            ),
            _query(
                "offset",
                # No default is claimed: a client sending it with every request could
                # not follow a cursor, which refuses an offset.
                {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
                "Rows to skip, 0 when absent (not with cursor)",
            ),
            _query(
                "cursor",
                {"type": "string", "maxLength": MAX_CURSOR},
                "A next_cursor from a previous page: it carries its ordering, filters and"
                " search, so it may be sent alone (not with offset)",
            ),
            self._ordering(),
        ]  # fmt: skip
        if self.filters.search_columns:
            parameters.append(_query("search", text, "Case-insensitive substring"))
        parameters += self._expand()
        parameters += self._fields()
        parameters += list_parameters(self.filters, self.list_params)
        return {
            "operationId": self.operation_id("list"),
            "parameters": parameters,
            "security": self.security,
        }

    def retrieve_operation(self) -> dict[str, Any]:
        return {
            "operationId": self.operation_id("retrieve"),
            "parameters": [self.id_parameter, _IF_NONE_MATCH, *self._expand(), *self._fields()],
            "security": self.security,
        }

    def write_operation(
        self, model: type[BaseModel], *, with_id: bool = False, action: str | None = None
    ) -> dict[str, Any]:
        """A write with `model` as its body: the row's update when `with_id`, else a
        create, unless `action` names it."""
        update = action is None and with_id
        action = action or ("update" if with_id else "create")
        return {
            "operationId": self.operation_id(action),
            "parameters": [self.id_parameter, *([_IF_MATCH] if update else [])] if with_id else [],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": _REF + model.__name__},
                        "example": body_example(model),
                    }
                },
            },
            "security": self.security,
        }

    def delete_operation(self) -> dict[str, Any]:
        return {
            "operationId": self.operation_id("delete"),
            "parameters": [self.id_parameter, _IF_MATCH],
            "security": self.security,
        }


def _add_components(schema: dict[str, Any], models: list[type[BaseModel]]) -> None:
    """Request bodies and the validation error, for operations FastAPI did not describe."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.setdefault("ValidationError", validation_error_definition)
    schemas.setdefault("HTTPValidationError", validation_error_response_definition)
    _, definitions = models_json_schema(
        [(model, "validation") for model in models], ref_template=_REF + "{model}"
    )
    for name, definition in definitions.get("$defs", {}).items():
        schemas.setdefault(name, definition)
    if BEARER not in components.get("securitySchemes", {}):
        # No authentication installed: operations cannot require a scheme that is absent.
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                if isinstance(operation, dict):
                    operation.pop("security", None)


def install_openapi(app: FastAPI, token_url: str) -> None:
    """Generate the schema once, pointing the password flow at the real token URL."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            resources = [r for r in app.state.apps.resources if r.api]
            _add_components(
                schema,
                [
                    *(model for r in resources for model in (r.create_schema, r.update_schema)),
                    *getattr(app.state, "openapi_bodies", ()),
                ],
            )
            schemes = schema.get("components", {}).get("securitySchemes", {})
            for scheme in schemes.values():
                password = scheme.get("flows", {}).get("password")
                if password is not None:
                    password["tokenUrl"] = token_url
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
