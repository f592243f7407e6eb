"""The exposure log through the event stream: a served list is published by the log's thread
onto the ``exposures`` stream and stored by the workers that store events, with the stream's
rules — nothing in the store before a worker ran, stored once however often it is delivered,
a malformed record set aside in the shared dead letters (``stream: exposures``) while the next
ones are stored, a killed consumer's pending lists taken over. Both bus kinds (in-process
and real Redis), both stores (SQLite and PostgreSQL); the outage test freezes a private
``redis-server``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from conftest import REDIS_URL
from segue.api import create_app
from segue.config import Settings
from segue.online.bus import (
    DeadLetter,
    EventBus,
    InProcessBus,
    RedisStreamBus,
)
from segue.online.state import InProcessState
from segue.serving.exposures import EXPOSURE_CODEC, EXPOSURES_STREAM, ExposureLog
from segue.serving.worker import EventWorker
from segue.store import Store
from segue.store.exposures import Exposure
from test_chaos import private_redis  # noqa: F401  (a fixture: a redis-server of our own)
from test_exposures import _exposure  # the same served list as the store tests use

EVERYTHING = (0, 2**62)


class Streams:
    """The events' and the exposures' buses of one installation (dead letters shared)."""

    def __init__(self, kind: str, prefix: str | None) -> None:
        self.kind, self.prefix = kind, prefix
        self.dead: list[DeadLetter] = []
        if kind == "memory":
            self.events: EventBus = InProcessBus(on_dead=self.dead.append)
            self.exposures: EventBus = InProcessBus(
                stream=EXPOSURES_STREAM,
                codec=EXPOSURE_CODEC,
                dead_letters=self.events.dead_box,  # type: ignore[attr-defined]
                on_dead=self.dead.append,
            )
        else:
            assert prefix is not None
            self.events = RedisStreamBus(REDIS_URL, prefix, on_dead=self.dead.append)
            self.exposures = RedisStreamBus(
                REDIS_URL,
                prefix,
                EXPOSURES_STREAM,
                codec=EXPOSURE_CODEC,
                on_dead=self.dead.append,
            )

    def worker(self, store: Store, consumer: str = "worker-1", **kwargs: object) -> EventWorker:
        return EventWorker(
            self.events,
            store,
            InProcessState(),
            consumer=consumer,
            exposures=self.exposures,
            **kwargs,  # type: ignore[arg-type]
        )

    def publish_raw(self, payload: str, exposure: Exposure) -> None:
        """A malformed record as another producer might put it on the stream: raw JSON on
        Redis, an unvalidated object on the in-process bus (which carries objects)."""
        if self.kind == "memory":
            self.exposures.publish([exposure])
        else:
            client = redis.Redis.from_url(REDIS_URL)
            client.xadd(f"{self.prefix}{EXPOSURES_STREAM}", {"e": payload})
            client.close()

    def on_stream(self) -> int:
        """Messages on the exposures stream (Redis) or in its log (in-process)."""
        if self.kind == "memory":
            return len(self.exposures._log)  # type: ignore[attr-defined]
        client = redis.Redis.from_url(REDIS_URL)
        try:
            return int(client.xlen(f"{self.prefix}{EXPOSURES_STREAM}"))
        finally:
            client.close()

    def close(self) -> None:
        self.events.close()
        self.exposures.close()


@pytest.fixture(params=["memory", "redis"])
def streams(request: pytest.FixtureRequest) -> Iterator[Streams]:
    prefix = request.getfixturevalue("redis_prefix") if request.param == "redis" else None
    s = Streams(request.param, prefix)
    try:
        yield s
    finally:
        s.close()


def _stored(store: Store) -> list[str]:
    return [e.request_id for e in store.exposures_between(*EVERYTHING)]


def test_a_served_list_reaches_the_store_through_the_stream_once(
    streams: Streams, store: Store
) -> None:
    log = ExposureLog(streams.exposures, batch=2)
    for n in range(5):
        log.log(_exposure(n))
    assert log.flush() == 5 and log.pending() == 0
    # published, not written: nothing is in the store until a worker consumed the stream
    assert streams.on_stream() == 5 and _stored(store) == []
    worker = streams.worker(store)
    report = worker.run_once()
    assert report.exposures == 5 and report.received == 5
    assert _stored(store) == ["r0", "r1", "r2", "r3", "r4"]
    assert store.exposures_between(*EVERYTHING)[1] == _exposure(1)  # every field, as served
    assert streams.exposures.pending(worker.group) == 0  # acknowledged after the write
    # the same request ids published again (a retried flush): delivered, stored once
    streams.exposures.publish([_exposure(2), _exposure(3), _exposure(7)])
    again = worker.run_once()
    assert again.received == 3 and again.exposures == 1
    assert _stored(store) == ["r0", "r1", "r2", "r3", "r4", "r7"]
    assert worker.run_once().received == 0


def test_the_log_and_the_serving_worker_take_small_slices_yet_store_everything(
    streams: Streams, store: Store
) -> None:
    """Inside the serving process both the log's thread and the worker give the interpreter
    back between small slices (a request waits for whatever they hold it for), without
    losing throughput: one flush publishes all, one ``run_once`` stores all."""
    published: list[int] = []
    publish = streams.exposures.publish

    def counting(records):  # type: ignore[no-untyped-def]
        published.append(len(records))
        return publish(records)

    streams.exposures.publish = counting  # type: ignore[method-assign]
    log = ExposureLog(streams.exposures, publish_slice=3)
    for n in range(10):
        log.log(_exposure(n))
    assert log.flush() == 10 and published == [3, 3, 3, 1]
    worker = streams.worker(store, exposure_slice=4)
    calls: list[int] = []
    store_exposures = worker.store_exposures

    def counted(exposures):  # type: ignore[no-untyped-def]
        calls.append(len(exposures))
        return store_exposures(exposures)

    worker.store_exposures = counted  # type: ignore[method-assign]
    report = worker.run_once(max_batch=9)  # at most the batch, in slices
    assert (report.received, report.exposures, calls) == (9, 9, [4, 4, 1])
    assert worker.run_once().exposures == 1 and len(_stored(store)) == 10
    assert streams.exposures.pending(worker.group) == 0


def test_lists_still_on_the_stream_when_their_listener_is_erased_are_not_stored(
    streams: Streams, store: Store
) -> None:
    import datetime as dt

    from segue.data.model import User

    signup = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    store.upsert_users([User(id=u, signup_at=signup) for u in ("gone", "stays", "back")])
    streams.exposures.publish(
        [_exposure(1, "gone"), _exposure(2, "stays"), _exposure(3, "back"), _exposure(4, "anon")]
    )
    for user in ("gone", "back"):
        assert store.erase_user(user, now_ms=2_000) is not None
    store.upsert_users([User(id="back", signup_at=signup)])  # signed up again since
    streams.worker(store).run_once()
    stored = {e.user_id for e in store.exposures_between(*EVERYTHING)}
    assert stored == {"stays", "back", "anon"}, "nothing of the erased listener"


def test_a_malformed_exposure_is_dead_lettered_and_the_next_ones_are_stored(
    streams: Streams, store: Store
) -> None:
    good = _exposure(1)
    bad = replace(_exposure(2), ts_ms="yesterday")  # type: ignore[arg-type]
    payload = json.dumps({**json.loads(EXPOSURE_CODEC.encode(good)), "request_id": "r2",
                          "ts_ms": "yesterday"})  # fmt: skip
    streams.exposures.publish([good])
    streams.publish_raw(payload, bad)
    streams.exposures.publish([_exposure(n) for n in range(3, 8)])
    worker = streams.worker(store)
    for _ in range(5):  # attempts: the bad one fails alone each time, the others are stored
        worker.run_once()
    assert _stored(store) == ["r1", "r3", "r4", "r5", "r6", "r7"]
    assert streams.exposures.pending(worker.group) == 0  # nothing stalls
    # the dead letters are the events' too: one listing, with the stream named
    (letter,) = streams.events.dead_letters()
    assert streams.dead == [letter]
    assert letter.stream == "exposures" and letter.attempts == 3
    assert "ts_ms" in letter.error and letter.fields()["request_id"] == "r2"
    assert streams.events.dead_count() == 1
    # a replay puts it back on the exposures stream (still bad: dead again), a drop removes it
    assert streams.events.replay_dead([letter.id]) == [letter.id]
    for _ in range(3):
        worker.run_once()
    (again,) = streams.events.dead_letters()
    assert again.id != letter.id and again.stream == "exposures"
    assert streams.events.drop_dead(None) == [again.id]
    assert streams.events.dead_count() == 0
    assert len(_stored(store)) == 6


def test_a_killed_consumers_pending_exposures_are_taken_over(
    streams: Streams, store: Store
) -> None:
    class Died(BaseException):
        """Not an ``Exception``: the process died mid-batch; nothing is settled."""

    def dies(batch: list[Exposure]) -> None:
        raise Died("worker killed")

    streams.exposures.publish([_exposure(n) for n in range(4)])
    with pytest.raises(Died):
        streams.exposures.consume("persist", "killed-worker", dies)
    assert streams.exposures.pending("persist") == 4 and _stored(store) == []
    # a running worker under another name claims what has been idle long enough
    worker = streams.worker(store, consumer="worker-2", reclaim_idle_ms=50)
    time.sleep(0.1)
    report = worker.run_once()
    assert report.exposures == 4
    assert _stored(store) == ["r0", "r1", "r2", "r3"]
    assert streams.exposures.pending("persist") == 0


def test_the_log_buffers_while_redis_is_frozen_and_publishes_when_it_is_back(
    private_redis: tuple[str, subprocess.Popen],  # noqa: F811
    tmp_path: Path,
) -> None:
    from segue.store import open_store

    url, server = private_redis
    bus = RedisStreamBus(url, "t:", EXPOSURES_STREAM, codec=EXPOSURE_CODEC, socket_timeout_s=0.3)
    published: list[int] = []
    dropped: list[int] = []
    log = ExposureLog(
        bus, batch=3, max_buffered=5, on_published=published.append, on_drop=dropped.append
    )
    server.send_signal(signal.SIGSTOP)
    try:
        for n in range(4):
            log.log(_exposure(n))
        started = time.monotonic()
        assert log.flush() == 0 and log.pending() == 4  # kept, in order
        assert time.monotonic() - started < 3  # the bus's timeout, not a hang
        for n in range(4, 7):
            log.log(_exposure(n))
        assert log.pending() == 5 and sum(dropped) == 2  # the oldest two went
    finally:
        server.send_signal(signal.SIGCONT)
    assert log.flush() == 5 and log.pending() == 0 and sum(published) == 5
    with open_store(f"sqlite:///{tmp_path / 'segue.sqlite'}") as store:
        events = InProcessBus()
        worker = EventWorker(events, store, InProcessState(), exposures=bus)
        report = worker.run_once()
        stored = _stored(store)
    bus.close()
    # the five kept are stored; a batch whose publish timed out may still have landed once
    # the server woke (Redis ran the queued XADDs: at least once), and the store keeps one
    # record per request id however often it came
    assert {"r2", "r3", "r4", "r5", "r6"} <= set(stored) <= {f"r{n}" for n in range(7)}
    assert report.exposures == len(stored) and report.received >= 5


def test_served_lists_go_through_the_serving_process_stream_and_its_dead_letters(
    tmp_path: Path,
) -> None:
    """Embedded mode with the thread writer: the log publishes onto the process's in-process
    exposures stream, its worker stores them; a bad record shows in ``GET
    /v1/admin/dead-letters`` as ``exposures`` and the metric counts what was published (the
    process writer: ``tests/test_exposure_writer.py``)."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 's.db'}",
        exposure_writer="thread",
    )
    with TestClient(create_app(settings, watch_s=None)) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        assert services.exposures.bus is services.exposure_bus
        for n in range(3):
            services.exposures.log(_exposure(n))
        services.exposure_bus.publish([replace(_exposure(9), items=("t1", 2))])
        services.flush_exposures()
        deadline = time.monotonic() + 10
        while len(client.get("/v1/admin/dead-letters").json()) < 1:
            assert time.monotonic() < deadline, "the bad record was never dead-lettered"
            services.worker.drain()
            time.sleep(0.05)
        (letter,) = client.get("/v1/admin/dead-letters").json()
        assert letter["stream"] == "exposures" and "items[1]" in letter["error"]
        assert letter["event"]["request_id"] == "r9"
        assert _stored(services.store) == ["r0", "r1", "r2"]
        metrics = client.get("/metrics").text
    assert "segue_exposures_logged_total 3.0" in metrics


def test_segue_worker_stores_the_exposures_stream_and_lists_its_dead_letters(
    store: Store, database_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """Redis mode: what serving processes publish, a standalone ``segue worker`` stores; the
    dead letters' listing names the exposures stream."""
    from test_dead_letters import _segue

    bus = RedisStreamBus(REDIS_URL, redis_prefix, EXPOSURES_STREAM, codec=EXPOSURE_CODEC)
    try:
        log = ExposureLog(bus)
        for n in range(4):
            log.log(_exposure(n))
        assert log.flush() == 4
        client = redis.Redis.from_url(REDIS_URL)
        client.xadd(f"{redis_prefix}{EXPOSURES_STREAM}", {"e": '{"request_id": "r9"}'})
        client.close()
        run = _segue(tmp_path, database_url, redis_prefix, "worker", "--once")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "exposures 4" in run.stdout and "dead lettered 1" in run.stdout, run.stdout
        assert _stored(store) == ["r0", "r1", "r2", "r3"]
        listed = _segue(tmp_path, database_url, redis_prefix, "events", "dead", "list", "--json")
        (letter,) = [json.loads(line) for line in listed.stdout.splitlines()]
        assert letter["stream"] == "exposures" and letter["event"] == {"request_id": "r9"}
        assert "not a valid exposure" in letter["error"]
        assert bus.pending("persist") == 0
    finally:
        bus.close()
