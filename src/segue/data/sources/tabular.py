"""Events, items or users from any delimited text or Parquet file, read as it comes.

Whoever exports a log rarely asks us first: the file may be comma-, tab-, pipe- or
semicolon-separated, UTF-8 or a Windows code page, with or without a header, dated in epoch
seconds or ``01-Jan-1995``, with genres as nineteen 0/1 columns and genders as ``M``/``F``.
So the delimiter and encoding are sniffed (or given), columns are named by the header, by
``columns`` or by position, and a few options say what a file means (:class:`ReadOptions`).

Cells are converted by the type of the field they feed (:mod:`segue.data.sources._values`
holds the rules: ISO 8601, epoch or month-name dates, ``true``/``false`` booleans,
``|``-separated labels, case-insensitive enum values), then validated by the record's model.
An empty cell or null means "not given": the field takes the value from ``defaults``, else the
model's default. Columns that feed no field are ignored, so an export with extra columns
imports as is.

Files are streamed in chunks (:meth:`TableReader.chunks`) so that a log of any length imports
in constant memory. Events take a columnar path that converts whole columns at a time and
validates each distinct id once; any chunk it is not sure of (a bad cell, an unusual form) is
read again row by row through the models, so errors and accepted values are exactly the
row-by-row reader's. A delimited file's blocks that pyarrow's C reader splits exactly as the
csv module would (no quotes, no blank lines) are parsed by it, and their cells converted once
per distinct value (:meth:`TableReader._columnar_arrow`); derived event ids hash the very
bytes the row-by-row reader hashes, built column by column.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import math
import re
import time
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, TypeAdapter, ValidationError

from segue.data.batch import Origin, RecordBatch
from segue.data.log import UNKNOWN_MS, InteractionLog, _encode
from segue.data.model import (
    EVENT_CODES,
    MAX_INT32,
    MAX_MS_PLAYED,
    Event,
    Id,
    Item,
    Name,
    User,
    max_future_s,
    to_epoch_ms,
)
from segue.data.sources._tables import (
    BLOCK_BYTES,
    ArrowBlock,
    Table,
    csv_blocks,
    open_csv,
    open_parquet,
)
from segue.data.sources._text import paused_gc
from segue.data.sources._values import (
    BadValue,
    Converter,
    enum_converter,
    formatted_converter,
    is_missing,
    row_error_from_validation,
    to_bool,
    to_date,
    to_float,
    to_int,
    to_labels,
    to_text,
    to_timestamp,
)
from segue.errors import RowError, SegueError

Kind = Literal["events", "items", "users"]
Format = Literal["csv", "tsv", "parquet"]

_MODELS: dict[str, type[BaseModel]] = {"events": Event, "items": Item, "users": User}
_PARQUET_MAGIC = b"PAR1"
#: Rows per chunk: large enough that per-chunk costs (a store round trip, numpy calls) vanish
#: and that the store's bulk path takes the events table's secondary indexes off until the
#: commit (it does from 200,000 rows: twice the import speed on SQLite), small enough that a
#: chunk's Python objects stay near a hundred megabytes.
CHUNK_ROWS = 200_000
#: Rows of events parsed at a time within a chunk (see :meth:`TableReader.chunks`).
PARSE_ROWS = 25_000
#: Fields that flag columns may fill: each set flag adds its column's label.
FLAG_FIELDS = {"genre": "genres", "genres": "genres", "tag": "tags", "tags": "tags"}


@dataclass(frozen=True)
class ReadOptions:
    """How to read a file that is not segue's own shape; every default is "sniff or as is".

    ``format``: ``csv``/``tsv`` (any delimited text) or ``parquet``; None sniffs it from the
    content (Parquet's magic bytes), never from the suffix, so ``u.data`` reads as it is.
    ``delimiter`` / ``encoding``: None sniffs them (:func:`sniff_delimiter`,
    :func:`sniff_encoding`). ``header``: None means a header line unless ``columns`` names
    the columns. ``date_format``: a ``strptime`` format for every date and time field, for
    forms that are ambiguous (``01/02/1995``). ``flags``: a record field (``genres``, ``tags``)
    to the columns whose 1 gives that column's label; ``flag_names`` relabels them in order
    (MovieLens' ``u.genre``). ``values``: per field, raw cell text to the value meant
    (``{"gender": {"M": "male"}}``). ``auto_map``: optional fields read same-named columns
    when not mapped; off, they are read only when mapped (required fields always fall back to
    a same-named column, there being no other source for them).
    """

    format: Format | None = None
    delimiter: str | None = None
    encoding: str | None = None
    header: bool | None = None
    columns: tuple[str, ...] | None = None
    date_format: str | None = None
    flags: Mapping[str, Sequence[str]] = field(default_factory=dict)
    flag_names: tuple[str, ...] | None = None
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    auto_map: bool = True


def parse_mapping(text: str) -> dict[str, str]:
    """``"user_id=uid,item_id=track"`` as ``{"user_id": "uid", "item_id": "track"}``.

    The command-line form of a mapping: pairs of FIELD=COLUMN separated by commas, spaces
    around names ignored. Whether the fields exist is checked by :func:`read_table`, which
    knows the kind of record.
    """
    mapping: dict[str, str] = {}
    example = "e.g. user_id=uid,item_id=track,timestamp=ts"
    for part in text.split(","):
        if not part.strip():
            raise SegueError(f"mapping {text!r} has an empty entry; {example}")
        name, sep, column = part.partition("=")
        name, column = name.strip(), column.strip()
        if not sep or not name or not column:
            raise SegueError(f"mapping entry {part.strip()!r} is not FIELD=COLUMN; {example}")
        if name in mapping:
            raise SegueError(f"mapping {text!r} maps {name!r} twice")
        mapping[name] = column
    return mapping


def parse_values(texts: Sequence[str]) -> dict[str, dict[str, str]]:
    """``["gender=M:male,F:female"]`` as ``{"gender": {"M": "male", "F": "female"}}``.

    The command-line form of value vocabularies: one field per option, its RAW:VALUE pairs
    separated by commas.
    """
    found: dict[str, dict[str, str]] = {}
    example = "e.g. gender=M:male,F:female"
    for text in texts:
        name, sep, pairs = text.partition("=")
        name = name.strip()
        if not sep or not name or not pairs.strip():
            raise SegueError(f"--values {text!r} is not FIELD=RAW:VALUE,...; {example}")
        if name in found:
            raise SegueError(f"--values gives {name!r} twice; put its pairs in one option")
        vocabulary: dict[str, str] = {}
        for pair in pairs.split(","):
            raw, colon, value = pair.partition(":")
            if not colon or not raw.strip() or not value.strip():
                raise SegueError(f"--values entry {pair.strip()!r} is not RAW:VALUE; {example}")
            vocabulary[raw.strip()] = value.strip()
        found[name] = vocabulary
    return found


def parse_flags(texts: Sequence[str]) -> dict[str, list[str]]:
    """``["genre=Action,Comedy"]`` or ``["genres=6-24"]`` as ``{"genres": [...]}``.

    Columns are named as in the file (header or ``--columns``) or by 1-based position, a range
    ``A-B`` standing for every position from A to B.
    """
    found: dict[str, list[str]] = {}
    for text in texts:
        name, sep, columns = text.partition("=")
        target = FLAG_FIELDS.get(name.strip())
        if not sep or target is None or not columns.strip():
            raise SegueError(
                f"--flags {text!r} is not FIELD=COLUMN,...; the field is genre or tag, "
                "e.g. genre=Action,Comedy or genre=6-24 (1-based positions)"
            )
        found.setdefault(target, []).extend(c.strip() for c in columns.split(",") if c.strip())
    return found


def read_flag_names(path: Path) -> tuple[str, ...]:
    """Labels of flag columns from a file of one label a line, optionally with its position.

    MovieLens' ``u.genre`` is ``Action|1``: the label, then its 0-based index among the flags;
    lines are ordered by that index when every line has one, else taken in file order. Blank
    lines are skipped; the delimiter and encoding are sniffed like a data file's.
    """
    table = open_csv(Path(path), header=False)
    entries: list[tuple[int, str]] = []
    for line, row in table.rows:
        cells = [str(c).strip() for c in row]
        if not cells or not cells[0]:
            raise RowError(table.file, line, None, "empty label")
        position = int(cells[1]) if len(cells) > 1 and cells[1].isdigit() else None
        entries.append((line if position is None else position, cells[0]))
    if not entries:
        raise SegueError(f"{path}: no labels in the file")
    return tuple(label for _, label in sorted(entries))


def read_table(
    path: Path,
    kind: Kind,
    mapping: Mapping[str, str] | None = None,
    *,
    defaults: Mapping[str, object] | None = None,
    format: Format | None = None,
    options: ReadOptions | None = None,
) -> RecordBatch:
    """One whole file of ``kind`` records; ``mapping`` maps record fields to the file's columns.

    A field not in ``mapping`` reads the column of its own name when there is one (optional
    fields only with ``options.auto_map``, the default here), else takes ``defaults[field]``,
    else the model's default.

    Events without an ``event_id`` get one derived from their content: a hash of every field
    of the converted event (so ``"1714567890"`` and ``"2024-05-01T12:51:30Z"`` agree, and a
    CSV and a Parquet export of the same log get the same ids), and, for the second and later
    rows with identical content, their occurrence number. Re-importing the same file thus adds
    nothing, while genuinely repeated rows (two plays in one second) are all kept.

    Items and users must not repeat an id within one file: which row should win is unclear.
    For a file too large to hold, use :func:`open_reader` and its chunks.
    """
    options = options or ReadOptions()
    if format is not None:
        options = dataclasses.replace(options, format=format)
    reader = open_reader(path, kind, mapping, defaults=defaults, options=options)
    with paused_gc():
        return reader.records()


def open_reader(
    path: Path,
    kind: Kind,
    mapping: Mapping[str, str] | None = None,
    *,
    defaults: Mapping[str, object] | None = None,
    options: ReadOptions | None = None,
) -> TableReader:
    """A reader over ``path`` with every option checked and the columns resolved, nothing read
    yet beyond the header (so a wrong mapping fails before a long file is read)."""
    path = Path(path)
    options = options or ReadOptions()
    model = _MODELS.get(kind)
    if model is None:
        raise SegueError(f"unknown record kind {kind!r}; expected one of {', '.join(_MODELS)}")
    converters = _converters(model)
    if options.date_format:
        for name, convert in list(converters.items()):
            if convert in (to_timestamp, to_date):
                converters[name] = formatted_converter(
                    options.date_format, as_date=convert is to_date
                )
    mapping = dict(mapping or {})
    _check_fields(kind, model, converters, mapping, "map")
    _check_fields(kind, model, converters, options.values, "give --values for")
    fixed = _convert_defaults(kind, model, converters, defaults or {}, options.values)
    fmt = options.format or sniff_format(path)
    if fmt == "parquet":
        needed = [mapping.get(name, name) for name in converters]
        for columns in options.flags.values():
            needed.extend(columns)
        table = open_parquet(path, needed)
        table.dialect = {"format": "parquet"}
    elif fmt in ("csv", "tsv"):
        delimiter = options.delimiter
        if delimiter is None and options.format == "tsv":
            delimiter = "\t"
        header = options.header if options.header is not None else options.columns is None
        table = open_csv(
            path,
            delimiter,
            encoding=options.encoding,
            header=header,
            columns=options.columns,
        )
    else:
        raise SegueError(f"unknown format {fmt!r}; expected csv, tsv or parquet")
    return TableReader(kind, model, table, converters, mapping, fixed, options)


def sniff_format(path: Path) -> Format:
    """Parquet when the file starts with Parquet's magic bytes or is named ``.parquet`` /
    ``.pq`` (then a broken one says so), else delimited text, whatever its suffix."""
    if Path(path).suffix.lower() in (".parquet", ".pq"):
        return "parquet"
    try:
        with Path(path).open("rb") as handle:
            start = handle.read(len(_PARQUET_MAGIC))
    except FileNotFoundError:
        raise SegueError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise SegueError(f"{path}: is a directory, expected a file") from None
    except OSError as exc:
        raise SegueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return "parquet" if start == _PARQUET_MAGIC else "csv"


def _converters(model: type[BaseModel]) -> dict[str, Converter]:
    """The converter of every field that a flat table can fill (nested audio features cannot)."""
    found: dict[str, Converter] = {}
    for name, info in model.model_fields.items():
        convert = _converter_for(info.annotation)
        if convert is not None:
            found[name] = convert
    return found


def _converter_for(annotation: object) -> Converter | None:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(options) != 1:
            return None
        annotation = options[0]
    if typing.get_origin(annotation) is typing.Annotated:  # e.g. ``Id | None``: the base type
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is tuple:
        return to_labels
    simple: dict[object, Converter] = {
        str: to_text,
        bool: to_bool,
        int: to_int,
        float: to_float,
        dt.datetime: to_timestamp,
        dt.date: to_date,
    }
    if annotation in simple:
        return simple[annotation]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return enum_converter(annotation)
    return None


def _check_fields(
    kind: str,
    model: type[BaseModel],
    converters: dict[str, Converter],
    names: Mapping[str, object],
    verb: str,
) -> None:
    for name in names:
        if name in converters:
            continue
        if name in model.model_fields:
            raise SegueError(f"cannot {verb} {name!r}: it is not a single column of {kind}")
        raise SegueError(
            f"cannot {verb} {name!r}: {kind} have no such field; known: {', '.join(converters)}"
        )


def _convert_defaults(
    kind: str,
    model: type[BaseModel],
    converters: dict[str, Converter],
    defaults: Mapping[str, object],
    values: Mapping[str, Mapping[str, str]],
) -> dict[str, object]:
    _check_fields(kind, model, converters, defaults, "give a default for")
    fixed: dict[str, object] = {}
    for name, value in defaults.items():
        if value is None:
            fixed[name] = None
            continue
        if isinstance(value, str) and name in values:
            value = values[name].get(value.strip(), value)
        try:
            fixed[name] = converters[name](value)
        except BadValue as exc:
            raise SegueError(f"default for {name!r}: {exc}") from None
    return fixed


@dataclass
class Chunk:
    """Some consecutive rows of a file, converted and validated.

    Events come as a columnar ``log`` (with ``lines[i]`` the line of its row ``i``), items and
    users as ``records`` (with ``lines`` parallel). Rows refused while errors are being
    collected (a dry run) are left out.
    """

    lines: np.ndarray
    log: InteractionLog | None = None
    records: list[BaseModel] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.log) if self.log is not None else len(self.records)


@dataclass(frozen=True)
class Source:
    """Where one field's values come from, as a dry run shows it."""

    field: str
    column: str | None
    how: str  # "mapped", "by name", "default", "flags", "values"


class TableReader:
    """One pass over a table: convert, fill defaults, derive ids, validate, in chunks.

    ``errors``: when a list, rows that fail are recorded there as :class:`RowError` and
    skipped (a dry run wants the first few, not the first one); when None the first raises.
    """

    def __init__(
        self,
        kind: str,
        model: type[BaseModel],
        table: Table,
        converters: dict[str, Converter],
        mapping: dict[str, str],
        fixed: dict[str, object],
        options: ReadOptions,
    ) -> None:
        self.kind = kind
        self.model = model
        self.table = table
        self.fixed = fixed
        self.options = options
        self.errors: list[RowError] | None = None
        self.rows_read = 0
        position = {name: i for i, name in enumerate(table.columns)}
        self.column_of: dict[str, str | None] = {}
        self.sources: list[Source] = []
        self.plan: list[tuple[str, int, Converter, str]] = []
        required_names = {n for n, info in model.model_fields.items() if info.is_required()}
        for name, convert in converters.items():
            column = mapping.get(name)
            how = "mapped"
            if column is not None and column not in position:
                raise table.header_error(
                    column,
                    f"column {column!r} (mapped to {name}) is not in the file; its columns: "
                    f"{_shown_columns(table.columns)}",
                )
            by_name = column is None and name in position and name not in options.flags
            if by_name and (options.auto_map or name in required_names):
                column, how = name, "by name"
            self.column_of[name] = column
            if column is not None:
                vocabulary = options.values.get(name)
                if vocabulary:
                    convert = _with_vocabulary(convert, vocabulary)
                    how += ", values mapped"
                self.plan.append((name, position[column], convert, column))
                self.sources.append(Source(name, column, how))
            elif name in fixed:
                self.sources.append(Source(name, None, f"default {fixed[name]!s}"))
        #: columns named like an optional field but not read (no mapping, no auto_map)
        self.unread = [
            name
            for name in converters
            if name in position and self.column_of.get(name) is None and name not in fixed
        ]
        self.flag_plan: list[tuple[str, list[tuple[int, str, str]]]] = []
        for name, columns in options.flags.items():
            if name not in converters:
                raise SegueError(f"--flags {name}: {kind} have no field {name!r}")
            if self.column_of.get(name) is not None:
                raise SegueError(f"{name} is both mapped to a column and given by --flags")
            resolved = _resolve_flag_columns(table, columns)
            labels = [column for _, column in resolved]
            if options.flag_names is not None:
                if len(options.flag_names) != len(resolved):
                    raise SegueError(
                        f"--flag-names gives {len(options.flag_names)} labels for "
                        f"{len(resolved)} flag columns of {name}"
                    )
                labels = list(options.flag_names)
            self.flag_plan.append(
                (name, [(i, col, label) for (i, col), label in zip(resolved, labels, strict=True)])
            )
            first, last = resolved[0][1], resolved[-1][1]
            self.sources.append(Source(name, f"{first}…{last}", f"{len(resolved)} flag columns"))
        self.derive_ids = kind == "events"
        self.required = [
            (name, self.column_of.get(name))
            for name, info in model.model_fields.items()
            if info.is_required() and not (self.derive_ids and name == "event_id")
        ]
        for name, column in self.required:
            if column is None and name not in fixed and name not in options.flags:
                hint = f"map one ({name}=COLUMN)"
                if name == "signup_at":
                    hint = "map one (signup_at=COLUMN)"
                raise table.header_error(
                    None,
                    f"no column for the required field {name!r}: {hint} or give a default "
                    f"(on the command line: --default {name}=VALUE); the file's columns: "
                    f"{_shown_columns(table.columns)}",
                )
        self.occurrences = _Occurrences()
        self.first_line: dict[str, int] = {}
        # the optional event fields (str, int, float, bool or None: their repr is stable)
        self.event_defaults = {
            name: info.default
            for name, info in Event.model_fields.items()
            if not info.is_required()
        }
        self.columnar = kind == "events" and table.error is RowError and not self.flag_plan
        #: bytes of a delimited file parsed by pyarrow at a time (see :meth:`_event_parts`)
        self.block_bytes = BLOCK_BYTES

    # -- reading -----------------------------------------------------------------------------

    def records(self) -> RecordBatch:
        """Every row as records, row by row through the model: the reference reader."""
        batch = RecordBatch()
        records: list[BaseModel] = []
        user_column = self.column_of.get("user_id")
        item_column = self.column_of.get("item_id")
        for line, row in self.table.rows:
            self.rows_read += 1
            record = self._record(line, row)
            if record is None:
                continue
            if self.kind == "events":
                batch.event_origins.append(Origin(self.table.file, line, user_column, item_column))
            records.append(record)
        setattr(batch, self.kind, records)
        return batch

    def chunks(self, size: int = CHUNK_ROWS) -> Iterator[Chunk]:
        """The file in chunks of ``size`` rows, events columnar (see the module's docstring).

        Events are parsed :data:`PARSE_ROWS` at a time and joined into one log per chunk: a
        parsed row's Python objects (the row, its cells, its content tuple) take many times
        its columnar form, so only a slice of them is alive at once however large the chunk.
        """
        rows = iter(self.table.rows)
        if self.kind != "events":
            while block := list(itertools.islice(rows, size)):
                self.rows_read += len(block)
                records, kept = [], []
                for line, row in block:
                    record = self._record(line, row)
                    if record is not None:
                        records.append(record)
                        kept.append(line)
                yield Chunk(lines=np.array(kept, dtype=np.int64), records=records)
            return
        logs: list[InteractionLog] = []
        lines: list[np.ndarray] = []
        held = 0
        for parsed in self._event_parts(rows, min(size, PARSE_ROWS)):
            logs.append(parsed[0])
            lines.append(parsed[1])
            held += len(parsed[1])
            del parsed
            if held >= size:
                log = logs[0] if len(logs) == 1 else InteractionLog.concat(logs)
                yield Chunk(lines=np.concatenate(lines), log=log)
                logs, lines, held = [], [], 0
        if logs:
            log = logs[0] if len(logs) == 1 else InteractionLog.concat(logs)
            yield Chunk(lines=np.concatenate(lines), log=log)

    def _event_parts(
        self, rows: Iterator[tuple[int, Sequence[object]]], parse_rows: int
    ) -> Iterator[tuple[InteractionLog, np.ndarray]]:
        """Events as columnar logs with their lines, a block at a time.

        A delimited file that pyarrow can split exactly comes in blocks of whole columns
        (:func:`~segue.data.sources._tables.csv_blocks`), converted by
        :meth:`_columnar_arrow`; anything else in lists of ``parse_rows`` ``(line, row)``
        pairs, converted by :meth:`_columnar` or, when that is unsure, row by row, which
        names the bad cell.
        """
        source = self.table.source if self.columnar else None
        parts: Iterator[ArrowBlock | Iterator[tuple[int, Sequence[object]]]]
        parts = (
            iter([rows])
            if source is None
            else csv_blocks(source, self.table.columns, self.block_bytes)
        )
        for part in parts:
            if isinstance(part, ArrowBlock):
                self.rows_read += len(part.lines)
                parsed = self._columnar_arrow(part)
                if parsed is not None:
                    yield parsed
                    continue
                cells = [column.to_pylist() for column in part.table.columns]
                part = zip(part.lines.tolist(), zip(*cells, strict=True), strict=True)
            else:
                part = self._counted(part)
            while block := list(itertools.islice(part, parse_rows)):
                parsed = self._columnar(block) if self.columnar else None
                if parsed is None:
                    parsed = self._events_row_by_row(block)
                block.clear()
                yield parsed

    def _counted(
        self, rows: Iterator[tuple[int, Sequence[object]]]
    ) -> Iterator[tuple[int, Sequence[object]]]:
        for row in rows:
            self.rows_read += 1
            yield row

    def _events_row_by_row(
        self, block: list[tuple[int, Sequence[object]]]
    ) -> tuple[InteractionLog, np.ndarray]:
        events, kept = [], []
        for line, row in block:
            record = self._record(line, row)
            if record is not None:
                events.append(record)
                kept.append(line)
        return InteractionLog.from_events(events), np.array(kept, dtype=np.int64)

    def _record(self, line: int, row: Sequence[object]) -> BaseModel | None:
        """One row as a validated record; None when it failed and errors are being collected."""
        try:
            values = self._values(line, row)
            try:
                record = self.model.model_validate(values)
            except ValidationError as exc:
                raise row_error_from_validation(
                    exc, self.table.file, line, self.column_of, error=self.table.error
                ) from None
            if self.kind != "events":
                key = values["id"]
                assert isinstance(key, str)
                if key in self.first_line:
                    raise self.table.error(
                        self.table.file,
                        line,
                        self.column_of.get("id"),
                        f"id {key!r} repeats {self.table.unit} {self.first_line[key]}; "
                        "each id may appear once per file",
                    )
                self.first_line[key] = line
            return record
        except RowError as exc:
            if self.errors is None:
                raise
            self.errors.append(exc)
            return None

    def _values(self, line: int, row: Sequence[object]) -> dict[str, object]:
        table = self.table
        values = dict(self.fixed)
        for name, index, convert, column in self.plan:
            raw = row[index]
            if is_missing(raw):
                continue
            try:
                values[name] = convert(raw)
            except BadValue as exc:
                raise table.error(table.file, line, column, str(exc)) from None
        for name, flags in self.flag_plan:
            labels = []
            for index, column, label in flags:
                raw = row[index]
                if is_missing(raw):
                    continue
                try:
                    if to_bool(raw):
                        labels.append(label)
                except BadValue as exc:
                    raise table.error(table.file, line, column, f"flag column: {exc}") from None
            values[name] = tuple(labels)
        for name, column in self.required:
            if values.get(name) is None:
                raise table.error(table.file, line, column, f"empty cell; {name} is required")
        if self.derive_ids and values.get("event_id") is None:
            values["event_id"] = self._content_id(values)
        return values

    def _content_id(self, values: dict[str, object]) -> str:
        """Hash of every field but the id, in a form that no Python upgrade changes."""
        when = values["timestamp"]
        kind = values["type"]
        assert isinstance(when, dt.datetime) and isinstance(kind, Enum)
        content = (
            values["user_id"],
            values["item_id"],
            kind.value,
            (when - _EPOCH) // _MICROSECOND,
            *[values.get(name, default) for name, default in self.event_defaults.items()],
        )
        digest = hashlib.blake2b(repr(content).encode(), digest_size=16).digest()
        seen = self.occurrences.take_one(int.from_bytes(digest[:8], "little"))
        return f"row:{digest.hex()}" if seen == 0 else f"row:{digest.hex()}:{seen}"

    # -- the columnar path for events --------------------------------------------------------

    def _columnar(
        self, block: list[tuple[int, Sequence[object]]]
    ) -> tuple[InteractionLog, np.ndarray] | None:
        """A chunk of events converted column by column, or None to read it row by row.

        Accepts only what the row-by-row reader accepts with the same values: every check
        here is the model's (ids, bounds, the clock), done on whole columns or on each distinct
        value once; anything else (a bad or unusual cell) returns None, and the chunk is read
        again by :meth:`_record`, which finds the row and says what is wrong with it.
        """
        n = len(block)
        lines = np.fromiter((line for line, _ in block), np.int64, n)
        columns: dict[str, list[object]] = {}
        for name, index, convert, _column in self.plan:
            cells = [row[index] for _, row in block]
            converted = _convert_column(name, cells, convert, self.fixed.get(name))
            if converted is None:
                return None
            columns[name] = converted
        for name, value in self.fixed.items():
            if name not in columns:
                columns[name] = [value] * n
        for name in ("user_id", "item_id", "type", "timestamp"):
            if name not in columns or any(v is None for v in columns[name]):
                return None
        stamps = columns["timestamp"]
        if isinstance(stamps, _EpochColumn):
            ts_ms, micros = stamps.ms, stamps.micros
        else:
            if not all(isinstance(v, dt.datetime) for v in stamps):
                return None
            ts_ms = np.fromiter((to_epoch_ms(v) for v in stamps), np.int64, n)  # type: ignore[arg-type]
            micros = [(v - _EPOCH) // _MICROSECOND for v in stamps]  # type: ignore[operator]
        latest = (time.time() + max_future_s()) * 1000
        if n and (int(ts_ms.min()) < 0 or int(ts_ms.max()) > latest):
            return None
        optional = {
            name: columns.get(name, [default] * n) for name, default in self.event_defaults.items()
        }
        if not _optional_ok(optional):
            return None
        types = [v.value for v in columns["type"]]  # type: ignore[attr-defined]
        if "event_id" in columns:
            event_ids = columns["event_id"]
            if any(v is None for v in event_ids):
                return None
        else:
            event_ids = self._content_ids(
                columns["user_id"], columns["item_id"], types, micros, optional
            )
        user_ids, user = _encode(columns["user_id"])  # type: ignore[arg-type]
        item_ids, item = _encode(columns["item_id"])  # type: ignore[arg-type]
        ms = optional["ms_played"]
        rating = optional["rating"]
        log = InteractionLog(
            user_ids=user_ids,
            item_ids=item_ids,
            user=user,
            item=item,
            type=np.fromiter((EVENT_CODES[t] for t in types), np.uint8, n),
            ts_ms=ts_ms,
            ms_played=np.array([UNKNOWN_MS if v is None else v for v in ms], dtype=np.int64),
            count=np.array(optional["count"], dtype=np.int32),
            focus=np.array(optional["focus"], dtype=bool),
            rating=np.array([np.nan if v is None else v for v in rating], dtype=np.float64),
            event_id=np.array(event_ids, dtype=object),
            session_id=np.array(optional["session_id"], dtype=object),
            surface=np.array(optional["surface"], dtype=object),
            source=np.array(optional["source"], dtype=object),
            device=np.array(optional["device"], dtype=object),
        )
        return log, lines

    def _columnar_arrow(self, block: ArrowBlock) -> tuple[InteractionLog, np.ndarray] | None:
        """:meth:`_columnar` for a block pyarrow parsed: the same checks and values, each
        cell converted once per distinct value of its column (dictionary-encoded in C), the
        epoch timestamps cast in C, and the content hash built column-wise; None when the
        block must be read row by row."""
        import pyarrow as pa
        import pyarrow.compute as pc

        table, lines = block.table, block.lines
        n = table.num_rows
        # per field: its distinct converted values and, per row, the position of its value
        fields: dict[str, tuple[list[object], np.ndarray]] = {}
        epoch_ms: np.ndarray | None = None
        for name, index, convert, _column in self.plan:
            cells = table.column(index).combine_chunks()
            epoch = name == "timestamp" and convert is to_timestamp and n > 0
            if epoch and pc.all(pc.match_substring_regex(cells, _EPOCH_RE2)).as_py():
                numbers = pc.cast(cells, pa.int64()).to_numpy()
                epoch_ms = np.where(numbers < 100_000_000_000, numbers * 1000, numbers)
                continue
            encoded = cells.dictionary_encode()
            default = self.fixed.get(name, self.event_defaults.get(name))
            converted = _convert_column(name, encoded.dictionary.to_pylist(), convert, default)
            if converted is None:
                return None
            fields[name] = (list(converted), encoded.indices.to_numpy(zero_copy_only=False))
        zeros = np.zeros(n, dtype=np.int32)
        for name in ("user_id", "item_id", "type", "timestamp", *self.event_defaults):
            if name not in fields and not (name == "timestamp" and epoch_ms is not None):
                value = self.fixed.get(name, self.event_defaults.get(name))
                fields[name] = ([value], zeros)
        for name in ("user_id", "item_id", "type"):
            if any(v is None for v in fields[name][0]):
                return None
        if epoch_ms is not None:
            ts_ms, micros = epoch_ms, epoch_ms * 1000
        else:
            stamps, at = fields["timestamp"]
            if not all(isinstance(v, dt.datetime) for v in stamps):
                return None
            ts_ms = np.array([to_epoch_ms(v) for v in stamps], dtype=np.int64)[at]  # type: ignore[arg-type]
            micros = np.array([(v - _EPOCH) // _MICROSECOND for v in stamps], dtype=np.int64)[at]  # type: ignore[operator]
        latest = (time.time() + max_future_s()) * 1000
        if n and (int(ts_ms.min()) < 0 or int(ts_ms.max()) > latest):
            return None
        if not all(isinstance(v, bool) for v in fields["focus"][0]):
            return None
        counts = fields["count"][0]
        if any(v is None for v in counts):
            return None
        kinds, kind_at = fields["type"]
        type_codes = np.array([EVENT_CODES[k.value] for k in kinds], dtype=np.uint8)  # type: ignore[attr-defined]
        if "event_id" in fields:
            ids, id_at = fields["event_id"]
            if any(v is None for v in ids):
                return None
            event_ids = np.array(ids, dtype=object)[id_at]
        else:
            # repr(content) of :meth:`_content_id`, joined column by column
            parts = [_reprs(fields["user_id"], "("), _reprs(fields["item_id"])]
            kind_reprs = [repr(k.value) for k in kinds]  # type: ignore[attr-defined]
            parts.append(pa.array(kind_reprs, pa.string()).take(kind_at))
            parts.append(pc.cast(pa.array(micros), pa.string()))
            optional = list(self.event_defaults)
            for name in optional:
                parts.append(_reprs(fields[name], suffix=")" if name == optional[-1] else ""))
            content = pc.binary_join_element_wise(*parts, ", ").cast(pa.binary())
            event_ids = np.array(self._ids_of(content.to_pylist()), dtype=object)
        user_ids, user_at = _vocabulary(fields["user_id"][0])
        item_ids, item_at = _vocabulary(fields["item_id"][0])

        def per_row(name: str, dtype: object, missing: object) -> np.ndarray:
            values, at = fields[name]
            return np.array([missing if v is None else v for v in values], dtype=dtype)[at]

        def strings(name: str) -> np.ndarray | None:
            values, at = fields[name]
            return None if values == [None] else np.array(values, dtype=object)[at]

        log = InteractionLog(
            user_ids=user_ids,
            item_ids=item_ids,
            user=user_at[fields["user_id"][1]],
            item=item_at[fields["item_id"][1]],
            type=type_codes[kind_at],
            ts_ms=ts_ms,
            ms_played=per_row("ms_played", np.int64, UNKNOWN_MS),
            count=per_row("count", np.int32, None),
            focus=per_row("focus", bool, None),
            rating=per_row("rating", np.float64, np.nan),
            event_id=event_ids,
            session_id=strings("session_id"),
            surface=strings("surface"),
            source=strings("source"),
            device=strings("device"),
        )
        return log, lines

    def _ids_of(self, contents: list[bytes]) -> list[str]:
        """Derived event ids of content strings (``repr`` of the content tuple, encoded)."""
        blake = hashlib.blake2b
        digests = [blake(content, digest_size=16).digest() for content in contents]
        keys = np.frombuffer(b"".join(digests), dtype="<u8")[::2]  # each digest's first 8 bytes
        seen = self.occurrences.take(keys)
        ids = [f"row:{d.hex()}" for d in digests]
        for index in np.flatnonzero(seen):
            ids[index] = f"{ids[index]}:{int(seen[index])}"
        return ids

    def _content_ids(
        self,
        users: list[object],
        items: list[object],
        types: list[str],
        micros: Sequence[int],
        optional: dict[str, list[object]],
    ) -> list[str]:
        """:meth:`_content_id` for a whole chunk: the same hash, occurrences counted at once."""
        return self._ids_of(
            [
                repr(content).encode()
                for content in zip(users, items, types, micros, *optional.values(), strict=True)
            ]
        )


class _EpochColumn(list):  # type: ignore[type-arg]
    """A timestamp column read as epoch integers: kept as arrays, no datetime per row."""

    ms: np.ndarray
    micros: list[int]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
#: Whole columns checked by one regular expression over the cells joined by newlines: a cell
#: holding a newline (a quoted multi-line cell) breaks the pattern and so falls back, safely.
#: Possessive repeats (``*+``): a backtracking repeat keeps state per cell, 150 MB for a
#: chunk of 200,000 ratings; these keep none.
_EPOCH_CELLS = re.compile(r"(?:[0-9]{1,14}\n)*+")
_INT_CELLS = re.compile(r"(?:[ \t]*+(?:[+-]?[0-9]{1,18})?[ \t]*+\n)*+")
_FLOAT_CELLS = re.compile(
    r"(?:[ \t]*+(?:[+-]?(?:[0-9]++\.?[0-9]*+|\.[0-9]++)(?:[eE][+-]?[0-9]{1,3})?)?[ \t]*+\n)*+"
)

#: :data:`_EPOCH_CELLS` for one cell, in RE2's syntax (pyarrow's regular expressions).
_EPOCH_RE2 = "^[0-9]{1,14}$"


def _vocabulary(values: list[object]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct raw cells' ids as a vocabulary and each one's position in it: the same list
    unless stripping made two cells one id (``" 7"`` and ``"7"``)."""
    if len(set(values)) == len(values):
        return np.array(values, dtype=object), np.arange(len(values), dtype=np.int32)
    return _encode(values)  # type: ignore[arg-type]


def _reprs(field: tuple[list[object], np.ndarray], prefix: str = "", suffix: str = "") -> object:
    """Per row, ``repr`` of its value (each distinct value's once) as a pyarrow string array."""
    import pyarrow as pa

    values, at = field
    return pa.array([f"{prefix}{v!r}{suffix}" for v in values], pa.string()).take(at)


_TEXT_FIELDS = frozenset(
    {"event_id", "user_id", "item_id", "session_id", "surface", "source", "device"}
)


#: User and item ids already checked against the model's rules: a vocabulary repeats in every
#: chunk. Bounded, so a file of ever-new ids does not grow it without limit.
_VALID_IDS: set[str] = set()


@cache
def _adapter(name: str) -> TypeAdapter[str]:
    return TypeAdapter(Id if name in ("user_id", "item_id", "event_id") else Name)


def _convert_column(
    name: str, cells: list[object], convert: Converter, default: object
) -> list[object] | None:
    """One column of a chunk converted as the row-by-row reader would, or None if unsure."""
    if name in _TEXT_FIELDS and convert is not to_text and not hasattr(convert, "vocabulary"):
        return None
    if not all(isinstance(c, str) for c in cells):
        return None
    texts = typing.cast(list[str], cells)
    if getattr(convert, "vocabulary", None):
        # mapped ids would need the model's id checks after mapping: rare, so row by row
        return None if name in _TEXT_FIELDS else _by_distinct(texts, convert, default)
    if name == "timestamp" and convert is to_timestamp:
        joined = "\n".join(texts) + "\n"
        if _EPOCH_CELLS.fullmatch(joined):
            numbers = np.array(texts, dtype=np.int64) if texts else np.zeros(0, np.int64)
            seconds = numbers < 100_000_000_000  # below 1e11: seconds, else milliseconds
            column = _EpochColumn(numbers.tolist())
            column.ms = np.where(seconds, numbers * 1000, numbers)
            column.micros = (column.ms * 1000).tolist()
            return column
        return _by_distinct(texts, convert, default)
    if name in ("ms_played", "count"):
        if not _INT_CELLS.fullmatch("\n".join(texts) + "\n"):
            return None
        values = [int(t) if t.strip() else default for t in texts]
        low, high = (0, MAX_MS_PLAYED) if name == "ms_played" else (1, MAX_INT32)
        if any(v is not None and not low <= v <= high for v in values):  # type: ignore[operator]
            return None
        return values
    if name == "rating":
        if not _FLOAT_CELLS.fullmatch("\n".join(texts) + "\n"):
            return None
        values = [float(t) if t.strip() else default for t in texts]
        if any(v is not None and not (math.isfinite(v) and abs(v) <= 1e6) for v in values):  # type: ignore[arg-type]
            return None
        return values
    if convert is to_text:
        stripped = [t.strip() or default for t in texts]
        adapter = _adapter(name)
        valid = _VALID_IDS if name in ("user_id", "item_id") else set()
        for value in set(stripped):
            if value is None or value in valid:
                continue
            try:
                if adapter.validate_python(value) != value:
                    return None
            except ValidationError:
                return None
            if len(valid) < 2_000_000:
                valid.add(value)  # type: ignore[arg-type]
        return stripped
    return _by_distinct(texts, convert, default)


def _by_distinct(texts: list[str], convert: Converter, default: object) -> list[object] | None:
    """Convert each distinct cell once (types, flags, repeated dates): a few per chunk."""
    converted: dict[str, object] = {}
    for text in set(texts):
        if not text.strip():
            converted[text] = default
            continue
        try:
            converted[text] = convert(text)
        except BadValue:
            return None
    return [converted[t] for t in texts]


def _optional_ok(optional: dict[str, list[object]]) -> bool:
    """The optional event columns are of the types the model would have produced."""
    focus = optional["focus"]
    return all(isinstance(v, bool) for v in set(focus))


class _Occurrences:
    """How often each event content hash was seen before, in about 8 bytes per distinct row.

    A dict of 3 million hex digests would take half a gigabyte. Here a sorted numpy array
    holds the 64-bit hash prefixes seen (collisions: about one in 10^12 for a million-row
    file), a dict the totals of the few seen more than once (genuinely repeated rows), and
    the rows counted one at a time (the row-by-row path) wait in a small dict until merged.
    """

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.uint64)
        self.repeated: dict[int, int] = {}
        self.recent: dict[int, int] = {}

    def take_one(self, key: int) -> int:
        seen = self.recent.get(key)
        if seen is None:
            seen = int(self._lookup(np.array([key], dtype=np.uint64))[0])
        self.recent[key] = seen + 1
        if len(self.recent) >= 100_000:
            self._flush()
        return seen

    def take(self, keys: np.ndarray) -> np.ndarray:
        """Occurrence numbers of ``keys`` (earlier rows first), counting them as seen."""
        self._flush()
        n = len(keys)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        first = np.ones(n, dtype=bool)
        first[1:] = ordered[1:] != ordered[:-1]
        starts = np.flatnonzero(first)
        group = np.cumsum(first) - 1
        rank = np.arange(n) - starts[group]
        unique = ordered[starts]
        base = self._lookup(unique)
        occurrence = np.empty(n, dtype=np.int64)
        occurrence[order] = base[group] + rank
        sizes = np.diff(np.append(starts, n))
        self._merge(unique, base + sizes)
        return occurrence

    def _lookup(self, keys: np.ndarray) -> np.ndarray:
        """Times each key was seen: 0 if absent, its repeat total, else 1."""
        if len(self.keys) == 0:
            return np.zeros(len(keys), dtype=np.int64)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        seen = (self.keys[at] == keys).astype(np.int64)
        if self.repeated:
            for index in np.flatnonzero(seen):
                seen[index] = self.repeated.get(int(keys[index]), 1)
        return seen

    def _flush(self) -> None:
        if self.recent:
            keys = np.fromiter(self.recent, dtype=np.uint64, count=len(self.recent))
            totals = np.fromiter(self.recent.values(), dtype=np.int64, count=len(self.recent))
            order = np.argsort(keys)
            self._merge(keys[order], totals[order])
            self.recent.clear()

    def _merge(self, keys: np.ndarray, totals: np.ndarray) -> None:
        """Set the totals of sorted, distinct ``keys``, inserting the new ones in order."""
        for index in np.flatnonzero(totals > 1):
            self.repeated[int(keys[index])] = int(totals[index])
        if len(self.keys):
            at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            keys = keys[self.keys[at] != keys]
        if len(keys):
            self.keys = np.insert(self.keys, np.searchsorted(self.keys, keys), keys)


def _with_vocabulary(convert: Converter, vocabulary: Mapping[str, str]) -> Converter:
    """``convert`` after mapping raw cells through ``vocabulary`` (exact, then any case)."""
    folded = {raw.lower(): value for raw, value in vocabulary.items()}

    def mapped(value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            value = vocabulary.get(text, folded.get(text.lower(), text))
        return convert(value)

    mapped.vocabulary = vocabulary  # type: ignore[attr-defined]
    return mapped


def _resolve_flag_columns(table: Table, names: Sequence[str]) -> list[tuple[int, str]]:
    """Flag columns by name, 1-based position, or range of positions ``A-B``."""
    position = {name: i for i, name in enumerate(table.columns)}
    found: list[tuple[int, str]] = []
    for name in names:
        if name in position:
            found.append((position[name], name))
            continue
        low, dash, high = name.partition("-")
        if low.strip().isdigit() and (not dash or high.strip().isdigit()):
            start, stop = int(low), int(high) if dash else int(low)
            if 1 <= start <= stop <= len(table.columns):
                found.extend((i, table.columns[i]) for i in range(start - 1, stop))
                continue
        raise table.header_error(
            name,
            f"flag column {name!r} is not in the file (a name, a 1-based position or a range "
            f"such as 6-24); its columns: {_shown_columns(table.columns)}",
        )
    return found


def _shown_columns(columns: Sequence[str]) -> str:
    shown = ", ".join(repr(c) for c in columns[:30])
    return shown + (f" and {len(columns) - 30} more" if len(columns) > 30 else "")
