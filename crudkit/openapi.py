"""OpenAPI documentation of what generated endpoints answer besides success.

Every status an endpoint can return is documented, so clients (and schema-driven
fuzzers) can rely on the schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

if TYPE_CHECKING:
    from crudkit.filters import FilterSet


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

_ETAG_HEADER = {"ETag": {"description": "Version of the row", "schema": {"type": "string"}}}


def error_responses(
    *statuses: int, etag: bool = False, created: bool = False
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: the listed error statuses, 503, and the success headers."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in (*statuses, 503):
        if status == 422:
            continue  # FastAPI documents its validation error itself
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
            schemes = schema.get("components", {}).get("securitySchemes", {})
            for scheme in schemes.values():
                password = scheme.get("flows", {}).get("password")
                if password is not None:
                    password["tokenUrl"] = token_url
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
