"""A worker process killed mid-stream loses nothing and stores nothing twice.

Real parts: Redis Streams, PostgreSQL, and ``segue worker`` processes; the first is killed
with SIGKILL while it persists, the second takes over its pending messages.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REDIS_URL, _reset_postgres
from segue.data.model import Event, EventType, Item, ItemKind, User
from segue.online.bus import RedisStreamBus
from segue.store import open_store

N_EVENTS = 30_000


def _worker(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "segue.cli.main", "worker", "--batch", "250", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_killed_worker_loses_nothing_and_stores_nothing_twice(
    pg_database_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    _reset_postgres(pg_database_url)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with open_store(pg_database_url) as store:
        store.upsert_items(
            [Item(id=f"t{i}", kind=ItemKind.TRACK, title=f"T{i}") for i in range(50)]
        )
        store.upsert_users([User(id=f"u{i}", signup_at=start) for i in range(100)])
    bus = RedisStreamBus(REDIS_URL, redis_prefix)
    events = [
        Event(
            event_id=f"e{n}",
            user_id=f"u{n % 100}",
            item_id=f"t{n % 50}",
            type=EventType.PLAY,
            timestamp=start + dt.timedelta(seconds=n),
        )
        for n in range(N_EVENTS)
    ]
    for chunk in range(0, N_EVENTS, 5_000):
        bus.publish(events[chunk : chunk + 5_000])
    env = {
        **os.environ,
        "SEGUE_DATA_DIR": str(tmp_path),
        "SEGUE_DATABASE_URL": pg_database_url,
        "SEGUE_REDIS_URL": REDIS_URL,
        "SEGUE_REDIS_PREFIX": redis_prefix,
    }
    first = _worker(env, "--consumer", "doomed")
    with open_store(pg_database_url) as store:
        deadline = time.monotonic() + 120
        while store.count("events") < N_EVENTS // 5:
            assert first.poll() is None, first.stdout.read() if first.stdout else ""
            assert time.monotonic() < deadline, "the first worker made no progress"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        stored_at_kill = store.count("events")
        assert stored_at_kill < N_EVENTS, "killed too late to prove anything"
        second = _worker(env, "--consumer", "heir", "--once", "--reclaim-idle-ms", "0")
        out, _ = second.communicate(timeout=300)
        assert second.returncode == 0, out
        assert store.count("events") == N_EVENTS
        log = store.interactions()
        assert len(log) == N_EVENTS
    assert bus.pending("persist") == 0
    bus.close()


N_TAKEOVER = 20_000


def _pending_of(bus: RedisStreamBus, consumer: str) -> int:
    """Messages of the ``persist`` group pending with ``consumer``."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        info = client.xpending(bus.key, "persist")
    finally:
        client.close()
    names = {consumer, consumer.encode()}
    return sum(int(c["pending"]) for c in info["consumers"] if c["name"] in names)


@pytest.mark.slow
def test_a_running_worker_under_a_new_name_takes_over_a_killed_ones_events(
    pg_database_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """No restart, no shared name: the heir runs beside the doomed worker and claims its
    pending messages once they sit idle (XAUTOCLAIM in its loop). 0 lost, 0 duplicated: every
    event stored once, and the online state counted each play once."""
    from segue.online.factory import open_state

    _reset_postgres(pg_database_url)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=N_TAKEOVER + 600)
    with open_store(pg_database_url) as store:
        store.upsert_items(
            [Item(id=f"t{i}", kind=ItemKind.TRACK, title=f"T{i}") for i in range(50)]
        )
        store.upsert_users([User(id=f"u{i}", signup_at=start) for i in range(100)])
    bus = RedisStreamBus(REDIS_URL, redis_prefix)
    events = [
        Event(
            event_id=f"e{n}",
            user_id=f"u{n % 100}",
            item_id=f"t{n % 50}",
            type=EventType.PLAY,
            timestamp=start + dt.timedelta(seconds=n),
        )
        for n in range(N_TAKEOVER)
    ]
    for chunk in range(0, N_TAKEOVER, 5_000):
        bus.publish(events[chunk : chunk + 5_000])
    env = {
        **os.environ,
        "SEGUE_DATA_DIR": str(tmp_path),
        "SEGUE_DATABASE_URL": pg_database_url,
        "SEGUE_REDIS_URL": REDIS_URL,
        "SEGUE_REDIS_PREFIX": redis_prefix,
        "SEGUE_RECLAIM_IDLE_S": "2",
    }
    doomed = _worker(env, "--consumer", "doomed")
    heir = None
    try:
        with open_store(pg_database_url) as store:
            deadline = time.monotonic() + 120
            while store.count("events") < N_TAKEOVER // 10:
                assert doomed.poll() is None, doomed.stdout.read() if doomed.stdout else ""
                assert time.monotonic() < deadline, "the first worker made no progress"
                time.sleep(0.02)
            heir = _worker(env, "--consumer", "heir")  # a new name, running, never restarted
            time.sleep(0.3)
            deadline = time.monotonic() + 30
            while _pending_of(bus, "doomed") == 0:  # kill it mid-batch, not between batches
                assert time.monotonic() < deadline, "the first worker holds nothing pending"
                time.sleep(0.001)
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(10)
            left = _pending_of(bus, "doomed")
            assert store.count("events") < N_TAKEOVER, "killed too late to prove anything"
            assert left > 0, "the killed worker left nothing pending"
            deadline = time.monotonic() + 120
            while store.count("events") < N_TAKEOVER or bus.pending("persist"):
                assert heir.poll() is None, heir.stdout.read() if heir.stdout else ""
                assert time.monotonic() < deadline, (
                    f"{N_TAKEOVER - store.count('events')} events not stored, "
                    f"{bus.pending('persist')} pending"
                )
                time.sleep(0.05)
            assert store.count("events") == N_TAKEOVER, "lost events"
            assert len(store.interactions()) == N_TAKEOVER, "interactions"
        heir.send_signal(signal.SIGINT)
        out, _ = heir.communicate(timeout=30)
        assert heir.returncode == 0, out
        assert "dead lettered 0" in out, out
        assert _pending_of(bus, "doomed") == 0, "the heir took over what the dead one held"
        state = open_state(REDIS_URL, redis_prefix)
        try:
            now_ms = int((start + dt.timedelta(seconds=N_TAKEOVER)).timestamp() * 1000)
            _, day = state.item_counts([f"t{i}" for i in range(50)], now_ms)
            assert int(day.sum()) == N_TAKEOVER, "plays counted twice (or not) in the state"
        finally:
            state.close()
        assert bus.dead_letters() == []
    finally:
        for proc in (doomed, heir):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
        bus.close()
