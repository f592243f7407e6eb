"""Logging every served list without slowing the answer: the request appends, a thread writes.

The request path only appends the exposure to a buffer (a lock and a deque append:
microseconds); a thread of its own writes the buffer to the store in batches every
``flush_s`` or as soon as ``batch`` records wait. Writes are idempotent by request id
(:mod:`segue.store.exposures`), so a batch that failed half-way is simply written again.

While the store is unreachable the buffer keeps growing up to ``max_buffered`` records; past
that the oldest are dropped and counted (``on_drop``), because an answer must never wait for
its own log. A process that dies loses what it had not written yet (at most ``flush_s`` of
exposures in normal operation): the log is for measurement, and the metrics built on it
report counts, not certainties.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from segue.store import Store
from segue.store.exposures import Exposure

log = logging.getLogger(__name__)


class ExposureLog:
    def __init__(
        self,
        store: Store,
        *,
        flush_s: float = 0.5,
        batch: int = 1_000,
        max_buffered: int = 100_000,
        on_written: Callable[[int], None] | None = None,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.flush_s, self.batch, self.max_buffered = flush_s, batch, max_buffered
        self._on_written = on_written or (lambda n: None)
        self._on_drop = on_drop or (lambda n: None)
        self._buffer: deque[Exposure] = deque()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def log(self, exposure: Exposure) -> None:
        """Buffer one served list (the request path: no I/O)."""
        with self._lock:
            self._buffer.append(exposure)
            dropped = len(self._buffer) - self.max_buffered
            for _ in range(max(dropped, 0)):
                self._buffer.popleft()
            full = len(self._buffer) >= self.batch
        if dropped > 0:
            self._on_drop(dropped)
        if full:
            self._wake.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    def flush(self) -> int:
        """Write everything buffered now; returns how many records were written. On failure
        the records go back to the front of the buffer for the next try."""
        with self._flush_lock:
            written = 0
            while True:
                with self._lock:
                    n = min(self.batch, len(self._buffer))
                    chunk = [self._buffer.popleft() for _ in range(n)]
                if not chunk:
                    return written
                try:
                    self.store.add_exposures(chunk)
                except Exception as exc:  # kept; the store may be back at the next flush
                    if not self._failing:
                        log.warning("exposure log: store unavailable, buffering (%s)", exc)
                    self._failing = True
                    with self._lock:
                        self._buffer.extendleft(reversed(chunk))
                        dropped = len(self._buffer) - self.max_buffered
                        for _ in range(max(dropped, 0)):
                            self._buffer.popleft()
                    if dropped > 0:
                        self._on_drop(dropped)
                    return written
                if self._failing:
                    log.warning("exposure log: store back, writing the buffer")
                    self._failing = False
                written += len(chunk)
                self._on_written(len(chunk))

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="exposure-log", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.flush_s)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        """Stop the thread and write what is left (once; a store that is down loses it)."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()
