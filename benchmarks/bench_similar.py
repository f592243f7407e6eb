"""``/v1/items/{id}/similar`` from the precomputed table against ranking per request.

Not a test (tests/test_similar_table.py checks the answers are the same). A synthetic world's
catalog (``--tracks``), ALS and item-kNN trained; for each: the time to build the table
(what ``segue train`` and publishing add), then ``similar_live`` for random items with the
table and without it (the per-request path), p50 / p99 in microseconds, in one process.

    .venv/bin/python benchmarks/bench_similar.py --tracks 20000 --users 20000
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from segue.data.synth import SynthParams
from segue.dataset.from_store import load_interactions, load_side_info
from segue.jobs.ingest import load_synthetic_world
from segue.registry.similar import similar_table
from segue.registry.trained import train_models
from segue.serving.holder import ServingModel
from segue.serving.live import similar_live
from segue.store import open_store


def _times(served: ServingModel, items: list[str], k: int) -> np.ndarray:
    out = []
    for item in items:
        started = time.perf_counter()
        similar_live(served, item, k)
        out.append((time.perf_counter() - started) * 1e6)
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--tracks", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=1_000)
    parser.add_argument("--models", default="als,itemknn")
    args = parser.parse_args()
    print(f"{platform.node()}, {args.users:,} users × {args.tracks:,} tracks")
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'segue.sqlite'}")
        load_synthetic_world(store, SynthParams(seed=1, n_users=args.users,
                                                n_tracks=args.tracks, n_events=40 * args.users))
        data = load_interactions(store)
        side = load_side_info(store, data)
        rng = np.random.default_rng(0)
        print("| model | items | table build s | per request p50 / p99 µs "
              "| lookup p50 / p99 µs | speed-up (p50) |")
        print("|---|---:|---:|---:|---:|---:|")
        for name in args.models.split(","):
            trained = train_models(data, [name], side=side)[name]
            started = time.perf_counter()
            table = similar_table(trained.model, trained.model._fitted())
            build = time.perf_counter() - started
            bare = ServingModel.build(store, trained, "v1", side=side)
            fast = ServingModel.build(store, replace(trained, similar=table), "v1", side=side)
            ids = [str(i) for i in rng.choice(bare.item_ids, args.calls)]
            slow_t, fast_t = _times(bare, ids, 10), _times(fast, ids, 10)
            print(f"| {name} | {len(trained.items):,} | {build:.1f} | "
                  f"{np.percentile(slow_t, 50):,.0f} / {np.percentile(slow_t, 99):,.0f} | "
                  f"{np.percentile(fast_t, 50):,.0f} / {np.percentile(fast_t, 99):,.0f} | "
                  f"{np.percentile(slow_t, 50) / np.percentile(fast_t, 50):.0f}× |")
        store.close()


if __name__ == "__main__":
    main()
