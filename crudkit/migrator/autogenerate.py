"""What Alembic's autogenerate found, in words and names, and how its files render.

`makemigrations` prints each change of a migration it writes (`describe`), names
the file after them as Django does (`suggest_name`: `0002_product_sku`), and
refuses drops without consent (`DESTRUCTIVE`)::

    + Create table library_book
    - Drop column isbn from library_book
    ~ Alter type of shop_product.price: NUMERIC(10, 2) -> NUMERIC(12, 2)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from alembic.autogenerate.api import AutogenContext
from sqlalchemy import TypeDecorator

MAX_NAME_LENGTH = 40
ALEMBIC_SLUG_LENGTH = 40
DESTRUCTIVE = {"remove_table", "remove_column"}
"""Kinds of change that lose data, written only with `--allow-destructive`."""


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render crudkit's column types as the SQLAlchemy type they wrap.

    `UTCDateTime` becomes `sa.DateTime(timezone=True)`, so migration files import
    nothing from crudkit and keep working whatever crudkit's types become.
    """
    if (
        type_ == "type"
        and isinstance(obj, TypeDecorator)
        and type(obj).__module__.split(".")[0] == "crudkit"
    ):
        return f"sa.{obj.impl_instance!r}"
    return False


def slug(message: str) -> str:
    # Alembic's own rule for the `%(slug)s` of file names.
    slug = "_".join(re.findall(r"\w+", message)).lower()
    if len(slug) > ALEMBIC_SLUG_LENGTH:
        slug = slug[:ALEMBIC_SLUG_LENGTH].rsplit("_", 1)[0] + "_"
    return slug


def diff_kind(diff: Any) -> str:
    return str(diff[0][0] if isinstance(diff, list) else diff[0])


def describe(diff: Any) -> str:
    """One line for an autogenerate diff: `+ Create table shop_tag`."""
    if isinstance(diff, list):  # modifications of one column come grouped
        return "; ".join(describe(item) for item in diff)
    kind = diff[0]
    if kind == "add_table":
        return f"+ Create table {diff[1].name}"
    if kind == "remove_table":
        return f"- Drop table {diff[1].name}"
    if kind == "add_column":
        return f"+ Add column {diff[3].name} to {diff[2]}"
    if kind == "remove_column":
        return f"- Drop column {diff[3].name} from {diff[2]}"
    if kind in (
        "add_index",
        "remove_index",
        "add_constraint",
        "remove_constraint",
        "add_fk",
        "remove_fk",
    ):
        obj = diff[1]
        sign, verb = ("+", "Add") if kind.startswith("add") else ("-", "Drop")
        what = {"index": "index", "constraint": "constraint", "fk": "foreign key"}[
            kind.split("_", 1)[1]
        ]
        return f"{sign} {verb} {what} {obj.name} on {obj.table.name}"
    if kind.startswith("modify_"):
        _, _, table, column, _, old, new = diff
        return f"~ Alter {kind.removeprefix('modify_')} of {table}.{column}: {old!r} -> {new!r}"
    return f"~ {kind.replace('_', ' ')}"


def suggest_name(label: str, diffs: list[Any], *, initial: bool) -> str:
    """A Django-like migration name: `initial`, `product_sku`, `auto_20250101_1200`."""
    if initial:
        return "initial"
    fragments: list[str] = []
    for diff in diffs:
        fragment = _name_fragment(label, diff[0] if isinstance(diff, list) else diff)
        if fragment not in fragments:
            fragments.append(fragment)
    name = "_".join(fragments)
    if not name or len(name) > MAX_NAME_LENGTH or not all(fragments):
        return f"auto_{datetime.now(UTC):%Y%m%d_%H%M}"
    return name


def _name_fragment(label: str, diff: tuple[Any, ...]) -> str:
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        table = diff[1].name.removeprefix(f"{label}_")
        return table if kind == "add_table" else f"delete_{table}"
    if kind in ("add_column", "remove_column"):
        table = str(diff[2]).removeprefix(f"{label}_")
        prefix = "" if kind == "add_column" else "remove_"
        return f"{prefix}{table}_{diff[3].name}"
    if kind.startswith("modify_"):
        return f"alter_{str(diff[2]).removeprefix(f'{label}_')}_{diff[3]}"
    return ""
