"""Accepting events at serving time: check, mark Focus Mode, publish, and make them count now.

Why events are applied to the online state *here*, before any worker has persisted them: the
listener's next request, milliseconds later, must already know about the skip (the freshness
target is 100 ms). The bus then carries them to the workers that persist them and apply them
again, which changes nothing because the state remembers applied event ids. The store stays
the record of truth: only events whose items exist are accepted, so a worker never has to
reject what the API already acknowledged.

Degradation: when the bus cannot be reached, :class:`EventIntake` persists the batch itself
(the same :meth:`EventWorker.handle` a worker would run), so nothing accepted is lost; the
caller is told via ``path="direct"``.

Erased listeners: events naming an id the store does not know but whose erasure it logged
(:mod:`segue.store.privacy`) are left out, so that a client still sending them does not bring
the listener back into the online state or the store.

Focus Mode: events of a user whose profile has Focus Mode on are marked ``focus=True`` before
anything else sees them, so they are stored as "heard, not for personalisation" and the state
ignores them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from segue.data.model import Event, User
from segue.errors import SegueError
from segue.online.bus import BusUnavailable, EventBus, TransientFailure
from segue.online.state import OnlineState, StateUnavailable
from segue.serving.holder import ModelHolder, UserCache
from segue.serving.worker import EventWorker
from segue.store import Store

log = logging.getLogger(__name__)


class UnknownItemsError(SegueError):
    """Events name items that neither the served model nor the store knows."""


@dataclass(frozen=True)
class IntakeReport:
    accepted: int
    focus: int
    applied: int
    path: str  # "bus" or "direct"


class EventIntake:
    """The API's door for events; see the module docstring."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        state: OnlineState,
        models: ModelHolder,
        *,
        users: UserCache | None = None,
        on_direct: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.users = users or UserCache(store, ttl_s=0.0)
        self.bus = bus
        self.state = state
        self.models = models
        self._direct = EventWorker(bus, store, state, consumer="intake-direct")
        self._on_direct = on_direct or (lambda reason: None)

    def warm(self) -> None:
        """Load the direct path's item cache now: done on the first event of a Redis outage,
        by every request thread at once, it held those requests for seconds (measured: 4 s
        for 15k items under 20 req/s)."""
        self._direct.refresh_items()

    def accept(self, events: Sequence[Event]) -> IntakeReport:
        events = list(events)
        if not events:
            return IntakeReport(0, 0, 0, "bus")
        self._check_items(events)
        users = {uid: self.users.get(uid) for uid in {e.user_id for e in events}}
        events = self._drop_erased(events, users)
        if not events:
            return IntakeReport(0, 0, 0, "bus")
        events, focus = self._mark_focus(events, users)
        model = self.models.loaded  # None before the first training: events still flow
        applied = 0
        try:
            self.bus.publish(events)
            path = "bus"
        except BusUnavailable as exc:
            log.warning(
                "event bus unavailable, persisting %d events directly: %s", len(events), exc
            )
            self._on_direct(str(exc))
            report = self._direct.handle(events)  # persists and applies the state
            return IntakeReport(len(events), focus, report.applied, "direct")
        if model is None:  # the worker applies them with the store's artists and genres
            return IntakeReport(len(events), focus, 0, path)
        try:
            applied = self.state.apply(events, artist_of=model.artist_of, genres_of=model.genres_of)
        except StateUnavailable as exc:  # the worker applies them once the state is back
            log.warning("online state unavailable while accepting events: %s", exc)
        return IntakeReport(len(events), focus, applied, path)

    def _check_items(self, events: list[Event]) -> None:
        model = self.models.loaded
        known = model.items if model is not None else {}
        unknown = {e.item_id for e in events if e.item_id not in known}
        if unknown:
            unknown -= self.store.existing_item_ids(unknown)
        if unknown:
            where = [
                f"events[{i}].item_id={e.item_id!r}"
                for i, e in enumerate(events)
                if e.item_id in unknown
            ]
            raise UnknownItemsError(
                f"{len(where)} event(s) name items not in the catalog: {', '.join(where[:5])}"
                + (" ..." if len(where) > 5 else "")
                + "; add the items first (nothing in this batch was accepted)"
            )

    def _drop_erased(self, events: list[Event], users: dict[str, User | None]) -> list[Event]:
        """Leave out events of erased listeners (unknown to the store, in its deletion log):
        neither the state nor the stream gets them, so nothing re-creates the listener."""
        unknown = {uid for uid, user in users.items() if user is None}
        erased = self.store.erased_user_ids(unknown) if unknown else set()
        return [e for e in events if e.user_id not in erased] if erased else events

    @staticmethod
    def _mark_focus(
        events: list[Event], users: dict[str, User | None]
    ) -> tuple[list[Event], int]:
        focus_users = {uid for uid, user in users.items() if user is not None and user.focus_mode}
        out = [
            e.model_copy(update={"focus": True}) if e.user_id in focus_users and not e.focus else e
            for e in events
        ]
        return out, sum(e.focus for e in out)


class Repeats:
    """Log a trouble once, then a summary every ``every_s`` while it lasts, then its end.

    An outage is an expected outcome for a serving process: with Redis gone the worker loop
    fails every second, and a line (or a traceback) each time buried everything else in the
    log (1,446 lines in 50 s). The first occurrence of each kind of trouble (``key``) is
    logged at WARNING with its detail; repeats go to DEBUG, with a WARNING summary every
    ``every_s`` seconds; :meth:`over` logs how long it lasted.
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log, self.what, self.every_s, self._clock = logger, what, every_s, clock
        self._key: str | None = None
        self._since = self._reported = 0.0
        self._repeats = 0

    def trouble(self, key: str, message: str, *, exc_info: BaseException | None = None) -> None:
        now = self._clock()
        if key != self._key:
            self._key, self._since, self._reported, self._repeats = key, now, now, 0
            self.log.warning("%s: %s", self.what, message, exc_info=exc_info)
            return
        self._repeats += 1
        self.log.debug("%s: %s", self.what, message, exc_info=exc_info)
        if now - self._reported >= self.every_s:
            self.log.warning(
                "%s: still %s (%d more time(s) in %.0f s; since %.0f s)",
                self.what,
                message,
                self._repeats,
                now - self._reported,
                now - self._since,
            )
            self._reported, self._repeats = now, 0

    def over(self) -> None:
        if self._key is not None:
            lasted = self._clock() - self._since
            self.log.warning("%s: running again after %.0f s", self.what, lasted)
            self._key = None


class BackgroundWorker:
    """An :class:`EventWorker` loop in a daemon thread of the serving process.

    Embedded mode needs it (the in-process bus exists only inside this process); in Redis mode
    each API process runs one as another consumer of the group, so persisting scales with the
    processes, and a separate ``segue worker`` is optional. The worker takes over idle
    pending messages of dead consumers itself (``EventWorker.reclaim_idle_ms``); a poison
    message is dead-lettered by the bus, so only outages reach this loop, which then waits a
    second.
    """

    def __init__(
        self,
        worker: EventWorker,
        *,
        batch: int = 500,
        block_ms: int = 200,
        on_report: Callable[[int, int], None] | None = None,
        retry_s: float = 1.0,
        log_every_s: float = 30.0,
    ) -> None:
        self.worker = worker
        self.batch = batch
        self.block_ms = block_ms
        self.retry_s = retry_s
        self._repeats = Repeats(log, "event worker", every_s=log_every_s)
        self._on_report = on_report or (lambda persisted, rejected: None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="segue-events", daemon=True)
            self._thread.start()

    def drain(self, timeout_s: float = 10.0) -> None:
        """Handle what is on the bus now (tests, shutdown); stops early on an empty batch."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            report = self.worker.run_once(self.batch)
            self._on_report(report.persisted, len(report.rejected))
            if report.received == 0:
                return

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                report = self.worker.run_once(self.batch, block_ms=self.block_ms)
                self._on_report(report.persisted, len(report.rejected))
                self._repeats.over()
            except (TransientFailure, BusUnavailable) as exc:  # an outage: wait, retry
                self._repeats.trouble(type(exc).__name__, f"waiting: {exc}")
                self._stop.wait(self.retry_s)
            except Exception as exc:  # keep consuming; the batch stays pending and is retried
                key = f"{type(exc).__name__}: {exc}"
                self._repeats.trouble(key, f"batch failed, retrying: {key}", exc_info=exc)
                self._stop.wait(self.retry_s)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
