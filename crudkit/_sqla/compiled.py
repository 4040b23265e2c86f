"""Statement shapes compiled once for the driver: SQL text, parameter order, processors.

SQLAlchemy compiles a statement, caches the result under the statement's cache
key, binds each execution's values with the compiled bind processors and reads
rows with the result processors of each column's type. `StatementCache` keeps
the same compiled objects for the driver executor, and `Compiled` does the same
binding and builds the same `Row`s, so a response does not depend on the path
its rows took. Everything here reads SQLAlchemy's compiler internals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnDefault, Dialect, Row
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.expression import Executable

Bound = Sequence[BindParameter[Any]]
"""The values bound in a statement itself, taken from its cache key at each execution."""


class Compiled:
    """One statement shape compiled for asyncpg."""

    def __init__(self, compiled: SQLCompiler) -> None:
        self.compiled = compiled
        self.sql = compiled.string
        self.names = list(compiled.positiontup or ())
        self.bind_processors: Mapping[str, Any] = compiled._bind_processors
        # An expanding IN, or a value rendered into the SQL, changes the text per execution.
        self.expands = bool(compiled.literal_execute_params or compiled.post_compile_params)
        self.defaults, self.needs_context = _python_defaults(compiled)
        """Column defaults computed in Python before the statement runs (`default=`,
        `onupdate=`) that take no execution context; `needs_context`: one does (a
        callable taking `context`, a sequence or SQL run first), and the statement runs
        through a real execution context (`crudkit._sqla.context`), which computes them."""
        columns = compiled._result_columns
        self.types = [column.type for column in columns]
        self.metadata = SimpleResultMetaData([column.keyname for column in columns])
        self.processors: list[Any] | None = None
        """Per column, known once the driver has described the result's types."""

    def arguments(self, params: Mapping[str, Any] | None, bound: Bound) -> tuple[str, list[Any]]:
        """The SQL and positional arguments of one execution, as SQLAlchemy's execution
        context computes them (defaults that need a context aside)."""
        if self.defaults:
            params = _with_defaults(params, self.defaults)
        values: Mapping[str, Any] = self.compiled.construct_params(
            params, extracted_parameters=bound, escape_names=False
        )
        sql, processors = self.sql, self.bind_processors
        names: Sequence[str] = self.names
        if self.expands:
            expanded = self.compiled._process_parameters_for_postcompile(dict(values))
            sql, values = expanded.statement, expanded.parameters
            names = expanded.positiontup or ()
            processors = {**processors, **expanded.processors}
        arguments = []
        for name in names:
            process = processors.get(name)
            arguments.append(values[name] if process is None else process(values[name]))
        return sql, arguments

    def describe(self, type_oids: list[int]) -> None:
        """Pick each column's result processor, as SQLAlchemy does, by the driver's type."""
        if len(type_oids) != len(self.types):
            raise ValueError("the result does not have the compiled columns")
        dialect = self.compiled.dialect
        processors = [
            type_._cached_result_processor(dialect, oid)
            for type_, oid in zip(self.types, type_oids, strict=True)
        ]
        self.processors = processors if any(processors) else []

    def rows(self, records: list[Any]) -> list[Row[Any]]:
        """The driver's records as SQLAlchemy's `Row`s."""
        metadata, processors = self.metadata, self.processors or None
        key_to_index = metadata._key_to_index
        return [Row(metadata, processors, key_to_index, record) for record in records]


# What `ColumnDefault` makes of a callable that takes no argument (SQLAlchemy wraps it
# in `lambda ctx: fn()`, in one of two places): such a default never sees a context.
_CONTEXT_FREE = frozenset(
    ColumnDefault(fn).arg.__code__  # type: ignore[attr-defined]
    for fn in (lambda: None, dict)
)

Default = tuple[str, bool, Any]
"""(parameter name, whether it is called, the value or the zero-argument callable)."""


def _python_defaults(compiled: SQLCompiler) -> tuple[list[Default], bool]:
    """The Python-side defaults an execution fills in, and whether any needs a context."""
    prefetch = [(column, column.default) for column in compiled.insert_prefetch] or [
        (column, column.onupdate) for column in compiled.update_prefetch
    ]
    if not prefetch:
        return [], False
    name_of = compiled._within_exec_param_key_getter
    defaults: list[Default] = []
    for column, default in prefetch:
        if getattr(default, "is_scalar", False):
            defaults.append((name_of(column), False, default.arg))  # type: ignore[union-attr]
        elif getattr(default, "is_callable", False) and (
            getattr(default.arg, "__code__", None) in _CONTEXT_FREE  # type: ignore[union-attr]
        ):
            defaults.append((name_of(column), True, default.arg))  # type: ignore[union-attr]
        else:
            return [], True
    return defaults, False


def _with_defaults(params: Mapping[str, Any] | None, defaults: list[Default]) -> dict[str, Any]:
    """`params` with the context-free defaults, in the order SQLAlchemy computes them."""
    filled = dict(params or {})
    for name, called, value in defaults:
        filled[name] = value(None) if called else value
    return filled


class StatementCache:
    """Compiled statement shapes of one engine, keyed like SQLAlchemy's compiled cache."""

    def __init__(self, dialect: Dialect, size: int = 500) -> None:
        self.dialect = dialect
        self.size = size
        self._compiled: dict[Any, Compiled | None] = {}

    def lookup(
        self, stmt: Executable, params: Mapping[str, Any] | None
    ) -> tuple[Compiled, Bound] | None:
        """The compiled shape of `stmt` and the values bound in it; None when the
        statement must run through SQLAlchemy (no cache key, execution options, a
        shape only SQLAlchemy's execution can finish).

        An INSERT or UPDATE compiles differently for each set of values given (the
        columns it sets), as in SQLAlchemy's own cache.
        """
        if stmt._execution_options:
            return None  # what they mean (streaming, schema maps...) is SQLAlchemy's
        cache_key = stmt._generate_cache_key()  # type: ignore[attr-defined]
        if cache_key is None or (len(cache_key) > 2 and cache_key[2]):
            return None  # uncacheable, or (2.1) parameters collected at compile time
        keys = tuple(sorted(params)) if params and stmt.is_dml else ()
        try:
            compiled = self._compiled[cache_key.key, keys]
        except KeyError:
            compiled = self._compile(stmt, cache_key, keys)
            if len(self._compiled) >= self.size:
                self._compiled.clear()  # shapes come from a bounded set of options
            self._compiled[cache_key.key, keys] = compiled
        return None if compiled is None else (compiled, cache_key.bindparams)

    def _compile(self, stmt: Executable, cache_key: Any, keys: tuple[str, ...]) -> Compiled | None:
        compile_for: Any = stmt._compiler  # type: ignore[attr-defined]
        compiled = compile_for(self.dialect, cache_key=cache_key, column_keys=list(keys))
        if not isinstance(compiled, SQLCompiler) or not compiled.positional:
            return None
        return Compiled(compiled)
