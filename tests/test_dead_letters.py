"""No poison event stops the stream: real stores (SQLite and PostgreSQL), the in-process bus
and real Redis, the real ``segue`` entry point.

A poison event is one that got past the edge (published straight onto the stream, as a
buggy producer or an old segue might): a NUL in the user id, which PostgreSQL cannot store
and the input rules refuse, and an ``ms_played`` of 2**63, which no integer column holds.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REDIS_URL
from segue.data.model import Event, EventType, Item, ItemKind, User
from segue.online.bus import DeadLetter, EventBus, InProcessBus, RedisStreamBus
from segue.online.factory import open_state
from segue.online.state import OnlineState
from segue.serving.worker import EventWorker
from segue.store import Store

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
N_VALID = 1_000


@pytest.fixture(params=["memory", "redis"])
def online(request: pytest.FixtureRequest) -> Iterator[tuple[EventBus, OnlineState]]:
    if request.param == "memory":
        bus: EventBus = InProcessBus()
        state = open_state(None)
    else:
        prefix = request.getfixturevalue("redis_prefix")
        bus = RedisStreamBus(REDIS_URL, prefix)
        state = open_state(REDIS_URL, prefix)
    try:
        yield bus, state
    finally:
        bus.close()
        state.close()


def _catalog(store: Store) -> None:
    store.upsert_items([Item(id=f"t{i}", kind=ItemKind.TRACK, title=f"T{i}") for i in range(10)])
    store.upsert_users([User(id="u1", signup_at=T0 - dt.timedelta(days=1))])


def _poison(event_id: str, **fields: object) -> Event:
    """An event built without validation, as if it never passed the edge."""
    values = {
        "event_id": event_id,
        "user_id": "u1",
        "item_id": "t1",
        "type": EventType.PLAY,
        "timestamp": T0,
        "ms_played": None,
        "count": 1,
        "session_id": None,
        "surface": None,
        "source": None,
        "device": None,
        "focus": False,
        "rating": None,
    }
    return Event.model_construct(**{**values, **fields})  # type: ignore[arg-type]


def _publish_unchecked(bus: EventBus, events: list[Event]) -> None:
    """Straight onto the stream: in memory as objects, on Redis as their JSON (XADD)."""
    if isinstance(bus, RedisStreamBus):
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            for event in events:
                client.xadd(bus.key, {"e": event.model_dump_json()})
        finally:
            client.close()
    else:
        bus.publish(events)


def _valid(n: int, start: int = 0) -> list[Event]:
    return [
        Event(
            event_id=f"ok{i}",
            user_id=f"v{i % 37}",
            item_id=f"t{i % 10}",
            type=EventType.PLAY,
            timestamp=T0 + dt.timedelta(seconds=i),
            ms_played=1000,
        )
        for i in range(start, start + n)
    ]


def test_poison_events_are_dead_lettered_while_the_next_thousand_are_stored(
    online: tuple[EventBus, OnlineState], store: Store
) -> None:
    bus, state = online
    _catalog(store)
    _publish_unchecked(
        bus,
        [
            _poison("p-nul", user_id="u\x00x"),
            _poison("p-big", ms_played=2**63),
            _poison("p-item", item_id="t\x00"),
        ],
    )
    bus.publish(_valid(N_VALID))
    worker = EventWorker(bus, store, state)

    started = time.monotonic()
    for _ in range(100):  # a stalled stream would loop here until the bound
        worker.run_once()
        if store.count("events") == N_VALID and bus.pending("persist") == 0:
            break
    elapsed = time.monotonic() - started

    assert store.count("events") == N_VALID
    assert bus.pending("persist") == 0
    letters = {d.fields()["event_id"]: d for d in bus.dead_letters()}
    assert sorted(letters) == ["p-big", "p-item", "p-nul"]
    assert letters["p-item"].attempts in (1, 3)  # an unknown item at once, or refused thrice
    assert [letters[e].attempts for e in ("p-nul", "p-big")] == [3, 3]
    assert "ms_played" in letters["p-big"].error or "Overflow" in letters["p-big"].error
    assert "\x00" in letters["p-nul"].fields()["user_id"]
    assert store.get_user("u\x00x".replace("\x00", "")) is None
    assert elapsed < 20, f"took {elapsed:.1f} s"
    # the stream keeps flowing afterwards
    bus.publish(_valid(5, start=N_VALID))
    assert worker.run_once().persisted == 5


def test_a_failing_event_in_a_batch_costs_only_itself(
    online: tuple[EventBus, OnlineState], store: Store
) -> None:
    bus, state = online
    _catalog(store)
    batch = _valid(300)
    _publish_unchecked(bus, [*batch[:150], _poison("p-big", ms_played=2**63), *batch[150:]])
    worker = EventWorker(bus, store, state)
    report = worker.run_once()
    assert (report.received, report.persisted) == (301, 300)  # one pass: bisected
    assert bus.pending("persist") == 1
    assert bus.dead_letters() == []  # one attempt of three so far


def _segue(
    tmp_path: Path, database_url: str, prefix: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SEGUE_DATA_DIR": str(tmp_path),
        "SEGUE_DATABASE_URL": database_url,
        "SEGUE_REDIS_URL": REDIS_URL,
        "SEGUE_REDIS_PREFIX": prefix,
        "COLUMNS": "200",
    }
    env.pop("SEGUE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-c", "from segue.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def test_segue_worker_sets_poison_aside_and_the_dead_letters_are_listed_replayed_dropped(
    store: Store, database_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    _catalog(store)
    bus = RedisStreamBus(REDIS_URL, redis_prefix)
    try:
        _publish_unchecked(bus, [_poison("p-nul", user_id="u\x00x")])
        bus.publish([*_valid(5), _valid(1, start=5)[0].model_copy(update={"item_id": "later"})])

        run = _segue(tmp_path, database_url, redis_prefix, "worker", "--once")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "dead lettered 2" in run.stdout, run.stdout
        assert store.count("events") == 5
        # a serving process sharing the Redis counts the standalone worker's letters
        assert _served_gauge(tmp_path, database_url, redis_prefix) == 2.0

        listed = _segue(tmp_path, database_url, redis_prefix, "events", "dead", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        letters = [json.loads(line) for line in listed.stdout.splitlines()]
        by_event = {d["event"]["event_id"]: d for d in letters}
        assert sorted(by_event) == ["ok5", "p-nul"]
        assert by_event["p-nul"]["attempts"] == 3 and "user_id" in by_event["p-nul"]["error"]
        assert (
            by_event["ok5"]["attempts"] == 1 and "unknown item 'later'" in by_event["ok5"]["error"]
        )
        table = _segue(tmp_path, database_url, redis_prefix, "events", "dead", "list")
        assert by_event["ok5"]["id"] in table.stdout and "unknown item" in table.stdout

        # the fix: the item exists now; replay it, and the worker stores it
        store.upsert_items([Item(id="later", kind=ItemKind.TRACK, title="Later")])
        replay = _segue(
            tmp_path, database_url, redis_prefix, "events", "dead", "replay", by_event["ok5"]["id"]
        )
        assert replay.returncode == 0 and "replayed 1" in replay.stdout, replay.stderr
        run = _segue(tmp_path, database_url, redis_prefix, "worker", "--once")
        assert run.returncode == 0 and "dead lettered 0" in run.stdout, run.stdout
        assert store.count("events") == 6

        # what cannot be fixed is dropped
        missing = _segue(tmp_path, database_url, redis_prefix, "events", "dead", "drop", "1-1")
        assert missing.returncode == 2 and "no dead letter" in missing.stderr
        neither = _segue(tmp_path, database_url, redis_prefix, "events", "dead", "replay")
        assert neither.returncode == 2 and "--all" in neither.stderr
        drop = _segue(tmp_path, database_url, redis_prefix, "events", "dead", "drop", "--all")
        assert drop.returncode == 0 and "dropped 1" in drop.stdout, drop.stderr
        assert bus.dead_letters() == [] and bus.pending("persist") == 0
    finally:
        bus.close()


def _served_gauge(tmp_path: Path, database_url: str, prefix: str) -> float | None:
    from fastapi.testclient import TestClient

    from segue.api import create_app
    from segue.config import Settings

    settings = Settings(
        data_dir=tmp_path, database_url=database_url, redis_url=REDIS_URL, redis_prefix=prefix
    )
    with TestClient(create_app(settings, watch_s=None)) as client:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith("segue_events_dead_letters "):
                return float(line.split()[1])
    return None


def test_without_redis_the_cli_points_to_the_serving_process(
    database_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "SEGUE_DATA_DIR": str(tmp_path), "SEGUE_DATABASE_URL": database_url}
    env.pop("SEGUE_REDIS_URL", None)
    env.pop("SEGUE_CONFIG", None)
    listed = subprocess.run(
        [sys.executable, "-c", "from segue.cli.main import main; main()", "events", "dead", "list"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert listed.returncode == 2
    assert "GET /v1/admin/dead-letters" in listed.stderr
    assert len(listed.stderr.strip().splitlines()) <= 3  # one message, no traceback


def test_the_dead_letter_counter_hook_sees_every_letter(redis_prefix: str) -> None:
    seen: list[DeadLetter] = []
    bus = RedisStreamBus(REDIS_URL, redis_prefix, max_attempts=1, on_dead=seen.append)
    try:
        _publish_unchecked(bus, [_poison("p1", user_id="a\x00"), _poison("p2", ms_played=-5)])
        bus.consume("persist", "w", lambda events: None)
        assert [d.fields()["event_id"] for d in seen] == ["p1", "p2"]
        assert seen == bus.dead_letters()
    finally:
        bus.close()
