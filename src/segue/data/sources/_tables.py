"""Rows of a CSV or Parquet file, each with the location a user would look it up by.

A CSV row is found by its line in a text editor (the line it starts on: a quoted cell may span
lines); a Parquet row by its 1-based row number, and its errors say "row" rather than "line".
"""

from __future__ import annotations

import codecs
import csv
import io
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
    #: The raw file behind ``rows`` when it may be read in blocks (:func:`csv_blocks`).
    source: CsvSource | None = None

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
    width = len(names)
    table.rows = _csv_rows(path, handle, reader, names, pending, encoding, delimiter, what)
    if codecs.lookup(encoding).name in _BLOCK_ENCODINGS and reader.line_num <= 1 and width > 1:
        # the header (if any) is line 1 alone, so data starts on line 2 (or 1 without one);
        # one column: a line of spaces is blank to the csv module but a cell to pyarrow
        table.source = CsvSource(path, encoding, delimiter, header, handle, what)
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
    handle: typing.IO[typing.Any],
    reader: csv.Reader,
    columns: list[str],
    pending: list[tuple[int, list[str]]],
    encoding: str,
    delimiter: str,
    what: str,
    lines_before: int = 0,
) -> Iterator[tuple[int, Sequence[object]]]:
    """Rows with the line each starts on; ``lines_before``: lines of the file before the
    handle's first (a reader started mid-file, see :func:`csv_blocks`)."""
    file = str(path)
    width = len(columns)
    with handle:
        for start, row in pending:
            if len(row) != width:
                raise field_count_error(file, start, columns, len(row), what)
            yield start, row
        previous_end = reader.line_num + lines_before
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
            previous_end = reader.line_num + lines_before
            if len(row) != width:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line
                raise field_count_error(file, start, columns, len(row), what)
            yield start, row


#: Encodings in which byte 10 is always a line feed and never part of another character, so
#: a file may be cut into blocks at line feeds (codec names as :func:`codecs.lookup` gives).
_BLOCK_ENCODINGS = frozenset(
    {"utf-8", "utf-8-sig", "ascii", "iso8859-1", "cp1252", "iso8859-15", "latin-1"}
)
#: Bytes per block of :func:`csv_blocks`: about 45,000 rows of a four-column log.
BLOCK_BYTES = 1 << 20


@dataclass
class CsvSource:
    """What :func:`csv_blocks` needs to read a delimited file again, from its bytes."""

    path: Path
    encoding: str
    delimiter: str
    header: bool
    handle: typing.TextIO  # the streaming reader's, closed when blocks are read instead
    what: str


@dataclass
class ArrowBlock:
    """Consecutive rows parsed by pyarrow's CSV reader: every cell a string, as the csv module
    would give it, and ``lines[i]`` the line of row ``i``."""

    table: typing.Any  # pyarrow.Table
    lines: typing.Any  # numpy int64 array


def csv_blocks(
    source: CsvSource, columns: list[str], block_bytes: int = BLOCK_BYTES
) -> Iterator[ArrowBlock | Iterator[tuple[int, Sequence[object]]]]:
    """The data rows of a delimited file, block by block, parsed in C where that is exact.

    pyarrow's reader splits cells as the csv module does only when nothing needs the csv
    module's own rules, so a block is handed to it only when it has no quote character, no
    blank line, no lone carriage return, decodes in the file's encoding and has the right
    number of fields on every line; then its rows are its lines, numbered by counting line
    feeds. Any other block comes back as ``(line, row)`` pairs from the csv module, which
    skips blank lines and raises the located error (a field count, a bad byte). After a
    block with a quote or a lone carriage return (a quoted cell may span blocks; the csv
    module counts ``\r`` as a line end), the rest of the file is read by the csv module.
    """
    import codecs as _codecs

    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    source.handle.close()
    path, encoding, delimiter = source.path, source.encoding, source.delimiter
    utf8 = _codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
    parse = pacsv.ParseOptions(
        delimiter=delimiter, quote_char=False, escape_char=False, ignore_empty_lines=True
    )
    names = [str(i) for i in range(len(columns))]
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()),
        strings_can_be_null=False,
        null_values=[],
        quoted_strings_can_be_null=False,
    )
    line = 1  # the line the next block starts on
    offset = 0  # ... and its byte offset
    with path.open("rb") as handle:
        head = handle.read(len(_codecs.BOM_UTF8))
        if not (utf8 and head == _codecs.BOM_UTF8):
            handle.seek(0)
        offset = handle.tell()
        if source.header:
            first = handle.readline()
            if b'"' in first or first.count(b"\r") != first.count(b"\r\n"):
                yield _rows_from(source, columns, offset, 1, skip_header=True)
                return
            offset += len(first)
            line += 1
        rest = b""
        while True:
            data = handle.read(block_bytes)
            block = rest + data
            if not block:
                return
            if data:
                cut = block.rfind(b"\n") + 1
                if cut == 0:  # one line longer than a block: read on
                    rest = block
                    continue
                block, rest = block[:cut], block[cut:]
            else:
                rest = b""
            if b'"' in block or block.count(b"\r") != block.count(b"\r\n"):
                yield _rows_from(source, columns, offset, line)
                return
            parsed = None
            if not (block.startswith((b"\n", b"\r\n")) or b"\n\n" in block or b"\n\r\n" in block):
                parsed = _arrow_block(block, encoding, utf8, names, parse, convert)
            count = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
            if parsed is not None and parsed.num_rows == count:
                lines = np.arange(line, line + count, dtype=np.int64)
                yield ArrowBlock(parsed.rename_columns(columns), lines)
            else:
                text = _decoded(source, columns, block)
                reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
                handle_text = io.StringIO()
                yield _csv_rows(
                    path, handle_text, reader, columns, [], encoding, delimiter, source.what,
                    lines_before=line - 1,
                )  # fmt: skip
            line += count
            offset += len(block)
            if not data:
                return


def _arrow_block(
    block: bytes,
    encoding: str,
    utf8: bool,
    names: list[str],
    parse: typing.Any,
    convert: typing.Any,
) -> typing.Any:
    """``block`` parsed by pyarrow (all cells strings), or None where it refuses it."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if not utf8:
        try:
            block = block.decode(encoding).encode("utf-8")
        except UnicodeDecodeError:
            return None
    options = pacsv.ReadOptions(column_names=names, block_size=len(block) + 1, use_threads=False)
    try:
        return pacsv.read_csv(io.BytesIO(block), options, parse, convert)
    except pa.ArrowInvalid:
        return None  # a field count, invalid UTF-8: the csv module says where


def _decoded(source: CsvSource, columns: list[str], block: bytes) -> str:
    try:
        return block.decode(source.encoding)
    except UnicodeDecodeError:
        raise locate_decode_error(source.path, source.encoding, source.delimiter, columns) from None


def _rows_from(
    source: CsvSource, columns: list[str], offset: int, line: int, *, skip_header: bool = False
) -> Iterator[tuple[int, Sequence[object]]]:
    """The csv module's rows of the file from byte ``offset``, which starts line ``line``
    (``skip_header``: the header row first, read and dropped)."""
    raw = source.path.open("rb")
    raw.seek(offset)
    text = io.TextIOWrapper(raw, encoding=source.encoding, newline="")
    reader = csv.reader(text, delimiter=source.delimiter, strict=True)
    if skip_header:
        next(reader, None)
    return _csv_rows(
        source.path, text, reader, columns, [], source.encoding, source.delimiter, source.what,
        lines_before=line - 1,
    )  # fmt: skip


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
