"""Console output shared by every command: one Rich console, one progress-bar style, and
tables of numbers that fit the terminal or, piped, print as Markdown."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from segue.errors import SegueError


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
        try:
            yield progress
        except SegueError:
            # a refusal is one line: the bar it interrupted goes, the error alone remains
            progress.live.transient = True
            raise


def print_heading(text: str, out: Console | None = None) -> None:
    """A step's heading: a rule across the terminal, a Markdown heading when piped."""
    out = out or console
    if out.is_terminal:
        out.rule(f"[bold]{escape(text)}[/]", align="left")
    else:
        out.print(f"\n## {text}\n", markup=False, highlight=False, soft_wrap=True)


#: Where a "mean±std" cell may be stacked as two lines, to narrow its column.
SPREAD = "±"


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    legend: str | None = None,
    out: Console | None = None,
) -> None:
    """Print a table of numbers whole: never a truncated cell.

    Piped (stdout not a terminal), it is Markdown, one line per row however wide, so it can be
    pasted into a report or read by a script. In a terminal it fits the width: cells on one
    line if they fit; else "mean±std" cells stacked as two lines (mean over ±std); else the
    columns split into several tables, each repeating the first column (the row's name).
    ``legend`` explains the columns' abbreviations, after the table.
    """
    out = out or console
    if not out.is_terminal:
        if title:
            out.print(f"### {title}\n", markup=False, highlight=False, soft_wrap=True)
        out.print(markdown_table(headers, rows), markup=False, highlight=False, soft_wrap=True)
        if legend:
            out.print(f"\n{legend}", markup=False, highlight=False, soft_wrap=True)
        out.print()
        return
    width = out.width
    cells = [list(r) for r in rows]
    parts = _split_columns(headers, cells, width)
    if len(parts) > 1:  # stacked cells need fewer tables: take them; as many: one line reads best
        stacked = [[_stack(c) for c in r] for r in cells]
        stacked_parts = _split_columns(headers, stacked, width)
        if len(stacked_parts) < len(parts):
            cells, parts = stacked, stacked_parts
    for n, columns in enumerate(parts):
        shown = title if n == 0 else "(continued)"
        table = Table(title=escape(shown) if shown else None, box=box.HEAVY_HEAD)
        for j in columns:
            table.add_column(escape(_header(headers[j], _cell_width(cells, j))), no_wrap=True)
        for r in cells:
            table.add_row(*(escape(r[j]) for j in columns))
        out.print(table)
    if legend:
        out.print(escape(legend), soft_wrap=False)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; "±" spaced out, pipes in cells escaped."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace(SPREAD, f" {SPREAD} ").replace("  ", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _stack(cell: str) -> str:
    mean, sep, spread = cell.partition(SPREAD)
    return f"{mean.strip()}\n{SPREAD}{spread.strip()}" if sep else cell


def _cell_width(cells: Sequence[Sequence[str]], j: int) -> int:
    return max((len(line) for r in cells for line in r[j].split("\n")), default=0)


def _header(header: str, cell_width: int) -> str:
    """A header longer than its cells breaks at its spaces ("pop pct" over two lines)."""
    return header.replace(" ", "\n") if len(header) > cell_width else header


def _column_width(headers: Sequence[str], cells: Sequence[Sequence[str]], j: int) -> int:
    cell = _cell_width(cells, j)
    head = max(len(w) for w in _header(headers[j], cell).split("\n"))
    return max(cell, head)


def _table_width(
    headers: Sequence[str], cells: Sequence[Sequence[str]], columns: Sequence[int] | None = None
) -> int:
    """Characters of a boxed table: each column, its two spaces of padding and a rule."""
    columns = range(len(headers)) if columns is None else columns
    return 1 + sum(_column_width(headers, cells, j) + 3 for j in columns)


def _split_columns(
    headers: Sequence[str], cells: Sequence[Sequence[str]], width: int
) -> list[list[int]]:
    """Groups of column indices, each with column 0 first, each fitting ``width``: as few
    groups as fit, of about equal width (no lone column left over for a second table)."""
    greedy: list[list[int]] = [[0]]
    for j in range(1, len(headers)):
        if len(greedy[-1]) > 1 and _table_width(headers, cells, [*greedy[-1], j]) > width:
            greedy.append([0])
        greedy[-1].append(j)
    if len(greedy) == 1:
        return greedy
    rest = [_column_width(headers, cells, j) + 3 for j in range(1, len(headers))]
    target = sum(rest) / len(greedy)
    balanced: list[list[int]] = [[0]]
    used = 0.0
    for j, w in zip(range(1, len(headers)), rest, strict=True):
        if len(balanced[-1]) > 1 and used + w / 2 > target and len(balanced) < len(greedy):
            balanced.append([0])
            used = 0.0
        balanced[-1].append(j)
        used += w
    fits = all(_table_width(headers, cells, part) <= width for part in balanced)
    return balanced if fits else greedy
