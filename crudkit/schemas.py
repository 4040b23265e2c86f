"""Pydantic v2 schemas generated from a model: `Create`, `Update` and `Out`.

- `Create`: the writable columns (no server-set columns, no owner, no read-only
  fields); unknown keys are refused.
- `Update`: `Create` with every field optional; only the keys sent change.
- `Out`: every readable column (write-only fields left out), then the computed fields,
  marked `readOnly` (never in `Create` or `Update`, so a body sending one is refused).
- many-to-many relationships: a list of the related rows' primary keys under the
  relationship's name in all three (`Update`: sent, it replaces the whole set).

Constraints come from the columns (`String(200)` -> `max_length=200`, `Numeric(10, 2)`
-> digits and places, `info={"ge": 0}` -> `ge=0`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from types import GenericAlias
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    create_model,
)
from pydantic_core import PydanticCustomError

from crudkit.fields import ColumnInfo


class CreateSchema(BaseModel):
    """Base of generated `Create` schemas."""

    model_config = ConfigDict(extra="forbid")


class UpdateSchema(BaseModel):
    """Base of generated `Update` schemas: PATCH bodies, unknown keys refused."""

    model_config = ConfigDict(extra="forbid")


class OutSchema(BaseModel):
    """Base of generated `Out` schemas."""

    # Every readable column is in every response, null or not: documented as required.
    model_config = ConfigDict(
        from_attributes=True, json_schema_serialization_defaults_required=True
    )


def _json_bool(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
    # A JSON body sends true or false, as documented: not 0, 1 or "yes", which lax
    # parsing would take. Python callers (the admin's forms) keep their coercions.
    if info.mode == "json" and not isinstance(value, bool):
        raise PydanticCustomError("bool_type", "Input should be a valid boolean")
    return handler(value)


_JsonBool = Annotated[bool, WrapValidator(_json_bool)]


def _json_number(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
    # Nor is true a number in a JSON body: lax parsing would store it as 1.
    if info.mode == "json" and isinstance(value, bool):
        raise PydanticCustomError("number_type", "Input should be a valid number")
    return handler(value)


_NUMBERS = (int, float, Decimal)


def _annotation(info: ColumnInfo, *, nullable: bool) -> Any:
    python_type: Any = info.python_type
    if python_type is bool:
        python_type = _JsonBool
    elif python_type in _NUMBERS:
        python_type = Annotated[python_type, WrapValidator(_json_number)]
    return python_type | None if nullable else python_type


def _undocumented_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _field(info: ColumnInfo, *, default: Any, documented: bool = True) -> Any:
    """A field with the column's constraints. An undocumented default only marks the key
    optional: the JSON schema shows no `default`, which would claim a value the database
    does not write (and `null` is not even valid for a non-nullable column)."""
    if documented:
        return Field(default, **info.constraints)
    return Field(default, json_schema_extra=_undocumented_default, **info.constraints)


def _keys(info: ColumnInfo) -> Any:
    """A list of the primary keys of a many-to-many relationship's related rows."""
    key: Any = Annotated[info.python_type, Field(**info.type_constraints)]
    return GenericAlias(list, (key,))


def build_create_schema(
    name: str, columns: Iterable[ColumnInfo], links: Mapping[str, ColumnInfo] | None = None
) -> type[CreateSchema]:
    """`links`: the many-to-many relationships, by name, with the related primary key."""
    fields: dict[str, Any] = {}
    for info in columns:
        annotation = _annotation(info, nullable=info.nullable)
        if info.required_on_create:
            fields[info.key] = (annotation, _field(info, default=...))
        else:
            # An omitted key gets the Python default, null, or what the database fills in
            # (a server default, a computed default): only the first two are known here.
            known = info.default is not None or (info.nullable and not info.has_default)
            fields[info.key] = (annotation, _field(info, default=info.default, documented=known))
    for key, info in (links or {}).items():
        fields[key] = (_keys(info), Field(default_factory=list))
    return create_model(name, __base__=CreateSchema, **fields)


def build_update_schema(
    name: str, columns: Iterable[ColumnInfo], links: Mapping[str, ColumnInfo] | None = None
) -> type[UpdateSchema]:
    # An omitted key keeps its value (no default to document); an explicit null is
    # accepted only by nullable columns.
    fields: dict[str, Any] = {
        info.key: (
            _annotation(info, nullable=info.nullable),
            _field(info, default=None, documented=False),
        )
        for info in columns
    }
    for key, info in (links or {}).items():  # sent: replaces the whole set
        fields[key] = (_keys(info), Field(None, json_schema_extra=_undocumented_default))
    return create_model(name, __base__=UpdateSchema, **fields)


def _read_only(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # only for validating an instance; always served
    schema["readOnly"] = True


def build_out_schema(
    name: str,
    columns: Iterable[ColumnInfo],
    computed: Iterable[tuple[str, Any]] = (),
    links: Mapping[str, ColumnInfo] | None = None,
) -> type[OutSchema]:
    """`computed`: (name, annotation) of the read-only computed fields, after the columns.
    They default to null, so an `Out` built from a model instance (which has no value
    for a resource's Python-computed field) still validates."""
    fields: dict[str, Any] = {}
    for info in columns:
        # Output is what the database holds: no input constraints, only the type.
        annotation = info.python_type
        if info.nullable:
            fields[info.key] = (annotation | None, None)
        else:
            fields[info.key] = (annotation, ...)
    for key, annotation in computed:
        fields[key] = (annotation, Field(None, json_schema_extra=_read_only))
    for key, info in (links or {}).items():
        fields[key] = (_keys(info), Field(default_factory=list))
    return create_model(name, __base__=OutSchema, **fields)
