"""`?fields=name,price`: sparse fieldsets on the list and retrieve endpoints.

Only the named keys of `Out` are in each item (or the body); the primary key
too only when named. Write-only fields are not fields of `Out`: naming one is
refused like any unknown name, so the answer never says that it exists.

A list selects only the columns it needs: the named fields, the ordering's (the
next cursor is made of them) and the keys of the expanded relations, which
`expand=` adds to each item whatever `fields=` names. A many-to-many relationship's keys
are read by a query of their own, only when named. Naming a field computed in
Python reads the whole row, as its method may read any column. A retrieve reads
the whole row in every case: the object permission check and the `ETag` see all
of it, so the `ETag` is the row's, the same with or without `fields=`, and an
`If-Match` made from a sparse answer still matches.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from pydantic import BaseModel, Field, create_model
from sqlalchemy import ColumnElement, Row, Select, select

from crudkit.exceptions import Invalid
from crudkit.fields import to_base64
from crudkit.queries import ResourceQueries
from crudkit.resources import Resource

MAX_FIELDS_TEXT = 1000
"""Characters of a `fields=` value at most."""
_MAX_CACHED = 64


class Fieldset:
    """What a list asked for `fields=` selects, and the item shown of each row."""

    def __init__(self, selected: Select[Any], public: Callable[[Row[Any]], dict[str, Any]]) -> None:
        self._select = selected
        self.public = public
        self.pages: dict[tuple[tuple[str, bool], ...], Select[Any]] = {}
        """Pages of this selection without filters or scope, by ordering (the router's)."""

    def select(self, condition: ColumnElement[bool] | None = None) -> Select[Any]:
        return self._select if condition is None else self._select.where(condition)


class Fieldsets:
    """The fields of one resource a caller may name, and the selections they make."""

    def __init__(self, resource: Resource, queries: ResourceQueries) -> None:
        self.queries = queries
        readable = resource.readable_columns()
        sql_computed = getattr(resource, "sql_computed", {})
        python_computed = getattr(resource, "python_computed", {})
        links = getattr(resource, "many_to_many", {})
        self.names: list[str] = [
            *(info.key for info in readable),
            *sql_computed,
            *python_computed,
            *links,
        ]
        """What `fields=` may name, in the order of `Out`."""
        self._allowed = frozenset(self.names)
        self._python = frozenset(python_computed)
        self._links = frozenset(links)
        """Many-to-many keys: loaded by a query of their own, added to the items after."""
        # Every column may be read for the page's own needs (ordering, expansions).
        self._expressions: dict[str, ColumnElement[Any]] = {
            key: info.column.label(key)
            for key, info in {**resource.columns, **sql_computed}.items()
        }
        self._binary = frozenset(info.key for info in readable if info.is_binary)
        self._cache: dict[tuple[tuple[str, ...], tuple[str, ...]], Fieldset] = {}

    def parse(self, raw: str) -> tuple[str, ...]:
        """The fields named in `raw` (comma-separated), in the order of `Out`; a name that
        is not a readable field of the resource is a 422 naming it."""
        if len(raw) > MAX_FIELDS_TEXT:
            raise Invalid.single(
                ["query", "fields"], f"at most {MAX_FIELDS_TEXT} characters", "string_too_long"
            )
        asked = raw.split(",")
        unknown = list(dict.fromkeys(name for name in asked if name not in self._allowed))
        if unknown:
            named = ", ".join(repr(name[:100]) for name in unknown[:10])
            raise Invalid.single(
                ["query", "fields"],
                f"unknown field{'s' if len(unknown) > 1 else ''} {named}; "
                f"allowed: {', '.join(self.names)}",
            )
        wanted = set(asked)
        return tuple(name for name in self.names if name in wanted)

    def for_list(self, shown: Sequence[str], needed: Iterable[str]) -> Fieldset:
        """The selection of a list showing `shown`, reading `needed` besides (built once
        per combination)."""
        key = (tuple(shown), tuple(dict.fromkeys(needed)))
        fieldset = self._cache.get(key)
        if fieldset is None:
            fieldset = self._build(key[0], key[1])
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()  # callers ask for few combinations; a bound all the same
            self._cache[key] = fieldset
        return fieldset

    def _build(self, shown: tuple[str, ...], needed: tuple[str, ...]) -> Fieldset:
        if self._links.intersection(shown):
            shown = tuple(key for key in shown if key not in self._links)
        if self._python.intersection(shown):
            full = self.queries.public
            return Fieldset(self.queries.select(None), lambda row: project(full(row), shown))
        wanted = {*shown, *needed}
        read = [key for key in self._expressions if key in wanted]
        positions = [(key, read.index(key)) for key in shown]
        binary = [key for key in shown if key in self._binary]

        def public(row: Row[Any]) -> dict[str, Any]:
            item = {key: row[index] for key, index in positions}
            for key in binary:
                value = item[key]
                if value is not None:
                    item[key] = to_base64(value)
            return item

        return Fieldset(select(*(self._expressions[key] for key in read)), public)


def project(item: dict[str, Any], shown: Collection[str]) -> dict[str, Any]:
    """The `shown` keys of a full item (a retrieve reads the whole row); many-to-many
    keys are added after."""
    return {key: item[key] for key in shown if key in item}


def _undocumented_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def sparse_schema(name: str, out: type[BaseModel]) -> type[BaseModel]:
    """`out` with every key optional: what a list or a retrieve answers to `fields=`
    (documented beside `out`, so that every answer matches the document)."""
    fields: dict[str, Any] = {
        key: (field.annotation, Field(None, json_schema_extra=field.json_schema_extra
                                      or _undocumented_default))
        for key, field in out.model_fields.items()
    }  # fmt: skip
    model = create_model(name, **fields)
    model.__doc__ = f"{out.__name__} with only the fields asked for by `fields=`."
    return model
