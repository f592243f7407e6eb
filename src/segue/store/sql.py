"""The one :class:`~segue.store.base.Store` implementation, on SQLAlchemy Core.

SQLite and PostgreSQL share the schema and every small query; the paths that move many rows
(:mod:`~segue.store.rows`, :mod:`~segue.store.bulk`, :mod:`~segue.store.scan`) talk to the
driver directly, inside the same transaction. Inside ``with store.transaction():`` every call
(reads included) uses the transaction's connection, so reads see the transaction's own writes;
outside, each call is its own transaction. The open transaction is tracked per thread, so
threads sharing a store never join each other's transactions.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from segue.data.batch import Origin, RecordBatch
from segue.data.log import InteractionLog
from segue.data.model import (
    Event,
    EventType,
    Friendship,
    Item,
    ItemKind,
    Tag,
    TagAssignment,
    User,
    to_epoch_ms,
)
from segue.errors import RowError, StoreError
from segue.store import (
    bulk,
    export,
    exposures,
    history,
    media,
    migrate,
    outbox,
    privacy,
    published,
    scan,
    schema,
)
from segue.store.base import READABLE_TABLES, IngestReport, Store
from segue.store.codec import USER_FLAGS, item_row, row_item, row_user, user_row
from segue.store.engine import (
    READ_ONLY,
    SQLITE_BUSY_TIMEOUT_MS,
    create_engine,
    masked,
    open_error,
    parse_url,
)
from segue.store.point import PointReader
from segue.store.rows import write_rows

# Statement chunk for executemany of small-record writes (keeps parameter lists bounded).
_CHUNK = 5_000


def open_store(
    url: str,
    *,
    busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    statement_timeout_ms: int | None = None,
) -> Store:
    """Open (creating or migrating if needed) the store at a SQLAlchemy URL.

    ``busy_timeout_ms``: how long a SQLite writer waits for the write lock; on PostgreSQL
    ``statement_timeout_ms`` bounds every statement (None: unbounded; the serving processes
    set it, batch commands do not). Opening the store (migrations) is never bounded.

    ``sqlite:///path`` creates the file and its folder; ``postgresql://``, ``postgres://`` and
    ``postgresql+psycopg://`` all use psycopg 3. Raises StoreError with the (password-masked)
    URL when the database cannot be reached or its schema is newer than this segue.
    """
    return SqlStore(url, busy_timeout_ms=busy_timeout_ms, statement_timeout_ms=statement_timeout_ms)


class SqlStore(Store):
    """Store on SQLite or PostgreSQL; see the module docstring for transaction semantics."""

    def __init__(
        self,
        url: str,
        *,
        busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
        statement_timeout_ms: int | None = None,
    ) -> None:
        parsed = parse_url(url)
        self.url = parsed.render_as_string(hide_password=False)
        self._masked_url = masked(parsed)
        self._engine = create_engine(
            parsed, busy_timeout_ms=busy_timeout_ms, statement_timeout_ms=statement_timeout_ms
        )
        self._local = threading.local()
        self._points = PointReader(self._engine)
        try:
            # The first connection is where a wrong URL, a stopped server or a file that is
            # not SQLite shows up; later failures are bugs and keep their traceback.
            with self._engine.connect():
                pass
        except sa.exc.DBAPIError as exc:
            self._engine.dispose()
            raise open_error(parsed, exc) from exc
        try:
            self.schema_version = self._prepare_schema()
        except BaseException:
            self._engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"SqlStore({self._masked_url!r})"

    def _prepare_schema(self) -> int:
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # migrations may take long: never cut short
                conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
            return migrate.prepare(conn, self._masked_url)

    # -- transactions ----------------------------------------------------------------------
    @property
    def _tx(self) -> sa.Connection | None:
        return getattr(self._local, "conn", None)

    def transaction(self) -> AbstractContextManager[None]:
        return self._transaction()

    @property
    def _deferred(self) -> bulk.Deferred | None:
        """Work the open transaction does just before it commits (None outside one)."""
        return getattr(self._local, "deferred", None)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._tx is not None:  # nested: join the outer transaction
            yield
            return
        with self._engine.begin() as conn:
            deferred: bulk.Deferred = {}
            self._local.conn, self._local.deferred = conn, deferred
            try:
                yield
                for finish in deferred.values():
                    finish(conn)
            finally:
                self._local.conn = self._local.deferred = None

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        if self._tx is not None:
            yield self._tx
            return
        with self._engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        if self._tx is not None:
            yield self._tx
            return
        with self._engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})  # SQLite: a deferred BEGIN
            yield conn

    # -- generic helpers -------------------------------------------------------------------
    def _upsert(
        self, conn: sa.Connection, table: sa.Table, records: list[dict[str, Any]], key: str
    ) -> tuple[int, int]:
        """Insert-or-update records by ``key``; the last of repeated keys wins. (new, updated)"""
        unique = list({r[key]: r for r in records}.values())
        if not unique:
            return 0, 0
        existing = self._existing(conn, table, key, [row[key] for row in unique])
        write_rows(conn, table, [r for r in unique if r[key] in existing], [key], "update")
        new = [r for r in unique if r[key] not in existing]
        write_rows(conn, table, new, [key], "upsert")  # upsert: a racing writer may win
        return len(new), len(existing)

    def _existing(
        self, conn: sa.Connection, table: sa.Table, column: str, values: Sequence[Any]
    ) -> set[Any]:
        if table.name in ("users", "items"):
            return set(bulk.lookup_keys(conn, table.name, values))
        found: set[Any] = set()
        col = table.c[column]
        distinct = list(set(values))
        for start in range(0, len(distinct), _CHUNK):
            chunk = distinct[start : start + _CHUNK]
            found.update(conn.execute(sa.select(col).where(col.in_(chunk))).scalars())
        return found

    def _insert_ignore(
        self, conn: sa.Connection, table: sa.Table, records: list[dict[str, Any]]
    ) -> int:
        """Insert rows whose primary key is new; returns how many were."""
        primary_key = [c.name for c in table.primary_key.columns]
        return write_rows(conn, table, records, primary_key, "skip")

    # -- writes ----------------------------------------------------------------------------
    def upsert_items(self, items: Iterable[Item]) -> int:
        """Insert or replace items by id; returns how many distinct ids were written."""
        with self._write() as conn:
            new, updated = self._upsert(conn, schema.items, [item_row(i) for i in items], "id")
        return new + updated

    def upsert_users(self, users: Iterable[User]) -> int:
        """Insert or replace users by id; returns how many distinct ids were written."""
        with self._write() as conn:
            new, updated = self._upsert(conn, schema.users, [user_row(u) for u in users], "id")
        return new + updated

    def upsert_tags(self, tags: Iterable[Tag]) -> int:
        """Insert or rename tags by id; returns how many distinct ids were written."""
        with self._write() as conn:
            rows = [{"id": t.id, "name": t.name} for t in tags]
            new, updated = self._upsert(conn, schema.tags, rows, "id")
        return new + updated

    def add_events(self, events: Iterable[Event]) -> int:
        return self.add_event_log(InteractionLog.from_events(events))

    def add_event_log(self, log: InteractionLog) -> int:
        tx = self._tx
        if tx is not None:
            return bulk.add_event_log(tx, log, self._deferred)
        # A transaction of our own may skip SQLite's per-row foreign-key probes: every key is
        # resolved from the users/items tables inside this same transaction.
        with (
            self._engine.connect() as conn,
            bulk.sqlite_foreign_keys_off(conn),
            conn.begin(),
        ):
            return bulk.add_event_log(conn, log, None)

    def add_friendships(self, links: Iterable[Friendship]) -> int:
        links = list(links)
        with self._write() as conn:
            keys = self._user_keys(
                conn, [x for link in links for x in (link.user_id, link.friend_id)]
            )
            return self._write_friendships(conn, links, keys)

    def add_tag_assignments(self, rows: Iterable[TagAssignment]) -> int:
        rows = list(rows)
        with self._write() as conn:
            keys = self._user_keys(conn, [r.user_id for r in rows])
            self._check_tags(conn, rows)
            return self._write_tag_assignments(conn, rows, keys)

    def _user_keys(self, conn: sa.Connection, ids: Sequence[str]) -> dict[str, int]:
        keys = bulk.lookup_keys(conn, "users", ids)
        missing = sorted(set(ids) - set(keys))
        if missing:
            shown = ", ".join(repr(m) for m in missing[:5])
            raise StoreError(f"{len(missing)} unknown user id(s): {shown}. Add the users first.")
        return keys

    def _check_tags(self, conn: sa.Connection, rows: Sequence[TagAssignment]) -> None:
        ids = {r.tag_id for r in rows}
        missing = sorted(ids - self._existing(conn, schema.tags, "id", list(ids)))
        if missing:
            raise StoreError(f"unknown tag id(s) {missing[:5]}. Add the tags first.")

    def _write_friendships(
        self, conn: sa.Connection, links: Sequence[Friendship], keys: dict[str, int]
    ) -> int:
        rows = [{"user_key": keys[x.user_id], "friend_key": keys[x.friend_id]} for x in links]
        return self._insert_ignore(conn, schema.friendships, rows)

    def _write_tag_assignments(
        self, conn: sa.Connection, rows: Sequence[TagAssignment], keys: dict[str, int]
    ) -> int:
        values = [
            {
                "user_key": keys[r.user_id],
                "item_id": r.item_id,
                "tag_id": r.tag_id,
                "ts_ms": to_epoch_ms(r.timestamp),
            }
            for r in rows
        ]
        return self._insert_ignore(conn, schema.tag_assignments, values)

    def ingest(self, batch: RecordBatch) -> IngestReport:
        """Write a parsed import in one transaction after checking every reference.

        References are checked before anything is written: event users and items, both ends
        of a friendship, the user and tag of a tag assignment (not its item). The RowError
        names the first offending record's file, line and column; a friend's column is taken
        from ``Origin.item_column``, a tag's is not recorded (None).
        """
        report = IngestReport()
        with self._write() as conn:
            self._check_references(conn, batch)
            for name, table, rows in (
                ("items", schema.items, [item_row(i) for i in batch.items]),
                ("users", schema.users, [user_row(u) for u in batch.users]),
                ("tags", schema.tags, [{"id": t.id, "name": t.name} for t in batch.tags]),
            ):
                new, updated = self._upsert(conn, table, rows, "id")
                report.inserted[name], report.updated[name] = new, updated
                report.ignored[name] = len(rows) - new - updated  # repeats inside the batch
            events = InteractionLog.from_events(batch.events)
            new = bulk.add_event_log(conn, events, self._deferred)
            report.inserted["events"] = new
            report.ignored["events"] = len(batch.events) - new
            user_ids = [x for f in batch.friendships for x in (f.user_id, f.friend_id)]
            user_ids += [t.user_id for t in batch.tag_assignments]
            keys = bulk.lookup_keys(conn, "users", user_ids)
            new = self._write_friendships(conn, batch.friendships, keys)
            report.inserted["friendships"] = new
            report.ignored["friendships"] = len(batch.friendships) - new
            new = self._write_tag_assignments(conn, batch.tag_assignments, keys)
            report.inserted["tag_assignments"] = new
            report.ignored["tag_assignments"] = len(batch.tag_assignments) - new
        return report

    def _check_references(self, conn: sa.Connection, batch: RecordBatch) -> None:
        """Raise RowError for the first record naming a user, item or tag that won't exist."""
        users = {u.id for u in batch.users}
        items = {i.id for i in batch.items}
        tags = {t.id for t in batch.tags}
        wanted_users = {e.user_id for e in batch.events}
        wanted_users |= {x for f in batch.friendships for x in (f.user_id, f.friend_id)}
        wanted_users |= {t.user_id for t in batch.tag_assignments}
        users |= set(bulk.lookup_keys(conn, "users", wanted_users - users))
        items |= set(bulk.lookup_keys(conn, "items", {e.item_id for e in batch.events} - items))
        wanted_tags = {t.tag_id for t in batch.tag_assignments} - tags
        tags |= self._existing(conn, schema.tags, "id", list(wanted_tags))

        checks: list[tuple[str, Sequence[Any], Sequence[Origin], list[tuple[str, str]]]] = [
            (
                "event",
                batch.events,
                batch.event_origins,
                [("user_id", "user"), ("item_id", "item")],
            ),
            (
                "friendship",
                batch.friendships,
                batch.friendship_origins,
                [("user_id", "user"), ("friend_id", "friend")],
            ),
            (
                "tag assignment",
                batch.tag_assignments,
                batch.tag_assignment_origins,
                [("user_id", "user"), ("tag_id", "tag")],
            ),
        ]
        known = {"user": users, "friend": users, "item": items, "tag": tags}
        for what, records, origins, fields in checks:
            for index, record in enumerate(records):
                for attr, role in fields:
                    value = getattr(record, attr)
                    if value in known[role]:
                        continue
                    label = "user" if role == "friend" else role
                    reason = f"unknown {label} {str(value)!r}"
                    if index < len(origins):
                        origin = origins[index]
                        raise RowError(origin.file, origin.line, _column(origin, role), reason)
                    raise StoreError(
                        f"{what} #{index + 1} of the batch names an {reason}; add it to the "
                        "batch or the store first."
                    )

    def set_user_flags(self, user_id: str, **flags: bool) -> User:
        unknown = sorted(set(flags) - set(USER_FLAGS))
        if unknown:
            raise StoreError(
                f"unknown user flag(s) {unknown}; the flags are: {', '.join(USER_FLAGS)}"
            )
        for name, value in flags.items():
            if not isinstance(value, bool):
                raise StoreError(f"user flag {name} must be true or false, not {value!r}")
        with self._write() as conn:
            if flags:
                result = conn.execute(
                    sa.update(schema.users).where(schema.users.c.id == user_id).values(**flags)
                )
                if result.rowcount == 0:
                    raise StoreError(f"unknown user {user_id!r}")
            row = (
                conn.execute(sa.select(schema.users).where(schema.users.c.id == user_id))
                .mappings()
                .first()
            )
        if row is None:
            raise StoreError(f"unknown user {user_id!r}")
        return row_user(row)

    # -- reads -----------------------------------------------------------------------------
    def get_item(self, item_id: str) -> Item | None:
        row = self._by_id(schema.items, item_id)
        return None if row is None else row_item(row)

    def get_user(self, user_id: str) -> User | None:
        row = self._by_id(schema.users, user_id)
        return None if row is None else row_user(row)

    def _by_id(self, table: sa.Table, id_: str) -> Mapping[str, Any] | None:
        """One row by its id: inside a transaction through it (to see its writes), else on
        the point reader's kept connections (serving's per-request read)."""
        if self._tx is None:
            return self._points.row(table, "id", id_)
        return self._tx.execute(sa.select(table).where(table.c.id == id_)).mappings().first()

    def iter_items(self, kind: ItemKind | None = None) -> Iterator[Item]:
        query = sa.select(schema.items).order_by(schema.items.c.key)
        if kind is not None:
            query = query.where(schema.items.c.kind == ItemKind(kind).value)
        return (row_item(row) for row in self._stream(query))

    def iter_users(self) -> Iterator[User]:
        query = sa.select(schema.users).order_by(schema.users.c.key)
        return (row_user(row) for row in self._stream(query))

    def _stream(self, query: sa.Select[Any]) -> Iterator[Any]:
        with self._read() as conn:
            result = conn.execution_options(yield_per=2_000).execute(query).mappings()
            yield from result

    def existing_user_ids(self, ids: Iterable[str]) -> set[str]:
        with self._read() as conn:
            return set(bulk.lookup_keys(conn, "users", ids))

    def existing_item_ids(self, ids: Iterable[str]) -> set[str]:
        with self._read() as conn:
            return set(bulk.lookup_keys(conn, "items", ids))

    def count(self, table: str) -> int:
        target = _table(table)
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(target)).scalar_one())

    def interactions(
        self,
        types: Sequence[EventType] | None = None,
        *,
        include_focus: bool = False,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> InteractionLog:
        with self._read() as conn:
            return scan.read_events(conn, types, include_focus, start_ms, end_ms)

    def user_events(
        self, user_id: str, start_ms: int | None = None, end_ms: int | None = None
    ) -> InteractionLog:
        with self._read() as conn:
            return history.read_user_events(conn, user_id, start_ms, end_ms)

    def friendships(self) -> list[tuple[str, str]]:
        u, f = schema.users.alias("u"), schema.users.alias("f")
        links = schema.friendships
        query = (
            sa.select(u.c.id, f.c.id)
            .select_from(links.join(u, u.c.key == links.c.user_key))
            .join(f, f.c.key == links.c.friend_key)
            .order_by(links.c.user_key, links.c.friend_key)
        )
        with self._read() as conn:
            return [(a, b) for a, b in conn.execute(query)]

    def tags(self) -> dict[int, str]:
        query = sa.select(schema.tags.c.id, schema.tags.c.name).order_by(schema.tags.c.id)
        with self._read() as conn:
            return {i: n for i, n in conn.execute(query)}

    def tag_assignments(self) -> list[tuple[str, str, int, int]]:
        ta, u = schema.tag_assignments, schema.users
        query = (
            sa.select(u.c.id, ta.c.item_id, ta.c.tag_id, ta.c.ts_ms)
            .select_from(ta.join(u, u.c.key == ta.c.user_key))
            .order_by(ta.c.user_key, ta.c.item_id, ta.c.tag_id)
        )
        with self._read() as conn:
            return [(a, b, int(c), int(d)) for a, b, c, d in conn.execute(query)]

    # -- next-best-action outbox -------------------------------------------------------------
    def outbox_add(self, messages: Sequence[outbox.OutboxMessage]) -> int:
        with self._write() as conn:
            return outbox.add(conn, list(messages))

    def outbox_claim(
        self, now_ms: int, lease_ms: int, limit: int, channels: Sequence[str] | None = None
    ) -> list[outbox.OutboxMessage]:
        with self._write() as conn:
            return outbox.claim(conn, now_ms, lease_ms, limit, channels)

    def outbox_extend(self, claim_token: str, now_ms: int, lease_ms: int) -> int:
        with self._write() as conn:
            return outbox.extend(conn, claim_token, now_ms, lease_ms)

    def outbox_mark_sent(self, message_id: str, claim_token: str, now_ms: int) -> bool:
        with self._write() as conn:
            return outbox.mark_sent(conn, message_id, claim_token, now_ms)

    def outbox_mark_failed(
        self, message_id: str, claim_token: str, error: str, retry_at_ms: int, max_attempts: int
    ) -> str | None:
        with self._write() as conn:
            return outbox.mark_failed(
                conn, message_id, claim_token, error, retry_at_ms, max_attempts
            )

    def outbox_counts(self, campaign: str | None = None) -> dict[str, int]:
        with self._read() as conn:
            return outbox.counts(conn, campaign)

    def outbox_recent(
        self, since_ms: int, user_ids: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        with self._read() as conn:
            return outbox.recent(conn, since_ms, user_ids)

    def outbox_messages(
        self, campaign: str | None = None, status: str | None = None
    ) -> list[outbox.OutboxMessage]:
        with self._read() as conn:
            return outbox.messages(conn, campaign, status)

    # -- published lists ---------------------------------------------------------------------
    def publish_lists(
        self, name: str, version: str, kind: str, lists: Iterable[published.PublishedList]
    ) -> int:
        with self._write() as conn:
            return published.replace(conn, name, version, kind, lists)

    def published_list(
        self, name: str, version: str, kind: str, user_id: str
    ) -> published.PublishedList | None:
        with self._read() as conn:
            return published.read(conn, name, version, kind, user_id)

    def published_counts(self, name: str, version: str) -> dict[str, int]:
        with self._read() as conn:
            return published.counts(conn, name, version)

    # -- the exposure log --------------------------------------------------------------------
    def add_exposures(self, rows: Sequence[exposures.Exposure]) -> int:
        with self._write() as conn:
            return exposures.add(conn, list(rows))

    def exposures_between(
        self, start_ms: int, end_ms: int, user_id: str | None = None
    ) -> list[exposures.Exposure]:
        with self._read() as conn:
            return exposures.between(conn, start_ms, end_ms, user_id)

    # -- lyrics and audio files ---------------------------------------------------------------
    def put_lyrics(self, rows: Iterable[media.StoredLyrics]) -> int:
        with self._write() as conn:
            return media.put_lyrics(conn, rows)

    def get_lyrics(self, item_id: str) -> media.StoredLyrics | None:
        row = self._by_item(schema.lyrics, item_id)
        return None if row is None else media.StoredLyrics(**row)

    def put_audio(self, rows: Iterable[media.AudioFile]) -> int:
        with self._write() as conn:
            return media.put_audio(conn, rows)

    def get_audio(self, item_id: str) -> media.AudioFile | None:
        row = self._by_item(schema.item_audio, item_id)
        return None if row is None else media.AudioFile(**row)

    def _by_item(self, table: sa.Table, item_id: str) -> Mapping[str, Any] | None:
        """As :meth:`_by_id`, for the tables keyed by ``item_id``."""
        if self._tx is None:
            return self._points.row(table, "item_id", item_id)
        query = sa.select(table).where(table.c.item_id == item_id)
        return self._tx.execute(query).mappings().first()

    def table_columns(self, table: str, columns: Sequence[str]) -> dict[str, np.ndarray]:
        if table not in ("items", "users"):
            raise StoreError(f"table_columns reads items or users, not {table!r}")
        target = schema.TABLES_BY_NAME[table]
        unknown = [c for c in columns if c not in target.c]
        if unknown:
            raise StoreError(f"{table} has no column(s) {unknown}")
        query = sa.select(*(target.c[c] for c in columns)).order_by(target.c.key)
        with self._read() as conn:
            rows = conn.execute(query).all()
        values = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
        return {c: np.array(v, dtype=object) for c, v in zip(columns, values, strict=True)}

    def message_events(
        self, start_ms: int | None = None, end_ms: int | None = None
    ) -> InteractionLog:
        with self._read() as conn:
            return outbox.read_message_events(conn, start_ms, end_ms)

    # -- one listener's data (segue.store.privacy) ------------------------------------------
    def user_data(self, user_id: str) -> dict[str, Any] | None:
        with self._read() as conn:
            return privacy.user_data(conn, user_id)

    def iter_user_events(self, user_id: str) -> Iterator[dict[str, Any]]:
        with self._read() as conn:
            yield from privacy.iter_user_events(conn, user_id)

    def erase_user(self, user_id: str, now_ms: int) -> privacy.Erasure | None:
        with self._write() as conn:
            erasure = privacy.erase(conn, user_id, now_ms)
        if erasure is not None and erasure.user_key is not None and self._tx is None:
            with self._write() as conn:  # inserts that looked the key up before the erasure
                erasure.removed["events"] += privacy.sweep(conn, erasure.user_key)
        return erasure

    def erased_user_ids(self, ids: Iterable[str]) -> set[str]:
        with self._read() as conn:
            return privacy.erased_ids(conn, ids)

    def export_parquet(
        self, table: str, path: Path, period: tuple[int, int] | None = None
    ) -> int:
        _table(table)
        with self._read() as conn:
            return export.export_table(conn, table, Path(path), period)

    def close(self) -> None:
        self._points.close()
        self._engine.dispose()


def _table(name: str) -> sa.Table:
    if name not in READABLE_TABLES:
        raise StoreError(
            f"unknown table {name!r}; the tables are: {', '.join(READABLE_TABLES)}"
        )
    return schema.TABLES_BY_NAME[name]


def _column(origin: Origin, role: str) -> str | None:
    """The input column holding a reference. A friendship's friend is its second reference,
    recorded in ``item_column`` by importers (Origin has two reference slots)."""
    if role in ("item", "friend"):
        return origin.item_column
    if role == "user":
        return origin.user_column
    return None
