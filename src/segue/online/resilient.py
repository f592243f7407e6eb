"""Online state and bus that survive Redis going away: Redis when it answers, else in-process.

Why: the service must keep answering when Redis is unreachable (the real-time issue's
"degradation, not errors"), and answer *quickly*: a stopped (SIGSTOP) Redis accepts
connections and never replies. Every Redis call is bounded by a short socket timeout
(:mod:`segue.online.redis_client`), and a :class:`CircuitBreaker` shared by the state and the
bus of one Redis opens on the first failure: from then on no request touches Redis, reads and
writes go to an in-process :class:`InProcessState` and events are persisted directly, so the
session a listener builds during the outage still shapes their next request on this process.
Only the requests in flight when Redis stopped pay the timeout. While open, a background
thread probes Redis every ``retry_after_s``; the first answer closes the breaker and requests
go back to Redis, without a restart. What was written to the in-process state during an outage
is not copied back: the store keeps every event, and the live state is short-lived by nature
(sessions end after 30 minutes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

import numpy as np

from segue.data.model import Event
from segue.online.bus import BusUnavailable, DeadLetter, EventBus, Handler
from segue.online.state import (
    SESSION_TIMEOUT_MS,
    BatchList,
    BatchRow,
    InProcessState,
    OnlineState,
    SessionState,
    StateUnavailable,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class CircuitBreaker:
    """Closed: calls go to Redis. Open: callers skip Redis at once, and a daemon thread calls
    ``probe()`` every ``retry_after_s`` until it returns without raising, which closes it.

    ``on_change(open)`` is told when the breaker opens or closes (metrics, readiness). One
    breaker serves every client of one Redis server in a process (state and bus), so the
    first failure of either stops both from waiting on it.
    """

    def __init__(
        self,
        probe: Callable[[], object],
        *,
        retry_after_s: float = 1.0,
        name: str = "redis",
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.retry_after_s = retry_after_s
        self.name = name
        self._probe = probe
        self._on_change = on_change or (lambda is_open: None)
        self._open = False
        self._lock = threading.Lock()
        self._closed_event = threading.Event()  # set on close(): stops the prober
        self._thread: threading.Thread | None = None
        self.trips = 0

    @property
    def open(self) -> bool:
        return self._open

    def allow(self) -> bool:
        """True while calls may go to Redis."""
        return not self._open

    def trip(self, exc: BaseException) -> None:
        """A call failed: open (if closed) and start probing."""
        with self._lock:
            if self._open or self._closed_event.is_set():
                return
            self._open = True
            self.trips += 1
            log.warning("%s unavailable, using the fallbacks: %s", self.name, exc)
            self._thread = threading.Thread(
                target=self._probe_until_up, name=f"segue-{self.name}-probe", daemon=True
            )
            self._thread.start()
        self._on_change(True)

    def _probe_until_up(self) -> None:
        while not self._closed_event.wait(self.retry_after_s):
            try:
                self._probe()
            except Exception as exc:  # still down (any failure: the probe must not die)
                log.debug("%s still unavailable: %s", self.name, exc)
                continue
            with self._lock:
                self._open = False
                self._thread = None
            log.warning("%s reachable again", self.name)
            self._on_change(False)
            return

    def close(self) -> None:
        """Stop probing (the process is shutting down)."""
        self._closed_event.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=self.retry_after_s + 5)


class ResilientState(OnlineState):
    """Delegates to ``connect()``'s state (Redis), falling back to in-process while it fails.

    ``breaker``: the circuit breaker of that Redis (shared with its bus); without one the
    state makes its own, probing by connecting anew. ``on_degraded(True/False)``
    is called when the mode changes, for metrics and health.
    """

    def __init__(
        self,
        connect: Callable[[], OnlineState],
        *,
        breaker: CircuitBreaker | None = None,
        retry_after_s: float = 5.0,
        session_timeout_ms: int = SESSION_TIMEOUT_MS,
        on_degraded: Callable[[bool], None] | None = None,
    ) -> None:
        super().__init__(session_timeout_ms=session_timeout_ms)
        self._connect = connect
        self.fallback = InProcessState(session_timeout_ms=session_timeout_ms)
        self._on_degraded = on_degraded or (lambda degraded: None)
        self._own_breaker = breaker is None
        self.breaker = breaker or CircuitBreaker(
            self._probe, retry_after_s=retry_after_s, name="online state"
        )
        self.retry_after_s = self.breaker.retry_after_s
        self._primary: OnlineState | None = None
        self._degraded = False
        self._lock = threading.Lock()

    @property
    def degraded(self) -> bool:
        """True while answering from the in-process fallback."""
        return self.breaker.open

    def _probe(self) -> None:
        """Connect anew (the connection checks that Redis answers); keep the new one."""
        fresh = self._connect()
        with self._lock:
            old, self._primary = self._primary, fresh
        if old is not None:
            old.close()

    def _run(self, call: Callable[[OnlineState], T]) -> T:
        primary = self._usable_primary()
        if primary is not None:
            try:
                result = call(primary)
            except StateUnavailable as exc:
                self._mark_down(exc)
            else:
                self._mark_up()
                return result
        return call(self.fallback)

    def _usable_primary(self) -> OnlineState | None:
        if not self.breaker.allow():
            return None
        if self._primary is None:
            with self._lock:
                if self._primary is None:
                    try:
                        self._primary = self._connect()
                    except StateUnavailable as exc:
                        self._mark_down(exc)
                        return None
        return self._primary

    def _mark_down(self, exc: Exception) -> None:
        self.breaker.trip(exc)
        if not self._degraded:
            self._degraded = True
            self._on_degraded(True)

    def _mark_up(self) -> None:
        if self._degraded:
            self._degraded = False
            self._on_degraded(False)

    def apply(
        self,
        events: Sequence[Event],
        *,
        artist_of: Mapping[str, str] | None = None,
        genres_of: Mapping[str, Sequence[str]] | None = None,
    ) -> int:
        return self._run(lambda s: s.apply(events, artist_of=artist_of, genres_of=genres_of))

    def recent_plays(self, user_id: str, n: int = 50) -> list[str]:
        return self._run(lambda s: s.recent_plays(user_id, n))

    def session(self, user_id: str, now_ms: int | None = None) -> SessionState | None:
        return self._run(lambda s: s.session(user_id, now_ms))

    def for_request(
        self, user_id: str, n: int, now_ms: int | None = None
    ) -> tuple[list[str], SessionState | None, tuple[list[str], list[str]]]:
        return self._run(lambda s: s.for_request(user_id, n, now_ms))

    def last_context(self, user_id: str) -> dict[str, object]:
        return self._run(lambda s: s.last_context(user_id))

    def set_vector(self, user_id: str, vector: np.ndarray) -> None:
        self._run(lambda s: s.set_vector(user_id, vector))

    def get_vector(self, user_id: str) -> np.ndarray | None:
        return self._run(lambda s: s.get_vector(user_id))

    def item_counts(self, item_ids: Sequence[str], now_ms: int) -> tuple[np.ndarray, np.ndarray]:
        return self._run(lambda s: s.item_counts(item_ids, now_ms))

    def set_onboarding(self, user_id: str, items: Sequence[str], genres: Sequence[str]) -> None:
        self._run(lambda s: s.set_onboarding(user_id, items, genres))

    def onboarding(self, user_id: str) -> tuple[list[str], list[str]]:
        return self._run(lambda s: s.onboarding(user_id))

    def set_batch_lists(self, name: str, version: str, rows: Iterable[BatchRow]) -> int:
        rows = list(rows)  # may be replayed into the fallback when Redis fails half-way
        return self._run(lambda s: s.set_batch_lists(name, version, rows))

    def batch_list(self, user_id: str, name: str) -> BatchList | None:
        return self._run(lambda s: s.batch_list(user_id, name))

    def forget_user(self, user_id: str) -> int:
        """Forgets in both: the in-process fallback (what an outage left there) and Redis,
        tried even while the breaker is open: an erasure that cannot reach Redis raises
        :class:`StateUnavailable` instead of reporting success."""
        forgot = self.fallback.forget_user(user_id)
        with self._lock:
            if self._primary is None:
                self._primary = self._connect()  # StateUnavailable propagates
            primary = self._primary
        try:
            forgot += primary.forget_user(user_id)
        except StateUnavailable as exc:
            self._mark_down(exc)
            raise
        return forgot

    def export_user(self, user_id: str) -> dict[str, object]:
        return self._run(lambda s: s.export_user(user_id))

    def close(self) -> None:
        if self._own_breaker:
            self.breaker.close()
        if self._primary is not None:
            self._primary.close()
        self.fallback.close()


class ReconnectingBus(EventBus):
    """A bus opened on first use and re-opened after failures.

    Lets a service start while Redis is down: publishing raises :class:`BusUnavailable` (the
    intake then stores events directly) at once while ``breaker`` is open, and until Redis
    answers again. Without a breaker of its own Redis's, the bus makes one that retries the
    connection every ``retry_after_s``.
    """

    def __init__(
        self,
        connect: Callable[[], EventBus],
        *,
        breaker: CircuitBreaker | None = None,
        retry_after_s: float = 5.0,
    ) -> None:
        self._connect = connect
        self._own_breaker = breaker is None
        self.breaker = breaker or CircuitBreaker(
            self._probe, retry_after_s=retry_after_s, name="event bus"
        )
        self.retry_after_s = self.breaker.retry_after_s
        self._bus: EventBus | None = None
        self._lock = threading.Lock()

    @property
    def connected(self) -> bool:
        return self._bus is not None and self.breaker.allow()

    def _probe(self) -> None:
        """Connect anew (the connection checks that Redis answers); keep the new one."""
        fresh = self._connect()
        with self._lock:
            old, self._bus = self._bus, fresh
        if old is not None:
            old.close()

    def _get(self) -> EventBus:
        if not self.breaker.allow():
            raise BusUnavailable("the event bus is marked down; retrying shortly")
        with self._lock:
            if self._bus is None:
                try:
                    self._bus = self._connect()
                except BusUnavailable as exc:
                    self.breaker.trip(exc)
                    raise
            return self._bus

    def _run(self, call: Callable[[EventBus], T]) -> T:
        bus = self._get()
        try:
            return call(bus)
        except BusUnavailable as exc:
            self.breaker.trip(exc)
            raise

    def publish(self, events: Sequence[Event]) -> int:
        return self._run(lambda b: b.publish(events))

    def consume(
        self,
        group: str,
        consumer: str,
        handler: Handler,
        *,
        max_batch: int = 500,
        block_ms: int | None = None,
    ) -> int:
        return self._run(
            lambda b: b.consume(group, consumer, handler, max_batch=max_batch, block_ms=block_ms)
        )

    def reclaim(self, group: str, consumer: str, min_idle_ms: int) -> int:
        return self._run(lambda b: b.reclaim(group, consumer, min_idle_ms))

    def pending(self, group: str) -> int:
        return self._run(lambda b: b.pending(group))

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        return self._run(lambda b: b.dead_letters(limit))

    def dead_count(self) -> int:
        return self._run(lambda b: b.dead_count())

    def replay_dead(self, ids: Sequence[str] | None = None) -> list[str]:
        return self._run(lambda b: b.replay_dead(ids))

    def drop_dead(self, ids: Sequence[str] | None = None) -> list[str]:
        return self._run(lambda b: b.drop_dead(ids))

    def close(self) -> None:
        if self._own_breaker:
            self.breaker.close()
        if self._bus is not None:
            self._bus.close()
