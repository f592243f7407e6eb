"""Loading data into the store: the synthetic world, Last.fm 2K and generic tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from segue.data.batch import RecordBatch
from segue.data.synth import SynthParams, generate_world
from segue.progress import Progress, no_progress
from segue.store import IngestReport, Store


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


def import_lastfm_2k(store: Store, directory: Path) -> IngestReport:
    """Parse the five HetRec files and ingest them atomically."""
    from segue.data.sources.lastfm import read_lastfm_2k

    return store.ingest(read_lastfm_2k(directory))


def import_table(
    store: Store,
    path: Path,
    kind: Literal["events", "items", "users"],
    mapping: dict[str, str] | None = None,
) -> IngestReport:
    """Ingest a CSV or Parquet file of events, items or users with a column mapping."""
    from segue.data.sources.tabular import read_table

    batch: RecordBatch = read_table(path, kind, mapping)
    return store.ingest(batch)
