"""Saving from the admin: the one write pipeline, with its answers shown on the form.

`RowWriter` does `ResourceView`'s saves (`insert_model`, `update_model`,
`delete_model`) through `crudkit.writes.WritePipeline`, as the API does: the
resource's policy (the row looked up within the user's scope), the Create or
Update schema, the model's `@validates` and `Resource.validate`, the hooks, the
statement, the history entry (channel `admin`) and the `on_commit` callbacks,
in one transaction. What the pipeline refuses becomes a `FormError`: a
message above the form, and on the field when the error names one (a database
error too, never in the driver's words: see `errors.py`).

An edit form carries the version of the row it was opened on (`VERSION_FIELD`:
the same content hash as the API's `ETag`), sent to the pipeline as `If-Match`:
when the row changed since, nothing is written and the form says so.

The view's own hooks run where sqladmin runs them: `on_model_change` before
the write, `after_model_change` and `after_model_delete` once it is committed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm.attributes import set_committed_value
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from crudkit.contrib.admin._sqladmin import store_after_change_response
from crudkit.contrib.admin.errors import (
    UNEXPLAINED,
    FormError,
    describe_http_error,
    explain_db_error,
    field_messages,
)
from crudkit.contrib.admin.forms import VERSION_FIELD, add_field_errors
from crudkit.exceptions import HTTPError, NotFound, PreconditionFailed
from crudkit.queries import row_etag
from crudkit.writes import Caller, WritePipeline

if TYPE_CHECKING:
    from crudkit.contrib.admin.views import ResourceView
    from crudkit.resources import Resource

logger = logging.getLogger("crudkit.admin")


def object_version(resource: Resource, obj: Any) -> str:
    """The version of a model instance: the API's `ETag` of the same row."""
    return row_etag([getattr(obj, key) for key in resource.columns])


def instance_of(resource: Resource, row: Row[Any]) -> Any:
    """A model instance holding `row`'s values, for sqladmin's redirects and hooks."""
    obj = resource.mapper.class_manager.new_instance()
    for key in resource.columns:
        set_committed_value(obj, key, row._mapping[key])
    return obj


class RowWriter:
    """Creates, changes and deletes the rows of one admin view through the pipeline."""

    def __init__(self, view: ResourceView) -> None:
        self.view = view
        self.resource = view.resource
        self.name = view.name.lower()
        self.link_keys = {prop.key for prop in view.form_links}

    def _values(self, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The form's column values and its many-to-many links."""
        columns = self.resource.columns
        values = {key: value for key, value in data.items() if key in columns}
        links = {key: value for key, value in data.items() if key in self.link_keys}
        return values, links

    def _refused(self, request: Request, exc: HTTPError, *, deleting: bool = False) -> FormError:
        if isinstance(exc, PreconditionFailed):
            return FormError(
                f"Someone else changed this {self.name} after you opened the form, "
                "so your changes were not saved. Reload the page to see the "
                "current values, then make your changes again."
            )
        if isinstance(exc, NotFound):
            return FormError(f"This {self.name} no longer exists.")
        if deleting and exc.status_code == 409:
            return FormError(
                f"This {self.name} is still referred to by other rows; "
                "delete or change those first."
            )
        add_field_errors(request, field_messages(exc))
        return FormError(describe_http_error(exc))

    @contextmanager
    def _refusals(self, request: Request, *, deleting: bool = False) -> Iterator[None]:
        """What the pipeline refuses, and any database error, as a `FormError`: never
        the driver's text, which holds the statement and its values. Anything else (a
        hook's bug) is noted for `raise_failure`: the save is rolled back, and the
        answer is the 500 page, not a form message."""
        try:
            yield
        except HTTPError as exc:
            raise self._refused(request, exc, deleting=deleting) from None
        except (SQLAlchemyError, OverflowError) as exc:
            error = explain_db_error(exc, self.resource.table)
            if error is None:
                logger.error("admin: a %s write failed", self.name, exc_info=exc)
                raise FormError(UNEXPLAINED) from None
            raise self._refused(request, error, deleting=deleting) from None
        except (FormError, StarletteHTTPException):
            raise
        except Exception as exc:
            request.state.admin_failure = exc
            raise

    @staticmethod
    def _pipeline(request: Request) -> WritePipeline:
        return WritePipeline.of(request.app)  # the admin shares the app's state

    # The three writes.

    async def insert(self, request: Request, data: dict[str, Any]) -> Any:
        view = self.view
        data.pop(VERSION_FIELD, None)
        with self._refusals(request):
            await view.on_model_change(data, view.model(), True, request)
            pipeline = self._pipeline(request)
            writes = pipeline.writes_for(self.resource)
            values, links = self._values(data)
            cleaned = writes.clean(values, create=True)
            row = await pipeline.create(
                self.resource, {**cleaned, **links}, Caller(request, via="admin")
            )
        obj = instance_of(self.resource, row)
        await self._after_change(request, data, obj, created=True)
        return obj

    async def update(self, request: Request, pk: str, data: dict[str, Any]) -> Any:
        view = self.view
        version = data.pop(VERSION_FIELD, None)
        key = view.parse_pk(pk)
        with self._refusals(request):
            current = await view.get_object_for_edit(request)
            if current is None:
                raise FormError(f"This {self.name} no longer exists.")
            await view.on_model_change(data, current, False, request)
            pipeline = self._pipeline(request)
            values, links = self._values(data)
            cleaned = pipeline.writes_for(self.resource).clean(values, create=False)
            row = await pipeline.update(
                self.resource,
                key,
                {**cleaned, **links},
                Caller(request, via="admin"),
                if_match=version or None,
            )
        obj = instance_of(self.resource, row)
        await self._after_change(request, data, obj, created=False)
        return obj

    async def delete(self, request: Request, pk: Any, obj: Any) -> None:
        """Delete the row `pk` (`obj`, already passed to `on_model_delete`)."""
        key = self.view.parse_pk(str(pk))
        with self._refusals(request, deleting=True):
            await self._pipeline(request).delete(self.resource, key, Caller(request, via="admin"))
        request.state.admin_deleted_rows = deleted_rows(request) + 1
        await self.view.after_model_delete(obj, request)

    async def _after_change(
        self, request: Request, data: dict[str, Any], obj: Any, *, created: bool
    ) -> None:
        response = await self.view.after_model_change(data, obj, created, request)
        store_after_change_response(request, response)


def raise_failure(request: Request) -> None:
    """Raise the unexpected error a save of this request met, if any.

    sqladmin answers any exception of a save with the form and the exception's text
    (a 400); an error crudkit cannot explain is a 500 instead: the admin's error
    page, with the request id, and the traceback in the log.
    """
    failure: Exception | None = getattr(request.state, "admin_failure", None)
    if failure is not None:
        request.state.admin_failure = None
        raise failure


def deleted_rows(request: Request) -> int:
    """How many rows this admin request has deleted so far."""
    count: int = getattr(request.state, "admin_deleted_rows", 0)
    return count
