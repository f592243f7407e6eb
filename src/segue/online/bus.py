"""The event bus: events go on, worker groups take them off, at least once.

Producers (the API, importers replaying logs) ``publish`` events; workers in a consumer
*group* ``consume`` them in batches. Every group sees every message; within a group each
message goes to one consumer. A batch is acknowledged only after the handler returns without
raising, so a failing or crashing worker never loses events: the messages stay *pending*,
the same consumer gets them again on its next ``consume`` (its own pending messages come
before new ones), and another consumer can take over those of a dead one with ``reclaim``.

At-least-once means a handler can see a message twice (a crash between the handler's
commit and the acknowledgement). The bus does not deduplicate event ids: consumers must be
idempotent, and the store already is (an event whose ``event_id`` exists is ignored).

A handler that fails on a message forever (a poison message) is retried forever by the
consumer that owns it; there is no dead-letter queue yet.

Two implementations honour the same semantics and run the same tests:

* :class:`InProcessBus` (default, no servers): thread-safe, lives and dies with the process.
  Like a Redis stream it keeps the newest ``maxlen`` messages, so a group created late still
  reads them; a group that lags further behind skips the oldest (pending ones are kept).
* :class:`RedisStreamBus`: Redis Streams with consumer groups (XADD, XREADGROUP, XACK,
  XAUTOCLAIM); messages survive restarts and are shared across processes and machines.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from segue.data.model import Event
from segue.errors import SegueError

Handler = Callable[[list[Event]], None]


class BusError(SegueError):
    """The event bus cannot do what was asked (e.g. a message on the stream is not an event)."""


class BusUnavailable(BusError):
    """The bus's server cannot be reached; callers may degrade (e.g. write to the store)."""


class EventBus(abc.ABC):
    """Publish events; consume them per group with acknowledge-after-success semantics."""

    @abc.abstractmethod
    def publish(self, events: Sequence[Event]) -> int:
        """Append events in order; returns how many were published."""

    @abc.abstractmethod
    def consume(
        self,
        group: str,
        consumer: str,
        handler: Handler,
        *,
        max_batch: int = 500,
        block_ms: int | None = None,
    ) -> int:
        """Give one batch to ``handler`` and acknowledge it if the handler returns.

        The batch is this consumer's own pending messages if it has any (a retry), otherwise
        up to ``max_batch`` new ones. ``block_ms`` waits that long for new messages when there
        are none (``None``: return at once). Returns how many events were handled and
        acknowledged (0 when there was nothing). If the handler raises, the exception
        propagates and the messages stay pending for this consumer. The group is created on
        first use and starts at the oldest retained message.
        """

    @abc.abstractmethod
    def reclaim(self, group: str, consumer: str, min_idle_ms: int) -> int:
        """Make ``consumer`` the owner of the group's messages pending for ``min_idle_ms`` or more.

        Used to take over the work of crashed consumers; the next ``consume`` by ``consumer``
        delivers them. Returns how many messages changed hands.
        """

    @abc.abstractmethod
    def pending(self, group: str) -> int:
        """Messages delivered to the group's consumers and not yet acknowledged."""

    def close(self) -> None:
        """Release connections; the default holds none."""
        return None


def _check_batch(max_batch: int) -> None:
    if max_batch < 1:
        raise BusError(f"max_batch must be at least 1, got {max_batch}")


# -- in-process --------------------------------------------------------------------------------


@dataclass
class _Pending:
    consumer: str
    event: Event
    delivered_at: float


@dataclass
class _Group:
    cursor: int  # sequence number of the next new message for this group
    pending: dict[int, _Pending] = field(default_factory=dict)


class InProcessBus(EventBus):
    """Thread-safe bus in memory: one shared log, a cursor and a pending table per group.

    The log keeps the newest ``maxlen`` messages (bounded by default, because a long-running
    process must not grow forever; ``None`` keeps all). Pending messages hold their event, so
    trimming never loses a delivered-but-unacknowledged one.
    """

    def __init__(self, maxlen: int | None = 100_000) -> None:
        if maxlen is not None and maxlen < 1:
            raise BusError(f"maxlen must be at least 1 or None, got {maxlen}")
        self._maxlen = maxlen
        self._log: list[Event] = []
        self._base = 0  # sequence number of self._log[0]
        self._groups: dict[str, _Group] = {}
        self._cond = threading.Condition()

    def publish(self, events: Sequence[Event]) -> int:
        events = list(events)
        if not events:
            return 0
        with self._cond:
            self._log.extend(events)
            if self._maxlen is not None and len(self._log) > self._maxlen:
                drop = len(self._log) - self._maxlen
                del self._log[:drop]
                self._base += drop
                for g in self._groups.values():
                    g.cursor = max(g.cursor, self._base)
            self._cond.notify_all()
        return len(events)

    def _group(self, name: str) -> _Group:
        g = self._groups.get(name)
        if g is None:
            g = self._groups[name] = _Group(cursor=self._base)
        return g

    def _take(self, group: str, consumer: str, max_batch: int) -> tuple[list[int], list[Event]]:
        """Under the lock: this consumer's pending messages, else new ones (marked pending)."""
        g = self._group(group)
        now = time.monotonic()
        own = sorted(seq for seq, p in g.pending.items() if p.consumer == consumer)[:max_batch]
        if own:
            for seq in own:
                g.pending[seq].delivered_at = now
            return own, [g.pending[seq].event for seq in own]
        end = min(self._base + len(self._log), g.cursor + max_batch)
        seqs = list(range(g.cursor, end))
        events = self._log[g.cursor - self._base : end - self._base]
        for seq, event in zip(seqs, events, strict=True):
            g.pending[seq] = _Pending(consumer, event, now)
        g.cursor = end
        return seqs, events

    def consume(
        self,
        group: str,
        consumer: str,
        handler: Handler,
        *,
        max_batch: int = 500,
        block_ms: int | None = None,
    ) -> int:
        _check_batch(max_batch)
        deadline = time.monotonic() + (block_ms or 0) / 1000
        with self._cond:
            seqs, events = self._take(group, consumer, max_batch)
            while not seqs and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
                seqs, events = self._take(group, consumer, max_batch)
        if not seqs:
            return 0
        handler(list(events))  # outside the lock; if it raises, the messages stay pending
        with self._cond:
            g = self._groups[group]
            for seq in seqs:
                p = g.pending.get(seq)
                if p is not None and p.consumer == consumer:  # not reclaimed meanwhile
                    del g.pending[seq]
        return len(seqs)

    def reclaim(self, group: str, consumer: str, min_idle_ms: int) -> int:
        with self._cond:
            g = self._group(group)
            now = time.monotonic()
            moved = 0
            for p in g.pending.values():
                if p.consumer != consumer and (now - p.delivered_at) * 1000 >= min_idle_ms:
                    p.consumer = consumer
                    p.delivered_at = now
                    moved += 1
            return moved

    def pending(self, group: str) -> int:
        with self._cond:
            g = self._groups.get(group)
            return len(g.pending) if g else 0


# -- Redis Streams -----------------------------------------------------------------------------


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class RedisStreamBus(EventBus):
    """Redis Streams with consumer groups; one stream ``{prefix}{stream}``, events as JSON.

    Each message has one field ``e``: the event's ``model_dump_json()``. ``maxlen`` caps the
    stream approximately (XADD MAXLEN ~); a pending message trimmed away before it was handled
    is dropped from the pending list on its next delivery. Groups are created on first use at
    id ``0``, so a new group reads the whole retained stream.
    """

    def __init__(
        self,
        url: str,
        prefix: str = "segue:",
        stream: str = "events",
        maxlen: int | None = None,
        *,
        connect_timeout_s: float = 2.0,
    ) -> None:
        import redis

        self._redis_mod = redis
        self.url = url
        self.key = f"{prefix}{stream}"
        self._maxlen = maxlen
        self._groups: set[str] = set()
        try:
            self._client = redis.Redis.from_url(url, socket_connect_timeout=connect_timeout_s)
        except ValueError as exc:
            raise BusError(
                f"invalid Redis URL {_redact(url)!r}: {exc} (expected redis://host:port/db)"
            ) from exc
        self._call(self._client.ping)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a Redis command, turning connection failures into :class:`BusUnavailable`."""
        errors = self._redis_mod.exceptions
        try:
            return fn(*args, **kwargs)
        except (errors.ConnectionError, errors.TimeoutError) as exc:
            raise BusUnavailable(
                f"cannot reach Redis at {_redact(self.url)} for the event bus: {exc}. "
                "Start Redis there, fix SEGUE_REDIS_URL, or unset it to use the in-process bus."
            ) from exc

    def _ensure_group(self, group: str, *, force: bool = False) -> None:
        if group in self._groups and not force:
            return
        try:
            self._call(self._client.xgroup_create, self.key, group, id="0", mkstream=True)
        except self._redis_mod.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(group)

    def _with_group(self, group: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a group command; recreate the group once if the stream was deleted meanwhile."""
        self._ensure_group(group)
        try:
            return self._call(fn, *args, **kwargs)
        except self._redis_mod.exceptions.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._ensure_group(group, force=True)
            return self._call(fn, *args, **kwargs)

    def publish(self, events: Sequence[Event]) -> int:
        events = list(events)
        if not events:
            return 0
        pipe = self._client.pipeline(transaction=False)
        for event in events:
            if self._maxlen is None:
                pipe.xadd(self.key, {"e": event.model_dump_json()})
            else:
                pipe.xadd(
                    self.key, {"e": event.model_dump_json()}, maxlen=self._maxlen, approximate=True
                )
        self._call(pipe.execute)
        return len(events)

    def _read(self, group: str, consumer: str, start: str, count: int, block: int | None) -> list:
        reply = self._with_group(
            group,
            self._client.xreadgroup,
            group,
            consumer,
            {self.key: start},
            count=count,
            block=block,
        )
        if not reply:
            return []
        if isinstance(reply, dict):  # RESP3
            return [m for msgs in reply.values() for m in (msgs[0] if msgs else [])]
        return [m for _, msgs in reply for m in msgs]

    def _decode(self, msg_id: bytes, fields: dict) -> Event:
        raw = fields.get(b"e", fields.get("e"))
        try:
            return Event.model_validate_json(raw)
        except Exception as exc:
            raise BusError(
                f"message {msg_id!r} on Redis stream {self.key!r} is not an event ({exc}); "
                f"delete it with XDEL or acknowledge it with XACK to move on"
            ) from exc

    def consume(
        self,
        group: str,
        consumer: str,
        handler: Handler,
        *,
        max_batch: int = 500,
        block_ms: int | None = None,
    ) -> int:
        _check_batch(max_batch)
        msgs = self._read(group, consumer, "0", max_batch, None)  # own pending first
        gone = [mid for mid, fields in msgs if not fields]  # trimmed away while pending
        if gone:
            self._call(self._client.xack, self.key, group, *gone)
        msgs = [(mid, fields) for mid, fields in msgs if fields]
        if not msgs:
            msgs = self._read(group, consumer, ">", max_batch, block_ms or None)
        if not msgs:
            return 0
        events = [self._decode(mid, fields) for mid, fields in msgs]
        handler(events)  # if it raises, nothing is acknowledged
        self._call(self._client.xack, self.key, group, *[mid for mid, _ in msgs])
        return len(msgs)

    def reclaim(self, group: str, consumer: str, min_idle_ms: int) -> int:
        moved = 0
        cursor: Any = "0-0"
        while True:
            reply = self._with_group(
                group,
                self._client.xautoclaim,
                self.key,
                group,
                consumer,
                min_idle_time=min_idle_ms,
                start_id=cursor,
                count=500,
            )
            cursor, claimed = reply[0], reply[1]  # reply[2]: ids trimmed away, dropped by Redis
            moved += len(claimed)
            if cursor in (b"0-0", "0-0"):
                return moved

    def pending(self, group: str) -> int:
        info = self._with_group(group, self._client.xpending, self.key, group)
        return int(info["pending"])

    def close(self) -> None:
        self._client.close()


def open_bus(redis_url: str | None, prefix: str = "segue:") -> EventBus:
    """The Redis bus when a URL is configured (``SEGUE_REDIS_URL``), else the in-process one."""
    if redis_url:
        return RedisStreamBus(redis_url, prefix)
    return InProcessBus()
