"""Reading events into an :class:`InteractionLog` at millions of rows per second.

Fetching rows as Python tuples costs one object per value and tops out near 300k events/s.
Instead the database packs each chunk of rows into one fixed-width binary string (PostgreSQL:
``int8send(...) || ...`` aggregated with ``string_agg``; SQLite, which has no binary functions:
``printf('%016x...')`` hex aggregated with ``group_concat``), which NumPy reads with a single
``frombuffer``. Chunks are pages of the primary key (keyset pagination), so memory stays bounded
and the order inside a chunk does not matter: every row carries its key, and the final order
(time, then insertion) is made by a stable NumPy sort.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from segue.data.log import UNKNOWN_MS, InteractionLog
from segue.data.model import EVENT_CODES, EVENT_TYPES, EventType
from segue.errors import StoreError

#: Events per query: ~50 MB of packed rows, large enough that per-query cost vanishes.
PAGE = 1_000_000

_TYPE_CASE = "CASE type " + " ".join(
    f"WHEN '{t.value}' THEN {i}" for i, t in enumerate(EVENT_TYPES)
)
_TYPE_CASE += " END"

# PostgreSQL: binary send functions, big-endian, NULLs replaced so every row has one width.
_PG_FIELDS = (
    ("key", ">i8", "int8send(key)"),
    ("user_key", ">i4", "int4send(user_key)"),
    ("item_key", ">i4", "int4send(item_key)"),
    ("type", ">i2", f"int2send(({_TYPE_CASE})::int2)"),
    ("ts_ms", ">i8", "int8send(ts_ms)"),
    ("ms_played", ">i8", f"int8send(COALESCE(ms_played, {UNKNOWN_MS}))"),
    ("count", ">i4", "int4send(count)"),
    ("focus", "u1", "boolsend(focus)"),
    ("rating", ">f8", "float8send(COALESCE(rating, 'NaN'))"),
)
# SQLite: fixed-width hex. 64-bit fields for anything that could be negative (printf %x
# writes a negative number as 16 digits of two's complement whatever the width asked for).
_SQLITE_FIELDS = (
    ("key", ">i8", "%016x", "key"),
    ("user_key", ">i4", "%08x", "user_key"),
    ("item_key", ">i4", "%08x", "item_key"),
    ("type", "u1", "%02x", _TYPE_CASE),
    ("ts_ms", ">i8", "%016x", "ts_ms"),
    ("ms_played", ">i8", "%016x", f"COALESCE(ms_played, {UNKNOWN_MS})"),
    ("count", ">i8", "%016x", "count"),
    ("focus", "u1", "%02x", "focus"),
)


def _dtype(fields: Sequence[tuple[Any, ...]]) -> np.dtype:
    return np.dtype([(f[0], f[1]) for f in fields])


def type_codes(types: Sequence[EventType | str]) -> list[int]:
    """Codes of the named event types; an unknown name is the caller's mistake."""
    codes = []
    for t in types:
        try:
            codes.append(EVENT_CODES[str(t)])
        except KeyError:
            raise StoreError(f"unknown event type {t!r}; known: {', '.join(EVENT_CODES)}") from None
    return codes


def _filters(
    dialect: str,
    codes: Sequence[int] | None,
    include_focus: bool,
    start_ms: int | None,
    end_ms: int | None,
) -> list[str]:
    # Only validated ints and the fixed type names reach this SQL, so literals are safe.
    clauses = []
    if not include_focus:
        clauses.append("focus = 0" if dialect == "sqlite" else "NOT focus")
    if codes is not None:
        names = ", ".join(f"'{EVENT_TYPES[c].value}'" for c in sorted(set(codes)))
        clauses.append(f"type IN ({names})" if names else "1 = 0")
    if start_ms is not None:
        clauses.append(f"ts_ms >= {int(start_ms)}")
    if end_ms is not None:
        clauses.append(f"ts_ms < {int(end_ms)}")
    return clauses


def _page_sql(dialect: str, clauses: list[str]) -> str:
    where = " AND ".join(["key > :after", *clauses])
    if dialect == "sqlite":
        fmt = "".join(f[2] for f in _SQLITE_FIELDS)
        args = ", ".join(f[3] for f in _SQLITE_FIELDS)
        packed = f"group_concat(printf('{fmt}', {args}), '')"
        columns = "key, user_key, item_key, type, ts_ms, ms_played, count, focus"
    else:
        packed = "string_agg(" + " || ".join(f[2] for f in _PG_FIELDS) + ", ''::bytea)"
        columns = "key, user_key, item_key, type, ts_ms, ms_played, count, focus, rating"
    return (
        f"SELECT count(*), max(key), {packed} FROM "
        f"(SELECT {columns} FROM events WHERE {where} ORDER BY key LIMIT {PAGE}) page"
    )


def _unpack(dialect: str, count: int, packed: Any) -> np.ndarray:
    if dialect == "sqlite":
        raw = bytes.fromhex(packed)
        dtype = _dtype(_SQLITE_FIELDS)
    else:
        raw = bytes(packed)
        dtype = _dtype(_PG_FIELDS)
    if len(raw) != count * dtype.itemsize:  # a value wider than its slot: a bug, not input
        raise RuntimeError(f"packed event page has {len(raw)} bytes for {count} rows")
    return np.frombuffer(raw, dtype=dtype)


def _ratings_sqlite(conn: sa.Connection, clauses: list[str], keys: np.ndarray) -> np.ndarray:
    """Ratings are rare and need exact doubles, so SQLite sends them as (key, value) pairs."""
    rating = np.full(len(keys), np.nan)
    where = " AND ".join(["rating IS NOT NULL", *clauses])
    rows = conn.exec_driver_sql(f"SELECT key, rating FROM events WHERE {where}").all()
    if rows:
        rated = np.array([r[0] for r in rows], dtype=np.int64)
        values = np.array([r[1] for r in rows], dtype=np.float64)
        rating[np.searchsorted(keys, rated)] = values
    return rating


def _vocabulary(conn: sa.Connection, table: str) -> tuple[np.ndarray, np.ndarray]:
    """(keys in order, ids in key order) of users or items."""
    rows = conn.exec_driver_sql(f"SELECT key, id FROM {table} ORDER BY key").all()
    keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    ids = np.empty(len(rows), dtype=object)
    ids[:] = [r[1] for r in rows]
    return keys, ids


def _positions(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Vocabulary position of each wanted key (all present: events reference stored rows)."""
    if len(keys) and keys[-1] < 4 * len(keys) + 1024:
        # Autoincrement keys are near-contiguous: a lookup table is ~10x faster than bisection.
        table = np.zeros(int(keys[-1]) + 1, dtype=np.int32)
        table[keys] = np.arange(len(keys), dtype=np.int32)
        return table[wanted]
    return np.searchsorted(keys, wanted).astype(np.int32)


def read_events(
    conn: sa.Connection,
    types: Sequence[EventType | str] | None,
    include_focus: bool,
    start_ms: int | None,
    end_ms: int | None,
) -> InteractionLog:
    """Events as a log over every user and item of the store, oldest first."""
    dialect = conn.dialect.name
    codes = None if types is None else type_codes(types)
    clauses = _filters(dialect, codes, include_focus, start_ms, end_ms)
    page = sa.text(_page_sql(dialect, clauses))
    pages = []
    after = 0
    while True:
        count, last, packed = conn.execute(page, {"after": after}).one()
        if not count:
            break
        pages.append(_unpack(dialect, count, packed))
        if count < PAGE:
            break
        after = last
    fields = _SQLITE_FIELDS if dialect == "sqlite" else _PG_FIELDS
    rows = np.concatenate(pages) if pages else np.empty(0, dtype=_dtype(fields))
    keys = rows["key"].astype(np.int64)
    if not np.all(keys[1:] > keys[:-1]):  # databases may aggregate a page out of order
        order = np.argsort(keys, kind="stable")
        rows, keys = rows[order], keys[order]
    rating = (
        _ratings_sqlite(conn, clauses, keys)
        if dialect == "sqlite"
        else rows["rating"].astype(np.float64)
    )
    ts = rows["ts_ms"].astype(np.int64)
    # Oldest first, insertion order breaking ties. Events usually arrive in time order, which
    # the check skips and the stable sort (timsort) otherwise handles in near-linear time.
    order = None if np.all(ts[1:] >= ts[:-1]) else np.argsort(ts, kind="stable")

    def column(values: np.ndarray) -> np.ndarray:
        return values if order is None else values[order]

    # Read after the events: users and items are never deleted, so every key seen is here.
    user_keys, user_ids = _vocabulary(conn, "users")
    item_keys, item_ids = _vocabulary(conn, "items")
    return InteractionLog(
        user_ids=user_ids,
        item_ids=item_ids,
        user=_positions(user_keys, column(rows["user_key"])),
        item=_positions(item_keys, column(rows["item_key"])),
        type=column(rows["type"]),
        ts_ms=column(ts),
        ms_played=column(rows["ms_played"]),
        count=column(rows["count"]),
        focus=column(rows["focus"]).astype(bool),
        rating=column(rating),
    )
