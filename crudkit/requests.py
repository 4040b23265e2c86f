"""Reading what a request to a generated endpoint carries: the id, the list parameters
and the JSON body, validated once by pydantic and refused in FastAPI's 422 shape.

Generated endpoints take the bare `Request` and parse it here instead of through
FastAPI's dependency solving: it is the same validation with a fraction of the
per-request cost, and the order of checks is ours (permissions before the body).
Their OpenAPI description is built by `crudkit.openapi` from the same types.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from starlette.requests import Request

from crudkit.exceptions import Invalid
from crudkit.fields import ColumnInfo, SafeStr
from crudkit.filters import query_adapter

MAX_OFFSET = 2**62
MAX_TEXT = 1000
MAX_CURSOR = 4096
MAX_UNKNOWN_NAMED = 10
"""Unknown query parameters named in a 422; the others are counted."""
MAX_ALLOWED_TEXT = 3000
"""Characters of the allowed parameters' list in that 422, at most."""


def _shown(name: str) -> str:
    return name if len(name) <= 100 else name[:100] + "..."


def unknown_parameters(unknown: Sequence[str], allowed: Collection[str]) -> Invalid:
    """422 for query parameters the endpoint does not take: the first few named, the
    allowed ones listed once (a typo must never silently return everything)."""
    names = ", ".join(sorted(allowed)) or "none"
    if len(names) > MAX_ALLOWED_TEXT:
        names = names[: names.rfind(", ", 0, MAX_ALLOWED_TEXT)] + ", ... (see the OpenAPI document)"
    errors = [
        {
            "loc": ["query", name],
            "msg": f"unknown query parameter {_shown(name)!r}"
            + ("" if index else f"; allowed: {names}"),
            "type": "extra_forbidden",
        }
        for index, name in enumerate(unknown[:MAX_UNKNOWN_NAMED])
    ]
    more = len(unknown) - MAX_UNKNOWN_NAMED
    if more > 0:
        errors.append(
            {
                "loc": ["query"],
                "msg": f"and {more} more unknown query parameter{'s' if more > 1 else ''}",
                "type": "extra_forbidden",
            }
        )
    return Invalid(errors)


def repeated_parameters(repeated: Sequence[str]) -> Invalid:
    """422 for query parameters sent more than once: one of the values would be lost
    (a list is one comma-separated value: `fields=id,name`)."""
    return Invalid(
        [
            {
                "loc": ["query", name],
                "msg": f"query parameter {_shown(name)!r} is given more than once; send one "
                "value (a list is comma-separated, e.g. fields=id,name)",
                "type": "value_error",
            }
            for name in repeated[:MAX_UNKNOWN_NAMED]
        ]
    )


def invalid(exc: ValidationError, prefix: Sequence[str | int]) -> Invalid:
    """A pydantic error as a 422 with each location under `prefix` (`body`, `query`...)."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    return Invalid(
        [
            {"loc": [*prefix, *error["loc"]], "msg": error["msg"], "type": error["type"]}
            for error in errors
        ]
    )


class ListParams(BaseModel):
    """The standard parameters of a list endpoint (filters are parsed by `FilterSet`)."""

    model_config = ConfigDict(extra="ignore")

    limit: int
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    cursor: str | None = Field(None, max_length=MAX_CURSOR)
    ordering: str | None = Field(None, max_length=MAX_TEXT)
    # Compared with text in SQL: NUL, which PostgreSQL refuses, is a 422 on every database.
    search: SafeStr | None = Field(None, max_length=MAX_TEXT)
    expand: str | None = Field(None, max_length=MAX_TEXT)
    fields: str | None = None  # parsed by `crudkit.fieldsets`


def list_params_model(page_size_default: int, page_size_max: int) -> type[ListParams]:
    """`ListParams` with the project's page sizes."""
    limit: Any = (int, Field(page_size_default, ge=1, le=page_size_max))
    return create_model("ListParams", __base__=ListParams, limit=limit)


def parse_query(model: type[ListParams], request: Request) -> ListParams:
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise invalid(exc, ["query"]) from None


def parse_expand_only(request: Request) -> str | None:
    raw = request.query_params.get("expand")
    if raw is not None and len(raw) > MAX_TEXT:
        raise Invalid.single(
            ["query", "expand"], f"at most {MAX_TEXT} characters", "string_too_long"
        )
    return raw


class PathId:
    """Validates the `{id}` of a path against the primary key's type."""

    def __init__(self, info: ColumnInfo) -> None:
        self.adapter: TypeAdapter[Any] = query_adapter(
            info.python_type, tuple(sorted(info.type_constraints.items()))
        )

    def __call__(self, request: Request) -> Any:
        try:
            return self.adapter.validate_python(request.path_params["id"])
        except ValidationError as exc:
            raise invalid(exc, ["path", "id"]) from None


async def parse_body(model: type[BaseModel], request: Request) -> BaseModel:
    """The JSON body validated by `model` (parsed straight from bytes, once)."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise Invalid.single(
            ["body"], "The body must be JSON (Content-Type: application/json).", "model_type"
        )
    body = await request.body()
    if not body:
        raise Invalid.single(["body"], "Field required", "missing")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise invalid(exc, ["body"]) from None
