"""What logging a served list costs the request: the exposure log's ``log()`` call, timed
while its thread writes to a real store. Not a test (tests/test_exposures.py asserts the log).

    .venv/bin/python benchmarks/bench_exposure_log.py            # SQLite
    .venv/bin/python benchmarks/bench_exposure_log.py --postgres

Each call builds the ``Exposure`` the recommendations route builds (10 items, context) and
appends it; requests arrive at ``--rate`` per second, as a serving process would see them,
while the flushing thread writes batches. Prints the per-call latency p50 / p99 / max and
how many records the thread wrote.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from segue.serving.exposures import ExposureLog
from segue.store import open_store
from segue.store.exposures import Exposure

PG_ADMIN = os.environ.get(
    "SEGUE_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@localhost:5432/test"
)


def run(url: str, args: argparse.Namespace) -> None:
    store = open_store(url)
    written: list[int] = []
    log = ExposureLog(store, on_written=written.append)
    log.start()
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
                context={"device": "phone"},
            )
        )
        timings[n] = time.perf_counter() - t0
        wait = started + (n + 1) * gap - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
    log.close()
    us = timings * 1e6
    print(
        f"{args.requests:,} served lists at {args.rate}/s: log() p50 {np.percentile(us, 50):.1f} "
        f"us, p99 {np.percentile(us, 99):.1f} us, max {us.max():.0f} us; written by the thread "
        f"{sum(written):,}; in the store {len(store.exposures_between(0, 2**62)):,}"
    )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", action="store_true")
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
