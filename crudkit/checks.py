"""System checks: configuration mistakes reported with stable ids, like Django's.

crudkit.E001  error     ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from crudkit.apps import Apps


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


Check = Callable[["Apps"], list[Message]]
