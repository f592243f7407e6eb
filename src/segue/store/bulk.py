"""The columnar event paths: tens of millions of events in and out without per-event objects.

Both directions talk to the DBAPI driver directly, inside the caller's SQLAlchemy transaction:
SQLite through ``executemany``/``fetchmany`` over plain tuples, PostgreSQL through ``COPY``
(CSV written and read by pyarrow). Ids are resolved per vocabulary, never per row.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

from segue.data.log import UNKNOWN_MS, InteractionLog
from segue.data.model import EVENT_CODES, EVENT_TYPES, EventType
from segue.errors import StoreError
from segue.store import schema

#: Rows per executemany / COPY chunk: large enough to amortise calls, small enough for memory.
CHUNK = 100_000

_EVENT_COLUMNS = (
    "event_id",
    "user_key",
    "item_key",
    "type",
    "ts_ms",
    "ms_played",
    "count",
    "session_id",
    "surface",
    "source",
    "device",
    "focus",
    "rating",
)
_STRING_COLUMNS = ("session_id", "surface", "source", "device")
_TYPE_NAMES = np.array([t.value for t in EVENT_TYPES], dtype=object)


@contextmanager
def sqlite_foreign_keys_off(conn: sa.Connection) -> Iterator[None]:
    """Suspend SQLite foreign-key enforcement around a transaction that ``conn`` will begin.

    SQLite ignores the pragma inside a transaction, so this must wrap ``conn.begin()``. The
    bulk path resolves every key itself, which makes the per-row probes pure cost (~20%).
    """
    if _dialect(conn) != "sqlite" or conn.in_transaction():
        yield
        return
    driver = _driver(conn)
    driver.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        try:
            driver.execute("PRAGMA foreign_keys=ON")
        except Exception:
            conn.invalidate()  # never hand a connection without FK checks back to the pool
            raise


def _dialect(conn: sa.Connection) -> str:
    return conn.dialect.name


def _driver(conn: sa.Connection) -> Any:
    """The DBAPI connection under ``conn``, inside the same transaction."""
    return conn.connection.driver_connection


def lookup_keys(conn: sa.Connection, table: str, ids: Iterable[str]) -> dict[str, int]:
    """``{id: key}`` for the ids of ``table`` (users or items) that exist, in one query."""
    wanted = sorted({str(i) for i in ids})
    if not wanted:
        return {}
    cur = _driver(conn).cursor()
    try:
        if _dialect(conn) == "sqlite":
            # json_each keeps it one query whatever the size (no 32k-variable limit).
            cur.execute(
                f"SELECT id, key FROM {table} WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(wanted),),
            )
        else:
            cur.execute(f"SELECT id, key FROM {table} WHERE id = ANY(%s)", (wanted,))
        return dict(cur.fetchall())
    finally:
        cur.close()


def resolve_vocab(
    conn: sa.Connection, table: str, vocab: np.ndarray, used: np.ndarray, what: str
) -> np.ndarray:
    """Store keys for the vocabulary positions in ``used``; unknown ids raise StoreError.

    Returns an int64 array over the whole vocabulary (-1 where not used).
    """
    positions = np.unique(used)
    ids = [str(v) for v in vocab[positions]]
    found = lookup_keys(conn, table, ids)
    missing = [i for i in ids if i not in found]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise StoreError(
            f"{len(missing)} unknown {what} id(s) in the events: {shown}{more}. "
            f"Add the {table} before their events."
        )
    keys = np.full(len(vocab), -1, dtype=np.int64)
    keys[positions] = [found[i] for i in ids]
    return keys


def _check_event_ids(log: InteractionLog) -> np.ndarray:
    if log.event_id is None:
        raise StoreError(
            "the event log has no event_id column; every stored event needs one, because "
            "event ids make repeated imports idempotent."
        )
    ids = log.event_id
    bad = np.flatnonzero(np.array([not (isinstance(v, str) and v) for v in ids], dtype=bool))
    if len(bad):
        raise StoreError(
            f"{len(bad)} event(s) have no event_id (first at row {int(bad[0])}); "
            "event ids must be non-empty strings."
        )
    return ids


def _none_where(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    out = values.astype(object)
    out[missing] = None
    return out


def add_event_log(conn: sa.Connection, log: InteractionLog) -> int:
    """Insert a log's events (ignoring event ids already stored); returns how many were new."""
    event_ids = _check_event_ids(log)
    if len(log) == 0:
        return 0
    user_keys = resolve_vocab(conn, "users", log.user_ids, log.user, "user")[log.user]
    item_keys = resolve_vocab(conn, "items", log.item_ids, log.item, "item")[log.item]
    if _dialect(conn) == "sqlite":
        return _insert_sqlite(conn, log, event_ids, user_keys, item_keys)
    return _insert_postgres(conn, log, event_ids, user_keys, item_keys)


def _chunk_columns(
    log: InteractionLog,
    event_ids: np.ndarray,
    user_keys: np.ndarray,
    item_keys: np.ndarray,
    start: int,
    stop: int,
) -> dict[str, np.ndarray]:
    s = slice(start, stop)
    ms = log.ms_played[s]
    rating = log.rating[s]
    n = stop - start
    columns = {
        "event_id": event_ids[s],
        "user_key": user_keys[s],
        "item_key": item_keys[s],
        "type": _TYPE_NAMES[log.type[s]],
        "ts_ms": log.ts_ms[s],
        "ms_played": (ms, ms == UNKNOWN_MS),
        "count": log.count[s],
        "focus": log.focus[s],
        "rating": (rating, np.isnan(rating)),
    }
    for name in _STRING_COLUMNS:
        column = getattr(log, name)
        columns[name] = np.full(n, None, dtype=object) if column is None else column[s]
    return columns


def _present_columns(log: InteractionLog) -> list[str]:
    """Event columns worth binding: optional ones that are entirely absent stay NULL."""
    names = []
    for name in _EVENT_COLUMNS:
        if name in _STRING_COLUMNS:
            column = getattr(log, name)
            if column is None or not any(v is not None for v in column):
                continue
        elif name == "ms_played" and np.all(log.ms_played == UNKNOWN_MS):
            continue
        elif name == "rating" and np.all(np.isnan(log.rating)):
            continue
        names.append(name)
    return names


#: Logs at least this long, and at least as long as the events already stored, are loaded
#: with the secondary index dropped and rebuilt: one sort beats millions of random inserts.
REBUILD_INDEX_MIN = 200_000


def _insert_sqlite(
    conn: sa.Connection,
    log: InteractionLog,
    event_ids: np.ndarray,
    user_keys: np.ndarray,
    item_keys: np.ndarray,
) -> int:
    driver = _driver(conn)
    names = _present_columns(log)
    sql = (
        f"INSERT INTO events ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)}) "
        "ON CONFLICT (event_id) DO NOTHING"
    )
    cur = driver.cursor()
    before = driver.total_changes
    try:
        rebuild = False
        if len(log) >= REBUILD_INDEX_MIN:
            stored = cur.execute("SELECT COALESCE(MAX(key), 0) FROM events").fetchone()[0]
            rebuild = len(log) >= stored
        if rebuild:
            for index in schema.events.indexes:
                cur.execute(f"DROP INDEX IF EXISTS {index.name}")
        for start in range(0, len(log), CHUNK):
            cols = _chunk_columns(log, event_ids, user_keys, item_keys, start, start + CHUNK)
            lists = []
            for name in names:
                value = cols[name]
                if isinstance(value, tuple):  # (values, missing) -> None where missing
                    values, missing = value
                    lists.append(
                        _none_where(values, missing).tolist() if missing.any() else values.tolist()
                    )
                else:
                    lists.append(value.tolist())
            cur.executemany(sql, zip(*lists, strict=True))
        inserted = driver.total_changes - before
        if rebuild:
            for index in schema.events.indexes:
                index.create(conn)
    finally:
        cur.close()
    return inserted


def _arrow_chunk(cols: dict[str, Any]) -> pa.Table:
    arrays = {}
    for name in _EVENT_COLUMNS:
        value = cols[name]
        if isinstance(value, tuple):
            values, missing = value
            arrays[name] = pa.array(values, mask=missing)
        elif value.dtype == object:
            arrays[name] = pa.array(value, type=pa.string(), from_pandas=False)
        else:
            arrays[name] = pa.array(value)
    return pa.table(arrays)


def _insert_postgres(
    conn: sa.Connection,
    log: InteractionLog,
    event_ids: np.ndarray,
    user_keys: np.ndarray,
    item_keys: np.ndarray,
) -> int:
    cur = _driver(conn).cursor()
    names = ", ".join(_EVENT_COLUMNS)
    options = pacsv.WriteOptions(include_header=False)
    try:
        cur.execute(
            "CREATE TEMP TABLE segue_events_in (ord bigserial, event_id text, user_key integer, "
            "item_key integer, type text, ts_ms bigint, ms_played bigint, count integer, "
            "session_id text, surface text, source text, device text, focus boolean, "
            "rating double precision) ON COMMIT DROP"
        )
        with cur.copy(f"COPY segue_events_in ({names}) FROM STDIN (FORMAT csv)") as copy:
            for start in range(0, len(log), CHUNK):
                cols = _chunk_columns(log, event_ids, user_keys, item_keys, start, start + CHUNK)
                buffer = io.BytesIO()
                pacsv.write_csv(_arrow_chunk(cols), buffer, options)
                copy.write(buffer.getbuffer())
        # ORDER BY ord: within one log the first of two equal event ids wins, as on SQLite.
        cur.execute(
            f"INSERT INTO events ({names}) SELECT {names} FROM segue_events_in ORDER BY ord "
            "ON CONFLICT (event_id) DO NOTHING"
        )
        inserted = cur.rowcount
        cur.execute("DROP TABLE segue_events_in")
    finally:
        cur.close()
    return inserted


# -- reading ---------------------------------------------------------------------------------

_READ_DTYPE = np.dtype(
    [
        ("key", np.int64),
        ("user_key", np.int64),
        ("item_key", np.int64),
        ("type", np.int16),
        ("ts_ms", np.int64),
        ("ms_played", np.int64),
        ("count", np.int64),
        ("focus", np.int8),
        ("rating", np.float64),
    ]
)


def type_codes(types: Sequence[EventType | str]) -> list[int]:
    codes = []
    for t in types:
        try:
            codes.append(EVENT_CODES[str(t)])
        except KeyError:
            raise StoreError(
                f"unknown event type {t!r}; known: {', '.join(EVENT_CODES)}"
            ) from None
    return codes


def _where(
    dialect: str,
    codes: Sequence[int] | None,
    include_focus: bool,
    start_ms: int | None,
    end_ms: int | None,
) -> str:
    # Only validated ints and fixed names reach this SQL, so literals are safe here.
    clauses = []
    if not include_focus:
        clauses.append("NOT focus" if dialect != "sqlite" else "focus = 0")
    if codes is not None:
        names = ", ".join(f"'{EVENT_TYPES[c].value}'" for c in sorted(set(codes)))
        clauses.append(f"type IN ({names})" if names else "1 = 0")
    if start_ms is not None:
        clauses.append(f"ts_ms >= {int(start_ms)}")
    if end_ms is not None:
        clauses.append(f"ts_ms < {int(end_ms)}")
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


def _select(dialect: str, where: str) -> str:
    case = " ".join(f"WHEN '{t.value}' THEN {i}" for i, t in enumerate(EVENT_TYPES))
    focus = "focus" if dialect == "sqlite" else "focus::int"
    return (
        f"SELECT key, user_key, item_key, CASE type {case} END, ts_ms, "
        f"COALESCE(ms_played, {UNKNOWN_MS}), count, {focus}, rating FROM events{where}"
    )


def _fetch_sqlite(conn: sa.Connection, sql: str) -> np.ndarray:
    cur = _driver(conn).cursor()
    chunks = []
    try:
        cur.execute(sql + " ORDER BY key")
        while rows := cur.fetchmany(CHUNK):
            chunks.append(np.array(rows, dtype=_READ_DTYPE))
    finally:
        cur.close()
    return np.concatenate(chunks) if chunks else np.empty(0, dtype=_READ_DTYPE)


def _fetch_postgres(conn: sa.Connection, sql: str) -> np.ndarray:
    cur = _driver(conn).cursor()
    buffer = io.BytesIO()
    try:
        with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)") as copy:
            for data in copy:
                buffer.write(data)
    finally:
        cur.close()
    if buffer.tell() == 0:
        return np.empty(0, dtype=_READ_DTYPE)
    buffer.seek(0)
    names = list(_READ_DTYPE.names or ())
    table = pacsv.read_csv(
        buffer,
        read_options=pacsv.ReadOptions(column_names=names),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.from_numpy_dtype(_READ_DTYPE[n]) for n in names}
        ),
    )
    out = np.empty(table.num_rows, dtype=_READ_DTYPE)
    for name in names:
        column = table.column(name)
        if name == "rating":
            out[name] = column.to_numpy(zero_copy_only=False)  # nulls become NaN
        else:
            out[name] = column.to_numpy()
    return out


def read_events(
    conn: sa.Connection,
    types: Sequence[EventType | str] | None,
    include_focus: bool,
    start_ms: int | None,
    end_ms: int | None,
) -> InteractionLog:
    """Events as a log over every user and item of the store, oldest first."""
    dialect = _dialect(conn)
    codes = None if types is None else type_codes(types)
    sql = _select(dialect, _where(dialect, codes, include_focus, start_ms, end_ms))
    rows = _fetch_sqlite(conn, sql) if dialect == "sqlite" else _fetch_postgres(conn, sql)
    user_keys, user_ids = _vocabulary(conn, "users")
    item_keys, item_ids = _vocabulary(conn, "items")
    # Oldest first; insertion order (key) breaks ties. Rows usually arrive nearly sorted, which
    # the stable sort (timsort) handles in close to linear time.
    if len(rows) and not np.all(rows["key"][1:] > rows["key"][:-1]):
        rows = rows[np.argsort(rows["key"], kind="stable")]
    if len(rows) and not np.all(rows["ts_ms"][1:] >= rows["ts_ms"][:-1]):
        rows = rows[np.argsort(rows["ts_ms"], kind="stable")]
    return InteractionLog(
        user_ids=user_ids,
        item_ids=item_ids,
        user=np.searchsorted(user_keys, rows["user_key"]),
        item=np.searchsorted(item_keys, rows["item_key"]),
        type=rows["type"],
        ts_ms=rows["ts_ms"],
        ms_played=rows["ms_played"],
        count=rows["count"],
        focus=rows["focus"].astype(bool),
        rating=rows["rating"],
    )


def _vocabulary(conn: sa.Connection, table: str) -> tuple[np.ndarray, np.ndarray]:
    cur = _driver(conn).cursor()
    try:
        cur.execute(f"SELECT key, id FROM {table} ORDER BY key")
        rows = cur.fetchall()
    finally:
        cur.close()
    keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    ids = np.empty(len(rows), dtype=object)
    ids[:] = [r[1] for r in rows]
    return keys, ids
