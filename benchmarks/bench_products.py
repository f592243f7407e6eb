"""Listener products benchmark: daily mixes for every user, and station next-page latency.

The bars (listener issue): daily mixes for all users of a 1M-user synthetic world in under
20 minutes on 2 cores; a station's next page within p99 <= 30 ms.

Steps, each in its own process (as in bench_scale.py):

1. ``build``: generate the world, train the serving model (ALS by default) on its positive
   events, and cache the model and the side info (catalog, demographics) under /tmp. World
   generation and training are the nightly training job, not the mixes job, and are reported
   apart.
2. ``mixes``: ``--workers`` processes each load the cached model, build the product context
   and run :func:`segue.jobs.products.mixes_for_all_users` on their shard of user rows; the
   figure is the wall time from starting the workers to the last one finishing (loading
   included), next to the CPU seconds each used.
3. ``station``: next-page latency of :func:`segue.products.stations.next_page` on the same
   model and catalog, for a mix of seeds (discovery, artist, track, genre, mood) over growing
   sessions with skips and likes, plus the full ``station_page`` job (store lookups, online
   state) on a SQLite store of a smaller world.

    .venv/bin/python benchmarks/bench_products.py                               # 1M users
    .venv/bin/python benchmarks/bench_products.py --users 100000 --tracks 20000 --events 2000000
    .venv/bin/python benchmarks/bench_products.py --steps station --pages 2000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pickle
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from segue.dataset import SideInfo
    from segue.registry.trained import TrainedModel

CACHE = Path("/tmp/segue-bench-products")
DAY = dt.date(2025, 1, 2)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _folder(args: argparse.Namespace) -> Path:
    name = f"s{args.seed}-u{args.users}-t{args.tracks}-e{args.events}-{args.model}"
    return CACHE / name


def build(args: argparse.Namespace) -> dict:
    from segue.data.log import InteractionLog
    from segue.data.synth import SynthParams, generate_world
    from segue.dataset import Interactions, ItemCatalog, SideInfo, UserTable
    from segue.registry.trained import save_trained, train_models

    started = time.perf_counter()
    world = generate_world(
        SynthParams(seed=args.seed, n_users=args.users, n_tracks=args.tracks, n_events=args.events)
    )
    log = InteractionLog.concat(list(world.iter_event_chunks(chunk_size=1_000_000)))
    data = Interactions.from_log(log)
    del log
    side = SideInfo(
        catalog=ItemCatalog.from_items(world.items, data.items),
        users=UserTable.from_users(world.users, data.users),
        friends=None,
    )
    generated = time.perf_counter()
    trained = train_models(data, [args.model], side=side)[args.model]
    trained_at = time.perf_counter()
    folder = _folder(args)
    folder.mkdir(parents=True, exist_ok=True)
    save_trained(trained, folder / args.model)
    with open(folder / "side.pkl", "wb") as f:
        pickle.dump(side, f, protocol=pickle.HIGHEST_PROTOCOL)
    return {
        "step": "build",
        "world_s": generated - started,
        "train_s": trained_at - generated,
        "users": data.n_users,
        "items": data.n_items,
        "pairs": len(data),
        "peak_rss_mib": _peak_rss_mib(),
    }


def _load(args: argparse.Namespace) -> tuple[TrainedModel, SideInfo]:
    from segue.registry.trained import load_trained

    folder = _folder(args)
    trained = load_trained(folder, args.model)
    with open(folder / "side.pkl", "rb") as f:
        side = pickle.load(f)  # our own cache file
    return trained, side


def mixes_shard(args: argparse.Namespace) -> dict:
    """One worker: rows ``shard::workers`` (interleaved, so shards have alike users)."""
    from segue.jobs.products import mixes_for_all_users, product_context

    cpu0, wall0 = time.process_time(), time.perf_counter()
    trained, side = _load(args)
    context = product_context(None, trained, side)
    loaded = time.perf_counter()
    rows = np.arange(len(trained.users))[args.shard :: args.workers]
    if args.limit:
        rows = rows[: args.limit]
    tracks = [0]

    def sink(user_id: str, plans: list) -> None:
        tracks[0] += sum(len(p.tracks) for p in plans)

    report = mixes_for_all_users(None, trained, DAY, context=context, users=rows, sink=sink)
    return {
        "step": "mixes",
        "shard": args.shard,
        "users": report.users,
        "cold_users": report.cold_users,
        "mixes": report.mixes,
        "tracks": tracks[0],
        "load_s": loaded - wall0,
        "mixes_s": report.seconds,
        "cpu_s": time.process_time() - cpu0,
        "peak_rss_mib": _peak_rss_mib(),
    }


def station_latency(args: argparse.Namespace) -> dict:
    """Next-page latency on the cached model and catalog (no store: the products function)."""
    from segue.jobs.products import product_context
    from segue.online.state import SessionState
    from segue.products.stations import StationSeed, next_page

    trained, side = _load(args)
    ctx = product_context(None, trained, side)
    pc, train = ctx.pc, trained.model._fitted()
    rng = np.random.default_rng(0)
    active = np.flatnonzero(np.diff(train.indptr) >= 5)
    tracks = np.flatnonzero(pc.is_track & (pc.popularity > 0))
    genres = [g for g in pc.catalog.genre_names]
    moods = ["chill", "energetic", "happy", "melancholy", "focus", "party"]
    times: dict[str, list[float]] = {}
    cpu_times: list[float] = []
    for page in range(args.pages):
        row = int(rng.choice(active))
        kind = ("discovery", "artist", "track", "genre", "mood")[page % 5]
        item = int(rng.choice(tracks))
        value = {
            "discovery": None,
            "artist": pc.catalog.artist_ids[int(pc.catalog.artist[item])],
            "track": str(trained.items.to_ids(np.array([item]))[0]),
            "genre": str(rng.choice(genres)).lower(),
            "mood": str(rng.choice(moods)),
        }[kind]
        seed = StationSeed(kind, value)
        # a session some pages in: a few skips and likes of artists and genres, pages served
        depth = int(rng.integers(0, 6))
        session = SessionState(
            "s", 0, 0,
            skips_by_artist={pc.catalog.artist_ids[int(pc.catalog.artist[item])]: depth // 2},
            skips_by_genre={str(rng.choice(genres)): depth},
            likes_by_genre={str(rng.choice(genres)): 1},
        )  # fmt: skip
        served = rng.choice(tracks, size=10 * depth, replace=False)
        history = train[row]
        cpu, started = time.process_time(), time.perf_counter()
        next_page(
            trained.model, pc, seed, history, session, 10,
            allowed=ctx.allowed_adult, served=served, adjuster=ctx.adjuster,
            user_row=row,  # as the job does for users the model knows
        )  # fmt: skip
        times.setdefault(kind, []).append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu)
    every = np.concatenate([np.array(v) for v in times.values()]) * 1000
    out = {"step": "station", "pages": len(every), "items": len(pc)}
    out["all"] = _percentiles(every)
    out["cpu"] = _percentiles(np.array(cpu_times) * 1000)
    out.update({k: _percentiles(np.array(v) * 1000) for k, v in times.items()})
    return out


def station_job_latency(args: argparse.Namespace) -> dict:
    """The full job (user lookup, online state, ids) on a SQLite store of a demo-size world."""
    from segue.data.synth import SynthParams
    from segue.dataset.from_store import load_interactions, load_side_info
    from segue.jobs.ingest import load_synthetic_world
    from segue.jobs.products import product_context, station_page
    from segue.online.state import InProcessState
    from segue.registry.trained import train_models
    from segue.store import open_store

    path = CACHE / "station-job.sqlite"
    if path.exists():
        path.unlink()
    store = open_store(f"sqlite:///{path}")
    load_synthetic_world(store, SynthParams(seed=3, n_users=5000, n_tracks=10_000,
                                            n_events=500_000))  # fmt: skip
    data = load_interactions(store)
    side = load_side_info(store, data)
    trained = train_models(data, [args.model], side=side)[args.model]
    ctx = product_context(store, trained, side)
    state = InProcessState()
    rng = np.random.default_rng(1)
    users = [str(u) for u in data.users.to_ids(np.flatnonzero(data.user_counts() >= 5))]
    seeds = ["discovery", "genre:rock", "mood:chill", "discovery", "mood:happy"]
    times, cpu_times = [], []
    for page in range(args.pages):
        user = str(rng.choice(users))
        cpu, started = time.process_time(), time.perf_counter()
        station_page(store, trained, state, user, seeds[page % 5], 10, context=ctx)
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu)
    store.close()
    return {"step": "station_job", "pages": len(times), "items": data.n_items,
            "all": _percentiles(np.array(times) * 1000),
            "cpu": _percentiles(np.array(cpu_times) * 1000)}  # fmt: skip


def _percentiles(ms: np.ndarray) -> dict[str, float]:
    return {
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
    }


#: One BLAS thread per process, as a server answering many requests at once runs: a single
#: user's scores are one small matrix-vector product, and BLAS threads fighting over two busy
#: cores cost that product 10x (measured: ALS scoring a user, 52 ms vs 4 ms).
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _child(args: list[str], *, threads: bool = False) -> subprocess.Popen:
    """A step in its own process; ``threads``: keep multithreaded BLAS (training)."""
    env = dict(os.environ) if threads else {**os.environ, **ONE_THREAD}
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env,
    )  # fmt: skip


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{proc.args} failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", default="als")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="users per worker (0: all)")
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--steps", nargs="*", default=["mixes", "station", "station_job"])
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--shard", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    steps = {"build": build, "mixes": mixes_shard, "station": station_latency,
             "station_job": station_job_latency}  # fmt: skip
    if args.step:
        print(json.dumps(steps[args.step](args)))
        return

    size = ["--users", str(args.users), "--tracks", str(args.tracks), "--events",
            str(args.events), "--seed", str(args.seed), "--model", args.model]  # fmt: skip
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    if args.rebuild or not (_folder(args) / "side.pkl").exists():
        r = _result(_child([*size, "--step", "build"], threads=True))
        print(
            f"world {r['users']:,} users x {r['items']:,} items, {r['pairs']:,} pairs: "
            f"generated in {r['world_s']:.0f} s, {args.model} trained in {r['train_s']:.0f} s, "
            f"peak {r['peak_rss_mib']:,.0f} MiB"
        )
        sys.stdout.flush()
    if "mixes" in args.steps:
        started = time.perf_counter()
        extra = ["--workers", str(args.workers), "--limit", str(args.limit)]
        procs = [_child([*size, *extra, "--step", "mixes", "--shard", str(s)])
                 for s in range(args.workers)]  # fmt: skip
        results = [_result(p) for p in procs]
        wall = time.perf_counter() - started
        users = sum(r["users"] for r in results)
        mixes = sum(r["mixes"] for r in results)
        print(
            f"daily mixes: {users:,} users ({sum(r['cold_users'] for r in results):,} without "
            f"history), {mixes:,} mixes, {sum(r['tracks'] for r in results):,} tracks in "
            f"{wall:.0f} s wall with {args.workers} workers ({users / wall:,.0f} users/s); per "
            f"worker: load {max(r['load_s'] for r in results):.0f} s, mixes "
            f"{max(r['mixes_s'] for r in results):.0f} s, CPU "
            f"{max(r['cpu_s'] for r in results):.0f} s, peak "
            f"{max(r['peak_rss_mib'] for r in results):,.0f} MiB"
        )
        if args.limit:
            print(f"  extrapolated to all {args.users:,} users: "
                  f"{wall / users * args.users:.0f} s")  # fmt: skip
        sys.stdout.flush()
    if "station" in args.steps:
        r = _result(_child([*size, "--pages", str(args.pages), "--step", "station"]))
        print(f"station next_page on {r['items']:,} items, {r['pages']} pages (ms):")
        for key in ("all", "cpu", "discovery", "artist", "track", "genre", "mood"):
            p = r[key]
            print(f"  {key:<10} p50 {p['p50']:6.1f}  p95 {p['p95']:6.1f}  p99 {p['p99']:6.1f}"
                  f"  max {p['max']:6.1f}")  # fmt: skip
        sys.stdout.flush()
    if "station_job" in args.steps:
        r = _result(_child([*size, "--pages", str(args.pages), "--step", "station_job"]))
        p, c = r["all"], r["cpu"]
        print(f"station_page job (SQLite, {r['items']:,} items, {r['pages']} pages): wall p50 "
              f"{p['p50']:.1f} ms, p95 {p['p95']:.1f} ms, p99 {p['p99']:.1f} ms; CPU p50 "
              f"{c['p50']:.1f} ms, p99 {c['p99']:.1f} ms")  # fmt: skip
    load = os.getloadavg()
    print(f"load average at end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
