"""Writing columnar event logs: tens of millions of events without per-event objects.

Talks to the DBAPI driver directly, inside the caller's SQLAlchemy transaction: SQLite through
``executemany`` over plain tuples built column-wise, PostgreSQL through ``COPY`` of CSV that
pyarrow writes, into a temporary table, then one ``INSERT ... ON CONFLICT DO NOTHING``. User
and item ids are resolved once per vocabulary entry, never per row. (Reading is
:mod:`segue.store.scan`.)
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

from segue.data.log import UNKNOWN_MS, InteractionLog
from segue.data.model import EVENT_TYPES
from segue.errors import StoreError
from segue.store import schema

#: Rows per executemany / COPY chunk: large enough to amortise calls, small enough for memory.
CHUNK = 100_000

_EVENT_COLUMNS = ("event_id", "user_key", "item_key", *schema.EVENT_DETAIL_COLUMNS)
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
    bad = np.flatnonzero((ids == None) | (ids == ""))  # noqa: E711 - elementwise on objects
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


#: Work an open transaction must do before it commits, by name (see :func:`_bulk_load`).
Deferred = dict[str, Callable[[sa.Connection], None]]


def add_event_log(conn: sa.Connection, log: InteractionLog, deferred: Deferred | None) -> int:
    """Insert a log's events (ignoring event ids already stored); returns how many were new.

    ``deferred`` is the enclosing transaction's to-do list when the caller's transaction goes
    on after this call (None when the call is its own transaction).
    """
    event_ids = _check_event_ids(log)
    if len(log) == 0:
        return 0
    user_keys = resolve_vocab(conn, "users", log.user_ids, log.user, "user")[log.user]
    item_keys = resolve_vocab(conn, "items", log.item_ids, log.item, "item")[log.item]
    with _bulk_load(conn, len(log), deferred) as rebuild:
        if _dialect(conn) != "sqlite":
            return _insert_postgres(conn, log, event_ids, user_keys, item_keys)
        load_ids = rebuild.ids if rebuild is not None else None
        if load_ids is None:
            return _insert_sqlite(
                conn, log, event_ids, user_keys, item_keys, "ON CONFLICT (event_id) DO NOTHING"
            )
        # the unique index is off: leave out repeated ids first
        rows = len(log)
        keep = load_ids.new_rows(conn, event_ids)
        if keep is not None:
            log = log.select(keep)
            event_ids, user_keys, item_keys = event_ids[keep], user_keys[keep], item_keys[keep]
        inserted = _insert_sqlite(conn, log, event_ids, user_keys, item_keys, "")
        if load_ids.found_stored and load_ids.found_stored >= UNIQUE_BACK_SHARE * rows:
            assert rebuild is not None
            rebuild.unique_now(conn)
        return inserted


def _chunk_columns(
    log: InteractionLog,
    event_ids: np.ndarray,
    user_keys: np.ndarray,
    item_keys: np.ndarray,
    start: int,
    stop: int,
) -> dict[str, np.ndarray]:
    stop = min(stop, len(log))  # the last chunk is usually short
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
    absent = {
        name
        for name in _STRING_COLUMNS
        if getattr(log, name) is None or all(v is None for v in getattr(log, name))
    }
    if np.all(log.ms_played == UNKNOWN_MS):
        absent.add("ms_played")
    if np.all(np.isnan(log.rating)):
        absent.add("rating")
    return [name for name in _EVENT_COLUMNS if name not in absent]


#: Logs at least this long, and at least as long as the events already stored, are loaded
#: the way both databases' manuals advise for bulk loads: indexes dropped, rows inserted, then
#: the indexes rebuilt in one sort each.
#: It all happens inside the transaction, so a failure restores them; PostgreSQL holds an
#: exclusive lock on ``events`` meanwhile, acceptable for a load that at least doubles it.
#: Inside a longer transaction (a log written chunk by chunk) the rebuild waits for the
#: commit, so that each chunk does not pay for it again.
#:
#: On SQLite the unique index of event ids goes too (revision 0009 made it an index): ids
#: are content hashes, and inserting them into a live B-tree larger than the page cache was
#: most of the time of a big import. Meanwhile :class:`_LoadIds` keeps "the first one wins"
#: exact without it. PostgreSQL keeps it: its ``ON CONFLICT (event_id)`` needs it, and COPY
#: into a temporary table already spares it the per-row cost.
REBUILD_MIN = 200_000
_REBUILD = "events: indexes"
#: A call whose rows repeat stored ids at least this often (a share of its rows) brings the
#: unique index back for the rest of the load: such a file goes on repeating them, and vetting
#: them without the index costs a scan of ``events`` a call, more than the index's own
#: inserts (measured: a 3M-row file whose second half repeats the first).
UNIQUE_BACK_SHARE = 0.05


class _LoadIds:
    """The event ids a bulk load has stored, or found stored, while the unique index is off.

    One 64-bit hash per id (Python's ``hash`` of the string, stable within the process) in a
    few sorted arrays: 8 bytes per event, 24 MB for 3M. A hash match is only a suspicion:
    the id itself is then looked for among the stored rows (a scan of ``events``, paid only
    by files that repeat ids) and compared with the other rows of the same call, so a hash
    collision never loses an event and a row deleted meanwhile may come back.
    """

    def __init__(self) -> None:
        self._pieces: list[np.ndarray] = []
        #: Rows of the last call whose id was stored already (not repeats within the call).
        self.found_stored = 0

    def add(self, hashes: np.ndarray) -> None:
        """Remember ``hashes``; equal-sized pieces merge, so there are O(log n) of them."""
        self._add_sorted(np.sort(hashes))

    def _add_sorted(self, piece: np.ndarray) -> None:
        while self._pieces and len(self._pieces[-1]) <= len(piece):
            piece = np.sort(np.concatenate((self._pieces.pop(), piece)))
        if len(piece):
            self._pieces.append(piece)

    def _seen(self, ordered: np.ndarray) -> np.ndarray:
        """Which of the sorted ``ordered`` hashes are remembered (sorted queries: numpy's
        binary search starts from the previous answer, >10x faster than random ones)."""
        seen = np.zeros(len(ordered), dtype=bool)
        for piece in self._pieces:
            at = np.minimum(np.searchsorted(piece, ordered), len(piece) - 1)
            seen |= piece[at] == ordered
        return seen

    def release(self) -> None:
        self._pieces = []

    def new_rows(self, conn: sa.Connection, event_ids: np.ndarray) -> np.ndarray | None:
        """Which rows to insert: a mask, or None for all of them.

        A row is left out when its id is stored already or appeared earlier in ``event_ids``
        (the first one wins, as with ``ON CONFLICT DO NOTHING``). The rows kept are
        remembered as stored.
        """
        hashes = np.fromiter(map(hash, event_ids), dtype=np.int64, count=len(event_ids))
        order = np.argsort(hashes)  # ties need no order: suspects are walked in row order
        ordered = hashes[order]
        seen_sorted = self._seen(ordered)
        repeated = ordered[1:] == ordered[:-1]
        suspect_sorted = seen_sorted.copy()
        suspect_sorted[1:] |= repeated
        suspect_sorted[:-1] |= repeated
        self.found_stored = 0
        if not suspect_sorted.any():  # the usual case: nothing to look at more closely
            self._add_sorted(ordered)
            return None
        suspect = np.zeros(len(event_ids), dtype=bool)
        suspect[order[suspect_sorted]] = True
        stored = _stored_ids(conn, [event_ids[p] for p in sorted(order[seen_sorted])])
        keep = np.ones(len(event_ids), dtype=bool)
        first: set[Any] = set()
        for position in np.flatnonzero(suspect):  # in row order: the first one wins
            event_id = event_ids[position]
            if event_id in stored:
                keep[position] = False
                self.found_stored += 1
            elif event_id in first:
                keep[position] = False
            else:
                first.add(event_id)
        self.add(hashes[keep])
        return keep

    @classmethod
    def of_stored(cls, conn: sa.Connection) -> _LoadIds:
        """The ids already in ``events`` (at most as many as the load brings: see above)."""
        ids = cls()
        cur = _driver(conn).cursor()
        try:
            cur.execute("SELECT event_id FROM events")
            while rows := cur.fetchmany(CHUNK):
                ids.add(np.fromiter((hash(r[0]) for r in rows), dtype=np.int64, count=len(rows)))
        finally:
            cur.close()
        return ids


def _stored_ids(conn: sa.Connection, wanted: list[Any]) -> set[Any]:
    """Which of ``wanted`` are in ``events`` (SQLite; a scan when the unique index is off)."""
    if not wanted:
        return set()
    cur = _driver(conn).cursor()
    try:
        cur.execute(
            "SELECT event_id FROM events WHERE event_id IN (SELECT value FROM json_each(?))",
            (json.dumps(wanted),),
        )
        return {row[0] for row in cur.fetchall()}
    finally:
        cur.close()


class _Rebuild:
    """The indexes a bulk load dropped, built again (at the commit when deferred)."""

    def __init__(
        self,
        indexes: list[sa.Index],
        ids: _LoadIds | None,
        restore_cache: Callable[..., None] | None,
    ) -> None:
        self.indexes = indexes
        self.ids = ids
        self.restore_cache = restore_cache

    def unique_now(self, conn: sa.Connection) -> None:
        """The unique index back before the commit, for the rest of the load: it repeats
        stored ids, and each call that does pays a scan of ``events`` (see UNIQUE_BACK_SHARE)."""
        unique = [index for index in self.indexes if index.unique]
        self.indexes = [index for index in self.indexes if not index.unique]
        if self.ids is not None:
            self.ids.release()
            self.ids = None
        self._create(conn, unique)
        if self.restore_cache is not None:
            self.restore_cache()  # random inserts into the live index need the cache

    def __call__(self, conn: sa.Connection) -> None:
        if self.ids is not None:
            self.ids.release()  # before the sort: SQLite's sorter takes memory too
        try:
            self._create(conn, self.indexes)
        finally:
            if self.restore_cache is not None:
                self.restore_cache()

    @staticmethod
    def _create(conn: sa.Connection, indexes: list[sa.Index]) -> None:
        with _sqlite_cache(conn, REBUILD_CACHE_KIB):
            for index in indexes:
                try:
                    index.create(conn)
                except sa.exc.IntegrityError as exc:
                    # _LoadIds let a repeated id through: a bug, and nothing is committed
                    raise StoreError(
                        f"events: could not rebuild {index.name} after a bulk load "
                        f"({exc.orig}); nothing was stored"
                    ) from exc


@contextmanager
def _bulk_load(
    conn: sa.Connection, rows: int, deferred: Deferred | None
) -> Iterator[_Rebuild | None]:
    """Around an insert of ``rows`` events: drops indexes when that pays (see REBUILD_MIN).

    Yields the load's :class:`_Rebuild` (None when nothing is dropped); while its ``ids`` is
    not None the unique index is off and they must vet the rows, otherwise
    ``ON CONFLICT (event_id) DO NOTHING`` does.
    """
    if deferred is not None and _REBUILD in deferred:  # dropped earlier in this transaction
        rebuild = deferred[_REBUILD]
        assert isinstance(rebuild, _Rebuild)
        yield rebuild
        return
    stored = conn.exec_driver_sql("SELECT COALESCE(MAX(key), 0) FROM events").scalar_one()
    if rows < REBUILD_MIN or rows < stored:
        yield None
        return
    sqlite = _dialect(conn) == "sqlite"
    dropped = [index for index in schema.events.indexes if sqlite or not index.unique]
    for index in dropped:
        index.drop(conn)
    if sqlite:
        rebuild = _Rebuild(dropped, _LoadIds.of_stored(conn), _shrink_cache(conn, LOAD_CACHE_KIB))
    else:
        rebuild = _Rebuild(dropped, None, None)
    if deferred is not None:
        deferred[_REBUILD] = rebuild
        yield rebuild
    else:
        yield rebuild
        rebuild(conn)


#: SQLite's page cache while a bulk load has the unique index off (KiB): the rows go in in key
#: order, appended to the table, which a small cache serves as fast as the connection's
#: 64 MiB (measured on 3M rows), and the process stays 50 MiB smaller (over the 500 MB bar
#: of issue 18 otherwise, with :class:`_LoadIds` on top).
LOAD_CACHE_KIB = 16_384


def _shrink_cache(conn: sa.Connection, kib: int) -> Callable[..., None]:
    """Set SQLite's page cache to ``kib`` until the returned function or a rollback of
    ``conn`` sets it back (a pooled connection must not keep a bulk load's setting)."""
    driver = _driver(conn)
    before = int(driver.execute("PRAGMA cache_size").fetchone()[0])
    driver.execute(f"PRAGMA cache_size=-{int(kib)}")
    restored = False

    def restore(*_: object) -> None:
        nonlocal restored
        if restored:
            return
        restored = True
        # a connection too broken to take a pragma is not handed out again
        with suppress(sa.exc.SQLAlchemyError, sqlite3.Error):
            _driver(conn).execute(f"PRAGMA cache_size={before}")

    sa.event.listen(conn, "rollback", restore, once=True)
    return restore


#: SQLite's page cache while the secondary index is rebuilt (KiB). SQLite's sorter takes as
#: much memory again as the cache, on top of a page cache full of the load's pages: at the
#: default 64 MiB the rebuild of a 3M-event load was the import's memory peak (+44 MiB).
#: A smaller cache spills the load's dirty pages to the WAL a little before the commit would.
REBUILD_CACHE_KIB = 16_384


@contextmanager
def _sqlite_cache(conn: sa.Connection, kib: int) -> Iterator[None]:
    """SQLite's page cache (and so its sorter's memory) set to ``kib`` for a while."""
    if _dialect(conn) != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    conn.exec_driver_sql(f"PRAGMA cache_size=-{int(kib)}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={int(before)}")


def _insert_sqlite(
    conn: sa.Connection,
    log: InteractionLog,
    event_ids: np.ndarray,
    user_keys: np.ndarray,
    item_keys: np.ndarray,
    conflict: str,
) -> int:
    if len(log) == 0:
        return 0
    driver = _driver(conn)
    names = _present_columns(log)
    sql = (
        f"INSERT INTO events ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)}) "
        + conflict
    )
    before = driver.total_changes
    cur = driver.cursor()
    try:
        for start in range(0, len(log), CHUNK):
            cols = _chunk_columns(log, event_ids, user_keys, item_keys, start, start + CHUNK)
            cur.executemany(sql, zip(*(_as_list(cols[n]) for n in names), strict=True))
    finally:
        cur.close()
    return int(driver.total_changes - before)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, tuple):  # (values, missing): None where missing
        values, missing = value
        return _none_where(values, missing).tolist() if missing.any() else values.tolist()
    return value.tolist()


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
        # Sorting by ord must not spill to disk on big loads (lasts until the transaction ends).
        cur.execute("SET LOCAL work_mem = '256MB'")
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
        inserted = int(cur.rowcount)
        cur.execute("DROP TABLE segue_events_in")
    finally:
        cur.close()
    return inserted
