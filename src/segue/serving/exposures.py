"""Logging every served list without slowing the answer: the request appends, a thread
publishes, the stream's workers store.

The request path only appends the exposure to a buffer (a lock and a deque append:
microseconds); a thread of its own publishes the buffer onto the bus's ``exposures`` stream
in batches (one pipelined round trip per batch with Redis) every ``flush_s`` or as soon as
``batch`` records wait. The workers that store events take them off that stream and write
them to the store (:meth:`segue.serving.worker.EventWorker.store_exposures`), with the
stream's rules: at least once, acknowledged after the store write, idempotent by request id
(:mod:`segue.store.exposures`), a message that cannot be stored set aside in the dead letters
(``stream: exposures``) after its attempts, a dead worker's share taken over by another.
Without Redis the "bus" is by default a pipe to a child process that stores them
(:mod:`segue.serving.exposure_writer`), so that no storing runs in the serving process.

While the bus is unreachable (Redis down: :class:`~segue.online.bus.BusUnavailable`, at once
while the circuit breaker is open) the buffer keeps growing up to ``max_buffered`` records;
past that the oldest are dropped and counted (``on_drop``), because an answer must never
wait for its own log. A publish that timed out may still have landed (Redis frozen, then
running the queued commands), so its retry can publish a list twice: the store keeps one
record per request id. A process that dies loses what it had not published yet (at most
``flush_s`` of exposures in normal operation; in the embedded mode also what its in-process
bus held): the log is for measurement, and the metrics built on it report counts, not
certainties.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable

from pydantic import TypeAdapter

from segue.online.bus import Codec, EventBus
from segue.store.exposures import Exposure

log = logging.getLogger(__name__)

#: The stream the served lists travel on (``<prefix>exposures`` in Redis).
EXPOSURES_STREAM = "exposures"

_ADAPTER = TypeAdapter(Exposure)


def _encode(exposure: Exposure) -> str:
    # no warnings: a record built wrong (say a string for ts_ms) is refused by the worker
    return _ADAPTER.dump_json(exposure, warnings=False).decode()


def check_exposure(exposure: Exposure) -> Exposure:
    """``exposure`` if every field is what the log stores, else ``ValueError`` naming the
    field and the request. The worker checks every record it takes off the stream (the
    in-process bus carries objects nobody validated), so that a bad one is dead-lettered
    rather than stored as something the metrics would misread."""

    def bad(what: str) -> ValueError:
        return ValueError(f"exposure {exposure.request_id!r:.60}: {what}")

    for name in ("request_id", "user_id"):
        value = getattr(exposure, name)
        if not isinstance(value, str) or not value:
            raise bad(f"{name} must be a non-empty string, got {value!r:.60}")
    for name in ("surface", "model", "version", "path"):
        value = getattr(exposure, name)
        if not isinstance(value, str):
            raise bad(f"{name} must be a string, got {value!r:.60}")
    if not isinstance(exposure.ts_ms, int) or isinstance(exposure.ts_ms, bool):
        raise bad(f"ts_ms must be an integer (ms since the epoch), got {exposure.ts_ms!r:.60}")
    if not isinstance(exposure.items, tuple | list):
        raise bad(f"items must be a list of item ids, got {exposure.items!r:.60}")
    for position, item in enumerate(exposure.items):
        if not isinstance(item, str):
            raise bad(f"items[{position}] must be an item id (a string), got {item!r:.60}")
    for name in ("experiments", "context"):
        value = getattr(exposure, name)
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise bad(f"{name} must map strings to strings, got {value!r:.80}")
    if exposure.propensities is not None:
        if not isinstance(exposure.propensities, tuple | list):
            raise bad(f"propensities must be a list, got {exposure.propensities!r:.60}")
        for position, p in enumerate(exposure.propensities):
            if not isinstance(p, int | float) or not (math.isfinite(p) and 0.0 < p <= 1.0):
                raise bad(f"propensities[{position}]: {p!r:.30} is not a probability in (0, 1]")
    return exposure


def _decode(raw: str | bytes) -> Exposure:
    """An exposure from its JSON, strictly typed (a number where a string belongs is refused,
    not converted) and checked by :func:`check_exposure`."""
    return check_exposure(_ADAPTER.validate_json(raw, strict=True))


#: The exposures stream's codec: the record's fields as JSON, validated on the way out.
EXPOSURE_CODEC: Codec[Exposure] = Codec("exposure", _encode, _decode)


class ExposureLog:
    """The served lists' buffer and the thread that publishes it (see the module docstring)."""

    def __init__(
        self,
        bus: EventBus,
        *,
        flush_s: float = 0.5,
        batch: int = 1_000,
        publish_slice: int = 32,
        max_buffered: int = 100_000,
        on_published: Callable[[int], None] | None = None,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.bus = bus
        self.flush_s, self.batch, self.max_buffered = flush_s, batch, max_buffered
        #: records encoded and published per bus call, the GIL given up between calls: the
        #: request path waits for whatever this thread holds the interpreter for (encoding is
        #: ~20 µs a record; up to the interpreter's 5 ms switch interval in one go otherwise)
        self.publish_slice = publish_slice
        self._on_published = on_published or (lambda n: None)
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
        """Publish everything buffered now; returns how many records were published. On
        failure (the bus unreachable) the records go back to the front of the buffer for the
        next try."""
        with self._flush_lock:
            published = 0
            while True:
                if published:
                    time.sleep(0)  # between slices: a waiting request takes the interpreter
                with self._lock:
                    n = min(self.batch, self.publish_slice, len(self._buffer))
                    chunk = [self._buffer.popleft() for _ in range(n)]
                if not chunk:
                    return published
                try:
                    self.bus.publish(chunk)
                except Exception as exc:  # kept; the bus may be back at the next flush
                    if not self._failing:
                        log.warning("exposure log: event bus unavailable, buffering (%s)", exc)
                    self._failing = True
                    with self._lock:
                        self._buffer.extendleft(reversed(chunk))
                        dropped = len(self._buffer) - self.max_buffered
                        for _ in range(max(dropped, 0)):
                            self._buffer.popleft()
                    if dropped > 0:
                        self._on_drop(dropped)
                    return published
                if self._failing:
                    log.warning("exposure log: event bus back, publishing the buffer")
                    self._failing = False
                published += len(chunk)
                self._on_published(len(chunk))

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
        """Stop the thread and publish what is left (once; a bus that is down loses it)."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()
