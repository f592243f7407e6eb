"""The event bus: at-least-once delivery per group, on the in-process bus and on real Redis."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator

import pytest

from conftest import REDIS_URL
from segue.data.model import Event, EventType
from segue.online.bus import (
    BusUnavailable,
    EventBus,
    InProcessBus,
    RedisStreamBus,
    open_bus,
)

T0 = dt.datetime(2026, 3, 1, 12, 30, 15, 123000, tzinfo=dt.UTC)


def _events(n: int, start: int = 0) -> list[Event]:
    return [
        Event(
            event_id=f"e{i}",
            user_id=f"u{i % 3}",
            item_id=f"t{i}",
            type=EventType.PLAY,
            timestamp=T0 + dt.timedelta(seconds=i),
        )
        for i in range(start, start + n)
    ]


@pytest.fixture(params=["memory", "redis"])
def bus(request: pytest.FixtureRequest) -> Iterator[EventBus]:
    if request.param == "memory":
        yield InProcessBus()
        return
    prefix = request.getfixturevalue("redis_prefix")
    b = RedisStreamBus(REDIS_URL, prefix)
    try:
        yield b
    finally:
        b.close()


class _Fails:
    """A handler that raises, as a worker that crashes mid-batch would."""

    def __init__(self) -> None:
        self.seen: list[Event] = []

    def __call__(self, events: list[Event]) -> None:
        self.seen.extend(events)
        raise RuntimeError("worker crashed")


def test_round_trip_preserves_every_field(bus: EventBus) -> None:
    full = Event(
        event_id="ev-1",
        user_id="u-1",
        item_id="t-1",
        type=EventType.SKIP,
        timestamp=dt.datetime(
            2026, 3, 1, 13, 30, 15, 123000, tzinfo=dt.timezone(dt.timedelta(hours=1))
        ),
        ms_played=4210,
        count=3,
        session_id="s-9",
        surface="home",
        source="mix:daily",
        device="ios",
        focus=True,
        rating=4.5,
    )
    sent = [full, *_events(4)]
    assert bus.publish(sent) == 5
    got: list[Event] = []
    assert bus.consume("g", "c1", got.extend) == 5
    assert got == sent
    assert got[0].model_dump() == full.model_dump()
    assert got[0].timestamp == T0 and got[0].timestamp.utcoffset() == dt.timedelta(0)
    assert bus.pending("g") == 0
    assert bus.consume("g", "c1", got.extend) == 0  # acknowledged: never delivered again


def test_every_group_sees_every_message_in_batches(bus: EventBus) -> None:
    bus.publish(_events(7))
    a: list[Event] = []
    b: list[Event] = []
    assert bus.consume("store", "w", a.extend, max_batch=4) == 4
    assert bus.consume("store", "w", a.extend, max_batch=4) == 3
    assert bus.consume("state", "w", b.extend) == 7
    assert [e.event_id for e in a] == [e.event_id for e in b] == [f"e{i}" for i in range(7)]


def test_failed_handler_leaves_messages_pending_until_a_retry_succeeds(bus: EventBus) -> None:
    bus.publish(_events(3))
    fails = _Fails()
    with pytest.raises(RuntimeError, match="worker crashed"):
        bus.consume("g", "c1", fails)
    assert [e.event_id for e in fails.seen] == ["e0", "e1", "e2"]
    assert bus.pending("g") == 3
    bus.publish(_events(2, start=3))  # newer messages wait behind the retry
    got: list[Event] = []
    assert bus.consume("g", "c1", got.extend) == 3
    assert [e.event_id for e in got] == ["e0", "e1", "e2"]
    assert bus.pending("g") == 0
    assert bus.consume("g", "c1", got.extend) == 2
    assert [e.event_id for e in got[3:]] == ["e3", "e4"]
    assert bus.pending("g") == 0


def test_two_consumers_in_a_group_never_get_the_same_message(bus: EventBus) -> None:
    bus.publish(_events(200))
    seen: dict[str, list[str]] = {"c1": [], "c2": []}

    def worker(name: str) -> None:
        while bus.consume(
            "g", name, lambda evs: seen[name].extend(e.event_id for e in evs), max_batch=7
        ):
            pass

    threads = [threading.Thread(target=worker, args=(n,)) for n in seen]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    both = seen["c1"] + seen["c2"]
    assert sorted(both) == sorted(f"e{i}" for i in range(200))  # all delivered, none twice
    assert not set(seen["c1"]) & set(seen["c2"])
    assert bus.pending("g") == 0


def test_reclaim_takes_over_the_messages_of_a_crashed_consumer(bus: EventBus) -> None:
    bus.publish(_events(4))
    with pytest.raises(RuntimeError):
        bus.consume("g", "crashed", _Fails(), max_batch=3)
    got: list[Event] = []
    assert bus.consume("g", "alive", got.extend) == 1  # only the message nobody had taken
    assert [e.event_id for e in got] == ["e3"]
    assert bus.pending("g") == 3
    assert bus.reclaim("g", "alive", min_idle_ms=60_000) == 0  # not idle long enough
    assert bus.reclaim("g", "alive", min_idle_ms=0) == 3
    assert bus.consume("g", "alive", got.extend) == 3
    assert [e.event_id for e in got[1:]] == ["e0", "e1", "e2"]
    assert bus.pending("g") == 0
    assert bus.reclaim("g", "alive", min_idle_ms=0) == 0


def test_consume_blocks_until_a_message_arrives(bus: EventBus) -> None:
    got: list[Event] = []
    assert bus.consume("g", "c1", got.extend, block_ms=50) == 0
    timer = threading.Timer(0.1, lambda: bus.publish(_events(1)))
    timer.start()
    start = time.monotonic()
    assert bus.consume("g", "c1", got.extend, block_ms=5000) == 1
    assert time.monotonic() - start < 4
    timer.join()
    assert [e.event_id for e in got] == ["e0"]


def test_pending_of_an_unknown_group_is_zero(bus: EventBus) -> None:
    assert bus.pending("nobody") == 0


def test_unreachable_redis_raises_bus_unavailable_quickly() -> None:
    start = time.monotonic()
    with pytest.raises(BusUnavailable, match=r"redis://:\*\*\*@localhost:1/0.*in-process bus"):
        RedisStreamBus("redis://:secret@localhost:1/0", "p:")
    assert time.monotonic() - start < 5


def test_open_bus_chooses_by_url(redis_prefix: str) -> None:
    assert isinstance(open_bus(None, "p:"), InProcessBus)
    assert isinstance(open_bus("", "p:"), InProcessBus)
    b = open_bus(REDIS_URL, redis_prefix)
    try:
        assert isinstance(b, RedisStreamBus)
        assert b.key == f"{redis_prefix}events"
    finally:
        b.close()


def test_in_process_bus_keeps_events_published_before_any_group() -> None:
    b = InProcessBus(maxlen=3)
    b.publish(_events(5))
    got: list[Event] = []
    assert b.consume("late", "c", got.extend) == 3
    assert [e.event_id for e in got] == ["e2", "e3", "e4"]  # maxlen kept the newest


def test_redis_drops_pending_messages_trimmed_from_the_stream(redis_prefix: str) -> None:
    import redis

    b = RedisStreamBus(REDIS_URL, redis_prefix)
    try:
        b.publish(_events(3))
        with pytest.raises(RuntimeError):
            b.consume("g", "c1", _Fails())
        redis.Redis.from_url(REDIS_URL).xtrim(b.key, maxlen=0, approximate=False)
        b.publish(_events(1, start=3))
        got: list[Event] = []
        assert b.consume("g", "c1", got.extend) == 1  # the trimmed ones are gone, not stuck
        assert [e.event_id for e in got] == ["e3"]
        assert b.pending("g") == 0
    finally:
        b.close()
