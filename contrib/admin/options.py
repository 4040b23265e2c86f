"""A resource's declarative options, as sqladmin's `ModelView` options.

    view_attributes(resource)    # {"column_list": [...], "form_columns": [...], ...}

Readable columns are listed (write-only ones never are), and so are the
computed fields, read-only on the list and details pages only: SQL ones
(`column_property`, `hybrid_property`) are loaded by the list's one SELECT and
sortable when in `ordering_fields`, `@crudkit.computed` ones are computed from
the row shown, with no query. `search_fields`,
`ordering_fields` and `filter_fields` become search, sortable columns and
filters, and the form holds the writable columns (read-only ones and the
`owner_field` are not in it) and the many-to-many links. Foreign keys are
labelled by what they refer to (`Category`, not `Category ID`), edited through
lookups (`lookups.py`) and shown as links to the row they refer to; binary
columns are edited as base64 text and listed by their size (`binary.py`).
Date-times are shown to the second as `<time>` elements, in UTC until the
admin's script (`statics/js/crudkit-admin.js`) rewrites them in the browser's
locale and time zone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup
from sqladmin.helpers import slugify_class_name
from sqlalchemy import DateTime
from sqlalchemy.orm import RelationshipDirection, RelationshipProperty
from starlette.requests import Request
from wtforms import PasswordField

from crudkit.contrib.admin.binary import Base64Field, binary_size
from crudkit.contrib.admin.filters import filters_for
from crudkit.contrib.admin.lookups import lookup_target
from crudkit.contrib.admin.permissions import AdminPolicy
from crudkit.resources import ComputedField, Resource


def capfirst(text: str) -> str:
    return text[:1].upper() + text[1:]


def label_for(key: str, *, foreign: bool = False) -> str:
    """`price` -> `Price`; a foreign key `category_id` -> `Category`."""
    if foreign and key.endswith("_id") and len(key) > 3:
        key = key[:-3]
    words = ["ID" if word == "id" else word for word in key.split("_")]
    return capfirst(" ".join(words))


def _form_links(resource: Resource) -> list[str]:
    """Many-to-many relationships edited on the form, when the other side is a resource.

    One-to-many sides are left out: they would change the other model's rows,
    around that model's own permissions; to-one links are edited through their
    foreign-key columns.
    """
    return [
        prop.key
        for prop in resource.mapper.relationships
        if isinstance(prop, RelationshipProperty)
        and prop.direction is RelationshipDirection.MANYTOMANY
        and lookup_target(resource, prop.key) is not None
    ]


def form_fields(resource: Resource) -> tuple[list[str], list[str]]:
    """The form's fields on create, and on edit (a natural key is set once).

    The `owner_field` is never one: a new row belongs to whoever creates it.
    """

    def fields(*, create: bool) -> list[str]:
        writable = [info.key for info in resource.writable_columns(create=create)]
        writable = [key for key in writable if key != resource.owner_field]
        return writable + _form_links(resource)

    return fields(create=True), fields(create=False)


def foreign_key_link(target: Resource) -> Any:
    """A list and details formatter: a foreign key as a link to the row it refers to,
    named as the user may see it (`ResourceView._name_references`), else by its key."""
    identity = slugify_class_name(target.model.__name__)

    def link(model: Any, name: str, request: Request) -> Any:
        value = getattr(model, name)
        if value is None:
            return ""
        names = getattr(request.state, "crudkit_references", {}).get(name, {})
        text = names.get(value) or f"{capfirst(target.name)} #{value}"
        url = request.url_for("admin:details", identity=identity, pk=str(value))
        return Markup('<a href="{}">{}</a>').format(url, text)

    return link


def local_time(value: datetime | None) -> Markup | str:
    """`value` as a `<time>` element: to the second, in UTC, until the admin's script
    shows it in the browser's locale and time zone. A naive value is taken as UTC,
    as crudkit stores date-times."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC).replace(microsecond=0)
    return Markup('<time datetime="{}" data-crudkit-time>{}</time>').format(
        value.isoformat(), f"{value:%Y-%m-%d %H:%M:%S} UTC"
    )


def timestamp(model: Any, name: str) -> Markup | str:
    """A list and details formatter: a date-time column as `local_time` shows it."""
    return local_time(getattr(model, name))


def computed_value(field: ComputedField) -> Any:
    """A list and details formatter: a `@crudkit.computed` field of the row shown."""

    def value(model: Any, name: str) -> Any:
        return field.function(model)

    return value


def _is_datetime(resource: Resource, key: str) -> bool:
    sql_type = resource.columns[key].column.type
    # crudkit's own date-time types decorate SQLAlchemy's (`TypeDecorator.impl`).
    return isinstance(sql_type, DateTime) or isinstance(getattr(sql_type, "impl", None), DateTime)


def view_attributes(resource: Resource) -> dict[str, Any]:
    """sqladmin options from a resource's declarative options."""
    readable = [info.key for info in resource.readable_columns()]
    shown = [*readable, *resource.sql_computed, *resource.python_computed]
    foreign = {
        key: target
        for key in resource.columns
        if key != resource.pk_info.key and (target := lookup_target(resource, key)) is not None
    }
    labels = {key: label_for(key, foreign=key in foreign) for key in resource.columns}
    labels |= {key: label_for(key) for key in shown if key not in labels}
    links = {key: foreign_key_link(target) for key, target in foreign.items() if target.admin}
    binary = [key for key, info in resource.columns.items() if info.is_binary]
    computed = {key: computed_value(field) for key, field in resource.python_computed.items()}
    times = [key for key in shown if key in resource.columns and _is_datetime(resource, key)]
    formatters: dict[str, Any] = {
        **dict.fromkeys(times, timestamp),
        **links,
        **dict.fromkeys(binary, binary_size),
        **computed,
    }
    create_fields, edit_fields = form_fields(resource)
    default_sort = [
        (field.lstrip("-"), field.startswith("-")) for field in resource.default_ordering
    ]
    return {
        "resource": resource,
        "policy": AdminPolicy(resource),
        "name": capfirst(resource.name),
        "name_plural": capfirst(resource.name_plural),
        "column_list": shown,
        "column_details_list": shown,
        "column_export_list": readable,
        "column_labels": labels,
        "column_formatters": formatters,
        "column_formatters_detail": formatters,
        "column_searchable_list": list(resource.search_fields),
        "column_sortable_list": list(resource.ordering_fields),
        "column_default_sort": default_sort,
        "column_filters": filters_for(resource, labels),
        "form_columns": create_fields,
        "form_edit_rules": edit_fields if edit_fields != create_fields else [],
        # Key columns are form fields (foreign keys as lookups, a natural key on create).
        "form_include_pk": True,
        "form_args": {key: {"allow_blank": resource.columns[key].nullable} for key in foreign},
        "form_overrides": {
            **dict.fromkeys(binary, Base64Field),
            **dict.fromkeys(resource.write_only_fields, PasswordField),
        },
    }
