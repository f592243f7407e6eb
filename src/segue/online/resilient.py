"""Online state and bus that survive Redis going away: Redis when it answers, else in-process.

Why: the service must keep answering when Redis is unreachable (the real-time issue's
"degradation, not errors"). A failed Redis call marks Redis *down* for ``retry_after_s``; while
down, reads and writes go to an in-process :class:`InProcessState`, so the session a listener
builds during the outage still shapes their next request on this process. After the pause the
next call tries Redis again (connecting anew if it was never reached). What was written to the
in-process state during an outage is not copied back: the store keeps every event, and the
live state is short-lived by nature (sessions end after 30 minutes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

import numpy as np

from segue.data.model import Event
from segue.online.bus import BusUnavailable, EventBus, Handler
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


class ResilientState(OnlineState):
    """Delegates to ``connect()``'s state (Redis), falling back to in-process while it fails.

    ``on_degraded(True/False)`` is called when the mode changes, for metrics and health.
    """

    def __init__(
        self,
        connect: Callable[[], OnlineState],
        *,
        retry_after_s: float = 5.0,
        session_timeout_ms: int = SESSION_TIMEOUT_MS,
        on_degraded: Callable[[bool], None] | None = None,
    ) -> None:
        super().__init__(session_timeout_ms=session_timeout_ms)
        self._connect = connect
        self.retry_after_s = retry_after_s
        self.fallback = InProcessState(session_timeout_ms=session_timeout_ms)
        self._on_degraded = on_degraded or (lambda degraded: None)
        self._primary: OnlineState | None = None
        self._down_until = 0.0
        self._degraded = False
        self._lock = threading.Lock()

    @property
    def degraded(self) -> bool:
        """True while answering from the in-process fallback."""
        return self._degraded

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
        if time.monotonic() < self._down_until:
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
        self._down_until = time.monotonic() + self.retry_after_s
        if not self._degraded:
            log.warning("online state unavailable, using in-process state: %s", exc)
            self._degraded = True
            self._on_degraded(True)

    def _mark_up(self) -> None:
        if self._degraded:
            log.warning("online state reachable again")
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

    def close(self) -> None:
        if self._primary is not None:
            self._primary.close()
        self.fallback.close()


class ReconnectingBus(EventBus):
    """A bus opened on first use and re-opened after failures, at most every ``retry_after_s``.

    Lets a service start while Redis is down: publishing raises :class:`BusUnavailable` (the
    intake then stores events directly) until Redis answers again.
    """

    def __init__(self, connect: Callable[[], EventBus], *, retry_after_s: float = 5.0) -> None:
        self._connect = connect
        self.retry_after_s = retry_after_s
        self._bus: EventBus | None = None
        self._next_try = 0.0
        self._lock = threading.Lock()

    @property
    def connected(self) -> bool:
        return self._bus is not None and time.monotonic() >= self._next_try

    def _get(self) -> EventBus:
        if time.monotonic() < self._next_try:
            raise BusUnavailable("the event bus is marked down; retrying shortly")
        with self._lock:
            if self._bus is None:
                try:
                    self._bus = self._connect()
                except BusUnavailable:
                    self._next_try = time.monotonic() + self.retry_after_s
                    raise
            return self._bus

    def _run(self, call: Callable[[EventBus], T]) -> T:
        bus = self._get()
        try:
            return call(bus)
        except BusUnavailable:
            self._next_try = time.monotonic() + self.retry_after_s
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

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()
