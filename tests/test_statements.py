"""Statements compiled for the driver fill in Python-side column defaults as SQLAlchemy does."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Integer, MetaData, Sequence, String, Table, func, insert, update
from sqlalchemy.dialects.postgresql import asyncpg

from crudkit.reader import StatementCache

metadata = MetaData()
calls: list[str] = []


def slug(context: Any) -> str:
    return str(context.get_current_parameters()["name"]).lower().replace(" ", "-")


def revision() -> int:
    calls.append("revision")
    return len(calls)


items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False),
    Column("slug", String(50), default=slug),
    Column("kind", String(10), default="plain"),
    Column("revision", Integer, default=revision, onupdate=revision),
)


def compiled_run(stmt: Any, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    cache = StatementCache(asyncpg.dialect())
    compiled = cache.get(stmt, stmt._generate_cache_key(), params)
    assert compiled is not None
    sql, arguments = compiled.statement(params, None)
    return sql, dict(zip(compiled.names, arguments, strict=True))


def test_insert_defaults_scalar_callable_and_context_sensitive() -> None:
    calls.clear()
    sql, values = compiled_run(insert(items).returning(items.c.id), {"name": "Big Lamp"})
    assert sql.startswith("INSERT INTO items (name, slug, kind, revision)")
    assert values == {"name": "Big Lamp", "slug": "big-lamp", "kind": "plain", "revision": 1}


def test_given_values_win_over_defaults() -> None:
    _, values = compiled_run(insert(items), {"name": "A", "slug": "given", "kind": "k"})
    assert values["slug"] == "given"
    assert values["kind"] == "k"


def test_update_runs_onupdate() -> None:
    calls.clear()
    stmt = update(items).where(items.c.id == 1)
    sql, values = compiled_run(stmt, {"name": "B"})
    assert "revision=" in sql
    assert values["name"] == "B"
    assert values["revision"] == 1


def test_sequence_and_sql_defaults_stay_in_the_sql() -> None:
    numbered = Table(
        "numbered",
        MetaData(),
        Column("id", Integer, Sequence("numbered_seq"), primary_key=True),
        Column("n", Integer, default=Sequence("n_seq")),
        Column("label", String(20), default=func.upper("x")),
    )
    sql, values = compiled_run(insert(numbered), {"id": 1})
    assert "nextval('n_seq')" in sql
    assert "upper(" in sql
    assert values == {"id": 1, "upper_1": "x"}
