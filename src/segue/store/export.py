"""Tables to Parquet, streamed in chunks and published atomically.

Exports speak external ids only (``user_id``, ``item_id``), never the store's integer keys, so a
file can be read without the database. Timestamps keep their epoch-millisecond column and gain
a ``timestamp[ms, UTC]`` twin for tools that want a real time type.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from segue.errors import StoreError
from segue.store import schema

_ROWS_PER_CHUNK = 100_000
_TIMESTAMP = pa.timestamp("ms", tz="UTC")
_AUDIO = pa.struct(
    [
        ("tempo", pa.float64()),
        ("energy", pa.float64()),
        ("danceability", pa.float64()),
        ("valence", pa.float64()),
        ("acousticness", pa.float64()),
        ("instrumentalness", pa.float64()),
        ("loudness", pa.float64()),
    ]
)


@dataclass(frozen=True)
class _Column:
    name: str
    type: pa.DataType
    convert: Callable[[Any], Any] | None = None


def _json_or_none(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _bool_or_none(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _plan(table: str) -> tuple[sa.Select[Any], list[_Column], dict[str, str]]:
    """Query, output columns and {timestamp column: its ms source} for one table."""
    u, i = schema.users, schema.items
    if table == "events":
        e = schema.events
        query = (
            sa.select(
                e.c.event_id,
                u.c.id.label("user_id"),
                i.c.id.label("item_id"),
                *(e.c[name] for name in schema.EVENT_DETAIL_COLUMNS),
            )
            .select_from(e.join(u, u.c.key == e.c.user_key).join(i, i.c.key == e.c.item_key))
            .order_by(e.c.key)
        )
        columns = [
            _Column("event_id", pa.string()),
            _Column("user_id", pa.string()),
            _Column("item_id", pa.string()),
            _Column("type", pa.string()),
            _Column("ts_ms", pa.int64()),
            _Column("ms_played", pa.int64()),
            _Column("count", pa.int32()),
            _Column("session_id", pa.string()),
            _Column("surface", pa.string()),
            _Column("source", pa.string()),
            _Column("device", pa.string()),
            _Column("focus", pa.bool_(), _bool_or_none),
            _Column("rating", pa.float64()),
        ]
        return query, columns, {"timestamp": "ts_ms"}
    if table == "items":
        query = sa.select(*(c for c in i.c if c.name != "key")).order_by(i.c.key)
        columns = [
            _Column("id", pa.string()),
            _Column("kind", pa.string()),
            _Column("title", pa.string()),
            _Column("artist_id", pa.string()),
            _Column("album_id", pa.string()),
            _Column("show_id", pa.string()),
            _Column("genres", pa.list_(pa.string()), _json_or_none),
            _Column("tags", pa.list_(pa.string()), _json_or_none),
            _Column("duration_ms", pa.int64()),
            _Column("release_date", pa.date32()),
            _Column("explicit", pa.bool_(), _bool_or_none),
            _Column("audio", _AUDIO, _json_or_none),
            _Column("description", pa.string()),
        ]
        return query, columns, {}
    if table == "users":
        query = sa.select(*(c for c in u.c if c.name != "key")).order_by(u.c.key)
        columns = [
            _Column(c.name, pa.bool_(), _bool_or_none)
            if isinstance(c.type, sa.Boolean)
            else _Column(c.name, pa.int64() if c.name == "signup_ms" else pa.string())
            for c in u.c
            if c.name != "key"
        ]
        return query, columns, {"signup_at": "signup_ms"}
    if table == "friendships":
        f, links = u.alias("f"), schema.friendships
        query = (
            sa.select(u.c.id.label("user_id"), f.c.id.label("friend_id"))
            .select_from(links.join(u, u.c.key == links.c.user_key))
            .join(f, f.c.key == links.c.friend_key)
            .order_by(links.c.user_key, links.c.friend_key)
        )
        return query, [_Column("user_id", pa.string()), _Column("friend_id", pa.string())], {}
    if table == "tags":
        t = schema.tags
        query = sa.select(t.c.id, t.c.name).order_by(t.c.id)
        return query, [_Column("id", pa.int64()), _Column("name", pa.string())], {}
    if table == "tag_assignments":
        ta = schema.tag_assignments
        query = (
            sa.select(u.c.id.label("user_id"), ta.c.item_id, ta.c.tag_id, ta.c.ts_ms)
            .select_from(ta.join(u, u.c.key == ta.c.user_key))
            .order_by(ta.c.user_key, ta.c.item_id, ta.c.tag_id)
        )
        columns = [
            _Column("user_id", pa.string()),
            _Column("item_id", pa.string()),
            _Column("tag_id", pa.int64()),
            _Column("ts_ms", pa.int64()),
        ]
        return query, columns, {"timestamp": "ts_ms"}
    if table == "exposures":
        x = schema.exposures
        query = sa.select(*x.c).order_by(x.c.ts_ms, x.c.request_id)
        columns = [
            _Column("request_id", pa.string()),
            _Column("user_id", pa.string()),
            _Column("ts_ms", pa.int64()),
            _Column("surface", pa.string()),
            _Column("model", pa.string()),
            _Column("version", pa.string()),
            _Column("path", pa.string()),
            _Column("items", pa.list_(pa.string()), _json_or_none),
            _Column("experiments", pa.string()),  # JSON {experiment: variant}
            _Column("context", pa.string()),  # JSON
            _Column("propensities", pa.list_(pa.float64()), _json_or_none),
        ]
        return query, columns, {"timestamp": "ts_ms"}
    raise KeyError(table)


def _arrow_schema(columns: list[_Column], timestamps: dict[str, str]) -> pa.Schema:
    fields = []
    for column in columns:
        fields.append(pa.field(column.name, column.type))
        for name, source in timestamps.items():
            if source == column.name:
                fields.append(pa.field(name, _TIMESTAMP))
    return pa.schema(fields)


def _batch(
    rows: list[Any], columns: list[_Column], timestamps: dict[str, str], target: pa.Schema
) -> pa.RecordBatch:
    arrays: dict[str, pa.Array] = {}
    for column, values in zip(columns, zip(*rows, strict=True), strict=True):
        if column.convert is not None:
            values = [column.convert(v) for v in values]
        arrays[column.name] = pa.array(values, type=column.type)
    for name, source in timestamps.items():
        arrays[name] = arrays[source].cast(_TIMESTAMP)
    return pa.RecordBatch.from_arrays([arrays[f.name] for f in target], schema=target)


def export_table(
    conn: sa.Connection, table: str, path: Path, period: tuple[int, int] | None = None
) -> int:
    """Write ``table`` to ``path`` (temp file, then rename); returns the number of rows.
    ``period``: only rows with ``start_ms <= ts_ms < end_ms`` (events and exposures: one
    day's partition)."""
    query, columns, timestamps = _plan(table)
    if period is not None:
        timed = {"events": schema.events.c.ts_ms, "exposures": schema.exposures.c.ts_ms}
        if table not in timed:
            raise StoreError(f"only events and exposures export by period, not {table!r}")
        query = query.where(timed[table] >= period[0], timed[table] < period[1])
    target = _arrow_schema(columns, timestamps)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    written = 0
    try:
        with pq.ParquetWriter(temp, target) as writer:
            result = conn.execution_options(stream_results=True, yield_per=_ROWS_PER_CHUNK)
            for rows in result.execute(query).partitions():
                writer.write_batch(_batch(list(rows), columns, timestamps, target))
                written += len(rows)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return written
