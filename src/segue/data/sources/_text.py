"""Turning the bytes of a delimited text file into lines, with locations for every error.

A file is decoded whole (one C call, fast) instead of line by line; only when decoding fails do
we go back to the bytes to say on which line and in which column the bad bytes sit, because a
user fixes an encoding problem in an editor, not at a byte offset.
"""

from __future__ import annotations

import codecs
import csv
import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from segue.errors import RowError, SegueError


def read_bytes(path: Path) -> bytes:
    """The file's bytes, or a :class:`SegueError` saying why it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SegueError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise SegueError(f"{path}: is a directory, expected a file") from None
    except OSError as exc:
        raise SegueError(f"{path}: cannot read ({exc.strerror or exc})") from None


def decode(
    file: str,
    data: bytes,
    encoding: str,
    *,
    delimiter: str,
    quoting: int = csv.QUOTE_MINIMAL,
) -> str:
    """``data`` decoded, or a :class:`RowError` at the line and column of the first bad bytes.

    A UTF-8 byte-order mark is dropped: spreadsheet programs write one and it is not data.
    """
    if data.startswith(codecs.BOM_UTF8) and encoding.lower().replace("-", "") in ("utf8", "utf_8"):
        data = data[len(codecs.BOM_UTF8) :]  # sliced, not "utf-8-sig": error offsets stay true
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise _decode_error(file, data, exc, delimiter, quoting) from None


def _decode_error(
    file: str, data: bytes, exc: UnicodeDecodeError, delimiter: str, quoting: int
) -> RowError:
    line = data.count(b"\n", 0, exc.start) + 1
    line_start = data.rfind(b"\n", 0, exc.start) + 1
    bad = data[exc.start : exc.end]
    name = "UTF-8" if exc.encoding.lower().startswith("utf") else exc.encoding
    reason = (
        f"invalid {name} byte(s) {bad!r} at byte {exc.start - line_start + 1} of the line; "
        f"save the file as {name}"
    )
    column = None
    if line > 1:
        header_end = data.find(b"\n")
        header_text = data[:header_end].decode(exc.encoding, errors="replace")
        header = [
            name.strip() for name in split_fields(header_text.rstrip("\r"), delimiter, quoting)
        ]
        prefix = data[line_start : exc.start].decode(exc.encoding, errors="replace")
        position = max(len(split_fields(prefix, delimiter, quoting)) - 1, 0)
        if 0 <= position < len(header):
            column = header[position]
    return RowError(file, line, column, reason)


def split_fields(text: str, delimiter: str, quoting: int) -> list[str]:
    """One line split like the csv module would (quotes honoured unless ``QUOTE_NONE``)."""
    try:
        return next(csv.reader([text], delimiter=delimiter, quoting=quoting), [""])
    except csv.Error:
        return text.split(delimiter)


def tab_lines(file: str, text: str, header: Sequence[str]) -> Iterator[tuple[int, list[str]]]:
    """Data rows of a tab-separated file without quoting: ``(1-based line, fields)``.

    Lines may end in CRLF or LF (Last.fm mixes both). The first line must be exactly ``header``.
    Blank lines carry no data and are skipped, so a trailing newline or two is harmless.
    """
    lines = text.split("\n")
    first = lines[0].removesuffix("\r") if lines else ""
    if first.split("\t") != list(header):
        raise RowError(
            file,
            1,
            None,
            f"expected the header {_tabbed(header)}, got {_tabbed(first.split(chr(9)))}",
        )
    width = len(header)
    for index in range(1, len(lines)):
        line = lines[index].removesuffix("\r")
        fields = line.split("\t")
        if len(fields) != width:
            if not line.strip():
                continue
            raise field_count_error(file, index + 1, header, len(fields), "tab-separated ")
        yield index + 1, fields


def field_count_error(
    file: str, line: int, header: Sequence[str], got: int, what: str = ""
) -> RowError:
    """The error for a row with too few or too many fields, naming the first column affected."""
    column = header[got] if got < len(header) else None
    return RowError(
        file,
        line,
        column,
        f"expected {len(header)} {what}fields ({', '.join(header)}), got {got}",
    )


def _tabbed(names: Sequence[str]) -> str:
    return "'" + "<TAB>".join(names) + "'"


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a parser builds hundreds of thousands of records.

    The records hold no reference cycles, but every 700 allocations the collector walks the
    young objects and, ever more often, the whole growing heap: about 40% of the parse time of
    Last.fm 2K. Reference counting still frees everything; collection resumes afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
