"""Query parameters to SQL: filters, search and ordering of list endpoints.

    ?price__gte=10&category_id__in=1,2&search=lamp&ordering=-price,name

Only the fields a resource names in `filter_fields`, `search_fields` and
`ordering_fields` are accepted; values are typed from the column, so
`?price=abc` is a 422, and LIKE wildcards in user input match literally.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError
from sqlalchemy import ColumnElement, UnaryExpression, or_

from crudkit.exceptions import Invalid
from crudkit.fields import ColumnInfo, SafeStr

MAX_IN_VALUES = 1000

Operator = Callable[[Any, Any], ColumnElement[bool]]


def escape_like(text: str) -> str:
    """Make `%`, `_` and the escape character itself match literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_COMPARISONS: dict[str, Operator] = {
    "": lambda column, value: column == value,
    "gt": lambda column, value: column > value,
    "gte": lambda column, value: column >= value,
    "lt": lambda column, value: column < value,
    "lte": lambda column, value: column <= value,
    "ne": lambda column, value: column != value,
    "in": lambda column, values: column.in_(values),
    "isnull": lambda column, value: column.is_(None) if value else column.is_not(None),
    "contains": lambda column, value: column.like(f"%{escape_like(value)}%", escape="\\"),
    "icontains": lambda column, value: column.ilike(f"%{escape_like(value)}%", escape="\\"),
}

STRING_ONLY = frozenset({"contains", "icontains"})


ORDERED = frozenset({"gt", "gte", "lt", "lte"})


def operators_for(info: ColumnInfo) -> list[str]:
    """The lookups offered on a column: substring ones on strings, no ordering on booleans."""
    is_bool = info.python_type is bool
    return [
        op
        for op in _COMPARISONS
        if (op not in STRING_ONLY or info.is_string) and not (is_bool and op in ORDERED)
    ]


def param_name(field: str, op: str) -> str:
    return f"{field}__{op}" if op else field


@dataclass(frozen=True)
class FilterParam:
    """One accepted query parameter such as `price__gte`."""

    name: str
    info: ColumnInfo
    op: str
    within: Callable[[ColumnElement[bool]], ColumnElement[bool]] | None = None
    """Turns the comparison into the condition on the row (a many-to-many relationship's
    comparison is on its link table)."""

    @property
    def adapter(self) -> TypeAdapter[Any]:
        """Validates one value; `__in` takes a comma-separated list of them."""
        if self.op == "isnull":
            return query_adapter(bool, ())
        if self.op in STRING_ONLY:
            return query_adapter(SafeStr, ())
        return query_adapter(
            self.info.python_type, tuple(sorted(self.info.type_constraints.items()))
        )

    def json_schema(self) -> dict[str, Any]:
        """The OpenAPI schema of the raw query value."""
        if self.op == "in":
            return {"type": "string", "description": "comma-separated values"}
        schema = self.adapter.json_schema()
        ref = schema.pop("$ref", None)
        definitions = schema.pop("$defs", {})
        if ref:  # an enum: inline its definition, parameters cannot point at $defs
            schema.update(definitions[ref.rsplit("/", 1)[-1]])
        return schema


@cache
def query_adapter(python_type: Any, constraints: tuple[tuple[str, Any], ...]) -> TypeAdapter[Any]:
    """One adapter per value type, shared by every resource and app (they are costly to build)."""
    if constraints:
        return TypeAdapter(Annotated[python_type, Field(**dict(constraints))])
    return TypeAdapter(python_type)


class FilterSet:
    """Parses a resource's filter, search and ordering parameters into SQL."""

    def __init__(
        self,
        columns: Mapping[str, ColumnInfo],
        filter_fields: list[str],
        search_fields: list[str],
        ordering_fields: list[str],
    ) -> None:
        self.columns = columns
        self.params: dict[str, FilterParam] = {}
        for field in filter_fields:
            info = columns[field]
            for op in operators_for(info):
                name = param_name(field, op)
                self.params[name] = FilterParam(name, info, op)
        self.search_columns = [columns[field].column for field in search_fields]
        self.ordering_fields = list(ordering_fields)

    def _parse(self, name: str, raw: str) -> Any:
        param = self.params[name]
        adapter = param.adapter
        if param.op == "in":
            parts = [part for part in raw.split(",") if part != ""]
            if len(parts) > MAX_IN_VALUES:
                raise Invalid.single(["query", name], f"at most {MAX_IN_VALUES} values")
            return [self._validate(adapter, name, part) for part in parts]
        return self._validate(adapter, name, raw)

    @staticmethod
    def _validate(adapter: TypeAdapter[Any], name: str, raw: str) -> Any:
        try:
            return adapter.validate_python(raw)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)
            raise Invalid(
                [
                    {"loc": ["query", name], "msg": error["msg"], "type": error["type"]}
                    for error in errors
                ]
            ) from None

    def conditions(self, query: Mapping[str, str]) -> list[ColumnElement[bool]]:
        """SQL conditions for the filter parameters present in `query`."""
        found = []
        errors: list[dict[str, Any]] = []
        for name, raw in query.items():
            param = self.params.get(name)
            if param is None:
                continue
            try:
                value = self._parse(name, raw)
            except Invalid as exc:
                errors.extend(exc.detail)
                continue
            condition = _COMPARISONS[param.op](param.info.column, value)
            found.append(condition if param.within is None else param.within(condition))
        if errors:
            raise Invalid(errors)
        return found

    def search(self, text: str) -> ColumnElement[bool] | None:
        """Case-insensitive substring match of `text` in any of the search fields."""
        text = text.strip()
        if not text or not self.search_columns:
            return None
        pattern = f"%{escape_like(text)}%"
        return or_(*(column.ilike(pattern, escape="\\") for column in self.search_columns))

    def ordering(self, raw: str | None, default: list[str]) -> list[tuple[str, bool]]:
        """`-price,name` -> [("price", True), ("name", False)]; unknown fields are 422."""
        items = [part.strip() for part in raw.split(",")] if raw else list(default)
        parsed: list[tuple[str, bool]] = []
        seen = set()
        for item in items:
            if not item:
                continue
            descending = item.startswith("-")
            field = item.lstrip("-+")
            allowed = self.ordering_fields if raw else [*self.ordering_fields, *default]
            if field not in allowed:
                choices = ", ".join(self.ordering_fields) or "none"
                raise Invalid.single(
                    ["query", "ordering"],
                    f"cannot order by {field!r}; allowed: {choices} (prefix '-' for descending)",
                )
            if field not in seen:
                seen.add(field)
                parsed.append((field, descending))
        return parsed


def order_by_clauses(
    columns: Mapping[str, ColumnInfo], ordering: list[tuple[str, bool]]
) -> list[UnaryExpression[Any]]:
    """ORDER BY with NULLs last ascending and first descending, on every database."""
    clauses = []
    for field, descending in ordering:
        column = columns[field].column
        clause = column.desc() if descending else column.asc()
        if columns[field].nullable:
            clause = clause.nulls_first() if descending else clause.nulls_last()
        clauses.append(clause)
    return clauses
