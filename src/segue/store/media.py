"""Per-track lyrics and audio files (revision 0007): what the sing-along reads.

Why two small tables keyed by the item's external id (with a foreign key to ``items.id``):
serving reads a track's lyrics on every ``?at=`` poll, so the read is one primary-key lookup on
the point reader's kept connections (:mod:`segue.store.point`), with no join. Lyrics and audio
paths are about tracks, not listeners: erasure and a listener's export never touch them.

``lyrics.format`` says what ``body`` holds: ``lrc`` is the parsed lyrics as compact JSON
(:meth:`segue.data.lyrics.Lyrics.to_json`; the file is parsed once, at import), ``synth`` a
synthetic track's generator settings (``{"seed": 7}``), from which the jobs layer rebuilds its
lyrics on read (:mod:`segue.data.synth.lyrics`). A put replaces a track's row whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from segue.errors import StoreError
from segue.store import bulk, schema
from segue.store.rows import write_rows

FORMATS = ("lrc", "synth")


@dataclass(frozen=True)
class StoredLyrics:
    """A track's lyrics row: ``format`` and ``body`` as in the module docstring; ``source``
    the file it came from (or ``segue synth``); ``updated_ms`` when it was put."""

    item_id: str
    format: str
    source: str
    body: str
    updated_ms: int


@dataclass(frozen=True)
class AudioFile:
    """A track's audio file: an absolute path on the machine that serves it."""

    item_id: str
    path: str
    updated_ms: int


def _check_items(conn: sa.Connection, ids: Sequence[str], what: str) -> None:
    missing = sorted(set(ids) - set(bulk.lookup_keys(conn, "items", ids)))
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise StoreError(f"{what} for items the store does not hold: {shown}{more}")


def put_lyrics(conn: sa.Connection, rows: Iterable[StoredLyrics]) -> int:
    """Insert or replace lyrics rows (the last of repeated ids wins); in the caller's
    transaction, so an unknown item or a bad format writes nothing."""
    unique = list({r.item_id: r for r in rows}.values())
    for r in unique:
        if r.format not in FORMATS:
            raise StoreError(f"lyrics format must be one of {FORMATS}, got {r.format!r}")
    _check_items(conn, [r.item_id for r in unique], "lyrics")
    records = [
        {
            "item_id": r.item_id,
            "format": r.format,
            "source": r.source,
            "body": r.body,
            "updated_ms": r.updated_ms,
        }
        for r in unique
    ]
    write_rows(conn, schema.lyrics, records, ["item_id"], "upsert")
    return len(records)


def put_audio(conn: sa.Connection, rows: Iterable[AudioFile]) -> int:
    """Insert or replace the audio file of tracks; unknown items write nothing."""
    unique = list({r.item_id: r for r in rows}.values())
    _check_items(conn, [r.item_id for r in unique], "audio files")
    records = [{"item_id": r.item_id, "path": r.path, "updated_ms": r.updated_ms} for r in unique]
    write_rows(conn, schema.item_audio, records, ["item_id"], "upsert")
    return len(records)
