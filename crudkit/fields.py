"""What a model's columns mean to the API: Python types, constraints, who may write them.

`describe_columns(model)` reads the mapper once and returns a `ColumnInfo` per
mapped column; schemas, filters and the admin all build on it, so a column's
type is interpreted in one place.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError
from sqlalchemy import Column, ColumnDefault, ColumnElement, inspect, types
from sqlalchemy.ext.hybrid import HybridExtensionType
from sqlalchemy.sql.elements import ClauseElement, TextClause

from crudkit.exceptions import ImproperlyConfigured

# Keys of a column's `info` that become pydantic field constraints, e.g.
# `mapped_column(Numeric(10, 2), info={"ge": 0})`.
FIELD_INFO_KEYS = frozenset(
    {
        "ge",
        "gt",
        "le",
        "lt",
        "multiple_of",
        "min_length",
        "max_length",
        "pattern",
        "title",
        "description",
        "examples",
    }
)

# Constraints implied by the SQL type alone, which every value sent in a query must meet.
# A filter value with more decimal places than its column would be rounded to the
# column's scale by PostgreSQL (`$1::NUMERIC(10, 2)`), not by SQLite: it is refused.
_TYPE_CONSTRAINTS = frozenset({"ge", "le", "gt", "lt", "allow_inf_nan", "decimal_places"})

_COMPUTED_CONSTRAINTS = frozenset({"ge", "le", "allow_inf_nan"})

_INT_BOUNDS = {
    types.SmallInteger: (-(2**15), 2**15 - 1),
    types.BigInteger: (-(2**63), 2**63 - 1),
    types.Integer: (-(2**31), 2**31 - 1),
}


def _no_nul(value: str) -> str:
    # PostgreSQL cannot store NUL in text, and no database driver can encode a lone
    # surrogate ("\ud800" in JSON): refuse both up front, on every database.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def _naive_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _aware_utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


SafeStr = Annotated[str, AfterValidator(_no_nul)]


_MAX_INTEGER_DIGITS = 131072
_MAX_DECIMAL_PLACES = 16383


def _storable(value: Decimal) -> Decimal:
    # PostgreSQL's numeric holds at most this many digits before and after the point;
    # `1e-999999999` is refused up front, on every database, rather than by the driver.
    # (A column with a precision bounds both already, by its range and scale.)
    if not value.is_finite():
        return value
    exponent = int(value.as_tuple().exponent)
    if -exponent > _MAX_DECIMAL_PLACES or value.adjusted() >= _MAX_INTEGER_DIGITS:
        raise ValueError(
            f"must have at most {_MAX_INTEGER_DIGITS} digits before the decimal point "
            f"and {_MAX_DECIMAL_PLACES} after it"
        )
    return value


StorableDecimal = Annotated[Decimal, AfterValidator(_storable)]


def to_base64(value: bytes | bytearray | memoryview) -> str:
    """Binary content as JSON carries it: standard base64 (RFC 4648), padded, one line."""
    return base64.b64encode(value).decode("ascii")


def _from_base64(value: Any) -> bytes:
    # Text is base64 in JSON and in Python alike (a value read from JSON, a form field);
    # Python callers may also pass the bytes themselves.
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if not isinstance(value, str):
        raise PydanticCustomError("bytes_type", "Input should be a base64-encoded string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PydanticCustomError(
            "bytes_invalid_encoding", "Input should be valid base64 (RFC 4648, padded)"
        ) from None


Base64Bytes = Annotated[
    bytes,
    PlainValidator(_from_base64),
    PlainSerializer(to_base64, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "byte"}),
]
"""A binary column's value: bytes in Python, a base64 string in JSON and OpenAPI."""


@dataclass(frozen=True)
class ColumnInfo:
    """One mapped column as the API sees it."""

    key: str
    """Attribute name on the model, and the field name in the API."""
    column: Column[Any]
    python_type: Any
    """The annotation used in schemas (constraints included, nullability not)."""
    nullable: bool
    primary_key: bool
    server_set: bool
    """Filled in by the database or the model (autoincrement keys, timestamps): never written."""
    has_default: bool
    default: Any = None
    """A plain Python default, shown in the schema; `None` when there is none or it is computed."""
    constraints: dict[str, Any] = field(default_factory=dict)
    """Pydantic constraints for written values: the SQL type's and the column `info`'s."""
    type_constraints: dict[str, Any] = field(default_factory=dict)
    """Only what the SQL type implies (integer range, no NaN): what any query value must meet."""
    computed: bool = False
    """A read-only SQL expression of the model (`column_property`, `hybrid_property`), not
    a table column: `column` is that expression, selected, filtered and ordered by as one."""

    @property
    def is_string(self) -> bool:
        return isinstance(self.column.type, types.String)

    @property
    def is_binary(self) -> bool:
        """Bytes in Python, base64 text in JSON: not filtered, searched nor ordered by."""
        return self.python_type is Base64Bytes

    @property
    def required_on_create(self) -> bool:
        return not self.nullable and not self.has_default and not self.server_set


def _is_computed(default: Any) -> bool:
    if default is None:
        return False
    if isinstance(default, ColumnDefault):  # scalar, callable and SQL defaults alike
        if getattr(default, "is_callable", False) or getattr(default, "is_clause_element", False):
            return True
        return isinstance(getattr(default, "arg", None), ClauseElement)
    return True  # Sequence, FetchedValue and other server-side generators


def _scalar_default(column: Column[Any]) -> Any:
    default = column.default
    if default is not None and getattr(default, "is_scalar", False):
        return default.arg  # type: ignore[attr-defined]
    return None


def _base_type(column: ColumnElement[Any]) -> tuple[Any, dict[str, Any]]:
    """The Python type and pydantic constraints implied by a column's SQL type."""
    sa_type = column.type
    if isinstance(sa_type, types.Interval):
        return dt.timedelta, {}  # emulated as a TypeDecorator over DateTime: not unwrapped
    if isinstance(sa_type, types.TypeDecorator):
        sa_type = sa_type.impl_instance
    if isinstance(sa_type, types.Enum):
        if sa_type.enum_class is not None:
            return sa_type.enum_class, {}
        return Literal[tuple(sa_type.enums)], {}
    if isinstance(sa_type, types.Boolean):
        return bool, {}
    if isinstance(sa_type, types.Integer):
        for int_type, (low, high) in _INT_BOUNDS.items():
            if isinstance(sa_type, int_type):
                return int, {"ge": low, "le": high}
        return int, {}
    if isinstance(sa_type, types.Float) or (
        isinstance(sa_type, types.Numeric) and not sa_type.asdecimal
    ):
        return float, {"allow_inf_nan": False}
    if isinstance(sa_type, types.Numeric):
        constraints: dict[str, Any] = {"allow_inf_nan": False}
        if sa_type.precision is not None:
            scale = sa_type.scale or 0
            constraints["max_digits"] = sa_type.precision
            constraints["decimal_places"] = scale
            # The column's range, which filter values must also respect.
            bound = Decimal(10) ** (sa_type.precision - scale)
            constraints["lt"], constraints["gt"] = bound, -bound
            return Decimal, constraints
        return StorableDecimal, constraints
    if isinstance(sa_type, types.String):
        length = getattr(sa_type, "length", None)
        return SafeStr, ({"max_length": length} if length else {})
    if isinstance(sa_type, types.DateTime):
        fix = _aware_utc if sa_type.timezone else _naive_utc
        return Annotated[dt.datetime, AfterValidator(fix)], {}
    if isinstance(sa_type, types.Date):
        return dt.date, {}
    if isinstance(sa_type, types.Time):
        return dt.time, {}
    if isinstance(sa_type, types.Uuid):
        return uuid.UUID, {}
    if isinstance(sa_type, types.JSON):
        return Any, {}
    if isinstance(sa_type, types.LargeBinary):
        return Base64Bytes, {}
    try:
        return sa_type.python_type, {}
    except NotImplementedError:
        return Any, {}


def describe_column(key: str, column: Column[Any]) -> ColumnInfo:
    python_type, constraints = _base_type(column)
    type_constraints = {
        name: value for name, value in constraints.items() if name in _TYPE_CONSTRAINTS
    }
    extra = {name: value for name, value in column.info.items() if name in FIELD_INFO_KEYS}
    constraints.update(extra)
    if column.comment and "description" not in constraints:
        constraints["description"] = column.comment
    autoincrement_key = (
        column.primary_key
        and isinstance(column.type, types.Integer)
        and column.autoincrement in (True, "auto")
        and column.default is None
        and not column.foreign_keys
    )
    server_set = bool(
        autoincrement_key
        or column.onupdate is not None
        or column.server_onupdate is not None
        or column.computed is not None
        or column.identity is not None
        or _is_computed(column.default)
        or _is_computed_server_default(column)
    )
    has_default = column.default is not None or column.server_default is not None
    return ColumnInfo(
        key=key,
        column=column,
        python_type=python_type,
        nullable=bool(column.nullable) and not column.primary_key,
        primary_key=column.primary_key,
        server_set=server_set,
        has_default=has_default,
        default=_scalar_default(column),
        constraints=constraints,
        type_constraints=type_constraints,
    )


def _is_computed_server_default(column: Column[Any]) -> bool:
    # A SQL function (now(), gen_random_uuid()) is set by the database; a literal
    # text default ("0", "true") is only a fallback and the column stays writable.
    server_default = column.server_default
    if server_default is None:
        return False
    arg = getattr(server_default, "arg", None)
    if isinstance(arg, str):
        return False
    if not isinstance(arg, TextClause):
        return True  # an expression (func.now()) or a generator (FetchedValue)
    text = arg.text.strip().lower()
    literal = text[:1].isdigit() or text[:1] in ("'", "-") or text in {"true", "false", "null"}
    return not literal


def describe_columns(model: type[Any]) -> dict[str, ColumnInfo]:
    """Every single-column attribute of `model`, keyed by attribute name."""
    mapper = inspect(model, raiseerr=False)
    if mapper is None:
        raise ImproperlyConfigured(f"{model!r} is not a mapped SQLAlchemy model")
    described: dict[str, ColumnInfo] = {}
    for prop in mapper.column_attrs:
        if len(prop.columns) != 1 or not isinstance(prop.columns[0], Column):
            continue
        described[prop.key] = describe_column(prop.key, prop.columns[0])
    return described


def _hybrid_expression(model: type[Any], key: str) -> ColumnElement[Any] | None:
    """The SQL expression of a hybrid property, or None when it has none (Python only)."""
    try:
        attribute = getattr(model, key)
        expression = attribute.__clause_element__()
    except Exception:  # the getter ran on the class and failed: no SQL form
        return None
    return expression if isinstance(expression, ColumnElement) else None


def describe_computed(model: type[Any]) -> dict[str, ColumnInfo]:
    """The read-only SQL expressions of `model`: `column_property` attributes that are not
    table columns, and hybrid properties with a SQL expression, keyed by attribute name.

    They are nullable (an expression may yield NULL whatever its operands) and typed by
    their SQL type (`Any` when SQLAlchemy cannot tell it, as for `func.upper(...)`)."""
    mapper = inspect(model)
    described: dict[str, ColumnInfo] = {}
    expressions: list[tuple[str, ColumnElement[Any]]] = [
        (prop.key, prop.columns[0])
        for prop in mapper.column_attrs
        if len(prop.columns) == 1 and not isinstance(prop.columns[0], Column)
    ]
    for key, descriptor in mapper.all_orm_descriptors.items():
        if descriptor.extension_type is HybridExtensionType.HYBRID_PROPERTY:
            expression = _hybrid_expression(model, key)
            if expression is not None:
                expressions.append((key, expression))
    for key, expression in expressions:
        python_type, constraints = _base_type(expression)
        described[key] = ColumnInfo(
            key=key,
            column=expression,  # type: ignore[arg-type]  # used only as an expression
            python_type=python_type,
            nullable=True,
            primary_key=False,
            server_set=True,
            has_default=False,
            # An expression's range and scale are not its operands' (price * quantity):
            # only the bounds of the value type itself are kept.
            type_constraints={
                name: value for name, value in constraints.items() if name in _COMPUTED_CONSTRAINTS
            },
            computed=True,
        )
    return described
