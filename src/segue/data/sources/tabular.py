"""Events, items or users from any CSV or Parquet file, given which column holds which field.

Cells are converted by the type of the field they feed (:mod:`segue.data.sources._values`
holds the rules: ISO 8601 or epoch timestamps, ``true``/``false`` booleans, ``|``-separated
labels, case-insensitive enum values), then validated by the record's model. An empty cell or
null means "not given": the field takes the value from ``defaults``, else the model's default.
Columns that feed no field are ignored, so an export with extra columns imports as is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import types
import typing
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from segue.data.batch import Origin, RecordBatch
from segue.data.model import Event, Item, User
from segue.data.sources._tables import Table, open_csv, open_parquet
from segue.data.sources._text import paused_gc
from segue.data.sources._values import (
    BadValue,
    Converter,
    enum_converter,
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
from segue.errors import SegueError

Kind = Literal["events", "items", "users"]
Format = Literal["csv", "tsv", "parquet"]

_MODELS: dict[str, type[BaseModel]] = {"events": Event, "items": Item, "users": User}
_SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


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
        field, sep, column = part.partition("=")
        field, column = field.strip(), column.strip()
        if not sep or not field or not column:
            raise SegueError(f"mapping entry {part.strip()!r} is not FIELD=COLUMN; {example}")
        if field in mapping:
            raise SegueError(f"mapping {text!r} maps {field!r} twice")
        mapping[field] = column
    return mapping


def read_table(
    path: Path,
    kind: Kind,
    mapping: Mapping[str, str] | None = None,
    *,
    defaults: Mapping[str, object] | None = None,
    format: Format | None = None,
) -> RecordBatch:
    """One file of ``kind`` records; ``mapping`` maps record fields to the file's columns.

    A field not in ``mapping`` reads the column of its own name when there is one, else takes
    ``defaults[field]``, else the model's default. ``format`` defaults to the file's suffix
    (``.csv``, ``.tsv``/``.tab``, ``.parquet``/``.pq``); text files must be UTF-8.

    Events without an ``event_id`` get one derived from their content: a hash of every field
    of the converted event (so ``"1714567890"`` and ``"2024-05-01T12:51:30Z"`` agree, and a
    CSV and a Parquet export of the same log get the same ids), and, for the second and later
    rows with identical content, their occurrence number. Re-importing the same file thus adds
    nothing, while genuinely repeated rows (two plays in one second) are all kept.

    Items and users must not repeat an id within one file: which row should win is unclear.
    """
    path = Path(path)
    model = _MODELS.get(kind)
    if model is None:
        raise SegueError(f"unknown record kind {kind!r}; expected one of {', '.join(_MODELS)}")
    converters = _converters(model)
    mapping = dict(mapping or {})
    _check_fields(kind, model, converters, mapping, "map")
    fixed = _convert_defaults(kind, model, converters, defaults or {})

    fmt = format or _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise SegueError(
            f"{path}: cannot tell the format from the suffix {path.suffix!r}; "
            "use .csv, .tsv or .parquet, or say which format"
        )
    if fmt == "parquet":
        needed = [mapping.get(field, field) for field in converters]
        table = open_parquet(path, needed)
    elif fmt in ("csv", "tsv"):
        table = open_csv(path, "," if fmt == "csv" else "\t")
    else:
        raise SegueError(f"unknown format {fmt!r}; expected csv, tsv or parquet")
    with paused_gc():
        return _Reader(kind, model, table, converters, mapping, fixed).read()


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
) -> dict[str, object]:
    _check_fields(kind, model, converters, defaults, "give a default for")
    fixed: dict[str, object] = {}
    for name, value in defaults.items():
        if value is None:
            fixed[name] = None
            continue
        try:
            fixed[name] = converters[name](value)
        except BadValue as exc:
            raise SegueError(f"default for {name!r}: {exc}") from None
    return fixed


class _Reader:
    """One pass over a table: convert, fill defaults, derive ids, validate, collect."""

    def __init__(
        self,
        kind: str,
        model: type[BaseModel],
        table: Table,
        converters: dict[str, Converter],
        mapping: dict[str, str],
        fixed: dict[str, object],
    ) -> None:
        self.kind = kind
        self.model = model
        self.table = table
        self.fixed = fixed
        position = {name: i for i, name in enumerate(table.columns)}
        self.column_of: dict[str, str | None] = {}
        self.plan: list[tuple[str, int, Converter, str]] = []
        for field, convert in converters.items():
            column = mapping.get(field)
            if column is not None and column not in position:
                raise table.header_error(
                    column,
                    f"column {column!r} (mapped to {field}) is not in the file; its columns: "
                    f"{', '.join(repr(c) for c in table.columns)}",
                )
            if column is None and field in position:
                column = field
            self.column_of[field] = column
            if column is not None:
                self.plan.append((field, position[column], convert, column))
        self.derive_ids = kind == "events"
        self.required = [
            (name, self.column_of.get(name))
            for name, info in model.model_fields.items()
            if info.is_required() and not (self.derive_ids and name == "event_id")
        ]
        for name, column in self.required:
            if column is None and name not in fixed:
                raise table.header_error(
                    None,
                    f"no column for the required field {name!r}: map one ({name}=COLUMN) "
                    f"or give a default (on the command line: --default {name}=VALUE)",
                )
        self.id_counts: dict[str, int] = {}
        # the optional event fields (str, int, float, bool or None: their repr is stable)
        self.event_defaults = {
            name: info.default
            for name, info in Event.model_fields.items()
            if not info.is_required()
        }

    def read(self) -> RecordBatch:
        batch = RecordBatch()
        table = self.table
        records: list[BaseModel] = []
        first_line: dict[str, int] = {}
        user_column = self.column_of.get("user_id")
        item_column = self.column_of.get("item_id")
        for line, row in table.rows:
            values = self._values(line, row)
            try:
                record = self.model.model_validate(values)
            except ValidationError as exc:
                raise row_error_from_validation(
                    exc, table.file, line, self.column_of, error=table.error
                ) from None
            if self.kind == "events":
                batch.event_origins.append(Origin(table.file, line, user_column, item_column))
            else:
                key = values["id"]
                assert isinstance(key, str)
                if key in first_line:
                    raise table.error(
                        table.file,
                        line,
                        self.column_of.get("id"),
                        f"id {key!r} repeats {table.unit} {first_line[key]}; "
                        "each id may appear once per file",
                    )
                first_line[key] = line
            records.append(record)
        setattr(batch, self.kind, records)
        return batch

    def _values(self, line: int, row: object) -> dict[str, object]:
        table = self.table
        values = dict(self.fixed)
        for field, index, convert, column in self.plan:
            raw = row[index]  # type: ignore[index]
            if is_missing(raw):
                continue
            try:
                values[field] = convert(raw)
            except BadValue as exc:
                raise table.error(table.file, line, column, str(exc)) from None
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
        digest = hashlib.blake2b(repr(content).encode(), digest_size=16).hexdigest()
        seen = self.id_counts.get(digest, 0)
        self.id_counts[digest] = seen + 1
        return f"row:{digest}" if seen == 0 else f"row:{digest}:{seen}"


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
