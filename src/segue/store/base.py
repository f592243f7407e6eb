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

#: Tables a user can count or export.
TABLES = ("items", "users", "events", "friendships", "tags", "tag_assignments")


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
    def friendships(self) -> list[tuple[str, str]]: ...

    @abc.abstractmethod
    def tags(self) -> dict[int, str]: ...

    @abc.abstractmethod
    def tag_assignments(self) -> list[tuple[str, str, int, int]]:
        """(user_id, item_id, tag_id, ts_ms) rows."""

    @abc.abstractmethod
    def export_parquet(self, table: str, path: Path) -> int:
        """Write one table to a Parquet file (atomically); returns the row count."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
