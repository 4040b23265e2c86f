"""List filters of the admin: a resource's `filter_fields`, parsed as the API parses them.

Boolean columns get sqladmin's Yes/No links. Every other column gets
`ResourceFilter`, an operation filter whose lookups (`equals`, `gte`, `in`,
`icontains`, ...) and value parsing are crudkit's `FilterSet`, so
`?price=abc` is refused with 400 rather than silently ignored or sent to the
database, and LIKE wildcards in user input match literally.

A foreign key to another admin resource gets `ForeignKeyFilter`: the same
filter, chosen by name in a searchable select whose choices come from the
view's filter lookup (`ResourceView.filter_lookup`), within the user's read
scope of the target; a typed `?category_id=3&category_id_op=exact` works as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqladmin.filters import BooleanFilter
from sqlalchemy import Select
from starlette.exceptions import HTTPException
from starlette.requests import Request

from crudkit.contrib.admin.errors import describe_http_error
from crudkit.contrib.admin.lookups import lookup_target
from crudkit.exceptions import Invalid
from crudkit.filters import FilterSet, operators_for, param_name

if TYPE_CHECKING:
    from crudkit.resources import Resource

EXACT = "exact"
"""The operation name the form sends for crudkit's plain `field=value` lookup."""

OPERATION_LABELS = {
    "": "Equals",
    "ne": "Not equal to",
    "gt": "Greater than",
    "gte": "At least",
    "lt": "Less than",
    "lte": "At most",
    "in": "One of (comma-separated)",
    "isnull": "Is empty (true or false)",
    "contains": "Contains (case-sensitive)",
    "icontains": "Contains",
}


class ResourceFilter:
    """A sqladmin operation filter on one column, with crudkit's lookups."""

    has_operator = True
    template = "sqladmin/filters/operation_filter.html"

    def __init__(self, resource: Resource, field: str, title: str) -> None:
        self.parameter_name = field
        self.title = title
        self.operations = operators_for(resource.queryable[field])
        self._filters = FilterSet(resource.queryable, [field], [], [])

    def get_operation_options_for_model(self, model: Any) -> list[tuple[str, str]]:
        return [(op or EXACT, OPERATION_LABELS.get(op, op)) for op in self.operations]

    async def lookups(
        self, request: Request, model: Any, run_query: Callable[[Select[Any]], Any]
    ) -> list[tuple[str, str]]:
        return []  # operation filters take typed values, not a list of choices

    async def get_filtered_query(
        self, query: Select[Any], operation: str, value: Any, model: Any
    ) -> Select[Any]:
        op = "" if operation == EXACT else operation
        if op not in self.operations:
            raise HTTPException(400, f"Unknown filter operation {operation!r}.")
        name = param_name(self.parameter_name, op)
        try:
            conditions = self._filters.conditions({name: str(value).strip()})
        except Invalid as exc:
            raise HTTPException(400, describe_http_error(exc)) from None
        return query.where(*conditions)


class ForeignKeyFilter(ResourceFilter):
    """A foreign-key filter, chosen by the name of the row it refers to."""

    template = "crudkit_admin/filters/foreign_key_filter.html"


def filters_for(resource: Resource, labels: dict[str, str]) -> list[Any]:
    """The sqladmin filters of a resource's `filter_fields`."""
    found: list[Any] = []
    for field in resource.filter_fields:
        if field in resource.many_to_many:
            continue  # filtered by the API only
        title = labels.get(field, field)
        target = lookup_target(resource, field) if field in resource.columns else None
        if resource.queryable[field].python_type is bool:
            found.append(BooleanFilter(field, title=title))
        elif target is not None and target.admin:
            found.append(ForeignKeyFilter(resource, field, title))
        else:
            found.append(ResourceFilter(resource, field, title))
    return found
