"""Turning the bytes of a delimited text file into lines, with locations for every error.

A file is decoded whole (one C call, fast) instead of line by line; only when decoding fails do
we go back to the bytes to say on which line and in which column the bad bytes sit, because a
user fixes an encoding problem in an editor, not at a byte offset.
"""

from __future__ import annotations

import codecs
import csv
import gc
import re
import typing
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


#: cp1252 leaves these five bytes undefined; a file holding one is Latin-1 (ISO 8859-1).
_CP1252_UNDEFINED = re.compile(b"[\x81\x8d\x8f\x90\x9d]")
_BLOCK = 1 << 20


def sniff_encoding(path: Path) -> str:
    """``utf-8-sig`` when the file starts with UTF-8's byte-order mark (a declaration), ``utf-8``
    when every byte of the file is valid UTF-8, else ``cp1252``
    (Windows' Western European, a superset of Latin-1's printable characters), else
    ``latin-1``, which decodes any byte.

    The whole file is checked, block by block in constant memory, because exports from older
    systems are mostly ASCII: the first non-ASCII title may sit on line 1,000, and a guess from
    the first kilobytes would then fail half-way through the import. Decoding is a C loop:
    about a second per gigabyte.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    with _open_binary(path) as handle:
        block = handle.read(len(codecs.BOM_UTF8))
        if block == codecs.BOM_UTF8:
            return "utf-8-sig"  # declared: a bad byte later is an error to locate, not a hint
        try:
            while True:
                decoder.decode(block)
                block = handle.read(_BLOCK)
                if not block:
                    decoder.decode(b"", final=True)
                    return "utf-8"
        except UnicodeDecodeError:
            pass
        handle.seek(0)
        while block := handle.read(_BLOCK):
            if _CP1252_UNDEFINED.search(block):
                return "latin-1"
    return "cp1252"


#: The delimiters tried, in the order that breaks ties: a tab or a pipe rarely occurs inside a
#: value, a comma often does (in titles).
DELIMITERS = ("\t", "|", ";", ",")


def sniff_delimiter(sample: list[str]) -> str:
    """The delimiter that splits the first lines of a file into the same number of fields.

    Candidates: tab, pipe, semicolon, comma. One that gives every sampled line the same number
    of fields (two or more) wins; among several, the one with most fields (a comma inside a
    pipe-separated title makes comma counts differ from line to line). A file whose lines
    agree for none gets the candidate with the most fields on its most common count, so the
    field-count error then names a line. A one-column file splits on nothing: comma.
    """
    lines = [line for line in sample if line.strip()]
    best: tuple[bool, int, int] | None = None
    chosen = ","
    for rank, delimiter in enumerate(reversed(DELIMITERS)):
        counts = [len(split_fields(line, delimiter, csv.QUOTE_MINIMAL)) for line in lines]
        if not counts or max(counts) < 2:
            continue
        consistent = all(c == counts[0] for c in counts)
        common = max(set(counts), key=counts.count)
        score = (consistent, common, rank)
        if best is None or score > best:
            best, chosen = score, delimiter
    return chosen


@contextmanager
def _open_binary(path: Path) -> Iterator[typing.BinaryIO]:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise SegueError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise SegueError(f"{path}: is a directory, expected a file") from None
    except OSError as exc:
        raise SegueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        yield handle


def locate_decode_error(
    path: Path,
    encoding: str,
    delimiter: str,
    header: Sequence[str] | None,
    *,
    named: bool = True,
) -> RowError:
    """The line and column of the first bytes of ``path`` that ``encoding`` cannot decode.

    Streaming decodes through Python's text layer, whose error knows only a byte offset into
    its buffer; this second pass, run only when that happened, reads line by line to say
    where in the file the bytes sit, as an editor would show them. ``header`` None: the
    column names are read from line 1 (``named``) or are 1-based positions.
    """
    file = str(path)
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and header is None:
                first = raw.decode(encoding, errors="replace").lstrip("\ufeff").rstrip("\r\n")
                fields = split_fields(first, delimiter, csv.QUOTE_MINIMAL)
                header = [f.strip() for f in fields] if named else []
                if not named:
                    header = [str(i + 1) for i in range(len(fields))]
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as exc:
                name = "UTF-8" if exc.encoding.lower().startswith("utf") else exc.encoding
                prefix = raw[: exc.start].decode(encoding, errors="replace")
                position = max(len(split_fields(prefix, delimiter, csv.QUOTE_MINIMAL)) - 1, 0)
                names = header or []
                shown = number > 1 or not named
                column = names[position] if shown and position < len(names) else None
                return RowError(
                    file,
                    number,
                    column,
                    f"invalid {name} byte(s) {raw[exc.start : exc.end]!r} at byte "
                    f"{exc.start + 1} of the line; save the file as {name}, or leave "
                    "--encoding out to have it sniffed",
                )
    return RowError(file, 1, None, f"cannot decode the file as {encoding}")
