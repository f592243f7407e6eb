"""Loading a day's published lists into the store: top-k and mixes for N users, timed.

Writes Parquet files shaped like the daily run's (``recommendations.parquet``: k rows per user;
``mixes.parquet``: mixes x tracks rows per user) for ``--users`` users, publishes them as one
registry version into SQLite and/or PostgreSQL (``segue.batch.publish.publish_version``) and the
online state (in-process, or Redis with ``--redis``), and prints rows and seconds per kind.

    .venv/bin/python benchmarks/bench_publish.py --users 100000
    .venv/bin/python benchmarks/bench_publish.py --users 100000 \
        --postgres postgresql://postgres@localhost:5432/segue_bench --redis redis://localhost:6379/0
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from segue.batch.lifecycle import MIXES, RECOMMENDATIONS
from segue.batch.lists import SCHEMA as TOP_SCHEMA
from segue.batch.publish import MIX_SCHEMA, publish_version
from segue.online.state import InProcessState, OnlineState
from segue.registry import ModelRegistry
from segue.store import open_store

DAY = dt.date(2026, 11, 30)


def write_files(folder: Path, users: int, k: int, mixes: int, length: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = np.array([f"usr-{u:07d}" for u in range(users)], dtype=object)
    items = np.array([f"trk-{i:07d}" for i in range(200_000)], dtype=object)
    day = np.datetime64(DAY, "D")
    with pq.ParquetWriter(folder / RECOMMENDATIONS, TOP_SCHEMA) as w:
        for lo in range(0, users, 20_000):
            n = min(20_000, users - lo) * k
            w.write_table(pa.table({
                "user_id": np.repeat(ids[lo : lo + n // k], k),
                "rank": np.tile(np.arange(1, k + 1, dtype=np.int16), n // k),
                "item_id": items[rng.integers(0, len(items), n)],
                "score": rng.random(n, dtype=np.float32),
                "model": np.full(n, "als", dtype=object),
                "date": np.full(n, day),
            }, schema=TOP_SCHEMA))  # fmt: skip
    per_user = mixes * length
    with pq.ParquetWriter(folder / MIXES, MIX_SCHEMA) as w:
        for lo in range(0, users, 5_000):
            u = min(5_000, users - lo)
            n = u * per_user
            w.write_table(pa.table({
                "user_id": np.repeat(ids[lo : lo + u], per_user),
                "date": np.full(n, day),
                "mix": np.tile(np.repeat(np.arange(1, mixes + 1, dtype=np.int16), length), u),
                "title": np.full(n, "Indie rock mix", dtype=object),
                "description": np.full(n, "Indie rock mix: A, B and C and more", dtype=object),
                "cluster": np.full(n, "indie rock", dtype=object),
                "position": np.tile(np.arange(1, length + 1, dtype=np.int16), u * mixes),
                "item_id": items[rng.integers(0, len(items), n)],
                "familiar": rng.random(n) < 0.5,
            }, schema=MIX_SCHEMA))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--mixes", type=int, default=3, help="Mixes per user.")
    parser.add_argument("--length", type=int, default=30, help="Tracks per mix.")
    parser.add_argument("--postgres", default="", help="A PostgreSQL URL to load into too.")
    parser.add_argument("--redis", default="", help="A Redis URL for the online state.")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="segue-bench-publish-"))
    try:
        files = root / "files"
        files.mkdir()
        started = time.perf_counter()
        write_files(files, args.users, args.k, args.mixes, args.length, seed=0)
        print(f"wrote the Parquet files in {time.perf_counter() - started:.1f}s")
        model = root / "model"
        model.mkdir()
        registry = ModelRegistry(root / "registry")
        extra = {RECOMMENDATIONS: files / RECOMMENDATIONS, MIXES: files / MIXES}
        version = registry.publish("daily", model, {"model_type": "als"}, extra=extra)
        urls = [f"sqlite:///{root / 'segue.sqlite'}", *([args.postgres] if args.postgres else [])]
        for url in urls:
            state: OnlineState = InProcessState()
            if args.redis:
                from segue.online.redis_state import RedisState

                state = RedisState(args.redis, "segue-bench-publish:")
            with open_store(url) as store:
                report = publish_version(store, version, state)
            state.close()
            backend = url.split(":", 1)[0]
            print(f"{backend}: {report.stored} rows, {report.online:,} online lists "
                  f"({type(state).__name__}) in {report.seconds:.1f}s")  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)  # hundreds of MB at 100k users


if __name__ == "__main__":
    main()
