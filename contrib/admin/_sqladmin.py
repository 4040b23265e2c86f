"""Every use of sqladmin's non-public API, in one place (pyproject caps sqladmin to the
versions the suite runs on).

sqladmin documents `ModelView`'s options and hooks; what a view computes from
them (`_form_prop_names`, `_list_prop_names`, `_column_labels`,
`_form_ajax_refs`) and how a save hands its response back to the edit page
(`_queries.Query._store_after_change_response`) are its own business. crudkit
needs both, so they are read and written here and nowhere else.
"""

from __future__ import annotations

from typing import Any

from sqladmin import ModelView
from sqladmin._queries import Query
from starlette.requests import Request


def form_prop_names(view: ModelView) -> list[str]:
    """The properties on the view's form, as sqladmin resolved `form_columns`."""
    return list(view._form_prop_names)


def list_prop_names(view: ModelView) -> list[str]:
    """The properties in the view's list, as sqladmin resolved `column_list`."""
    return list(view._list_prop_names)


def column_labels(view: ModelView) -> dict[Any, str]:
    """The view's column labels, keyed by property name."""
    labels: dict[Any, str] = view._column_labels
    return labels


def set_ajax_lookups(view: ModelView, lookups: dict[str, Any]) -> None:
    """Render these form fields as ajax selects served by `lookups` (loader objects)."""
    view._form_ajax_refs = lookups


def store_after_change_response(request: Request, response: Any) -> None:
    """Hand `after_model_change`'s response to sqladmin's edit and create pages."""
    Query._store_after_change_response(request, response)
