"""Exports a spreadsheet cannot run: text that would start a formula is quoted.

    rows = [ExportRow(obj) for obj in objects]    # what the view hands to sqladmin's export

Excel, LibreOffice and Google Sheets read a cell starting with `=`, `+`, `-`,
`@`, a tab or a carriage return as a formula, so a product named
`=HYPERLINK("http://evil.example")` becomes a live link in the file a staff
member exports. As OWASP recommends, such text gets a leading `'`, which
spreadsheets show as text. Numbers (`int`, `float`, `Decimal`) are left as
they are: `-5` in a numeric column is a value, not a formula, and quoting it
would turn it into text; a `-5` typed into a text column is quoted like any
other text. Every export format goes through the same rows, CSV and JSON alike.
An empty value is an empty cell in CSV (sqladmin would write `None`) and
`null` in JSON.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet reads as the start of a formula."""


def neutralise(value: Any) -> Any:
    """`value`, or its text with a `'` in front when a spreadsheet would run it."""
    if value is None or isinstance(value, bool | int | float | Decimal):
        return value
    text = value if isinstance(value, str) else str(value)
    if text.startswith(FORMULA_STARTS):
        return f"'{text}"
    return value


class ExportRow:
    """A row as an export reads it: each attribute passed through `neutralise`.

    sqladmin's exports read a row's values by attribute (`get_prop_value`), the
    same way for every format; handing them these rows quotes each cell once,
    without copying how each format is written.
    """

    __slots__ = ("_null", "_row")

    def __init__(self, row: Any, *, null: Any = None) -> None:
        self._row = row
        self._null = null  # what an empty value is written as: `""` in CSV's text cells

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._row, name)
        return self._null if value is None else neutralise(value)
