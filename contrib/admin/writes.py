"""Saving from the admin: one transaction per row, holding the write, its checks and its history.

sqladmin commits each save in a session of its own and offers no hook inside
that transaction. `RowWriter` does `ResourceView`'s saves instead
(`insert_model`, `update_model`, `delete_model`):

- the row is read (locked, on PostgreSQL) and written in one transaction;
- an edit form carries the version of the row it was opened on
  (`VERSION_FIELD`: the same content hash as the API's `ETag`); when the row
  changed since, nothing is written and the form says so;
- the installed apps hear the write (`Apps.notify_write`, channel `admin`)
  before the commit, so its history entry commits or rolls back with it.

The view's hooks run where sqladmin runs them: `on_model_change` before the
row is written (the resource's validation and `before_*` hooks),
`after_model_change` and `after_model_delete` once it is committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqladmin._queries import Query
from sqlalchemy import Row, Select, delete, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import selectinload
from starlette.requests import Request

from crudkit.contrib.admin.errors import FormError, describe_db_error
from crudkit.events import WriteEvent
from crudkit.permissions import Action
from crudkit.queries import ResourceQueries, row_etag

if TYPE_CHECKING:
    from crudkit.contrib.admin.views import ResourceView
    from crudkit.resources import Resource

VERSION_FIELD = "crudkit_version"
"""The edit form's hidden field holding the version of the row it was opened on."""


def object_version(resource: Resource, obj: Any) -> str:
    """The version of a model instance: the API's `ETag` of the same row."""
    return row_etag([getattr(obj, key) for key in resource.columns])


class RowWriter:
    """Creates, changes and deletes the rows of one admin view, one transaction each."""

    def __init__(self, view: ResourceView) -> None:
        self.view = view
        self.resource = view.resource
        self.queries = ResourceQueries(view.resource)
        self.name = view.name.lower()

    # The row as the API sees it, and as the history records it.

    def _locked(self, request: Request, key: Any, action: Action) -> Select[Any]:
        stmt = self.queries.select().where(self.resource.pk == key)
        return self.view.policy.scope(stmt, request, action).with_for_update()

    def _links(self, obj: Any, data: Mapping[str, Any]) -> dict[str, list[Any]]:
        """The many-to-many links the form set, as sorted lists of keys."""
        pk_keys = {
            prop.key: prop.mapper.get_property_by_column(prop.mapper.primary_key[0]).key
            for prop in self.view.form_links
        }
        return {
            name: sorted(getattr(related, pk_keys[name]) for related in getattr(obj, name))
            for name in pk_keys
            if name in data
        }

    async def _notify(
        self,
        request: Request,
        conn: AsyncConnection,
        action: Action,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
    ) -> None:
        apps = self.view.apps
        if not apps.write_hooks:
            return
        current = after if after is not None else before
        assert current is not None
        event = WriteEvent(
            resource=self.resource,
            action=action,
            channel="admin",
            user=request.scope.get("user"),
            request_id=getattr(request.state, "request_id", None),
            object_id=current[self.resource.pk_info.key],
            before=before,
            after=after,
        )
        await apps.notify_write(conn, event)

    @staticmethod
    def _values(row: Row[Any], links: Mapping[str, list[Any]]) -> dict[str, Any]:
        return {**row._mapping, **links}

    # The three writes.

    async def insert(self, request: Request, data: dict[str, Any]) -> Any:
        view = self.view
        data.pop(VERSION_FIELD, None)
        obj = view.model()
        try:
            async with view.session_maker(expire_on_commit=False) as session:
                await view.on_model_change(data, obj, True, request)
                obj = await Query(view)._set_attributes_async(session, obj, data)
                session.add(obj)
                await session.flush()
                conn = await session.connection()
                key = getattr(obj, self.resource.pk_info.key)
                after = await self.queries.get(conn, key, None)
                assert after is not None
                await self._notify(
                    request, conn, Action.CREATE, None, self._values(after, self._links(obj, data))
                )
                await session.commit()
        except DBAPIError as exc:
            raise FormError(describe_db_error(exc, self.resource.table)) from None
        await self._after_change(request, data, obj, created=True)
        return obj

    async def update(self, request: Request, pk: str, data: dict[str, Any]) -> Any:
        view = self.view
        version = data.pop(VERSION_FIELD, None)
        key = view.parse_pk(pk)
        try:
            async with view.session_maker(expire_on_commit=False) as session:
                conn = await session.connection()
                before = (await conn.execute(self._locked(request, key, Action.UPDATE))).first()
                if before is None:
                    raise FormError(f"This {self.name} no longer exists.")
                if version and version != row_etag(before):
                    raise FormError(
                        f"Someone else changed this {self.name} after you opened the form, "
                        "so your changes were not saved. Reload the page to see the "
                        "current values, then make your changes again."
                    )
                stmt: Select[Any] = select(view.model).where(self.resource.pk == key)
                stmt = stmt.options(
                    *(selectinload(getattr(view.model, link.key)) for link in view.form_links)
                )
                obj = (await session.execute(stmt)).scalar_one()
                links_before = self._links(obj, data)
                await view.on_model_change(data, obj, False, request)
                obj = await Query(view)._set_attributes_async(session, obj, data)
                await session.flush()
                after = await self.queries.get(conn, key, None)
                assert after is not None
                await self._notify(
                    request,
                    conn,
                    Action.UPDATE,
                    self._values(before, links_before),
                    self._values(after, self._links(obj, data)),
                )
                await session.commit()
        except DBAPIError as exc:
            raise FormError(describe_db_error(exc, self.resource.table)) from None
        await self._after_change(request, data, obj, created=False)
        return obj

    async def delete(self, request: Request, pk: Any, obj: Any) -> None:
        """Delete the row `obj` (already checked and passed to `on_model_delete`).

        A plain DELETE, as the API's: the database applies the ON DELETE rules,
        where the ORM would first load every related collection.
        """
        view = self.view
        key = view.parse_pk(str(pk))
        try:
            async with view.session_maker() as session:
                conn = await session.connection()
                before = (await conn.execute(self._locked(request, key, Action.DELETE))).first()
                if before is None:
                    raise FormError(f"This {self.name} no longer exists.")
                await conn.execute(delete(self.resource.table).where(self.resource.pk == key))
                await self._notify(request, conn, Action.DELETE, dict(before._mapping), None)
                await session.commit()
        except IntegrityError:
            raise FormError(
                f"This {self.name} is still referred to by other rows; "
                "delete or change those first."
            ) from None
        except DBAPIError as exc:
            raise FormError(describe_db_error(exc, self.resource.table)) from None
        await view.after_model_delete(obj, request)

    async def _after_change(
        self, request: Request, data: dict[str, Any], obj: Any, *, created: bool
    ) -> None:
        response = await self.view.after_model_change(data, obj, created, request)
        Query._store_after_change_response(request, response)
