"""Many writes of one resource in one request: `POST /<path>/bulk`.

    POST /products/bulk
    {"create": [{"name": "Lamp", "price": "9.90"}],
     "update": [{"id": 1, "price": "12.00"}],
     "delete": [3, 4],
     "atomic": false}
    -> 200 {"results": [{"op": "create", "index": 0, "status": 201, "item": {...}},
                        {"op": "update", "index": 0, "status": 404, "detail": "Not found."},
                        ...]}

Each operation goes through the write pipeline as if it were sent alone to the
resource's own endpoint: the policy (`has_permission` asked once per action, the
row scope of updates and deletes: a row out of it is a 404), the Create/Update
schema, `@validates` and `Resource.validate`, the many-to-many key checks, the
hooks and the history row. Results come in order: creates, then updates, then
deletes, each with the status its own endpoint would have answered and the row
(`item`) or the error (`detail`, in that endpoint's shape).

Creates are written in a batch (`WritePipeline.create_many`): each one's checks
and `before_create` first, then one INSERT for them all, one per link table and
one for their history rows, then each `after_create`. A batch the database
refuses (or a `before_create` or `after_create` raises in) is rolled back and run
again one by one, so each create still answers its own status. `Resource.bulk_batches = False`
writes a resource's creates one by one always.

Without `atomic`, each operation is its own transaction (the batch of creates
commits together): failures are reported one by one and the others are kept.
With `"atomic": true` every operation runs in one transaction and the first
failure rolls them all back: the answer then has that failure's status, and
`results` lists the operations up to it (those before it without `item`, since
nothing was written).

The whole request is refused (nothing written) when the caller may not do one
of the actions it asks for (401/403), when it holds no operation or more than
`MAX_OPERATIONS`, and when an id appears twice among its updates and deletes (422).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, TypeAdapter, create_model
from pydantic import ValidationError as SchemaError
from pydantic_core import PydanticCustomError, to_json
from sqlalchemy import ColumnElement, Row
from sqlalchemy.exc import DBAPIError

from crudkit.authentication import resolve_user
from crudkit.exceptions import HTTPError, Invalid, NotAuthenticated, PermissionDenied, limit_errors
from crudkit.openapi import ResourceDocs, error_responses
from crudkit.permissions import Action
from crudkit.requests import invalid, parse_body
from crudkit.routers import ResourceEndpoints, ResourceRoute, json_response
from crudkit.writes import Caller, WritePipeline

MAX_OPERATIONS = 1000
"""Operations (creates, updates and deletes together) one bulk request may hold."""

Op = Literal["create", "update", "delete"]
_SUCCESS: dict[Op, int] = {"create": 201, "update": 200, "delete": 204}
_ACTIONS: dict[Op, Action] = {
    "create": Action.CREATE,
    "update": Action.UPDATE,
    "delete": Action.DELETE,
}
# Statuses an operation, or an atomic request that failed, can answer.
_FAILURES = (403, 404, 409, 422)


class BulkRequest(BaseModel):
    """The envelope: the ids are checked with it (they address rows, and a bad one
    refuses the request), each operation's values on their own, so that one bad
    item is that item's failure."""

    model_config = ConfigDict(extra="forbid", strict=True)

    create: list[dict[str, Any]] = Field(default_factory=list)
    update: list[dict[str, Any]] = Field(default_factory=list)
    delete: list[Any] = Field(default_factory=list)
    atomic: bool = Field(False, description="All or nothing: one transaction")


@dataclass
class _Outcome:
    op: Op
    index: int
    status: int
    row: Row[Any] | None = None
    detail: Any = None

    @property
    def failed(self) -> bool:
        return self.status >= 400


@dataclass
class _Step:
    """One operation, ready to run: its values checked, or its failure known."""

    op: Op
    index: int
    run: Callable[[], Awaitable[Row[Any]]] | None
    error: HTTPError | None = None
    values: dict[str, Any] | None = None
    """A create's values, as its schema read them (batched creates are sent these)."""


_MISSING = object()


class _Abandoned(Exception):
    """An atomic request's operation failed: the transaction is rolled back."""


class _BatchFailed(Exception):
    """A batch of creates failed as a whole: its operations are run again one by one."""


_Object = dict[str, Any]


def _object(value: Any) -> dict[str, Any]:
    """An operation's values, as sent: checked later, on their own."""
    if not isinstance(value, dict):
        raise PydanticCustomError("dict_type", "Input should be a valid dictionary")
    return value


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _detail(error: HTTPError) -> Any:
    return limit_errors(error.detail) if isinstance(error, Invalid) else error.detail


class BulkEndpoint:
    """`POST /<path>/bulk` of one resource."""

    def __init__(self, endpoints: ResourceEndpoints) -> None:
        self.endpoints = endpoints
        resource = endpoints.resource
        name = resource.model.__name__
        info = resource.pk_info
        # Ids are read as the path's `{id}` is (within the column type's bounds), strictly.
        key: Any = Annotated[info.python_type, Field(strict=True, **info.type_constraints)]
        # The Update schema's fields and the id, as documented.
        self.update_item: type[BaseModel] = create_model(
            f"{name}BulkUpdate",
            __base__=resource.update_schema,
            id=(key, Field(description="The row to change")),
        )
        self._key: TypeAdapter[Any] = TypeAdapter(key)
        addressed = create_model(
            f"{name}BulkUpdateId", __config__=ConfigDict(extra="allow"), id=key
        )
        # Any object is taken as an operation: one that its schema refuses fails alone.
        # The documentation shows the schema a valid one follows.
        creates: Any = Annotated[
            dict[str, Any],
            PlainValidator(_object, json_schema_input_type=resource.create_schema | _Object),
        ]
        updates: Any = Annotated[
            dict[str, Any],
            PlainValidator(_object, json_schema_input_type=self.update_item | addressed),
        ]
        self.body: type[BulkRequest] = create_model(
            f"{name}Bulk",
            __base__=BulkRequest,
            create=(list[creates], Field(default_factory=list)),
            update=(list[updates], Field(default_factory=list)),
            delete=(list[key], Field(default_factory=list)),
        )
        out: Any = resource.out_schema | None
        result = create_model(
            f"{name}BulkResult",
            op=(Op, ...),
            index=(int, Field(description="Position within its list")),
            status=(int, Field(description="What the operation's own endpoint would answer")),
            item=(out, Field(None, description="The row written")),
            detail=(Any, Field(None, description="The error, as its own endpoint gives it")),
        )
        results: Any = result
        self.answer: type[BaseModel] = create_model(
            f"{name}BulkResults",
            results=(list[results], ...),
        )

    # Policy.

    def _refuse(self, request: Request) -> HTTPError:
        if not request.scope["user"].is_authenticated:
            return NotAuthenticated()
        return PermissionDenied()

    # The endpoint.

    async def serve(self, request: Request) -> Response:
        endpoints = self.endpoints
        resource = endpoints.resource
        policy = resource.policy
        await resolve_user(request)
        allowed = {
            op: policy.has_permission(request, resource, action) for op, action in _ACTIONS.items()
        }
        if not any(allowed.values()):  # refused before the body is read
            raise self._refuse(request)
        endpoints._reject_unknown_params(request, set())
        body = await parse_body(self.body, request)
        assert isinstance(body, BulkRequest)
        sent: dict[Op, list[Any]] = {
            "create": body.create,
            "update": body.update,
            "delete": body.delete,
        }
        total = sum(len(items) for items in sent.values())
        if total == 0:
            raise Invalid.single(
                ["body"], "Send at least one operation (create, update or delete).", "missing"
            )
        if total > MAX_OPERATIONS:
            raise Invalid.single(
                ["body"],
                f"At most {MAX_OPERATIONS} operations per request, got {total}.",
                "too_long",
            )
        if any(items and not allowed[op] for op, items in sent.items()):
            raise self._refuse(request)
        steps = self._steps(request, body)
        batched = resource.bulk_batches and len(body.create) > 1
        if body.atomic:
            try:
                outcomes, failure = await self._run_atomic(request, steps, batched=batched)
            except _BatchFailed:
                outcomes, failure = await self._run_atomic(request, steps, batched=False)
        else:
            creates = [step for step in steps if step.op == "create"]
            outcomes = await self._create(request, creates) if batched else []
            outcomes += [await self._attempt(step) for step in steps[len(outcomes) :]]
            failure = None
        results = await self._results(request, outcomes, written=failure is None)
        return json_response({"results": results}, 200 if failure is None else failure.status)

    def _steps(self, request: Request, body: BulkRequest) -> list[_Step]:
        """The operations in answer order, each checked by its schema; 422 for the whole
        request when an id is sent twice."""
        pipeline = WritePipeline.of(request.app)
        resource = self.endpoints.resource
        w = pipeline.writes_for(resource)
        policy = resource.policy
        scopes: dict[Op, ColumnElement[bool] | None] = {
            op: policy.get_query_filter(request, resource, _ACTIONS[op])
            for op in ("update", "delete")
            if getattr(body, op)
        }
        steps: list[_Step] = []
        seen: dict[Any, tuple[Op, int]] = {}
        duplicates: list[dict[str, Any]] = []

        def check_id(op: Op, index: int, pk: Any) -> Any:
            if pk in seen:
                first_op, first_index = seen[pk]
                duplicates.append(
                    {
                        "loc": ["body", op, index],
                        "msg": f"id {pk!r} is already sent at {first_op}[{first_index}]; "
                        "an id may appear once among the updates and deletes",
                        "type": "value_error",
                    }
                )
            else:
                seen[pk] = (op, index)
            return pk

        def create(values: dict[str, Any]) -> Callable[[], Awaitable[Row[Any]]]:
            return lambda: pipeline.create(resource, values, Caller(request), authorized=True)

        def update(pk: Any, values: dict[str, Any]) -> Callable[[], Awaitable[Row[Any]]]:
            scope = scopes["update"]
            return lambda: pipeline.update(resource, pk, values, Caller(request), scope=scope)

        def delete(pk: Any) -> Callable[[], Awaitable[Row[Any]]]:
            scope = scopes["delete"]
            return lambda: pipeline.delete(resource, pk, Caller(request), scope=scope)

        for index, item in enumerate(body.create):
            try:
                values = w.clean(item, create=True)
                steps.append(_Step("create", index, create(values), values=values))
            except Invalid as error:
                steps.append(_Step("create", index, None, error))
        for index, item in enumerate(body.update):
            values = dict(item)
            pk = check_id("update", index, self._id(index, values.pop("id", _MISSING)))
            try:
                values = w.clean(values, create=False)
                steps.append(_Step("update", index, update(pk, values)))
            except Invalid as error:
                steps.append(_Step("update", index, None, error))
        for index, pk in enumerate(body.delete):
            steps.append(_Step("delete", index, delete(check_id("delete", index, pk))))
        if duplicates:
            raise Invalid(duplicates)
        return steps

    def _id(self, index: int, raw: Any) -> Any:
        """The id of the update at `index`, read as the deletes' ids are (JSON, strict)."""
        loc: list[str | int] = ["body", "update", index, "id"]
        if raw is _MISSING:
            raise Invalid.single(loc, "Field required", "missing")
        try:
            return self._key.validate_json(to_json(raw))
        except SchemaError as exc:
            raise invalid(exc, loc) from None

    @staticmethod
    async def _attempt(step: _Step) -> _Outcome:
        if step.run is None:
            assert step.error is not None
            return _Outcome(step.op, step.index, step.error.status_code, detail=_detail(step.error))
        try:
            row = await step.run()
        except HTTPError as error:
            return _Outcome(step.op, step.index, error.status_code, detail=_detail(error))
        return _Outcome(step.op, step.index, _SUCCESS[step.op], row)

    async def _run_atomic(
        self, request: Request, steps: list[_Step], *, batched: bool
    ) -> tuple[list[_Outcome], _Outcome | None]:
        """Every step in one transaction (the pipeline's writes join it), up to the first
        failure, which rolls them all back. `batched`: the creates go in one batch, which
        raises `_BatchFailed` if it fails as a whole."""
        outcomes: list[_Outcome] = []
        try:
            async with WritePipeline.of(request.app).transaction(Caller(request)):
                if batched:
                    creates = [step for step in steps if step.op == "create"]
                    outcomes = await self._create(request, creates, atomic=True)
                    if outcomes and outcomes[-1].failed:
                        raise _Abandoned()
                for step in steps[len(outcomes) :]:
                    outcome = await self._attempt(step)
                    outcomes.append(outcome)
                    if outcome.failed:
                        raise _Abandoned()
        except _Abandoned:
            return outcomes, outcomes[-1]
        return outcomes, None

    async def _create(
        self, request: Request, steps: list[_Step], *, atomic: bool = False
    ) -> list[_Outcome]:
        """The creates, in one batch (`WritePipeline.create_many`): in their own
        transaction, or the atomic request's. An atomic request stops at the first
        failure. A batch failing as a whole (in the database, or in `after_create`) is
        run again one by one: in its own transactions, or by raising `_BatchFailed`."""
        if atomic:  # up to the first create its schema refused
            failed = next((i for i, step in enumerate(steps) if step.values is None), None)
            if failed is not None:
                steps = steps[: failed + 1]
        batch = [step for step in steps if step.values is not None]
        try:
            written = await WritePipeline.of(request.app).create_many(
                self.endpoints.resource,
                [dict(step.values) for step in batch if step.values is not None],
                Caller(request),
                authorized=True,
                stop_at_failure=atomic,
            )
        except (HTTPError, DBAPIError) as error:
            if atomic:
                raise _BatchFailed() from error
            return [await self._attempt(step) for step in steps]
        outcomes: list[_Outcome] = []
        answered = iter(written)
        for step in steps:
            if step.values is None:
                outcomes.append(await self._attempt(step))  # its schema's error
            else:
                try:
                    result = next(answered)
                except StopIteration:  # an atomic batch stopped before it
                    break
                if isinstance(result, HTTPError):
                    outcomes.append(
                        _Outcome(step.op, step.index, result.status_code, detail=_detail(result))
                    )
                else:  # its row, or None: checked, but the atomic batch stopped after it
                    outcomes.append(_Outcome(step.op, step.index, 201, result))
            if atomic and outcomes[-1].failed:
                break
        return outcomes

    async def _results(
        self, request: Request, outcomes: list[_Outcome], *, written: bool
    ) -> list[dict[str, Any]]:
        """The answer's results: the rows written as their own endpoints answer them
        (many-to-many keys read for all of them at once)."""
        endpoints = self.endpoints
        db = endpoints.db(request)
        shown = [
            o
            for o in outcomes
            if written and not o.failed and o.op != "delete" and o.row is not None
        ]
        rows = [outcome.row for outcome in shown if outcome.row is not None]
        # One query for the rows' SQL computed fields, one per many-to-many relation.
        items = await endpoints.queries.written_many(db, rows)
        if rows and endpoints.links is not None:
            async with db.reader() as reader:
                linked = await endpoints.links.load(reader, rows)
            for item, row in zip(items, rows, strict=True):
                endpoints.links.attach(item, row, linked)
        item_of = {id(outcome): item for outcome, item in zip(shown, items, strict=True)}
        results: list[dict[str, Any]] = []
        for outcome in outcomes:
            result: dict[str, Any] = {
                "op": outcome.op,
                "index": outcome.index,
                "status": outcome.status,
            }
            if outcome.failed:
                result["detail"] = outcome.detail
            elif id(outcome) in item_of:
                result["item"] = item_of[id(outcome)]
            results.append(result)
        return results


def add_bulk_route(
    endpoints: ResourceEndpoints, router: APIRouter, prefix: str = ""
) -> list[type[BaseModel]]:
    """Add `POST /<path>/bulk` to `router`; the body model OpenAPI must list.

    Added before the generated routes, so `/<path>/bulk` is not taken for an id.
    """
    resource = endpoints.resource
    bulk = BulkEndpoint(endpoints)
    docs = ResourceDocs(
        resource, endpoints.settings, endpoints.filters, expansions=(), list_params=()
    )
    responses = error_responses(401, 403, 404, 409, 413, 422)
    # An atomic request that failed answers its failure's status with the results.
    answer = _ref(bulk.answer)
    for status in _FAILURES:
        entry = responses[status]
        error = entry.pop("model", None)
        schema = (
            {"$ref": "#/components/schemas/ErrorDetail"}
            if error is not None
            else entry["content"]["application/json"]["schema"]
        )
        entry["content"] = {"application/json": {"schema": {"anyOf": [schema, answer]}}}
    tags: list[str | Enum] = [resource.name_plural.capitalize()]
    router.add_api_route(
        prefix + resource.path_segment + "/bulk",
        bulk.serve,
        route_class_override=ResourceRoute,
        methods=["POST"],
        name=endpoints.route_name("bulk"),
        summary=f"Create, update and delete {resource.name_plural} in one request",
        tags=tags,
        dependencies=list(resource.dependencies),
        response_model=bulk.answer,
        responses=responses,
        openapi_extra=docs.write_operation(bulk.body, action="bulk"),
    )
    route = router.routes[-1]
    assert isinstance(route, ResourceRoute)
    route.router = router
    route.named = True
    if route.solver.authenticates:
        route.openapi_extra = {
            k: v for k, v in (route.openapi_extra or {}).items() if k != "security"
        }
    return [bulk.body, bulk.update_item]
