"""Rows of a CSV or Parquet file, each with the location a user would look it up by.

A CSV row is found by its line in a text editor (the line it starts on: a quoted cell may span
lines); a Parquet row by its 1-based row number, and its errors say "row" rather than "line".
"""

from __future__ import annotations

import codecs
import csv
import re
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from segue.data.sources._text import (
    field_count_error,
    locate_decode_error,
    read_bytes,
    sniff_delimiter,
    sniff_encoding,
)
from segue.errors import RowError, SegueError


class ParquetRowError(RowError):
    """A :class:`RowError` located by Parquet row number (``line`` holds the 1-based row)."""

    def __init__(self, file: str, line: int, column: str | None, reason: str) -> None:
        super().__init__(file, line, column, reason)
        where = f"{file}, row {line}" + (f", column {column!r}" if column else "")
        self.args = (f"{where}: {reason}",)


@dataclass
class Table:
    """A file's header and its data rows as ``(location, values)``, values in header order.

    ``rows`` is an iterator: a delimited file is read as it is consumed, so a file of any size
    is held a chunk at a time. ``dialect`` says how the file was read (format, encoding,
    delimiter, header), for a dry run to show what was sniffed.
    """

    file: str
    columns: list[str]
    rows: Iterator[tuple[int, Sequence[object]]]
    error: type[RowError] = RowError
    dialect: dict[str, str] = field(default_factory=dict)

    @property
    def unit(self) -> str:
        return "line" if self.error is RowError else "row"

    def header_error(self, column: str | None, reason: str) -> SegueError:
        """An error about the columns themselves: line 1 of a CSV file, the schema of Parquet."""
        if self.error is RowError:
            return RowError(self.file, 1, column, reason)
        where = f"{self.file}, column {column!r}" if column else self.file
        return SegueError(f"{where}: {reason}")


_DELIMITER_NAMES = {",": "comma", "\t": "tab", "|": "pipe", ";": "semicolon"}
_SAMPLE_BYTES = 1 << 16
_SAMPLE_LINES = 50


def open_csv(
    path: Path,
    delimiter: str | None = None,
    *,
    encoding: str | None = None,
    header: bool = True,
    columns: Sequence[str] | None = None,
) -> Table:
    """A delimited text file, streamed: delimiter and encoding sniffed unless given.

    ``header``: the first line names the columns (blank names allowed, each at most once).
    Without one, ``columns`` names them in order, else they are named by 1-based position
    (``"1"``, ``"2"``...), so a mapping can still point at them. With both, ``columns``
    replace the header's names. A header whose every name is a number is refused: it is
    almost certainly the first row of a headerless file, which would otherwise be lost and
    make every mapped column "not in the file".
    """
    file = str(path)
    encoding = encoding or sniff_encoding(path)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise SegueError(f"unknown encoding {encoding!r}; e.g. utf-8, cp1252, latin-1") from None
    if delimiter is None:
        delimiter = sniff_delimiter(_sample_lines(path, encoding))
    if len(delimiter) != 1:
        raise SegueError(f"the delimiter must be one character, got {delimiter!r}")
    handle = _open_text(path, encoding)
    reader = csv.reader(handle, delimiter=delimiter, strict=True)
    dialect = {
        "format": "delimited text",
        "encoding": encoding,
        "delimiter": _DELIMITER_NAMES.get(delimiter, repr(delimiter)),
        "header": "first line" if header else "none",
    }
    try:
        first = _first_row(path, reader, encoding, delimiter, header, columns)
    except BaseException:
        handle.close()
        raise
    if first and first[0].startswith("\ufeff"):
        first[0] = first[0][1:]  # a byte-order mark read as UTF-8 is not data
    pending: list[tuple[int, list[str]]] = []
    if header:
        if first is None or not any(name.strip() for name in first):
            handle.close()
            raise RowError(file, 1, None, "no header row: the first line must name the columns")
        names = [name.strip() for name in first]
        if columns is None and all(_NUMBER.fullmatch(name) for name in names):
            handle.close()
            shown = ", ".join(repr(n) for n in names[:6])
            raise RowError(
                file,
                1,
                None,
                f"the first line looks like data, not column names ({shown}); for a file "
                "without a header pass --no-header, and --columns NAME,NAME,... to name them",
            )
    else:
        names = [str(i + 1) for i in range(len(first or []))]
        if first is not None:
            pending.append((1, first))
    if columns is not None:
        given = [c.strip() for c in columns]
        width = len(first or [])
        if first is not None and len(given) != width:
            handle.close()
            raise RowError(
                file,
                1,
                None,
                f"--columns names {len(given)} columns but the line has {width} "
                f"{_DELIMITER_NAMES.get(delimiter, repr(delimiter))}-separated fields",
            )
        names = given
        dialect["columns"] = "named by --columns"
    table = Table(file, names, iter(()), dialect=dialect)
    try:
        _check_unique(table)
    except BaseException:
        handle.close()
        raise
    what = _DELIMITER_NAMES.get(delimiter, repr(delimiter)) + "-separated "
    table.rows = _csv_rows(path, handle, reader, names, pending, encoding, delimiter, what)
    return table


_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]*)?")


def _open_text(path: Path, encoding: str) -> typing.TextIO:
    read_bytes_check(path)
    return path.open("r", encoding=encoding, newline="")


def read_bytes_check(path: Path) -> None:
    """Raise the same "not found" / "is a directory" errors as reading would, up front."""
    if not path.is_file():
        read_bytes(path)


def _sample_lines(path: Path, encoding: str) -> list[str]:
    read_bytes_check(path)
    with path.open("rb") as handle:
        data = handle.read(_SAMPLE_BYTES)
    text = data.decode(encoding, errors="replace")
    lines = text.splitlines()
    if len(data) == _SAMPLE_BYTES and lines:
        lines = lines[:-1]  # cut off mid-line
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    return lines[:_SAMPLE_LINES]


def _first_row(
    path: Path,
    reader: csv.Reader,
    encoding: str,
    delimiter: str,
    header: bool,
    columns: Sequence[str] | None,
) -> list[str] | None:
    try:
        return next(reader, None)
    except UnicodeDecodeError:
        # the text layer decodes ahead, so bytes far below line 1 fail here already
        names = list(columns) if columns is not None else None
        raise locate_decode_error(path, encoding, delimiter, names, named=header) from None
    except csv.Error as exc:
        raise RowError(str(path), reader.line_num, None, f"malformed header: {exc}") from None


def _csv_rows(
    path: Path,
    handle: typing.TextIO,
    reader: csv.Reader,
    columns: list[str],
    pending: list[tuple[int, list[str]]],
    encoding: str,
    delimiter: str,
    what: str,
) -> Iterator[tuple[int, Sequence[object]]]:
    file = str(path)
    width = len(columns)
    with handle:
        for start, row in pending:
            if len(row) != width:
                raise field_count_error(file, start, columns, len(row), what)
            yield start, row
        previous_end = reader.line_num
        while True:
            start = previous_end + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError:
                raise locate_decode_error(path, encoding, delimiter, columns) from None
            except csv.Error as exc:
                raise RowError(file, start, None, f"malformed CSV: {exc}") from None
            previous_end = reader.line_num
            if len(row) != width:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line
                raise field_count_error(file, start, columns, len(row), what)
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
