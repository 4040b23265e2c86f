"""What a system check reports: a `Message` with a stable id, a level, and a hint.

    Message("shop.W001", "warning", "no product has a price", hint="run loaddata prices")

Kept apart from the checks themselves (`crudkit.checks`, which import the app
factory and the migration engine) so that `Apps`, which collects the checks apps
contribute, can name what they return without importing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Message:
    """One finding of a check."""

    id: str
    level: Literal["error", "warning"]
    msg: str
    hint: str = ""

    def __str__(self) -> str:
        hint = f"\n\tHINT: {self.hint}" if self.hint else ""
        return f"{self.id} ({self.level}): {self.msg}{hint}"

    @property
    def is_error(self) -> bool:
        return self.level == "error"
