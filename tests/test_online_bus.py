"""The event bus: at-least-once delivery per group, on the in-process bus and on real Redis."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator

import pytest

from conftest import REDIS_URL
from segue.data.model import Event, EventType
from segue.online.bus import (
    BusError,
    BusUnavailable,
    DeadLetter,
    EventBus,
    InProcessBus,
    RedisStreamBus,
    TransientFailure,
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


DEAD: list[DeadLetter] = []  # what the fixture's bus reported through on_dead


@pytest.fixture(params=["memory", "redis"])
def bus(request: pytest.FixtureRequest) -> Iterator[EventBus]:
    DEAD.clear()
    if request.param == "memory":
        yield InProcessBus(on_dead=DEAD.append)
        return
    prefix = request.getfixturevalue("redis_prefix")
    b = RedisStreamBus(REDIS_URL, prefix, on_dead=DEAD.append)
    try:
        yield b
    finally:
        b.close()


class _Died(BaseException):
    """Not an ``Exception``: the process died (SIGKILL) mid-batch; nothing is settled."""


class _Dies:
    """A handler that never returns, as a worker killed mid-batch."""

    def __init__(self) -> None:
        self.seen: list[Event] = []

    def __call__(self, events: list[Event]) -> None:
        self.seen.extend(events)
        raise _Died("worker killed")


class _FailsOn:
    """Handles a batch unless it holds one of the ``bad`` event ids; records what it
    handled (only batches it returned from) and how often it was called."""

    def __init__(self, *bad: str, error: type[Exception] = ValueError) -> None:
        self.bad = set(bad)
        self.error = error
        self.handled: list[str] = []
        self.calls = 0

    def __call__(self, events: list[Event]) -> None:
        self.calls += 1
        bad = [e.event_id for e in events if e.event_id in self.bad]
        if bad:
            raise self.error(f"cannot store {bad}")
        self.handled.extend(e.event_id for e in events)


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


def test_a_killed_handler_leaves_messages_pending_until_a_retry_succeeds(bus: EventBus) -> None:
    bus.publish(_events(3))
    fails = _Dies()
    with pytest.raises(_Died, match="worker killed"):
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
    with pytest.raises(_Died):
        bus.consume("g", "crashed", _Dies(), max_batch=3)
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


def test_a_bus_that_keeps_nothing_delivered_still_delivers_everything_at_least_once() -> None:
    """keep_delivered=False (the embedded buses: this process's worker is the only reader):
    a message is gone from memory once taken, yet one whose handler failed is delivered
    again, a dead consumer's is reclaimed, and a group made later starts at what is left."""
    b = InProcessBus(keep_delivered=False, on_dead=DEAD.append)
    b.publish(_events(10))
    handler = _FailsOn("e3")
    b.consume("store", "c1", handler, max_batch=6)
    assert len(b._log) == 4, "the six taken are no longer held by the log"
    assert set(handler.handled) == {"e0", "e1", "e2", "e4", "e5"}
    assert b.pending("store") == 1  # e3, held by the pending table
    with pytest.raises(_Died):
        b.consume("store", "c2", _Dies(), max_batch=2)  # c2 takes e6, e7 and dies
    assert len(b._log) == 2
    late: list[Event] = []
    b.consume("late", "x", late.extend)
    assert [e.event_id for e in late] == ["e8", "e9"], "a later group: only what is left"
    redelivered = _FailsOn()
    b.consume("store", "c1", redelivered)  # its own pending first: e3 again
    assert redelivered.handled == ["e3"]
    assert b.reclaim("store", "c1", 0) == 2  # c2's two, taken over
    taken = _FailsOn()
    b.consume("store", "c1", taken)
    b.consume("store", "c1", taken)
    assert sorted(taken.handled) == ["e6", "e7", "e8", "e9"] and b.pending("store") == 0
    assert len(b._log) == 0


def test_redis_drops_pending_messages_trimmed_from_the_stream(redis_prefix: str) -> None:
    import redis

    b = RedisStreamBus(REDIS_URL, redis_prefix)
    try:
        b.publish(_events(3))
        with pytest.raises(_Died):
            b.consume("g", "c1", _Dies())
        redis.Redis.from_url(REDIS_URL).xtrim(b.key, maxlen=0, approximate=False)
        b.publish(_events(1, start=3))
        got: list[Event] = []
        assert b.consume("g", "c1", got.extend) == 1  # the trimmed ones are gone, not stuck
        assert [e.event_id for e in got] == ["e3"]
        assert b.pending("g") == 0
    finally:
        b.close()


# -- poison messages and dead letters ----------------------------------------------------------


def test_a_failing_message_is_isolated_and_dead_lettered_after_its_attempts(
    bus: EventBus,
) -> None:
    bus.publish(_events(10))
    handler = _FailsOn("e6")
    assert bus.consume("g", "c1", handler) == 10
    # bisection: the nine good ones were handled once each, in one pass
    assert sorted(handler.handled) == sorted(f"e{i}" for i in range(10) if i != 6)
    assert bus.pending("g") == 1 and bus.dead_letters() == []
    bus.publish(_events(2, start=10))
    assert bus.consume("g", "c1", handler) == 1  # its own retry first: attempt 2
    assert bus.pending("g") == 1 and bus.dead_letters() == []
    assert bus.consume("g", "c1", handler) == 1  # attempt 3: dead-lettered, acknowledged
    assert bus.pending("g") == 0
    [letter] = bus.dead_letters()
    assert (letter.attempts, letter.group, letter.consumer) == (3, "g", "c1")
    assert "ValueError: cannot store ['e6']" in letter.error
    assert letter.fields()["event_id"] == "e6"
    assert [letter] == DEAD
    assert bus.consume("g", "c1", handler) == 2  # the stream moves on
    assert handler.handled[-2:] == ["e10", "e11"]
    assert bus.consume("g", "c1", handler) == 0


def test_attempts_are_counted_per_message_across_consumers(bus: EventBus) -> None:
    bus.publish(_events(3))
    handler = _FailsOn("e1")
    bus.consume("g", "first", handler)
    bus.consume("g", "first", handler)  # two failed attempts; then "first" dies
    assert bus.dead_letters() == [] and bus.pending("g") == 1
    assert bus.reclaim("g", "heir", min_idle_ms=0) == 1
    assert bus.consume("g", "heir", handler) == 1  # the third attempt overall
    [letter] = bus.dead_letters()
    assert (letter.attempts, letter.consumer) == (3, "heir")
    assert sorted(handler.handled) == ["e0", "e2"]


def test_a_handler_can_dead_letter_poison_at_once(bus: EventBus) -> None:
    bus.publish(_events(4))
    got: list[str] = []

    def handler(events: list[Event]) -> dict[int, str]:
        got.extend(e.event_id for e in events)
        return {i: "unknown item" for i, e in enumerate(events) if e.event_id == "e2"}

    assert bus.consume("g", "c1", handler) == 4
    assert bus.pending("g") == 0
    [letter] = bus.dead_letters()
    assert (letter.attempts, letter.error, letter.fields()["item_id"]) == (1, "unknown item", "t2")


def test_transient_failures_count_no_attempt(bus: EventBus) -> None:
    bus.publish(_events(3))
    for _ in range(5):
        with pytest.raises(TransientFailure):
            bus.consume("g", "c1", _FailsOn("e0", "e1", "e2", error=TransientFailure))
    assert bus.pending("g") == 3 and bus.dead_letters() == []
    handler = _FailsOn()
    assert bus.consume("g", "c1", handler) == 3
    assert handler.handled == ["e0", "e1", "e2"] and bus.pending("g") == 0


def test_dead_letters_are_replayed_and_dropped(bus: EventBus) -> None:
    bus.publish(_events(3))
    failing = _FailsOn("e0", "e2")
    for _ in range(3):
        bus.consume("g", "c1", failing)
    letters = bus.dead_letters()
    assert [d.fields()["event_id"] for d in letters] == ["e0", "e2"]
    assert bus.dead_letters(limit=1) == letters[:1]
    assert bus.replay_dead([letters[0].id, "999-0" if "-" in letters[0].id else "999"]) == [
        letters[0].id
    ]
    assert [d.id for d in bus.dead_letters()] == [letters[1].id]
    fixed = _FailsOn()
    assert bus.consume("g", "c1", fixed) == 1  # replayed: a new message, attempts anew
    assert fixed.handled == ["e0"]
    assert bus.drop_dead(None) == [letters[1].id]
    assert bus.dead_letters() == [] and bus.replay_dead(None) == []
    assert bus.consume("g", "c1", fixed) == 0 and bus.pending("g") == 0


def test_replaying_everything_keeps_the_events_intact(bus: EventBus) -> None:
    sent = _events(3)
    bus.publish(sent)
    for _ in range(3):
        bus.consume("g", "c1", _FailsOn("e0", "e1", "e2"))
    assert len(bus.replay_dead(None)) == 3
    got: list[Event] = []
    assert bus.consume("g", "c1", got.extend) == 3
    assert got == sent


def test_max_attempts_must_be_positive() -> None:
    with pytest.raises(BusError, match="max_attempts"):
        InProcessBus(max_attempts=0)


def test_undecodable_messages_on_redis_are_dead_lettered_not_stalling(redis_prefix: str) -> None:
    import redis

    b = RedisStreamBus(REDIS_URL, redis_prefix, max_attempts=2)
    raw = redis.Redis.from_url(REDIS_URL)
    try:
        b.publish(_events(2))
        nul = _events(1, start=2)[0].model_dump(mode="json") | {"user_id": "u\x00"}
        huge = _events(1, start=3)[0].model_dump(mode="json") | {"ms_played": 2**63}
        raw.xadd(b.key, {"e": json.dumps(nul)})
        raw.xadd(b.key, {"e": json.dumps(huge)})
        raw.xadd(b.key, {"x": "no event at all"})
        b.publish(_events(2, start=4))
        handler = _FailsOn()
        assert b.consume("g", "c1", handler) == 7
        assert handler.handled == ["e0", "e1", "e4", "e5"]
        assert b.pending("g") == 3
        assert b.consume("g", "c1", handler) == 3  # attempt 2 of 2
        assert b.pending("g") == 0
        letters = b.dead_letters()
        assert [d.attempts for d in letters] == [2, 2, 2]
        assert "user_id" in letters[0].error and "printable" in letters[0].error
        assert letters[0].fields()["user_id"] == "u\x00"
        assert "ms_played" in letters[1].error and "86400000" in letters[1].error
        assert "no field 'e'" in letters[2].error
        assert raw.xlen(f"{b.key}:dead") == 3
        assert raw.hlen(f"{b.key}:failures:g") == 0  # nothing left behind
    finally:
        b.close()
        raw.close()
