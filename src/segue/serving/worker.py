"""The event worker: bus -> store -> online state, then acknowledge.

Order matters. Each batch is first persisted (the store is the record of truth, from which
models are trained), then applied to the online state, and only when both succeeded does the
handler return so that the bus acknowledges it. A crash anywhere before the acknowledgement
means the batch is delivered again (to this consumer, or to another after :meth:`reclaim`).
Redelivery counts nothing twice: the store ignores event ids it already has and the state
remembers the ids it applied. For that reason the state is given *every* accepted event of a
batch, not only those the store reported as new: after a crash between persisting and
applying, the redelivered events are old to the store but still new to the state.

Two kinds of event need care:

* **Unknown user.** A brand-new listener's first events can reach the bus before (or without)
  any signup record in the store, e.g. when the API creates listeners lazily or the signup
  sync lags. Rejecting them would lose exactly the events cold-start recommendations need, so
  the worker creates a minimal :class:`User` first: ``signup_at`` is the user's earliest event
  time in the batch (the first moment we know they existed), every other field keeps the
  model's conservative default (no push/email consent). A later real signup upserts over it.
* **Unknown item.** An event naming an item the catalog lacks cannot be stored (events
  reference items) and retrying will not fix it, so it is *poison*: if it blocked the batch,
  the bus would redeliver it forever and the stream would stall. The worker persists and
  applies the rest, acknowledges the bad ones with the batch (there is no dead-letter queue
  yet) and reports them in :attr:`WorkerReport.rejected` and in the log, where an operator
  can find them (the Redis stream still holds the message until it is trimmed).

Focus-Mode events are persisted (the listener did hear them) and passed to the state, whose
``apply`` ignores them, so they never shape the live profile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from segue.data.model import Event, User
from segue.online.bus import EventBus
from segue.online.state import OnlineState
from segue.store import Store

log = logging.getLogger(__name__)

#: After this long, an unknown item id triggers a reload of the whole item cache (so changed
#: artists/genres are picked up); sooner, only the unknown ids are looked up, so a stream of
#: poison events cannot make every batch rescan the catalog.
ITEM_REFRESH_S = 60.0


@dataclass
class WorkerReport:
    """What one batch did.

    ``persisted`` counts events new to the store, ``applied`` those new to the state (both
    are 0 for a fully redelivered batch), ``created_users`` the minimal users created.
    ``rejected`` holds ``(event_id, reason)`` for poison events that were acknowledged
    without being stored.
    """

    received: int = 0
    persisted: int = 0
    applied: int = 0
    created_users: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _ItemInfo:
    artist_id: str | None
    genres: tuple[str, ...]


class EventWorker:
    """One consumer of the bus: persists events, updates the online state, then acks."""

    def __init__(
        self,
        bus: EventBus,
        store: Store,
        state: OnlineState,
        *,
        group: str = "persist",
        consumer: str = "worker-1",
        item_refresh_s: float = ITEM_REFRESH_S,
    ) -> None:
        self.bus = bus
        self.store = store
        self.state = state
        self.group = group
        self.consumer = consumer
        self.item_refresh_s = item_refresh_s
        self._items: dict[str, _ItemInfo] | None = None  # loaded on first use
        self._items_loaded_at = 0.0

    # -- public --------------------------------------------------------------------------
    def run_once(self, max_batch: int = 500, *, block_ms: int | None = None) -> WorkerReport:
        """Handle one batch (this consumer's pending messages first); an empty report if none.

        If the store or the state raises, the exception propagates and the batch stays
        pending, to be retried by the next ``run_once`` or taken over via :meth:`reclaim`.
        """
        reports: list[WorkerReport] = []
        self.bus.consume(
            self.group,
            self.consumer,
            lambda events: reports.append(self.handle(events)),
            max_batch=max_batch,
            block_ms=block_ms,
        )
        return reports[0] if reports else WorkerReport()

    def reclaim(self, min_idle_ms: int) -> int:
        """Take over messages of crashed consumers idle for ``min_idle_ms``; returns how many."""
        return self.bus.reclaim(self.group, self.consumer, min_idle_ms)

    def refresh_items(self) -> None:
        """Reload the item cache (artist and genres per item) from the store."""
        self._items = {
            item.id: _ItemInfo(item.artist_id, item.genres) for item in self.store.iter_items()
        }
        self._items_loaded_at = time.monotonic()

    def handle(self, events: Sequence[Event]) -> WorkerReport:
        """Persist, then apply one batch; the bus handler. Raises to leave the batch pending."""
        report = WorkerReport(received=len(events))
        items = self._item_info({e.item_id for e in events})
        accepted: list[Event] = []
        for event in events:
            if event.item_id in items:
                accepted.append(event)
            else:
                reason = f"unknown item {event.item_id!r} (not in the store's catalog)"
                report.rejected.append((event.event_id, reason))
                log.warning(
                    "event %s of user %s rejected and acknowledged: %s",
                    event.event_id,
                    event.user_id,
                    reason,
                )
        if not accepted:
            return report
        with self.store.transaction():
            new_users = self._missing_users(accepted)
            if new_users:
                self.store.upsert_users(new_users)
            report.created_users = len(new_users)
            report.persisted = self.store.add_events(accepted)
        report.applied = self.state.apply(
            accepted,
            artist_of={i: info.artist_id for i, info in items.items() if info.artist_id},
            genres_of={i: info.genres for i, info in items.items() if info.genres},
        )
        return report

    # -- internals -----------------------------------------------------------------------
    def _item_info(self, ids: set[str]) -> dict[str, _ItemInfo]:
        """Artist and genres of the known ids among ``ids``; unknown ones are left out."""
        if self._items is None:
            self.refresh_items()
        assert self._items is not None
        missing = ids - self._items.keys()
        if missing:
            if time.monotonic() - self._items_loaded_at >= self.item_refresh_s:
                self.refresh_items()
            else:
                for item_id in missing:
                    item = self.store.get_item(item_id)
                    if item is not None:
                        self._items[item.id] = _ItemInfo(item.artist_id, item.genres)
        return {i: self._items[i] for i in ids if i in self._items}

    def _missing_users(self, events: Sequence[Event]) -> list[User]:
        """Minimal users for the events' unknown user ids, signed up at their first event.

        Checked inside the write transaction to keep the window small in which a real signup
        could land between the check and the upsert (and be overwritten by the minimal user).
        """
        first_seen: dict[str, Event] = {}
        for event in events:
            seen = first_seen.get(event.user_id)
            if seen is None or event.timestamp < seen.timestamp:
                first_seen[event.user_id] = event
        known = self.store.existing_user_ids(first_seen)
        return [
            User(id=uid, signup_at=event.timestamp)
            for uid, event in first_seen.items()
            if uid not in known
        ]
