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
* **Erased listener.** An unknown user id that the store's deletion log holds (the listener
  was erased, :mod:`segue.store.privacy`) is not created again: their events are dropped and
  acknowledged (``rejected`` with reason "erased listener"), until a real signup brings the
  id back; so are the lists served to them that were still on the exposures stream.
* **Unknown item.** An event naming an item the catalog lacks cannot be stored (events
  reference items) and retrying will not fix it, so it is *poison*: if it blocked the batch,
  the bus would redeliver it forever and the stream would stall. The worker persists and
  applies the rest and returns the bad ones to the bus as poison
  (:attr:`WorkerReport.poison`), which moves them to the dead letters at once; they are
  also in :attr:`WorkerReport.rejected` and the log. Once the item exists,
  ``segue events dead replay`` stores them.

Anything else that fails (an event the store refuses) makes the handler raise; the bus then
bisects the batch, so the good events are stored and only the bad one is counted against
its attempts and dead-lettered after ``Settings.dead_letter_after`` (see
:mod:`segue.online.bus`). An outage instead (the store or the online state unreachable, a
lock or statement timeout) is raised as :class:`~segue.online.bus.TransientFailure`: nothing
is counted and the batch waits for the next try.

**Takeover.** :meth:`EventWorker.run_once` claims, every few seconds, the group's messages
pending longer than ``reclaim_idle_ms`` (``Settings.reclaim_idle_s``, default 30 s) for any
consumer, so a replacement worker under any name picks up what a dead one left, without a
restart.

Focus-Mode events are persisted (the listener did hear them) and passed to the state, whose
``apply`` ignores them, so they never shape the live profile.

**Exposures.** Given the ``exposures`` stream's bus, each :meth:`EventWorker.run_once` also
takes a batch of served lists off it (without waiting: the events' read already waited) and
writes them to the store (:meth:`EventWorker.store_exposures`), idempotent by request id, then
acknowledges; an outage is a :class:`~segue.online.bus.TransientFailure` as for events, and a
record the store refuses is isolated and dead-lettered by the bus in the same way. Idle
pending exposures of a dead consumer are taken over with its events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from segue.data.model import Event, User
from segue.online.bus import BusUnavailable, EventBus, TransientFailure
from segue.online.state import OnlineState, StateUnavailable
from segue.serving.exposures import check_exposure
from segue.store import Store
from segue.store.exposures import Exposure

log = logging.getLogger(__name__)

#: After this long, an unknown item id triggers a reload of the whole item cache (so changed
#: artists/genres are picked up); sooner, only the unknown ids are looked up, so a stream of
#: poison events cannot make every batch rescan the catalog.
ITEM_REFRESH_S = 60.0

#: Messages pending this long for any consumer are taken over (``Settings.reclaim_idle_s``).
RECLAIM_IDLE_MS = 30_000

#: Failures that say "not now" rather than "not this event": the store or state unreachable,
#: a lock or statement timeout. They never count against a message's attempts.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    StateUnavailable,
    BusUnavailable,
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.DisconnectionError,
    sa.exc.TimeoutError,
    ConnectionError,
    TimeoutError,
)


@dataclass
class WorkerReport:
    """What one batch did.

    ``persisted`` counts events new to the store, ``applied`` those new to the state (both
    are 0 for a fully redelivered batch), ``created_users`` the minimal users created.
    ``rejected`` holds ``(event_id, reason)`` for events that were acknowledged without
    being stored; ``poison`` the batch positions of those among them that go to the dead
    letters (unknown items), with the reason. ``received`` is the number of messages taken
    off the bus (``run_once``), failed ones included, of both streams; ``exposures`` counts
    the served lists new to the store.
    """

    received: int = 0
    exposures: int = 0
    persisted: int = 0
    applied: int = 0
    created_users: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    poison: dict[int, str] = field(default_factory=dict)

    def add(self, other: WorkerReport) -> None:
        """Sum another part of the same batch into this report (``poison`` is per call)."""
        self.persisted += other.persisted
        self.exposures += other.exposures
        self.applied += other.applied
        self.created_users += other.created_users
        self.rejected.extend(other.rejected)


@dataclass(frozen=True)
class _ItemInfo:
    artist_id: str | None
    genres: tuple[str, ...]


#: Served lists per store call for the worker inside a serving process (see
#: ``EventWorker.exposure_slice``): ~1.5 ms of interpreter time a slice.
SERVING_EXPOSURE_SLICE = 16


def store_exposures(store: Store, exposures: Sequence[Exposure]) -> int:
    """Write served lists to the store, as every consumer of the exposures stream does;
    returns how many were new. An outage is raised as :class:`TransientFailure` (left
    pending)."""
    for exposure in exposures:  # a bad record fails its batch; the bus isolates it
        check_exposure(exposure)
    try:
        erased = store.erased_user_ids({e.user_id for e in exposures})
        # a list served just before its listener was erased reaches the store after the
        # erasure: it is dropped, as their events are (unless the id signed up again)
        gone = {u for u in erased if store.get_user(u) is None}
        kept = [e for e in exposures if e.user_id not in gone]
        return store.add_exposures(kept) if kept else 0
    except TRANSIENT_ERRORS as exc:
        raise TransientFailure(
            f"cannot store exposures now ({type(exc).__name__}: {exc}); the batch stays pending"
        ) from exc


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
        reclaim_idle_ms: int | None = RECLAIM_IDLE_MS,
        exposures: EventBus[Exposure] | None = None,
        exposure_slice: int | None = None,
    ) -> None:
        self.bus = bus
        #: the served lists' stream (``None``: this worker stores events only)
        self.exposures = exposures
        #: served lists stored per store call, the GIL given up between calls (``None``: the
        #: whole batch at once). A worker inside the serving process takes small slices: one
        #: call holds the interpreter for its Python work (~80 µs a list), and a request
        #: arriving meanwhile waits for it, up to the interpreter's 5 ms switch interval.
        self.exposure_slice = exposure_slice
        self.store = store
        self.state = state
        self.group = group
        self.consumer = consumer
        self.item_refresh_s = item_refresh_s
        #: ``None``: never take over other consumers' messages in :meth:`run_once`.
        self.reclaim_idle_ms = reclaim_idle_ms
        #: How often :meth:`run_once` looks for idle messages: a fraction of the threshold,
        #: at most every 5 s.
        self.reclaim_every_s = (
            0.0 if reclaim_idle_ms is None else min(5.0, max(0.05, reclaim_idle_ms / 4000))
        )
        self._last_reclaim = float("-inf")
        self._items: dict[str, _ItemInfo] | None = None  # loaded on first use
        self._items_loaded_at = 0.0

    # -- public --------------------------------------------------------------------------
    def run_once(self, max_batch: int = 500, *, block_ms: int | None = None) -> WorkerReport:
        """Handle one batch (this consumer's pending messages first); an empty report if none.

        First, when due, takes over messages idle longer than ``reclaim_idle_ms`` (see
        :meth:`reclaim_if_due`). A failing event is isolated by the bus and dead-lettered
        after its attempts; an outage of the store or state raises
        :class:`~segue.online.bus.TransientFailure` and leaves the batch pending.
        """
        self.reclaim_if_due()
        total = WorkerReport()

        def handler(events: list[Event]) -> dict[int, str]:
            try:
                # the catalog first: if it cannot be loaded (the store down, or a row the
                # rules refuse), that is no event's fault and must not count against any
                if self._items is None:
                    self.refresh_items()
            except Exception as exc:
                raise TransientFailure(
                    f"cannot read the item catalog ({type(exc).__name__}: {exc}); "
                    "the batch stays pending"
                ) from exc
            try:
                report = self.handle(events)
            except TRANSIENT_ERRORS as exc:
                raise TransientFailure(
                    f"cannot persist events now ({type(exc).__name__}: {exc}); "
                    "the batch stays pending"
                ) from exc
            total.add(report)
            return report.poison

        total.received = self.bus.consume(
            self.group, self.consumer, handler, max_batch=max_batch, block_ms=block_ms
        )
        if self.exposures is not None:

            def store(exposures: list[Exposure]) -> None:
                total.exposures += self.store_exposures(exposures)

            step = min(self.exposure_slice or max_batch, max_batch)
            taken = 0
            while taken < max_batch:
                n = self.exposures.consume(
                    self.group, self.consumer, store, max_batch=min(step, max_batch - taken)
                )
                taken += n
                if n < step:
                    break
                time.sleep(0)  # between slices: a waiting request takes the interpreter
            total.received += taken
        return total

    def store_exposures(self, exposures: Sequence[Exposure]) -> int:
        """:func:`store_exposures` into this worker's store (the exposures stream's handler)."""
        return store_exposures(self.store, exposures)

    def reclaim(self, min_idle_ms: int) -> int:
        """Take over messages of any consumer idle for ``min_idle_ms``, on both streams;
        returns how many."""
        moved = self.bus.reclaim(self.group, self.consumer, min_idle_ms)
        if self.exposures is not None:
            moved += self.exposures.reclaim(self.group, self.consumer, min_idle_ms)
        self._last_reclaim = time.monotonic()
        if moved:
            log.info("%s took over %d idle pending message(s)", self.consumer, moved)
        return moved

    def reclaim_if_due(self, *, force: bool = False) -> int:
        """:meth:`reclaim` with ``reclaim_idle_ms`` if the last one is ``reclaim_every_s`` ago
        (or ``force``); 0 when not due or disabled."""
        if self.reclaim_idle_ms is None:
            return 0
        if not force and time.monotonic() - self._last_reclaim < self.reclaim_every_s:
            return 0
        return self.reclaim(self.reclaim_idle_ms)

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
        for position, event in enumerate(events):
            if event.item_id in items:
                accepted.append(event)
            else:
                reason = f"unknown item {event.item_id!r} (not in the store's catalog)"
                report.rejected.append((event.event_id, reason))
                report.poison[position] = reason
                log.warning(
                    "event %s of user %s rejected (to the dead letters): %s",
                    event.event_id,
                    event.user_id,
                    reason,
                )
        if not accepted:
            return report
        with self.store.transaction():
            new_users = self._missing_users(accepted)
            erased = self.store.erased_user_ids(u.id for u in new_users) if new_users else set()
            if erased:
                accepted = self._drop_erased(accepted, erased, report)
                new_users = [u for u in new_users if u.id not in erased]
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

    @staticmethod
    def _drop_erased(events: list[Event], erased: set[str], report: WorkerReport) -> list[Event]:
        """Events of erased listeners (in the deletion log, not signed up again) are dropped
        and acknowledged, not stored under a re-created listener."""
        for event in events:
            if event.user_id in erased:
                report.rejected.append((event.event_id, "erased listener"))
        log.info("dropped events of %d erased listener(s)", len(erased))
        return [e for e in events if e.user_id not in erased]

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
