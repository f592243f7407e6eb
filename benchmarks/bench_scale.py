"""Scale benchmark: fit ALS and item-kNN on a large synthetic world, recommend top-10 to everyone.

The bar (recommenders issue): at 1M users x 100k tracks, each model fits and batch-recommends
top-10 for ALL users within 15 minutes and 16 GiB peak RSS on the 2-core development machine.

The world is generated once and its (user, item) play counts are cached as a CSR in /tmp (the
generator is not what is measured here; see bench_foundation.py for it). Each model then runs in
its own process, so that the peak RSS it reports is its own: the cached matrix, the weighting of
the model's registry spec, fit, and recommending in batches. Not a test.

    .venv/bin/python benchmarks/bench_scale.py                        # 1M x 100k x 20M events
    .venv/bin/python benchmarks/bench_scale.py --users 100000 --tracks 20000 --events 2000000
    .venv/bin/python benchmarks/bench_scale.py --models itemknn --batch-size 4096
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

CACHE = Path("/tmp/segue-bench-scale")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cache_path(seed: int, users: int, tracks: int, events: int) -> Path:
    return CACHE / f"counts-s{seed}-u{users}-t{tracks}-e{events}.npz"


def build(seed: int, users: int, tracks: int, events: int) -> dict:
    """Generate the world and cache its play-count matrix (positive events, summed per pair)."""
    from segue.data.log import InteractionLog
    from segue.data.synth import SynthParams, generate_world
    from segue.dataset import Counts, Interactions

    started = time.perf_counter()
    world = generate_world(SynthParams(seed=seed, n_users=users, n_tracks=tracks, n_events=events))
    log = InteractionLog.concat(list(world.iter_event_chunks(chunk_size=1_000_000)))
    generated = time.perf_counter()
    interactions = Interactions.from_log(log)
    del log
    counts = interactions.matrix(Counts())
    path = _cache_path(seed, users, tracks, events)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    sp.save_npz(tmp, counts, compressed=False)
    tmp.rename(path)
    return {
        "step": "build",
        "generate_s": generated - started,
        "dataset_s": time.perf_counter() - generated,
        "shape": list(counts.shape),
        "pairs": int(counts.nnz),
        "peak_rss_mib": _peak_rss_mib(),
    }


def run_model(name: str, path: Path, k: int, batch_size: int, users_limit: int | None) -> dict:
    """Fit one registry model on the cached matrix and recommend top-k to every user."""
    from segue.models.names import model_spec

    counts = sp.load_npz(path).tocsr()
    spec = model_spec(name)
    matrix = spec.weighting.apply(counts)
    del counts
    model = spec.factory()
    started = time.perf_counter()
    model.fit(matrix)
    fitted = time.perf_counter()
    n_users = matrix.shape[0] if users_limit is None else min(users_limit, matrix.shape[0])
    users = np.arange(n_users)
    filled = 0
    # chunks of users, so that the result arrays of 1M users never sit next to a big batch
    for start in range(0, n_users, 100_000):
        recs = model.recommend(users[start : start + 100_000], k, batch_size=batch_size)
        filled += int((recs.items >= 0).sum())
    done = time.perf_counter()
    return {
        "step": name,
        "shape": list(matrix.shape),
        "pairs": int(matrix.nnz),
        "fit_s": fitted - started,
        "recommend_s": done - fitted,
        "users": n_users,
        "users_per_s": n_users / max(done - fitted, 1e-9),
        "filled_share": filled / max(n_users * k, 1),
        "peak_rss_mib": _peak_rss_mib(),
    }


def _child(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"{args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--models", nargs="*", default=["als", "itemknn"])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument(
        "--recommend-users", type=int, default=None, help="recommend to the first N users only"
    )
    parser.add_argument("--rebuild", action="store_true", help="regenerate the cached matrix")
    parser.add_argument("--step", help=argparse.SUPPRESS)  # internal: one step, JSON out
    args = parser.parse_args()
    path = _cache_path(args.seed, args.users, args.tracks, args.events)
    if args.step == "build":
        print(json.dumps(build(args.seed, args.users, args.tracks, args.events)))
        return
    if args.step:
        result = run_model(args.step, path, args.k, args.batch_size, args.recommend_users)
        print(json.dumps(result))
        return

    size = ["--users", str(args.users), "--tracks", str(args.tracks)]
    size += ["--events", str(args.events), "--seed", str(args.seed)]
    if args.rebuild or not path.exists():
        r = _child([*size, "--step", "build"])
        print(
            f"world {args.users:,} users x {args.tracks:,} tracks x {args.events:,} events: "
            f"generated in {r['generate_s']:.0f} s, dataset in {r['dataset_s']:.0f} s, "
            f"{r['pairs']:,} pairs, peak {r['peak_rss_mib']:,.0f} MiB"
        )
    else:
        print(f"cached matrix: {path}")
    sys.stdout.flush()
    print(
        f"{'model':<10}{'pairs':>13}{'fit s':>9}{'rec s':>9}{'total s':>9}{'users/s':>10}"
        f"{'filled':>8}{'peak MiB':>10}"
    )
    for name in args.models:
        extra = ["--k", str(args.k), "--batch-size", str(args.batch_size)]
        if args.recommend_users is not None:
            extra += ["--recommend-users", str(args.recommend_users)]
        r = _child([*size, *extra, "--step", name])
        print(
            f"{name:<10}{r['pairs']:>13,}{r['fit_s']:>9.1f}{r['recommend_s']:>9.1f}"
            f"{r['fit_s'] + r['recommend_s']:>9.1f}{r['users_per_s']:>10,.0f}"
            f"{r['filled_share']:>8.3f}{r['peak_rss_mib']:>10,.0f}"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
