"""Optional dependencies, and the extra of crudkit that installs each.

    pip install "crudkit[postgres]"

A missing one is reported by naming the extra (`install_hint`), wherever the
import failed: `pip install` is the fix, a traceback is not.
"""

from __future__ import annotations

EXTRAS: dict[str, tuple[str, str]] = {
    # top-level module: (extra, what needs it); `[project.optional-dependencies]`
    "asyncpg": ("postgres", "postgresql+asyncpg:// database URLs"),
    "redis": ("redis", "redis_url"),
    "prometheus_client": ("metrics", "/metrics"),
    "gunicorn": ("server", "gunicorn"),
    "uvicorn_worker": ("server", "gunicorn's uvicorn worker"),
    "httpx": ("testing", "crudkit.testing"),
}


def missing_module(exc: BaseException) -> str | None:
    """The optional module whose absence caused `exc` (or an error it led to), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ModuleNotFoundError) and current.name:
            top = current.name.partition(".")[0]
            if top in EXTRAS:
                return top
        current = current.__cause__ or current.__context__
    return None


def install_hint(module: str) -> str:
    """`asyncpg is not installed (needed for ...): pip install "crudkit[postgres]"`."""
    extra, needed_for = EXTRAS[module]
    return f'{module} is not installed (needed for {needed_for}): pip install "crudkit[{extra}]"'
