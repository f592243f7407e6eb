"""Loading data into the store: the synthetic world, Last.fm 2K and generic tables."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from segue.data.batch import RecordBatch
from segue.data.model import Item, ItemKind
from segue.data.synth import SynthParams, generate_world
from segue.progress import Progress, no_progress
from segue.store import IngestReport, Store, StoredLyrics


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


def import_table(
    store: Store,
    path: Path,
    kind: Literal["events", "items", "users"],
    mapping: dict[str, str] | None = None,
    *,
    defaults: dict[str, object] | None = None,
    create_missing: bool = False,
) -> IngestReport:
    """Ingest a CSV or Parquet file of events, items or users with a column mapping.

    ``defaults`` fill fields that the file has no column for (``type=play`` for a log of
    plays without an event-type column). Events naming a user or item the store does not
    hold are refused, with the first one's line and the two ways out, unless
    ``create_missing``: then each missing listener is added as a bare user (signed up at
    their first event here) and each missing item as a bare track titled by its id, so a
    plain listening log imports on its own and a catalog imported later fills the rows in
    (items and users are upserted by id).
    """
    from segue.data.sources.tabular import read_table

    batch: RecordBatch = read_table(path, kind, mapping, defaults=defaults)
    if kind == "events" and batch.events:
        _resolve_missing(store, batch, create_missing)
    return store.ingest(batch)


def _resolve_missing(store: Store, batch: RecordBatch, create: bool) -> None:
    """Add bare rows for the users and items that the batch's events name but the store
    lacks (``create``), or raise a RowError at the first such event saying what to do."""
    from segue.data.model import Item, ItemKind, User
    from segue.errors import RowError

    user_ids = {e.user_id for e in batch.events}
    item_ids = {e.item_id for e in batch.events}
    missing_users = user_ids - store.existing_user_ids(user_ids)
    missing_items = item_ids - store.existing_item_ids(item_ids)
    if not (missing_users or missing_items):
        return
    if not create:
        for index, event in enumerate(batch.events):
            role = "user" if event.user_id in missing_users else None
            role = role or ("item" if event.item_id in missing_items else None)
            if role is None:
                continue
            value = event.user_id if role == "user" else event.item_id
            reason = (
                f"unknown {role} {value!r} ({len(missing_users):,} unknown users and "
                f"{len(missing_items):,} unknown items in the file); import the "
                f"{role}s first (--kind {role}s), or pass --create-missing to add them "
                "as bare rows"
            )
            if index >= len(batch.event_origins):
                raise RowError("events", index + 1, None, reason)
            origin = batch.event_origins[index]
            column = origin.user_column if role == "user" else origin.item_column
            raise RowError(origin.file, origin.line, column, reason)
    first_seen: dict[str, object] = {}
    for event in batch.events:
        if event.user_id in missing_users:
            seen = first_seen.get(event.user_id)
            if seen is None or event.timestamp < seen:  # type: ignore[operator]
                first_seen[event.user_id] = event.timestamp
    batch.users.extend(
        User(id=user_id, signup_at=first_seen[user_id]) for user_id in sorted(missing_users)
    )
    batch.items.extend(
        Item(id=item_id, kind=ItemKind.TRACK, title=item_id) for item_id in sorted(missing_items)
    )
