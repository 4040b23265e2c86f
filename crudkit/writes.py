"""One write pipeline: every create, update and delete, whatever sends it.

    row = await crudkit.create(Product, {"name": "Lamp", "price": "12.50"}, user=alice, app=app)
    row = await crudkit.update(Product, row.id, {"price": "9.90"}, user=alice, app=app)
    await crudkit.delete(Product, row.id, user=alice, app=app)

The API's endpoints, the admin's forms, the auth endpoints, the user commands and
the functions above all call `WritePipeline`, so a rule written once holds on
every channel. One write runs these steps in one transaction:

1. policy: `has_permission`, the row looked up within the caller's scope (404
   outside it), `has_object_permission` (skipped for trusted callers, `check=False`);
2. validation: each many-to-many key must name a row the caller may read (skipped
   for trusted callers), then the model's `@validates` methods, then
   `Resource.validate` (which sees the many-to-many sets too, and can tell a
   trusted caller by `current_caller`);
3. the `before_*` hook;
4. the statement (INSERT/UPDATE/DELETE ... RETURNING) and many-to-many links;
5. the `after_*` hook;
6. the installed apps' write hooks (the history row);
7. the commit, then the `on_commit` callbacks.

A database error is translated into the HTTP error it means in one place
(`_translate`), and a write started inside another write (an `after_create`
hook creating a row, say) joins its transaction and its `on_commit` callbacks.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as SchemaError
from sqlalchemy import Row, Table, insert, select
from sqlalchemy import delete as delete_statement
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import RelationshipDirection, RelationshipProperty
from sqlalchemy.orm.attributes import set_committed_value
from starlette.requests import Request

from crudkit.authentication import ANONYMOUS, UserLike
from crudkit.events import Channel, WriteEvent
from crudkit.exceptions import (
    Conflict,
    HTTPError,
    ImproperlyConfigured,
    Invalid,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ValidationError,
    translate_db_error,
)
from crudkit.permissions import Action, can_read, has_model_permission, read_filter
from crudkit.queries import ResourceQueries, etag_matches, row_etag
from crudkit.resources import Resource

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy import ColumnElement

    from crudkit.apps import Apps
    from crudkit.db import Database, Writer

logger = logging.getLogger("crudkit.writes")

OnCommit = Callable[[], object]
"""A callback run after the commit: a plain function or one returning an awaitable."""

_UNCHECKED_EVENTS = (
    "before_insert",
    "after_insert",
    "before_update",
    "after_update",
    "before_delete",
    "after_delete",
)
"""Mapper events of the unit of work, which a Core statement does not fire."""


@dataclass
class _Write:
    """The transaction in progress: its statements' runner and what waits for the commit."""

    db: Database
    writer: Writer
    callbacks: list[OnCommit] = field(default_factory=list)


_current: ContextVar[_Write | None] = ContextVar("crudkit_write", default=None)

_pending: set[asyncio.Future[Any]] = set()
"""`on_commit` callbacks scheduled outside a write, kept until they finish."""


def on_commit(callback: OnCommit) -> None:
    """Run `callback` once the current write has committed; never after a rollback.

    Outside a write it runs at once (an async callback is scheduled), as Django's
    `transaction.on_commit` does outside a transaction.
    """
    write = _current.get()
    if write is not None:
        write.callbacks.append(callback)
        return
    result = callback()
    if inspect.isawaitable(result):
        task = asyncio.ensure_future(result)
        _pending.add(task)
        task.add_done_callback(_pending.discard)


async def _run_callbacks(callbacks: list[OnCommit]) -> None:
    for callback in callbacks:
        try:
            result = callback()
            if inspect.isawaitable(result):
                await result
        except Exception:
            # The write is committed: a failing side effect is logged, not reported as
            # the write's failure.
            logger.exception("on_commit callback %r failed", callback)


def _overrides(resource: Resource, name: str) -> bool:
    return getattr(type(resource), name) is not getattr(Resource, name)


@dataclass(frozen=True)
class _Link:
    """A many-to-many relationship written as rows of its link table."""

    key: str
    table: Table
    local: Any
    """The link table's column holding this row's key."""
    remote: Any
    """The link table's column holding the related row's key."""
    local_key: str
    """The attribute of this row the link refers to."""
    parent: Any
    """This model's column the link refers to."""
    related: Any
    """The related model's column the link refers to."""
    model: type[Any]
    """The related model."""
    by_pk: bool
    """Whether the link refers to this row's primary key."""


def _links_of(resource: Resource) -> dict[str, _Link]:
    links: dict[str, _Link] = {}
    for prop in resource.mapper.relationships:
        if not isinstance(prop, RelationshipProperty):
            continue
        if prop.direction is not RelationshipDirection.MANYTOMANY:
            continue
        secondary = prop.secondary
        if not isinstance(secondary, Table) or prop.secondary_synchronize_pairs is None:
            continue
        if len(prop.synchronize_pairs) != 1 or len(prop.secondary_synchronize_pairs) != 1:
            continue
        (parent, local), (related, remote) = (
            prop.synchronize_pairs[0],
            prop.secondary_synchronize_pairs[0],
        )
        local_key = resource.mapper.get_property_by_column(parent).key
        links[prop.key] = _Link(
            prop.key,
            secondary,
            local,
            remote,
            local_key,
            parent,
            related,
            prop.mapper.class_,
            local_key == resource.pk_info.key,
        )
    return links


class ResourceWrites:
    """The pipeline's view of one resource: its statements, hooks and validators."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.queries = ResourceQueries(resource)
        self.pk_key = resource.pk_info.key
        self.links = _links_of(resource)
        self.validators = {
            key: spec for key, spec in resource.mapper.validators.items() if key in resource.columns
        }
        self.has_validate = _overrides(resource, "validate")
        self.has_after_create = _overrides(resource, "after_create")
        self.has_after_update = _overrides(resource, "after_update")
        self.has_after_delete = _overrides(resource, "after_delete")

    def refuse_unsupported(self) -> None:
        """Refuse, at start, what crudkit's Core statements would silently skip."""
        mapper = self.resource.mapper
        for name in _UNCHECKED_EVENTS:
            if getattr(mapper.dispatch, name):
                raise ImproperlyConfigured(
                    f"{self.resource.model.__name__} has a `{name}` mapper event listener, "
                    "which crudkit's writes do not fire (they run SQL statements, not an ORM "
                    "flush); move it to the resource's before_*/after_* hooks or to a "
                    "`@validates` method"
                )

    # Values.

    def split_links(self, values: dict[str, Any]) -> dict[str, Any]:
        """Take the many-to-many sets out of `values` (the statement's columns stay)."""
        return {key: values.pop(key) for key in list(values) if key in self.links}

    def clean(self, values: Mapping[str, Any], *, create: bool) -> dict[str, Any]:
        """`values` as the Create (or Update) schema accepts them; 422 otherwise."""
        resource = self.resource
        schema = resource.create_schema if create else resource.update_schema
        try:
            parsed = schema.model_validate(dict(values))
        except SchemaError as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)
            raise Invalid(
                [
                    {"loc": ["body", *error["loc"]], "msg": error["msg"], "type": error["type"]}
                    for error in errors
                ]
            ) from None
        cleaned: dict[str, Any] = parsed.model_dump(exclude_unset=True)
        return cleaned

    def run_validators(self, values: dict[str, Any], current: Row[Any] | None) -> dict[str, Any]:
        """The model's `@validates` methods, on an instance holding the row's values, as
        an ORM write would run them; a `ValueError` is a 422 at the field."""
        if not self.validators or not any(key in values for key in self.validators):
            return values
        obj = self.resource.mapper.class_manager.new_instance()  # without running __init__
        if current is not None:
            for key in self.resource.columns:
                set_committed_value(obj, key, current._mapping[key])
        errors: dict[str | None, str] = {}
        validated = dict(values)
        for key, value in values.items():
            if key not in self.validators:
                continue
            try:
                setattr(obj, key, value)  # fires the validator, which may change the value
            except ValidationError as exc:
                errors.update({k: "; ".join(v) for k, v in exc.messages.items()})
                continue
            except (ValueError, AssertionError) as exc:
                errors[key] = str(exc) or "Invalid value."
                continue
            validated[key] = getattr(obj, key)
        if errors:
            raise ValidationError(errors)
        return validated


@dataclass(frozen=True, slots=True)
class Caller:
    """Who writes, and through which channel."""

    request: Request
    via: Channel = "api"
    check: bool = True
    """Apply the resource's policy; off for trusted callers (commands, scripts)."""

    @property
    def user(self) -> UserLike:
        user: UserLike = self.request.scope.get("user") or ANONYMOUS
        return user


_current_caller: ContextVar[Caller | None] = ContextVar("crudkit_caller", default=None)


def current_caller() -> Caller | None:
    """The caller of the write whose validation or hooks are running (None outside one):
    how a hook tells a trusted caller (`check=False`) from a checked one."""
    return _current_caller.get()


class WritePipeline:
    """Creates, changes and deletes rows of one project's resources (`app.state.writes`)."""

    def __init__(self, db: Database, apps: Apps) -> None:
        self.db = db
        self.apps = apps
        self._resources: dict[type[Any], ResourceWrites] = {}

    def script_request(self, user: UserLike | None = None) -> Request:
        """A request standing for a caller outside HTTP (a command, a task): policies
        and hooks read `request.user` and `request.app.state` from it as usual."""
        state = SimpleNamespace(
            writes=self, db=self.db, apps=self.apps, settings=self.apps.settings
        )
        return _standing_request(SimpleNamespace(state=state), user)

    @classmethod
    def of(cls, app: FastAPI) -> WritePipeline:
        pipeline: WritePipeline = app.state.writes
        return pipeline

    def writes_for(self, target: type[Any] | Resource) -> ResourceWrites:
        """The pipeline of a model (or its resource); registered models only."""
        model = target.model if isinstance(target, Resource) else target
        found = self._resources.get(model)
        if found is not None:
            return found
        resource = target if isinstance(target, Resource) else self._find(model)
        found = ResourceWrites(resource)
        self._resources[model] = found
        return found

    def _find(self, model: type[Any]) -> Resource:
        for resource in self.apps.resources:
            if resource.model is model:
                return resource
        registered = self.apps.registry.get(model)
        if registered is None:
            raise ImproperlyConfigured(f"{model.__name__} is not registered with crudkit")
        return registered

    # The transaction.

    @asynccontextmanager
    async def transaction(self, caller: Caller | None = None) -> AsyncIterator[Writer]:
        """The current write's transaction, or a new one committed (then its `on_commit`
        callbacks run) when the block ends. With `caller`, the writes made in the block
        for the same request (`crudkit.update(..., request=request)`) are recorded as
        that caller's channel: the admin runs actions so."""
        if caller is not None:
            async with self._writing(caller) as writer:
                yield writer
            return
        outer = _current.get()
        if outer is not None and outer.db is self.db:
            yield outer.writer
            return
        async with self.db.writer() as writer:
            write = _Write(self.db, writer)
            token = _current.set(write)
            try:
                yield writer
            finally:
                _current.reset(token)
        await _run_callbacks(write.callbacks)

    @asynccontextmanager
    async def _writing(self, caller: Caller) -> AsyncIterator[Writer]:
        """`transaction()`, with `caller` known to the write's hooks (`current_caller`)."""
        token = _current_caller.set(caller)
        try:
            async with self.transaction() as writer:
                yield writer
        finally:
            _current_caller.reset(token)

    # Policy.

    def authorize(
        self, resource: Resource, caller: Caller, action: Action
    ) -> ColumnElement[bool] | None:
        """Refuse the caller (401/403), or return their row filter for `action`."""
        policy = resource.policy
        request = caller.request
        if not policy.has_permission(request, resource, action):
            if not caller.user.is_authenticated:
                raise NotAuthenticated()
            raise PermissionDenied()
        return policy.get_query_filter(request, resource, action)

    @staticmethod
    def check_object(resource: Resource, caller: Caller, action: Action, row: Any) -> None:
        if not resource.policy.has_object_permission(caller.request, resource, action, row):
            if action.is_read:
                raise NotFound()
            raise PermissionDenied()

    # The three writes.

    async def create(
        self,
        target: type[Any] | Resource,
        values: dict[str, Any],
        caller: Caller,
        *,
        authorized: bool = False,
    ) -> Row[Any]:
        """Insert a row from already-parsed `values` (the Create schema's fields).

        `authorized`: the caller's `has_permission` was already asked (the API asks
        it before reading the body).
        """
        w = self.writes_for(target)
        resource = w.resource
        request = caller.request
        if caller.check and not authorized:
            self.authorize(resource, caller, Action.CREATE)
        owner = resource.owner_field
        if owner is not None and (caller.check or owner not in values):
            user = caller.user
            if user.is_authenticated:
                values[owner] = user.id
        links = w.split_links(values)
        try:
            async with self._writing(caller) as writer:
                if caller.check and links:
                    await self._refuse_unreadable(writer, w, caller, links)
                values = w.run_validators(values, None)
                if w.has_validate:
                    values = await resource.validate(request, {**values, **links}, None)
                    links = w.split_links(values)
                values = await resource.before_create(request, values)
                row = await w.queries.insert(writer, values)
                after_links = await self._write_links(writer, w, row, links) if links else {}
                if w.has_after_create:
                    await resource.after_create(request, row)
                await self._notify(writer, w, caller, Action.CREATE, None, row, {}, after_links)
        except DBAPIError as exc:
            raise await self._translate(exc, w, values) from exc
        return row

    async def create_many(
        self,
        target: type[Any] | Resource,
        items: Sequence[dict[str, Any]],
        caller: Caller,
        *,
        authorized: bool = False,
        stop_at_failure: bool = False,
    ) -> list[Row[Any] | HTTPError | None]:
        """Insert many rows from already-parsed values in one batch, inside the current
        transaction (or a new one): one INSERT for the rows, one per link table, one
        call of each write hook.

        Every row goes through the steps of `create`, in this order: all the rows'
        checks (link keys, `@validates`, `validate`, `before_create`), one by one, then
        the INSERT, then each row's `after_create`. So `validate` and `before_create`
        do not see the rows of the same batch in the database; a rule that must is a
        constraint (or the resource sets `bulk_batches = False`, and is written row by
        row). An item refused by its checks (link keys, `@validates`, `validate`) is
        answered with its error and left out; with `stop_at_failure`, it is the last
        item answered, nothing is written, and the items before it are answered `None`.
        An error of `before_create`, of the statements or of `after_create` is raised:
        the transaction is rolled back (with whatever the hook wrote), and the caller
        runs the items again one by one to tell which failed.
        """
        w = self.writes_for(target)
        resource = w.resource
        request = caller.request
        if caller.check and not authorized:
            self.authorize(resource, caller, Action.CREATE)
        owner = resource.owner_field
        user = caller.user
        links_of: list[dict[str, Any]] = []
        for values in items:
            set_owner = caller.check or owner not in values
            if owner is not None and user.is_authenticated and set_owner:
                values[owner] = user.id
            links_of.append(w.split_links(values))
        results: list[Row[Any] | HTTPError | None] = []
        async with self._writing(caller) as writer:
            visible: dict[str, set[Any]] = {}
            if caller.check and any(links_of):
                wanted: dict[str, set[Any]] = {}
                for links in links_of:
                    for key, sent in links.items():
                        wanted.setdefault(key, set()).update(sent or ())
                visible = await self._visible(writer, w, caller, wanted)
            ready: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
            for index, (values, links) in enumerate(zip(items, links_of, strict=True)):
                try:
                    if visible:
                        _refuse_unseen(links, visible)
                    values = w.run_validators(values, None)
                    if w.has_validate:
                        values = await resource.validate(request, {**values, **links}, None)
                        links = w.split_links(values)
                except HTTPError as error:  # checks only, which write nothing: left out
                    results.append(error)
                    if stop_at_failure:
                        return results
                    continue
                # A hook that refuses may have written first: only the rollback of the
                # whole batch undoes that, then the caller writes the items one by one.
                values = await resource.before_create(request, values)
                results.append(None)  # its row, once inserted
                ready.append((index, values, links))
            if not ready:
                return results
            rows = await w.queries.insert_many(writer, [values for _, values, _ in ready])
            after_links = await self._write_many_links(
                writer, w, [(row, links) for row, (_, _, links) in zip(rows, ready, strict=True)]
            )
            for row, (index, _, _) in zip(rows, ready, strict=True):
                results[index] = row
                if w.has_after_create:
                    await resource.after_create(request, row)
            if self.apps.has_write_hooks:
                await self.apps.notify_writes(
                    writer.connection,
                    [
                        self._event(w, caller, Action.CREATE, None, row, {}, written)
                        for row, written in zip(rows, after_links, strict=True)
                    ],
                )
        return results

    async def update(
        self,
        target: type[Any] | Resource,
        pk: Any,
        values: dict[str, Any],
        caller: Caller,
        *,
        scope: ColumnElement[bool] | bool | None = True,
        if_match: str | None = None,
    ) -> Row[Any]:
        """Change the row `pk` with already-parsed `values` (the Update schema's fields).

        `scope`: the caller's row filter when it was already computed, `True` to
        compute it here. `if_match`: an `If-Match` header (or the admin form's
        version): a stale one is a 412 and the write is compare-and-swap.
        """
        w = self.writes_for(target)
        resource = w.resource
        request = caller.request
        condition = self._scope(resource, caller, Action.UPDATE, scope)
        links = w.split_links(values)
        try:
            async with self._writing(caller) as writer:
                if caller.check and links:
                    # Before the row's lookup: a row out of the caller's scope gets the
                    # same answer whether it is linked to a key or not.
                    await self._refuse_unreadable(writer, w, caller, links, pk, condition)
                row, conditional = await self._locate(
                    writer, w, pk, caller, Action.UPDATE, condition, if_match
                )
                if caller.check:
                    self._check_owner_change(resource, caller, row, values)
                values = w.run_validators(values, row)
                if w.has_validate:
                    values = await resource.validate(request, {**values, **links}, row)
                    links = w.split_links(values)
                values = await resource.before_update(request, row, values)
                if not values and not links:
                    return row
                before_links = await self._read_links(writer, w, row, links) if links else {}
                updated = row
                if values:
                    found = await w.queries.update(writer, row, values, if_unchanged=conditional)
                    if found is None:
                        raise PreconditionFailed() if conditional else NotFound()
                    updated = found
                after_links = await self._write_links(writer, w, updated, links) if links else {}
                if w.has_after_update:
                    await resource.after_update(request, updated, row)
                await self._notify(
                    writer, w, caller, Action.UPDATE, row, updated, before_links, after_links
                )
        except DBAPIError as exc:
            raise await self._translate(exc, w, values) from exc
        return updated

    async def delete(
        self,
        target: type[Any] | Resource,
        pk: Any,
        caller: Caller,
        *,
        scope: ColumnElement[bool] | bool | None = True,
        if_match: str | None = None,
    ) -> Row[Any]:
        """Delete the row `pk`; returns it as it was."""
        w = self.writes_for(target)
        resource = w.resource
        request = caller.request
        condition = self._scope(resource, caller, Action.DELETE, scope)
        try:
            async with self._writing(caller) as writer:
                row, conditional = await self._locate(
                    writer, w, pk, caller, Action.DELETE, condition, if_match
                )
                await resource.before_delete(request, row)
                before_links = await self._read_links(writer, w, row, w.links) if w.links else {}
                if not await w.queries.delete(writer, row, if_unchanged=conditional):
                    raise PreconditionFailed() if conditional else NotFound()
                if w.has_after_delete:
                    await resource.after_delete(request, row)
                await self._notify(writer, w, caller, Action.DELETE, row, None, before_links, {})
        except DBAPIError as exc:
            error = translate_db_error(exc, resource.table)
            if isinstance(error, Invalid) and error.detail[0]["type"] == "foreign_key":
                error = Conflict("Other rows still refer to this one; delete or change them first.")
            raise error from exc
        return row

    # Steps.

    def _scope(
        self,
        resource: Resource,
        caller: Caller,
        action: Action,
        scope: ColumnElement[bool] | bool | None,
    ) -> ColumnElement[bool] | None:
        """The caller's row filter: given (`scope`), computed (`True`), or none when the
        caller is trusted."""
        if not caller.check:
            return None
        if scope is True:
            return self.authorize(resource, caller, action)
        return None if isinstance(scope, bool) else scope

    async def _locate(
        self,
        writer: Writer,
        w: ResourceWrites,
        pk: Any,
        caller: Caller,
        action: Action,
        condition: ColumnElement[bool] | None,
        if_match: str | None,
    ) -> tuple[Row[Any], bool]:
        """The row a change or a delete is about, checked: 404 outside the caller's scope,
        403 when they may not do `action` to it, 412 for a stale `if_match`; and whether
        the write must then be compare-and-swap."""
        row = await w.queries.get(writer, pk, condition)
        if row is None:
            raise NotFound()
        if caller.check:
            self.check_object(w.resource, caller, action, row)
        if if_match is None:
            return row, False
        if not etag_matches(if_match, row_etag(row)):
            raise PreconditionFailed()
        return row, True

    async def _refuse_unreadable(
        self,
        writer: Writer,
        w: ResourceWrites,
        caller: Caller,
        links: Mapping[str, Any],
        pk: Any = None,
        scope: ColumnElement[bool] | None = None,
    ) -> None:
        """422 naming each key sent in `links` that is not a row the caller may read
        through the related resource's read policy.

        A key the row `pk` is already linked to (when that row is in the caller's
        `scope`) is not checked again, so a set read back can be sent back. A missing
        row and one the caller may not read get the same answer, which never tells
        that a row exists.
        """
        wanted: dict[str, set[Any]] = {}
        for key, sent in links.items():
            if not sent:
                continue
            link = w.links[key]
            keys = set(sent)
            if pk is not None and link.by_pk:
                linked = select(link.remote).where(link.local == pk, link.remote.in_(keys))
                if scope is not None:
                    linked = linked.where(link.local.in_(select(link.parent).where(scope)))
                keys -= {row[0] for row in await writer.rows(linked)}
            wanted[key] = keys
        visible = await self._visible(writer, w, caller, wanted)
        for key, keys in wanted.items():
            visible[key] |= set(links[key]) - keys  # already linked: not checked again
        _refuse_unseen(links, visible)

    async def _visible(
        self, writer: Writer, w: ResourceWrites, caller: Caller, wanted: Mapping[str, set[Any]]
    ) -> dict[str, set[Any]]:
        """Per link, the keys of `wanted` that name a row the caller may read (one query
        per link)."""
        request = caller.request
        visible: dict[str, set[Any]] = {}
        for key, keys in wanted.items():
            link = w.links[key]
            found: set[Any] = set()
            target = self._registered(link.model)
            if keys and target is not None and can_read(request, target):
                stmt = select(link.related).where(link.related.in_(keys))
                condition = read_filter(request, target)
                if condition is not None:
                    stmt = stmt.where(condition)
                found = {row[0] for row in await writer.rows(stmt)}
            visible[key] = found
        return visible

    def _registered(self, model: type[Any]) -> Resource | None:
        """The resource of `model`, or None when it has none (nobody may read its rows)."""
        try:
            return self.writes_for(model).resource
        except ImproperlyConfigured:
            return None

    @staticmethod
    def _check_owner_change(
        resource: Resource, caller: Caller, row: Row[Any], values: Mapping[str, Any]
    ) -> None:
        """Only holders of the change permission give a row to another owner."""
        owner = resource.owner_field
        if owner is None or owner not in values or values[owner] == row._mapping[owner]:
            return
        if not has_model_permission(caller.request, resource, Action.UPDATE):
            raise PermissionDenied(
                f"Changing {owner} needs the "
                f"{resource.get_permission_codename('change')} permission."
            )

    @staticmethod
    async def _read_links(
        writer: Writer, w: ResourceWrites, row: Row[Any], keys: Mapping[str, Any]
    ) -> dict[str, list[Any]]:
        """The related keys of the links named in `keys`, sorted, before the write."""
        found: dict[str, list[Any]] = {}
        for key in keys:
            link = w.links[key]
            own = row._mapping[link.local_key]
            rows = await writer.rows(select(link.remote).where(link.local == own))
            found[key] = sorted(r[0] for r in rows)
        return found

    @staticmethod
    async def _write_links(
        writer: Writer, w: ResourceWrites, row: Row[Any], links: Mapping[str, Any]
    ) -> dict[str, list[Any]]:
        """Replace each link set in `links`: the related keys the row now has."""
        written: dict[str, list[Any]] = {}
        for key, related in links.items():
            link = w.links[key]
            own = row._mapping[link.local_key]
            keys = sorted(dict.fromkeys(related or ()))
            await writer.rows(delete_statement(link.table).where(link.local == own))
            if keys:  # one multi-row INSERT for the whole set
                rows = [{link.local.key: own, link.remote.key: other} for other in keys]
                await writer.rows(insert(link.table).values(rows))
            written[key] = keys
        return written

    @staticmethod
    async def _write_many_links(
        writer: Writer, w: ResourceWrites, written: Sequence[tuple[Row[Any], Mapping[str, Any]]]
    ) -> list[dict[str, list[Any]]]:
        """The link sets of new rows: one multi-row INSERT per link table; per row, the
        related keys it now has."""
        sets: list[dict[str, list[Any]]] = []
        rows_of: dict[str, list[dict[str, Any]]] = {}
        for row, links in written:
            keys_of: dict[str, list[Any]] = {}
            for key, related in links.items():
                link = w.links[key]
                own = row._mapping[link.local_key]
                keys = sorted(dict.fromkeys(related or ()))
                rows_of.setdefault(key, []).extend(
                    {link.local.key: own, link.remote.key: other} for other in keys
                )
                keys_of[key] = keys
            sets.append(keys_of)
        for key, rows in rows_of.items():
            if rows:
                await writer.rows(insert(w.links[key].table).values(rows))
        return sets

    async def _notify(
        self,
        writer: Writer,
        w: ResourceWrites,
        caller: Caller,
        action: Action,
        before: Row[Any] | None,
        after: Row[Any] | None,
        before_links: Mapping[str, list[Any]],
        after_links: Mapping[str, list[Any]],
    ) -> None:
        """Tell the installed apps (the history) about the write, inside its transaction."""
        if not self.apps.has_write_hooks:
            return
        event = self._event(w, caller, action, before, after, before_links, after_links)
        await self.apps.notify_write(writer.connection, event)

    @staticmethod
    def _event(
        w: ResourceWrites,
        caller: Caller,
        action: Action,
        before: Row[Any] | None,
        after: Row[Any] | None,
        before_links: Mapping[str, list[Any]],
        after_links: Mapping[str, list[Any]],
    ) -> WriteEvent:
        row = after if after is not None else before
        assert row is not None
        request = caller.request
        return WriteEvent(
            resource=w.resource,
            action=action,
            channel=caller.via,
            user=request.scope.get("user"),
            request_id=getattr(request.state, "request_id", None),
            object_id=row._mapping[w.pk_key],
            before=None if before is None else {**before._mapping, **before_links},
            after=None if after is None else {**after._mapping, **after_links},
        )

    async def _translate(
        self, exc: DBAPIError, w: ResourceWrites, values: Mapping[str, Any]
    ) -> HTTPError:
        """The HTTP error a failed write means, naming the field when the database did not."""
        error = translate_db_error(exc, w.resource.table)
        if isinstance(error, Invalid) and error.detail[0]["type"] == "foreign_key":
            loc = error.detail[0]["loc"]
            if loc[-1] not in w.resource.columns:
                async with self.db.read() as conn:
                    name = await w.queries.missing_reference(conn, values)
                if name is not None:
                    error = Invalid.single(
                        ["body", name],
                        f"{name} refers to a row that does not exist.",
                        "foreign_key",
                    )
        return error


def _refuse_unseen(links: Mapping[str, Any], visible: Mapping[str, set[Any]]) -> None:
    """422 naming each key of `links` that is not in its link's `visible` set."""
    errors = [
        {
            "loc": ["body", key, index],
            "msg": f"no {key} item with key {other!r}",
            "type": "value_error",
        }
        for key, sent in links.items()
        if key in visible
        for index, other in enumerate(sent or ())
        if other not in visible[key]
    ]
    if errors:
        raise Invalid(errors)


# The Python write API.


def caller_request(
    app: FastAPI | None, user: UserLike | None, request: Request | None = None
) -> Request:
    """The request a write is made for: the given one, or one standing for a script's
    caller (policies and hooks read `request.user` and `request.app` from it)."""
    if request is not None:
        if user is not None and request.scope.get("user") is not user:
            scope = dict(request.scope)
            scope["user"] = user
            return Request(scope)
        return request
    if app is None:
        raise TypeError("pass `app=` (the crudkit app) or `request=`")
    return _standing_request(app, user)


def _standing_request(app: Any, user: UserLike | None) -> Request:
    return Request(
        {
            "type": "http",
            "method": "POST",
            "path": "/",
            "raw_path": b"/",
            "query_string": b"",
            "headers": [],
            "app": app,
            "user": user or ANONYMOUS,
            "state": {},
        }
    )


def _caller(
    app: FastAPI | None,
    user: UserLike | None,
    request: Request | None,
    via: Channel | None,
    check: bool,
) -> tuple[WritePipeline, Caller]:
    """The pipeline and the caller of a Python write: inside a request it is the API's
    (`via="api"`) or the channel of the transaction it joins, otherwise a script's
    (`via="cli"`)."""
    req = caller_request(app, user, request)
    outer = _current_caller.get()
    if via is None and outer is not None and request is not None and outer.request is request:
        via = outer.via  # a write made by an action the admin runs is the admin's
    channel: Channel = via or ("api" if request is not None else "cli")
    return WritePipeline.of(req.app), Caller(req, channel, check)


async def create(
    model: type[Any],
    values: Mapping[str, Any],
    *,
    user: UserLike | None = None,
    check: bool = True,
    app: FastAPI | None = None,
    request: Request | None = None,
    via: Channel | None = None,
) -> Row[Any]:
    """Create a row of `model` through the pipeline the API uses; returns the row.

    `values` are checked by the resource's Create schema (with `check=False`, the
    `owner_field` may be given). Pass the app (`crudkit.create_app()`) or, inside
    an endpoint or an action, the request.
    """
    pipeline, caller = _caller(app, user, request, via, check)
    w = pipeline.writes_for(model)
    owner = w.resource.owner_field
    given = dict(values)
    owner_value = given.pop(owner, None) if owner is not None and not check else None
    cleaned = w.clean(given, create=True)
    if owner is not None and owner_value is not None:
        cleaned[owner] = owner_value
    return await pipeline.create(model, cleaned, caller)


async def update(
    model: type[Any],
    pk: Any,
    values: Mapping[str, Any],
    *,
    user: UserLike | None = None,
    check: bool = True,
    app: FastAPI | None = None,
    request: Request | None = None,
    via: Channel | None = None,
) -> Row[Any]:
    """Change the row `pk` of `model` (only the keys given), as a PATCH would."""
    pipeline, caller = _caller(app, user, request, via, check)
    cleaned = pipeline.writes_for(model).clean(values, create=False)
    return await pipeline.update(model, pk, cleaned, caller)


async def delete(
    model: type[Any],
    pk: Any,
    *,
    user: UserLike | None = None,
    check: bool = True,
    app: FastAPI | None = None,
    request: Request | None = None,
    via: Channel | None = None,
) -> Row[Any]:
    """Delete the row `pk` of `model`; returns it as it was."""
    pipeline, caller = _caller(app, user, request, via, check)
    return await pipeline.delete(model, pk, caller)
