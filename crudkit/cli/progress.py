"""Progress bars for long commands: on a terminal, and never when piped.

    with progress(total_rows, "Dumping") as bar:
        for rows in batches:
            bar.update(len(rows))

The bar is drawn on stderr, so stdout stays clean for data (`dumpdata > all.json`
still shows it); it is hidden when stderr is not a terminal, when the length is
unknown, and when `quiet` says stdout is the terminal the data goes to.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar


def progress(length: int | None, label: str, *, quiet: bool = False) -> ProgressBar[int]:
    """A click progress bar over `length` units, hidden unless stderr is a terminal."""
    hidden = quiet or not length or not sys.stderr.isatty()
    return click.progressbar(
        length=length or 0, label=label, file=sys.stderr, hidden=hidden, show_pos=True
    )
