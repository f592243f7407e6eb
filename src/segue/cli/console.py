"""Console output shared by every command: one Rich console and one progress-bar style."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _width() -> int:
    """Terminal width, but never below 110: tables of metrics stay readable when piped."""
    return max(shutil.get_terminal_size((120, 24)).columns, 110)


console = Console(width=_width())
err_console = Console(stderr=True)


@contextmanager
def progress_bar() -> Iterator[Progress]:
    """A progress display for long steps; transient so finished bars don't clutter output."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    ) as progress:
        yield progress
