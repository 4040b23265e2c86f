"""Counting the rows of a list page without `count(*)` over a large table.

sqladmin counts every list page exactly, which on a table of millions of rows
costs a full scan per page view. `count_rows` counts only up to a limit
(`SELECT count(*) FROM (... LIMIT limit + 1)`), which stops early; the limit
(`count_limit`) always reaches a few pages past the one shown, so paging on
keeps working. Above the limit the count is approximate:

- a list with no filter, search or row scope on PostgreSQL gets the planner's
  own estimate of the table's size (`pg_class.reltuples`, kept by ANALYZE);
- otherwise it says "more than <limit>".

The approximate count is an `ApproximateCount`: an `int`, so sqladmin's
pagination works unchanged, whose `str()` says it is approximate, so the list
footer reads "Showing 1 to 10 of about 1,000,000 items" with no template
copied.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, Subquery, Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

DEFAULT_LIMIT = 10_000
"""Lists up to this many rows are counted exactly."""
PAGES_AHEAD = 10
"""Rows are counted at least this many pages past the page shown."""
MAX_LIMIT = 2**62


class ApproximateCount(int):
    """A row count that is not exact, and says so when shown."""

    label: str

    def __new__(cls, value: int, label: str) -> ApproximateCount:
        count = super().__new__(cls, value)
        count.label = label
        return count

    def __str__(self) -> str:
        return self.label


def count_limit(exact_limit: int, page: int, page_size: int) -> int:
    """Up to how many rows to count for a list page: `exact_limit`, or further for a deep page."""
    return min(max(exact_limit, (max(page, 1) + PAGES_AHEAD) * page_size), MAX_LIMIT)


def counted_select(stmt: Select[Any]) -> Select[Any] | None:
    """The list query inside sqladmin's `SELECT count(*) FROM (<list query>)`."""
    froms = stmt.get_final_froms()
    if len(froms) == 1 and isinstance(froms[0], Subquery):
        inner = froms[0].element
        if isinstance(inner, Select):
            return inner
    return None


async def table_estimate(session: AsyncSession, stmt: Select[Any]) -> int | None:
    """The planner's row estimate of an unfiltered one-table query (PostgreSQL only)."""
    dialect = session.get_bind().dialect
    froms = stmt.get_final_froms()
    if (
        dialect.name != "postgresql"
        or stmt.whereclause is not None
        or len(froms) != 1
        or not isinstance(froms[0], Table)
    ):
        return None
    name = dialect.identifier_preparer.format_table(froms[0])
    result = await session.execute(
        text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)"), {"name": name}
    )
    estimate = result.scalar()
    return int(estimate) if estimate is not None and estimate > 0 else None


async def count_rows(session: AsyncSession, stmt: Select[Any], limit: int = DEFAULT_LIMIT) -> int:
    """How many rows `stmt` returns: exact up to `limit`, an `ApproximateCount` above."""
    stmt = stmt.order_by(None)
    capped = select(func.count()).select_from(stmt.limit(limit + 1).subquery())
    counted = int((await session.execute(capped)).scalar_one())
    if counted <= limit:
        return counted
    estimate = await table_estimate(session, stmt)
    if estimate is not None and estimate > limit:
        return ApproximateCount(estimate, f"about {estimate:,}")
    return ApproximateCount(limit + 1, f"more than {limit:,}")


async def count_from(
    session: AsyncSession, listed: Select[Any], start: Any, shown_before: int, limit: int
) -> int:
    """The rows of a list paged by key (`keyset.py`): `shown_before` rows, then those of
    `listed` from `start` (a condition: the first row shown and those after it),
    counted up to `limit`; above it, as `count_rows` says."""
    listed = listed.order_by(None)
    capped = select(func.count()).select_from(listed.where(start).limit(limit + 1).subquery())
    counted = int((await session.execute(capped)).scalar_one())
    if counted <= limit:
        return shown_before + counted
    total = shown_before + limit
    estimate = await table_estimate(session, listed)
    if estimate is not None and estimate > total:
        return ApproximateCount(estimate, f"about {estimate:,}")
    return ApproximateCount(total + 1, f"more than {total:,}")
