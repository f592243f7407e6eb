"""The store interface every backend honours.

Writes are idempotent where the data has a natural key: items and users are upserted by id,
events are inserted once per ``event_id`` (a repeated id is ignored, never an error), friend
links and tag assignments once per key. Everything inside ``with store.transaction():`` is one
transaction; a write outside it is its own.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segue.data.batch import RecordBatch
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
)
from segue.store.exposures import Exposure
from segue.store.media import AudioFile, StoredLyrics
from segue.store.outbox import OutboxMessage
from segue.store.privacy import Erasure
from segue.store.published import PublishedList

#: Tables a user can count or export.
TABLES = ("items", "users", "events", "friendships", "tags", "tag_assignments")
#: What ``count`` and ``export_parquet`` take: the tables above and the exposure log.
READABLE_TABLES = (*TABLES, "exposures")


@dataclass
class IngestReport:
    """Per table: rows an ingest added, rows it skipped as duplicates, rows it replaced.

    ``ignored`` counts records whose key was already present (events, friend links, tag
    assignments) or repeated within the batch; ``updated`` counts items, users and tags that
    existed and were overwritten by the upsert.
    """

    inserted: dict[str, int] = field(default_factory=dict)
    ignored: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)


class Store(abc.ABC):
    """Catalog, users, events, friend links and tags. See the module docstring for semantics."""

    url: str
    schema_version: int

    # -- transactions --------------------------------------------------------------------
    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """All writes inside commit together or not at all; nesting joins the outer one."""

    # -- writes --------------------------------------------------------------------------
    @abc.abstractmethod
    def upsert_items(self, items: Iterable[Item]) -> int: ...

    @abc.abstractmethod
    def upsert_users(self, users: Iterable[User]) -> int: ...

    @abc.abstractmethod
    def upsert_tags(self, tags: Iterable[Tag]) -> int: ...

    @abc.abstractmethod
    def add_events(self, events: Iterable[Event]) -> int:
        """Insert events; returns how many were new. Unknown users/items raise StoreError."""

    @abc.abstractmethod
    def add_event_log(self, log: InteractionLog) -> int:
        """Bulk insert of a columnar log (``event_id`` required); returns how many were new."""

    @abc.abstractmethod
    def add_friendships(self, links: Iterable[Friendship]) -> int: ...

    @abc.abstractmethod
    def add_tag_assignments(self, rows: Iterable[TagAssignment]) -> int:
        """Insert new (user, item, tag) rows; returns how many were new.

        Item ids are not checked: tags may describe items outside the catalog (Last.fm tags
        artists that its artist file lacks). Unknown users or tags raise StoreError.
        """

    @abc.abstractmethod
    def ingest(self, batch: RecordBatch) -> IngestReport:
        """Write a parsed import in one transaction, checking references.

        A reference to a user or item found neither in the store nor in the batch raises
        :class:`segue.errors.RowError` with the record's origin; the store is left unchanged.
        """

    @abc.abstractmethod
    def set_user_flags(self, user_id: str, **flags: bool) -> User:
        """Change consent/profile flags (``focus_mode``, ``kids_profile``, ``consent_*``)."""

    # -- reads ---------------------------------------------------------------------------
    @abc.abstractmethod
    def get_item(self, item_id: str) -> Item | None: ...

    @abc.abstractmethod
    def get_user(self, user_id: str) -> User | None: ...

    @abc.abstractmethod
    def iter_items(self, kind: ItemKind | None = None) -> Iterator[Item]: ...

    @abc.abstractmethod
    def iter_users(self) -> Iterator[User]: ...

    @abc.abstractmethod
    def existing_user_ids(self, ids: Iterable[str]) -> set[str]: ...

    @abc.abstractmethod
    def existing_item_ids(self, ids: Iterable[str]) -> set[str]: ...

    @abc.abstractmethod
    def count(self, table: str) -> int: ...

    @abc.abstractmethod
    def interactions(
        self,
        types: Sequence[EventType] | None = None,
        *,
        include_focus: bool = False,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> InteractionLog:
        """Events as a columnar log, oldest first; Focus-Mode events only if asked for.

        The vocabularies hold every user and item in the store (in key order), so ids of
        users without events still map to a row of the matrices built from it.
        """

    @abc.abstractmethod
    def user_events(
        self, user_id: str, start_ms: int | None = None, end_ms: int | None = None
    ) -> InteractionLog:
        """One user's events with ``start_ms <= ts < end_ms``, oldest first, Focus-Mode ones
        included (``log.focus`` marks them); an unknown user raises StoreError."""

    @abc.abstractmethod
    def friendships(self) -> list[tuple[str, str]]: ...

    @abc.abstractmethod
    def tags(self) -> dict[int, str]: ...

    @abc.abstractmethod
    def tag_assignments(self) -> list[tuple[str, str, int, int]]:
        """(user_id, item_id, tag_id, ts_ms) rows."""

    # -- next-best-action outbox (protocol in segue.store.outbox) -------------------------
    @abc.abstractmethod
    def outbox_add(self, messages: Sequence[OutboxMessage]) -> int:
        """Queue messages; a ``message_id`` already queued is ignored. Returns how many were new."""

    @abc.abstractmethod
    def outbox_claim(
        self, now_ms: int, lease_ms: int, limit: int, channels: Sequence[str] | None = None
    ) -> list[OutboxMessage]:
        """Claim due messages (pending, or sending with an expired lease) for one sender."""

    def outbox_extend(self, claim_token: str, now_ms: int, lease_ms: int) -> int:
        """Heartbeat of a live sender: lease its messages still ``sending`` under
        ``claim_token`` until ``now + lease``; how many it still holds."""
        raise NotImplementedError(f"{type(self).__name__} has no outbox heartbeat")

    @abc.abstractmethod
    def outbox_mark_sent(self, message_id: str, claim_token: str, now_ms: int) -> bool:
        """Mark a claimed message sent; False when the claim was lost to another sender."""

    @abc.abstractmethod
    def outbox_mark_failed(
        self, message_id: str, claim_token: str, error: str, retry_at_ms: int, max_attempts: int
    ) -> str | None:
        """Retry later or give up (``failed``); the new status, None if the claim was lost."""

    @abc.abstractmethod
    def outbox_counts(self, campaign: str | None = None) -> dict[str, int]: ...

    @abc.abstractmethod
    def outbox_recent(
        self, since_ms: int, user_ids: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Columns user_id, channel, item_id, created_ms, scheduled_ms of recent messages."""

    @abc.abstractmethod
    def outbox_messages(
        self, campaign: str | None = None, status: str | None = None
    ) -> list[OutboxMessage]: ...

    # -- the exposure log (see segue.store.exposures) -------------------------------------
    @abc.abstractmethod
    def add_exposures(self, rows: Sequence[Exposure]) -> int:
        """Record served lists; a request id already recorded is ignored. Returns how many
        were new."""

    @abc.abstractmethod
    def exposures_between(
        self, start_ms: int, end_ms: int, user_id: str | None = None
    ) -> list[Exposure]:
        """Lists served in ``[start_ms, end_ms)``, oldest first (one listener's with
        ``user_id``)."""

    # -- published lists of a registry version (see segue.store.published) ---------------
    @abc.abstractmethod
    def publish_lists(
        self, name: str, version: str, kind: str, lists: Iterable[PublishedList]
    ) -> int:
        """Replace every ``kind`` list of (name, version) in one transaction; returns the rows.
        A failure (a user listed twice, a lost connection) leaves the old rows in place."""

    @abc.abstractmethod
    def published_list(
        self, name: str, version: str, kind: str, user_id: str
    ) -> PublishedList | None: ...

    @abc.abstractmethod
    def published_counts(self, name: str, version: str) -> dict[str, int]:
        """Users with a list, per kind, for one version."""

    # -- per-track lyrics and audio files (see segue.store.media) ---------------------------
    @abc.abstractmethod
    def put_lyrics(self, rows: Iterable[StoredLyrics]) -> int:
        """Insert or replace tracks' lyrics in one transaction; an item the store does not
        hold fails the whole put. Returns the rows written."""

    @abc.abstractmethod
    def get_lyrics(self, item_id: str) -> StoredLyrics | None:
        """A track's lyrics row (one primary-key read), None when it has none."""

    @abc.abstractmethod
    def put_audio(self, rows: Iterable[AudioFile]) -> int:
        """Insert or replace tracks' audio file paths in one transaction."""

    @abc.abstractmethod
    def get_audio(self, item_id: str) -> AudioFile | None: ...

    @abc.abstractmethod
    def table_columns(self, table: str, columns: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored values of some columns of ``items`` or ``users`` in key order (the order of
        ``interactions()``'s vocabularies), without building a record per row: campaigns read
        every user. Lists are their JSON text, timestamps epoch ms, NULL is None."""

    @abc.abstractmethod
    def message_events(
        self, start_ms: int | None = None, end_ms: int | None = None
    ) -> InteractionLog:
        """Impression/open/click/conversion events with session_id, surface and source."""

    # -- one listener's data: export and erasure (see segue.store.privacy) ----------------
    @abc.abstractmethod
    def user_data(self, user_id: str) -> dict[str, Any] | None:
        """Profile, friends both ways, tag assignments, published lists, outbox messages and
        the event count of one listener, JSON-ready; None for an id the store does not know."""

    @abc.abstractmethod
    def iter_user_events(self, user_id: str) -> Iterator[dict[str, Any]]:
        """The listener's events, oldest first, read in chunks (bounded memory)."""

    @abc.abstractmethod
    def erase_user(self, user_id: str, now_ms: int) -> Erasure | None:
        """Delete every row about the listener and log a hash of the id; None if unknown."""

    @abc.abstractmethod
    def erased_user_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` the deletion log holds."""

    @abc.abstractmethod
    def export_parquet(
        self, table: str, path: Path, period: tuple[int, int] | None = None
    ) -> int:
        """Write one table to a Parquet file (atomically); returns the row count. ``period``
        (``start_ms``, ``end_ms``): only that time's events or exposures."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
