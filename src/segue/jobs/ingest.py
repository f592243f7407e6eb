"""Loading data into the store: the synthetic world, Last.fm 2K and generic tables."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from segue.data.batch import RecordBatch
from segue.data.model import Item, ItemKind
from segue.data.synth import SynthParams, generate_world
from segue.errors import RowError
from segue.progress import Progress, no_progress
from segue.store import IngestReport, Store, StoredLyrics

if TYPE_CHECKING:
    from segue.data.model import User
    from segue.data.sources.tabular import Chunk, ReadOptions, TableReader


@dataclass
class SynthReport:
    items: int
    users: int
    events_generated: int
    events_inserted: int


def load_synthetic_world(
    store: Store,
    params: SynthParams,
    *,
    chunk_size: int = 1_000_000,
    progress: Progress = no_progress,
) -> SynthReport:
    """Generate a world and write it in one transaction (all of it or, on failure, none)."""
    world = generate_world(params)
    generated = inserted = 0
    with store.transaction():
        store.upsert_items(world.items)
        store.put_lyrics(synthetic_lyrics_rows(world.items, params.seed))
        store.upsert_users(world.users)
        if world.friendships:
            store.add_friendships(world.friendships)
        progress("events", 0, params.n_events)
        for chunk in world.iter_event_chunks(chunk_size=chunk_size):
            inserted += store.add_event_log(chunk)
            generated += len(chunk)
            progress("events", generated, max(generated, params.n_events))
    progress("events", generated, generated)  # the target is approximate: close the bar
    return SynthReport(len(world.items), len(world.users), generated, inserted)


def synthetic_lyrics_rows(items: Iterable[Item], seed: int) -> list[StoredLyrics]:
    """One row per track saying its lyrics are the synthetic world's of ``seed``: a few bytes
    each, so ``segue synth`` stays as fast; the lyrics are built when read
    (:func:`segue.jobs.sing.track_lyrics`)."""
    body = json.dumps({"seed": seed})
    now = int(time.time() * 1000)
    return [
        StoredLyrics(item.id, "synth", "segue synth", body, now)
        for item in items
        if item.kind is ItemKind.TRACK
    ]


def import_lastfm_2k(store: Store, directory: Path) -> IngestReport:
    """Parse the five HetRec files and ingest them atomically."""
    from segue.data.sources.lastfm import read_lastfm_2k

    return store.ingest(read_lastfm_2k(directory))


@dataclass
class TableImport:
    """What an import of one file did, or (``dry_run``) would do.

    ``report`` counts rows per table as the store saw them (empty in a dry run); ``rows`` the
    data rows read; ``records`` the rows that parsed; ``created_users`` / ``created_items``
    the bare rows events brought (or would bring) along; ``sources`` where each field came
    from and ``dialect`` how the file was read, both as words to print; ``first`` the first
    parsed rows; ``errors`` the first refused rows (dry run only: an import stops at the first).
    """

    kind: str
    rows: int = 0
    records: int = 0
    created_users: int = 0
    created_items: int = 0
    report: IngestReport = field(default_factory=IngestReport)
    sources: list[tuple[str, str]] = field(default_factory=list)
    dialect: dict[str, str] = field(default_factory=dict)
    first: list[dict[str, object]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False


#: Bare users or items created per store call.
_CREATE_BATCH = 10_000
#: Rows a dry run shows, and errors it lists (it counts them all).
SHOWN_ROWS = 5
SHOWN_ERRORS = 10


def import_table(
    store: Store,
    path: Path,
    kind: Literal["events", "items", "users"],
    mapping: dict[str, str] | None = None,
    *,
    defaults: dict[str, object] | None = None,
    create_missing: bool | None = None,
    options: ReadOptions | None = None,
    dry_run: bool = False,
    chunk_rows: int | None = None,
) -> TableImport:
    """Stream a CSV or Parquet file of events, items or users into the store in one transaction.

    ``defaults`` fill fields that the file has no column for (``type=play`` for a log of
    plays without an event-type column). Events naming a user or item the store does not
    hold add them as bare rows (``create_missing``, on by default for events): a listener
    signed up at their first event in the file, an item as a track titled by its id, so a
    plain listening log imports on its own and a catalog imported later fills the rows in
    (items and users are upserted by id). With ``create_missing=False`` such an event is
    refused, with its line and the two ways out.

    Users need no sign-up time: without a ``signup_at`` column or default, a listener the
    store already holds keeps the one stored (events imported first set it to their first
    event) and a new one is signed up at the import time.

    The file is read in chunks and written chunk by chunk inside one transaction, so memory
    stays flat for any length of log and a bad row still leaves the store unchanged.
    ``dry_run`` reads and checks everything, writes nothing, and keeps the first errors
    instead of stopping at the first.
    """
    from segue.data.sources._text import paused_gc
    from segue.data.sources.tabular import CHUNK_ROWS, open_reader

    defaults = dict(defaults or {})
    signup_given = "signup_at" in defaults
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    if kind == "users" and not signup_given:
        defaults["signup_at"] = started
    reader = open_reader(path, kind, mapping, defaults=defaults, options=options)
    result = TableImport(kind=kind, dry_run=dry_run, dialect=dict(reader.table.dialect))
    result.sources = [
        (s.field, f"{s.column} ({s.how})" if s.column else s.how) for s in reader.sources
    ]
    keep_signup = kind == "users" and not signup_given and reader.column_of.get("signup_at") is None
    if keep_signup:
        result.sources = [x for x in result.sources if x[0] != "signup_at"]
        result.sources.append(("signup_at", "kept if stored, else the import time"))
    flagged = options.flags if options is not None else {}
    unread = [name for name in reader.unread if name not in flagged]
    if unread:
        result.notes.append(
            f"not read: column(s) {', '.join(unread)}, named like fields but not mapped "
            "(map them, e.g. --map " + ",".join(f"{n}={n}" for n in unread) + ", or --auto-map)"
        )
    if create_missing is None:
        create_missing = kind == "events"
    errors: list[RowError] = []
    if dry_run:
        reader.errors = errors
    signups: dict[str, int] = {}  # users created here: their earliest event so far (ms)
    moved: set[str] = set()  # ... of which an event in a later chunk came earlier
    created: set[str] = set()  # items created here (a dry run writes none to ask the store)
    context = contextlib.nullcontext() if dry_run else store.transaction()
    with paused_gc(), context:
        for chunk in reader.chunks(chunk_rows or CHUNK_ROWS):
            result.records += len(chunk)
            if len(result.first) < SHOWN_ROWS:
                result.first.extend(_shown(chunk, SHOWN_ROWS - len(result.first)))
            if chunk.log is not None:
                _events_chunk(
                    store, reader, chunk, create_missing, signups, moved, created, result, dry_run
                )
            else:
                records = chunk.records
                if keep_signup:
                    records = _kept_signups(store, records)  # type: ignore[arg-type]
                if not dry_run:
                    batch = RecordBatch()
                    setattr(batch, kind, records)
                    _add(result.report, store.ingest(batch))
        if moved and not dry_run:
            _settle_signups(store, {u: signups[u] for u in moved})
    result.rows = reader.rows_read
    result.error_count = len(errors)
    result.errors = [str(e) for e in errors[:SHOWN_ERRORS]]
    result.created_users = len(signups)
    if keep_signup:
        result.notes.append(
            "no signup_at column: listeners already stored keep theirs, new ones are signed "
            "up at the import time"
        )
    return result


def _events_chunk(
    store: Store,
    reader: TableReader,
    chunk: Chunk,
    create: bool,
    signups: dict[str, int],
    moved: set[str],
    created_items: set[str],
    result: TableImport,
    dry_run: bool,
) -> None:
    """Resolve one chunk's unknown users and items (create or refuse), then write its events."""
    from segue.data.model import Item, ItemKind, User, from_epoch_ms

    log = chunk.log
    assert log is not None
    users = [str(u) for u in log.user_ids]
    items = [str(i) for i in log.item_ids]
    missing_users = set(users) - signups.keys()  # created by this import: not asked again
    missing_users -= store.existing_user_ids(missing_users) if missing_users else set()
    missing_items = set(items) - created_items
    missing_items -= store.existing_item_ids(missing_items) if missing_items else set()
    if (missing_users or missing_items) and not create:
        _refuse_unknown(reader, chunk, missing_users, missing_items)
    first_ms = np.full(len(log.user_ids), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_ms, log.user, log.ts_ms)
    for position, user_id in enumerate(users):
        if user_id in missing_users:
            signups[user_id] = int(first_ms[position])
        elif user_id in signups and first_ms[position] < signups[user_id]:
            signups[user_id] = int(first_ms[position])
            moved.add(user_id)  # signed up in an earlier chunk, but this event is earlier
    created_items.update(missing_items)
    result.created_items += len(missing_items)
    if dry_run:
        return
    # in slices: a first chunk may name tens of thousands of new listeners, and a validated
    # record plus its row dict each is the largest transient of the import otherwise
    new_users, new_items = sorted(missing_users), sorted(missing_items)
    for start in range(0, len(new_users), _CREATE_BATCH):
        part = new_users[start : start + _CREATE_BATCH]
        users = [User(id=u, signup_at=from_epoch_ms(signups[u])) for u in part]
        _add(result.report, store.ingest(RecordBatch(users=users)))
    for start in range(0, len(new_items), _CREATE_BATCH):
        part = new_items[start : start + _CREATE_BATCH]
        items = [Item(id=i, kind=ItemKind.TRACK, title=i) for i in part]
        _add(result.report, store.ingest(RecordBatch(items=items)))
    new = store.add_event_log(log)
    result.report.inserted["events"] = result.report.inserted.get("events", 0) + new
    result.report.ignored["events"] = result.report.ignored.get("events", 0) + len(log) - new


def _refuse_unknown(
    reader: TableReader, chunk: Chunk, missing_users: set[str], missing_items: set[str]
) -> None:
    log = chunk.log
    assert log is not None
    user_missing = np.array([str(u) in missing_users for u in log.user_ids], dtype=bool)
    item_missing = np.array([str(i) in missing_items for i in log.item_ids], dtype=bool)
    rows = np.flatnonzero(user_missing[log.user] | item_missing[log.item])
    row = int(rows[0])
    is_user = bool(user_missing[log.user[row]])
    role = "user" if is_user else "item"
    value = str(log.user_ids[log.user[row]] if is_user else log.item_ids[log.item[row]])
    reason = (
        f"unknown {role} {value!r}; import the {role}s first (--kind {role}s), or leave "
        "out --no-create-missing to add them as bare rows"
    )
    column = reader.column_of.get("user_id" if is_user else "item_id")
    raise RowError(reader.table.file, int(chunk.lines[row]), column, reason)


def _kept_signups(store: Store, records: list[User]) -> list[User]:
    """Users whose stored sign-up time stays: the file has none, the store knows better."""
    stored = store.existing_user_ids([u.id for u in records])
    kept = []
    for user in records:
        if user.id in stored:
            known = store.get_user(user.id)
            if known is not None:
                user = user.model_copy(update={"signup_at": known.signup_at})
        kept.append(user)
    return kept


def _settle_signups(store: Store, signups: dict[str, int]) -> None:
    """Listeners this import created in an early chunk whose first event came in a later one:
    bare rows still (a users file is a separate import), so rewritten with the earlier time."""
    from segue.data.model import User, from_epoch_ms

    store.ingest(
        RecordBatch(users=[User(id=u, signup_at=from_epoch_ms(ms)) for u, ms in signups.items()])
    )


def _shown(chunk: Chunk, limit: int) -> list[dict[str, object]]:
    """The first rows of a chunk as the fields they became, for a dry run to print."""
    from segue.data.model import EVENT_TYPES, from_epoch_ms

    rows: list[dict[str, object]] = []
    log = chunk.log
    if log is None:
        for record in chunk.records[:limit]:
            rows.append(
                {
                    "line": int(chunk.lines[len(rows)]),
                    **record.model_dump(exclude_defaults=True, exclude_none=True),
                }
            )
        return rows
    for i in range(min(limit, len(log))):
        row: dict[str, object] = {
            "line": int(chunk.lines[i]),
            "user_id": str(log.user_ids[log.user[i]]),
            "item_id": str(log.item_ids[log.item[i]]),
            "type": EVENT_TYPES[int(log.type[i])].value,
            "timestamp": from_epoch_ms(int(log.ts_ms[i])).isoformat().replace("+00:00", "Z"),
        }
        if not np.isnan(log.rating[i]):
            row["rating"] = float(log.rating[i])
        if log.ms_played[i] >= 0:
            row["ms_played"] = int(log.ms_played[i])
        if log.count[i] != 1:
            row["count"] = int(log.count[i])
        rows.append(row)
    return rows


def _add(total: IngestReport, part: IngestReport) -> None:
    for mine, theirs in (
        (total.inserted, part.inserted),
        (total.ignored, part.ignored),
        (total.updated, part.updated),
    ):
        for name, count in theirs.items():
            mine[name] = mine.get(name, 0) + count
