"""`Resource`: how one model is served, declared like a Django `ModelAdmin`.

Plain class attributes cover the common case; methods cover the rest::

    @crudkit.register(Product)
    class ProductResource(crudkit.Resource):
        owner_field = "owner_id"
        public_read = True
        search_fields = ["name"]

        async def before_create(self, request, values):
            values["name"] = values["name"].strip()
            return values

Options are checked when the resource is registered, so a typo fails at start
with a message naming the model, not at the first request.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from fastapi import params
from sqlalchemy import Column, Select, Table, inspect, types
from sqlalchemy.orm import Mapper, RelationshipDirection, RelationshipProperty

from crudkit.exceptions import ImproperlyConfigured
from crudkit.fields import ColumnInfo, describe_column, describe_columns, describe_computed
from crudkit.permissions import AND, Action, BasePermission, DefaultPolicy
from crudkit.schemas import (
    CreateSchema,
    OutSchema,
    UpdateSchema,
    build_create_schema,
    build_out_schema,
    build_update_schema,
)

if TYPE_CHECKING:
    from starlette.requests import Request

    from crudkit.registry import Registry

CountMode = Literal["exact", "estimate", "none"]

_COMPUTED = "__crudkit_computed__"
F = TypeVar("F", bound=Callable[..., Any])


def computed(method: F) -> F:
    """Make a `Resource` method a read-only field of `Out`, typed by its return annotation::

        @crudkit.computed
        def display_price(self, row) -> str:
            return f"{row.price} EUR"

    It is called with each row served (attribute access, as on a model instance) and
    runs no query; SQL cannot filter, search or order by it (use a `column_property`
    or a `hybrid_property` with a SQL expression for that)."""
    setattr(method, _COMPUTED, True)
    return method


@dataclass(frozen=True)
class ComputedField:
    """A `@computed` method of a resource, bound to it."""

    key: str
    annotation: Any
    function: Callable[[Any], Any]


def snake_case(name: str) -> str:
    """`OrderLine` -> `order_line`, `HTTPLog` -> `http_log`."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z\d])([A-Z])", r"\1_\2", name).lower()


def pluralize(word: str) -> str:
    """English plural of a snake_case noun, enough for model names."""
    if re.search(r"[^aeiou]y$", word):
        return word[:-1] + "ies"
    if re.search(r"(s|x|z|ch|sh)$", word):
        return word + "es"
    return word + "s"


def default_app_label(model: type[Any]) -> str:
    """`shop.models` -> `shop`; `crudkit.contrib.auth.models` -> `auth`."""
    explicit = getattr(model, "__app_label__", None)
    if explicit:
        return str(explicit)
    parts = model.__module__.split(".")
    for marker in ("models", "resources"):
        if marker in parts[1:]:
            return parts[parts.index(marker, 1) - 1]
    return parts[-1]


class Resource:
    """Serves one model through the API and the admin; subclass it to set options."""

    path: ClassVar[str | None] = None
    """URL path under `api_prefix`; default: the model name in snake_case, pluralised."""
    owner_field: ClassVar[str | None] = None
    """Column holding the id of the user a row belongs to; set from the caller on create."""
    public_read: ClassVar[bool] = False
    """Anonymous users may list and retrieve every row."""
    search_fields: ClassVar[Sequence[str]] = ()
    """String columns searched, case-insensitively, by `?search=`."""
    filter_fields: ClassVar[Sequence[str]] = ()
    """Columns clients may filter on: `?price__gte=10`; a many-to-many relationship
    filters on its related keys: `?tags=3`, `?tags__in=1,2`."""
    ordering_fields: ClassVar[Sequence[str]] = ()
    """Columns clients may order by: `?ordering=-price,name`."""
    default_ordering: ClassVar[Sequence[str]] = ()
    """Ordering when the client gives none (the primary key always breaks ties)."""
    read_only_fields: ClassVar[Sequence[str]] = ()
    """Returned but never written by clients."""
    write_only_fields: ClassVar[Sequence[str]] = ()
    """Accepted on write but never returned (a password, say)."""
    expand_fields: ClassVar[Sequence[str] | None] = None
    """Relationships `?expand=` may include; default: those to registered models."""
    permissions: ClassVar[Sequence[BasePermission] | None] = None
    """Permission objects replacing `DefaultPolicy`; all must allow."""
    dependencies: ClassVar[Sequence[params.Depends]] = ()
    """FastAPI dependencies run on every API endpoint, after the app's: `[Depends(f)]`."""
    count: ClassVar[CountMode] = "exact"
    """How list `total` is computed: exact `count(*)`, the planner's estimate, or none."""
    admin: ClassVar[bool] = True
    """Show the model in the admin panel."""
    api: ClassVar[bool] = True
    """Serve the model through the REST API."""
    app_label: str | None = None
    """App label used in permission codenames; default: the app the model's module is in."""
    verbose_name: ClassVar[str | None] = None
    """Human-readable singular name; default: from the class name."""
    extra_permissions: ClassVar[Sequence[tuple[str, str]]] = ()
    """Permissions beyond view/add/change/delete, `[("publish", "Can publish")]`: created
    by `migrate` as `<app_label>.publish_<model>`, named by `@crudkit.action(permission=)`."""
    bulk_batches: ClassVar[bool] = True
    """A bulk request's creates are inserted together: every row's `validate` and
    `before_create` run before the batch's INSERT, so they do not see the rows of the
    same request in the database. False writes them one by one, as single requests."""

    def __init__(self, model: type[Any], registry: Registry | None = None) -> None:
        self.model = model
        self.registry = registry
        self.mapper: Mapper[Any] = self._mapper(model)
        self.table: Table = self._table()
        self.model_name = model.__name__.lower()
        self.app_label = self.app_label or default_app_label(model)
        self.pk = self._primary_key()
        self.columns: dict[str, ColumnInfo] = describe_columns(model)
        self.pk_info = next(info for info in self.columns.values() if info.column is self.pk)
        self.sql_computed: dict[str, ColumnInfo] = describe_computed(model)
        """`column_property` / `hybrid_property` expressions: read-only, in `Out`."""
        self.queryable: dict[str, ColumnInfo] = (
            {**self.columns, **self.sql_computed} if self.sql_computed else self.columns
        )
        """What filters, search and ordering may name: the columns and SQL expressions."""
        self.python_computed: dict[str, ComputedField] = self._computed_methods()
        """The resource's `@computed` methods: read-only, in `Out`, computed per row."""
        self.many_to_many: dict[str, ColumnInfo] = self._many_to_many()
        """Many-to-many relationships served as lists of keys, with the related key."""
        self._validate()
        self.path_segment = self._path_segment()
        name = model.__name__
        self.create_schema: type[CreateSchema] = build_create_schema(
            f"{name}Create", self.writable_columns(create=True), self.many_to_many
        )
        self.update_schema: type[UpdateSchema] = build_update_schema(
            f"{name}Update", self.writable_columns(create=False), self.many_to_many
        )
        self.out_schema: type[OutSchema] = build_out_schema(
            f"{name}Out",
            self.readable_columns(),
            [
                *((key, info.python_type | None) for key, info in self.sql_computed.items()),
                *((key, field.annotation) for key, field in self.python_computed.items()),
            ],
            self.many_to_many,
        )
        self.policy: BasePermission = self.get_permissions()
        """The policy every channel asks (built once: `get_permissions()`)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} for {self.model.__name__}>"

    # Introspection, checked at registration.

    def _mapper(self, model: type[Any]) -> Mapper[Any]:
        mapper = inspect(model, raiseerr=False)
        if not isinstance(mapper, Mapper):
            raise ImproperlyConfigured(
                f"cannot register {model!r}: it is not a mapped SQLAlchemy model "
                "(subclass crudkit.Model)"
            )
        return mapper

    def _table(self) -> Table:
        table = self.mapper.local_table
        if not isinstance(table, Table):
            raise ImproperlyConfigured(
                f"cannot register {self.model.__name__}: not mapped to a table"
            )
        return table

    def _primary_key(self) -> Column[Any]:
        key = list(self.table.primary_key.columns)
        name = self.model.__name__
        if not key:
            raise ImproperlyConfigured(f"cannot register {name}: the model has no primary key")
        if len(key) > 1:
            columns = ", ".join(column.name for column in key)
            raise ImproperlyConfigured(
                f"cannot register {name}: composite primary keys ({columns}) are not supported; "
                "give the model a single-column primary key and a unique constraint instead"
            )
        return key[0]

    def _label(self) -> str:
        return type(self).__name__ if type(self) is not Resource else self.model.__name__

    def _computed_methods(self) -> dict[str, ComputedField]:
        name = self._label()
        marked: dict[str, Callable[..., Any]] = {}
        for klass in reversed(type(self).__mro__):
            for key, value in vars(klass).items():
                if getattr(value, _COMPUTED, False):
                    marked[key] = value
                else:
                    marked.pop(key, None)  # overridden by a plain attribute
        found = {}
        for key, function in marked.items():
            if key in self.columns or key in self.sql_computed:
                raise ImproperlyConfigured(
                    f"{name}.{key}: the computed field clashes with the "
                    f"{'column' if key in self.columns else 'SQL expression'} {key!r} of "
                    f"{self.model.__name__}; rename the method"
                )
            try:
                hints = typing.get_type_hints(function)
            except Exception as exc:
                raise ImproperlyConfigured(
                    f"{name}.{key}: cannot resolve the computed field's annotations: {exc}"
                ) from exc
            if "return" not in hints:
                raise ImproperlyConfigured(
                    f"{name}.{key}: a computed field is typed by its return annotation, "
                    f"e.g. def {key}(self, row) -> str"
                )
            found[key] = ComputedField(key, hints["return"], getattr(self, key))
        return found

    def _validate(self) -> None:
        name = self._label()
        columns = self.columns
        queryable = self.queryable

        def check(option: str, values: Sequence[str], allowed: dict[str, ColumnInfo]) -> None:
            if isinstance(values, str):
                raise ImproperlyConfigured(
                    f"{name}.{option} must be a list of field names, not the string {values!r}"
                )
            for value in values:
                if value in self.python_computed:
                    raise ImproperlyConfigured(
                        f"{name}.{option} names {value!r}, a field computed in Python "
                        "(@crudkit.computed), which SQL cannot filter, search or order by; "
                        "use a column_property or a hybrid_property with a SQL expression"
                    )
                if value not in allowed:
                    raise ImproperlyConfigured(
                        f"{name}.{option} names {value!r}, which is not a column of "
                        f"{self.model.__name__} (fields: {', '.join(allowed)})"
                    )

        if self.owner_field is not None:
            check("owner_field", [self.owner_field], columns)
        check("search_fields", self.search_fields, queryable)
        column_filters = [field for field in self.filter_fields if field not in self.many_to_many]
        check("filter_fields", column_filters, queryable)
        check("ordering_fields", self.ordering_fields, queryable)
        check("default_ordering", [field.lstrip("-") for field in self.default_ordering], queryable)
        check("read_only_fields", self.read_only_fields, columns)
        check("write_only_fields", self.write_only_fields, columns)
        for option, fields in (
            ("search_fields", self.search_fields),
            ("filter_fields", column_filters),
            ("ordering_fields", self.ordering_fields),
            ("default_ordering", [field.lstrip("-") for field in self.default_ordering]),
        ):
            for field in fields:
                if queryable[field].is_binary:
                    raise ImproperlyConfigured(
                        f"{name}.{option}: {field!r} is a binary column, which cannot be "
                        "searched, filtered or ordered by (its content is base64 in JSON)"
                    )
        if self.pk_info.is_binary:
            raise ImproperlyConfigured(
                f"cannot register {self.model.__name__}: binary primary keys are not supported"
            )
        for field in self.search_fields:
            if not isinstance(queryable[field].column.type, types.String):
                raise ImproperlyConfigured(
                    f"{name}.search_fields: {field!r} is not a string column"
                )
        both = set(self.read_only_fields) & set(self.write_only_fields)
        if both:
            raise ImproperlyConfigured(
                f"{name}: {', '.join(sorted(both))} cannot be both read-only and write-only"
            )
        if self.count not in ("exact", "estimate", "none"):
            raise ImproperlyConfigured(f"{name}.count must be 'exact', 'estimate' or 'none'")
        if self.permissions is not None:
            for permission in self.permissions:
                if not isinstance(permission, BasePermission):
                    raise ImproperlyConfigured(
                        f"{name}.permissions must hold permission instances "
                        f"(e.g. IsAuthenticated()), got {permission!r}"
                    )
        if not isinstance(self.dependencies, Sequence) or not all(
            isinstance(depends, params.Depends) and callable(depends.dependency)
            for depends in self.dependencies
        ):
            raise ImproperlyConfigured(
                f"{name}.dependencies must be a list of Depends(callable), "
                f"got {self.dependencies!r}"
            )
        self._check_extra_permissions(name)
        if self.path is not None and not re.fullmatch(r"/?[A-Za-z0-9_\-]+", self.path):
            raise ImproperlyConfigured(
                f"{name}.path must be one URL segment such as '/products', got {self.path!r}"
            )

    def _check_extra_permissions(self, name: str) -> None:
        standard = {"view", "add", "change", "delete"}
        for entry in self.extra_permissions:
            if not (
                isinstance(entry, tuple)
                and len(entry) == 2
                and isinstance(entry[0], str)
                and isinstance(entry[1], str)
            ):
                raise ImproperlyConfigured(
                    f"{name}.extra_permissions must hold (codename, name) pairs such as "
                    f"('publish', 'Can publish'), got {entry!r}"
                )
            codename = entry[0]
            if not codename.isidentifier() or not codename.isascii() or codename in standard:
                raise ImproperlyConfigured(
                    f"{name}.extra_permissions: {codename!r} is not a valid codename "
                    "(an ASCII identifier other than view, add, change and delete)"
                )

    def _path_segment(self) -> str:
        if self.path is not None:
            return "/" + self.path.lstrip("/")
        return "/" + pluralize(snake_case(self.model.__name__))

    # Fields by role.

    def readable_columns(self) -> list[ColumnInfo]:
        hidden = set(self.write_only_fields)
        return [info for key, info in self.columns.items() if key not in hidden]

    def writable_columns(self, *, create: bool) -> list[ColumnInfo]:
        excluded = set(self.read_only_fields)
        if self.owner_field is not None and create:
            excluded.add(self.owner_field)  # the caller owns what they create
        writable = []
        for key, info in self.columns.items():
            if key in excluded or info.server_set:
                continue
            if info.primary_key and not (create and info.required_on_create):
                continue  # a natural key is given on create and never changed
            writable.append(info)
        return writable

    @property
    def owner_column(self) -> Column[Any]:
        if self.owner_field is None:
            raise ImproperlyConfigured(f"{self.model.__name__} has no owner_field")
        return self.columns[self.owner_field].column

    @property
    def name(self) -> str:
        return self.verbose_name or snake_case(self.model.__name__).replace("_", " ")

    @property
    def name_plural(self) -> str:
        return pluralize(snake_case(self.model.__name__)).replace("_", " ")

    def _many_to_many(self) -> dict[str, ColumnInfo]:
        """The many-to-many relationships through a plain link table of one column per side
        (what the write pipeline writes), with the related model's primary key."""
        found = {}
        for prop in self.mapper.relationships:
            if prop.direction is not RelationshipDirection.MANYTOMANY:
                continue
            if not isinstance(prop.secondary, Table) or not prop.secondary_synchronize_pairs:
                continue
            if len(prop.synchronize_pairs) != 1 or len(prop.secondary_synchronize_pairs) != 1:
                continue
            pk = prop.mapper.primary_key
            if len(pk) != 1 or prop.secondary_synchronize_pairs[0][0] is not pk[0]:
                continue
            if isinstance(pk[0], Column):
                found[prop.key] = describe_column(prop.key, pk[0])
        return found

    @cached_property
    def relations(self) -> dict[str, RelationshipProperty[Any]]:
        """Relationships `expand` may load (mappers are configured on first use)."""
        allowed = None if self.expand_fields is None else set(self.expand_fields)
        found = {}
        for prop in self.mapper.relationships:
            if prop.direction not in (
                RelationshipDirection.MANYTOONE,
                RelationshipDirection.ONETOMANY,
            ):
                continue
            if allowed is not None and prop.key not in allowed:
                continue
            found[prop.key] = prop
        if allowed is not None and (missing := allowed - set(found)):
            raise ImproperlyConfigured(
                f"{type(self).__name__}.expand_fields names {', '.join(sorted(missing))}, "
                f"not many-to-one or one-to-many relationships of {self.model.__name__}"
            )
        return found

    def get_permission_codename(self, action: str) -> str:
        """`shop.change_product` for action `change`."""
        return f"{self.app_label}.{action}_{self.model_name}"

    def scoped(
        self, request: Request, stmt: Select[Any], action: Action = Action.LIST
    ) -> Select[Any]:
        """`stmt` narrowed to the rows the caller of `request` may `action` (list, by
        default): what an action computing over "the rows you can see" selects from.

            stmt = select(func.count()).select_from(Product)
            total = await reader.scalar(self.scoped(request, stmt))
        """
        condition = self.policy.get_query_filter(request, self, action)
        return stmt if condition is None else stmt.where(condition)

    # Overridable hooks.

    def get_permissions(self) -> BasePermission:
        """The policy of this resource: `permissions` combined, or `DefaultPolicy`.

        Called once, at registration; the API, the admin and the Python write API
        all ask the result (`Resource.policy`)."""
        if self.permissions is None:
            return DefaultPolicy()
        permissions = list(self.permissions)
        return permissions[0] if len(permissions) == 1 else AND(*permissions)

    async def validate(
        self, request: Request, values: dict[str, Any], obj: Any = None
    ) -> dict[str, Any]:
        """Object-level validation of every create (`obj` is None) and update, on every
        channel: raise `crudkit.ValidationError({field: message})` to refuse, or return
        the values (changed if need be). Runs after the model's `@validates` methods;
        `values` holds the many-to-many sets the write replaces too (lists of keys).
        It checks and may read, but should not write: in a bulk request a create it
        refuses is left out of a batch that commits (writes belong in the `before_*`
        and `after_*` hooks, which a refusal rolls back)."""
        return values

    async def before_create(self, request: Request, values: dict[str, Any]) -> dict[str, Any]:
        """Change the column values about to be inserted (owner already set)."""
        return values

    async def before_update(
        self, request: Request, obj: Any, values: dict[str, Any]
    ) -> dict[str, Any]:
        """Change the column values about to be written to `obj`."""
        return values

    async def before_delete(self, request: Request, obj: Any) -> None:
        """Called before `obj` is deleted; raise an `HTTPError` to refuse."""

    async def after_create(self, request: Request, obj: Any) -> None:
        """Called with the new row inside the write's transaction: raising rolls it back."""

    async def after_update(self, request: Request, obj: Any, previous: Any) -> None:
        """Called with the row as written and as it was, inside the write's transaction."""

    async def after_delete(self, request: Request, obj: Any) -> None:
        """Called with the deleted row inside the write's transaction."""
