"""Rows of a CSV or Parquet file, each with the location a user would look it up by.

A CSV row is found by its line in a text editor (the line it starts on: a quoted cell may span
lines); a Parquet row by its 1-based row number, and its errors say "row" rather than "line".
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from segue.data.sources._text import decode, field_count_error, read_bytes
from segue.errors import RowError, SegueError


class ParquetRowError(RowError):
    """A :class:`RowError` located by Parquet row number (``line`` holds the 1-based row)."""

    def __init__(self, file: str, line: int, column: str | None, reason: str) -> None:
        super().__init__(file, line, column, reason)
        where = f"{file}, row {line}" + (f", column {column!r}" if column else "")
        self.args = (f"{where}: {reason}",)


@dataclass
class Table:
    """A file's header and its data rows as ``(location, values)``, values in header order."""

    file: str
    columns: list[str]
    rows: Iterator[tuple[int, Sequence[object]]]
    error: type[RowError] = RowError

    @property
    def unit(self) -> str:
        return "line" if self.error is RowError else "row"

    def header_error(self, column: str | None, reason: str) -> SegueError:
        """An error about the columns themselves: line 1 of a CSV file, the schema of Parquet."""
        if self.error is RowError:
            return RowError(self.file, 1, column, reason)
        where = f"{self.file}, column {column!r}" if column else self.file
        return SegueError(f"{where}: {reason}")


def open_csv(path: Path, delimiter: str = ",") -> Table:
    """A UTF-8 CSV file; the header must name every column once (blank names are allowed)."""
    file = str(path)
    text = decode(file, read_bytes(path), "utf-8", delimiter=delimiter)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise RowError(file, reader.line_num, None, f"malformed CSV header: {exc}") from None
    if not header or not any(name.strip() for name in header):
        raise RowError(file, 1, None, "no header row: the first line must name the columns")
    table = Table(file, [name.strip() for name in header], iter(()))
    _check_unique(table)
    table.rows = _csv_rows(file, reader, table.columns)
    return table


def _csv_rows(
    file: str, reader: csv.Reader, columns: list[str]
) -> Iterator[tuple[int, Sequence[object]]]:
    width = len(columns)
    previous_end = reader.line_num
    while True:
        start = previous_end + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise RowError(file, start, None, f"malformed CSV: {exc}") from None
        previous_end = reader.line_num
        if len(row) != width:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            raise field_count_error(file, start, columns, len(row), "comma-separated ")
        yield start, row


def open_parquet(path: Path, needed: Sequence[str] | None = None) -> Table:
    """A Parquet file, reading only the ``needed`` columns (all when None)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    file = str(path)
    if not path.is_file():
        read_bytes(path)  # raises the same "not found" / "is a directory" errors as CSV
    try:
        schema = pq.read_schema(path)
        columns = list(schema.names)
        _check_unique(Table(file, columns, iter(()), ParquetRowError))
        wanted = columns if needed is None else [c for c in columns if c in set(needed)]
        table = pq.read_table(path, columns=wanted)
    except (pa.ArrowException, OSError) as exc:
        raise SegueError(f"{path}: not a readable Parquet file ({exc})") from None
    lists: dict[str, list[object]] = {}
    for name in wanted:
        column = table.column(name)
        if pa.types.is_timestamp(column.type):
            # Python datetimes hold microseconds; finer units are truncated, not rejected.
            column = pc.cast(column, pa.timestamp("us", tz=column.type.tz), safe=False)
        lists[name] = column.to_pylist()
    return Table(file, columns, _parquet_rows(columns, lists, table.num_rows), ParquetRowError)


def _parquet_rows(
    columns: list[str], lists: dict[str, list[object]], n: int
) -> Iterator[tuple[int, Sequence[object]]]:
    absent: list[object] = [None] * n
    ordered = [lists.get(name, absent) for name in columns]
    for index, values in enumerate(zip(*ordered, strict=True)):
        yield index + 1, values


def _check_unique(table: Table) -> None:
    seen: set[str] = set()
    for name in table.columns:
        if name and name in seen:
            raise table.header_error(name, f"column {name!r} appears twice")
        seen.add(name)
