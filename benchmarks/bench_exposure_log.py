"""What logging a served list costs the request: the exposure log's ``log()`` call, timed
while its thread publishes batches onto the exposures stream (real Redis by default) and a
stream worker stores them. Not a test (tests/test_exposure_stream.py asserts the path).

    .venv/bin/python benchmarks/bench_exposure_log.py                # Redis stream, SQLite
    .venv/bin/python benchmarks/bench_exposure_log.py --postgres     # Redis stream, PostgreSQL
    .venv/bin/python benchmarks/bench_exposure_log.py --bus memory   # the embedded mode's bus

Each call builds the ``Exposure`` the recommendations route builds (10 items, context, three
propensities as when the top-slot bandit explores) and appends it; requests arrive at
``--rate`` per second, as a serving process would see them, while the flushing thread
publishes and a worker thread (as the serving process's) consumes the stream into the store.
Prints the per-call latency p50 / p99 / max, how many records the thread published, how many
reached the store (once each) by the end, and the process's CPU time per served list beyond an
idle baseline (the same loop without the log): the share of a core that the publishing thread
and the worker take from requests in the same interpreter, a figure that a shared machine's
noise disturbs less than latencies.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from segue.online.bus import EventBus, InProcessBus, RedisStreamBus
from segue.online.state import InProcessState
from segue.serving.exposures import EXPOSURE_CODEC, EXPOSURES_STREAM, ExposureLog
from segue.serving.worker import EventWorker
from segue.store import open_store
from segue.store.exposures import Exposure

PG_ADMIN = os.environ.get(
    "SEGUE_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@localhost:5432/test"
)
REDIS_URL = os.environ.get("SEGUE_TEST_REDIS_URL", "redis://localhost:6379/0")


def _buses(kind: str, prefix: str) -> tuple[EventBus, EventBus]:
    if kind == "memory":
        events = InProcessBus()
        return events, InProcessBus(
            stream=EXPOSURES_STREAM, codec=EXPOSURE_CODEC, dead_letters=events.dead_box
        )
    events = RedisStreamBus(REDIS_URL, prefix)
    return events, RedisStreamBus(REDIS_URL, prefix, EXPOSURES_STREAM, codec=EXPOSURE_CODEC)


def _idle_cpu_s(args: argparse.Namespace) -> float:
    """CPU seconds of the request loop alone (building each record, pacing), no log."""
    items = tuple(f"trk-{i:06d}" for i in range(10))
    cpu0, gap = time.process_time(), 1.0 / args.rate
    started = time.perf_counter()
    for n in range(args.requests):
        Exposure(uuid.uuid4().hex, "u", n, "home", "als", "v1", "personal", items)
        wait = started + (n + 1) * gap - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
    return time.process_time() - cpu0


def run(url: str, args: argparse.Namespace) -> None:
    store = open_store(url)
    prefix = f"bench-expo-{uuid.uuid4().hex[:6]}:"
    events, exposures = _buses(args.bus, prefix)
    published: list[int] = []
    log = ExposureLog(exposures, on_published=published.append)
    worker = EventWorker(events, store, InProcessState(), exposures=exposures)
    stored = 0
    stop = threading.Event()

    def consume() -> None:  # the serving process's worker thread
        nonlocal stored
        while not stop.is_set():
            stored += worker.run_once(500, block_ms=200).exposures

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    log.start()
    cpu0 = time.process_time()
    items = tuple(f"trk-{i:06d}" for i in range(10))
    timings = np.empty(args.requests)
    gap = 1.0 / args.rate
    started = time.perf_counter()
    for n in range(args.requests):
        t0 = time.perf_counter()
        log.log(
            Exposure(
                request_id=uuid.uuid4().hex,
                user_id=f"usr-{n % 5000:07d}",
                ts_ms=int(time.time() * 1000),
                surface="home",
                model="als",
                version="v0001",
                path="personal",
                items=items,
                context={"device": "phone", "served_us": "4210", "explored": "1"},
                propensities=(0.82, 0.067, 0.067),
            )
        )
        timings[n] = time.perf_counter() - t0
        wait = started + (n + 1) * gap - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
    log.close()
    deadline = time.monotonic() + 60
    while stored < sum(published) and time.monotonic() < deadline:
        time.sleep(0.1)
    behind_s = time.perf_counter() - started - args.requests / args.rate
    stop.set()
    consumer.join(timeout=5)
    cpu_s = time.process_time() - cpu0
    idle_s = _idle_cpu_s(args)
    us = timings * 1e6
    in_store = len(store.exposures_between(0, 2**62))
    print(
        f"{args.bus} bus, {url.split(':')[0]}: {args.requests:,} served lists at {args.rate}/s: "
        f"log() p50 {np.percentile(us, 50):.1f} us, p99 {np.percentile(us, 99):.1f} us, "
        f"max {us.max():.0f} us; published by the thread {sum(published):,}; stored by the "
        f"worker {stored:,} (in the store {in_store:,}), the last {behind_s:.1f} s after the "
        f"last request; CPU {(cpu_s - idle_s) / args.requests * 1e6:.0f} us per list beyond the "
        f"loop ({cpu_s:.1f} s against {idle_s:.1f} s idle)"
    )
    if args.bus == "redis":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    events.close()
    exposures.close()
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--bus", choices=["redis", "memory"], default="redis")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=300)
    args = parser.parse_args()
    if not args.postgres:
        with tempfile.TemporaryDirectory() as tmp:
            run(f"sqlite:///{Path(tmp) / 'segue.sqlite'}", args)
        return
    name = f"segue_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        run(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", args)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
