"""Sing along, measured: the lead vocal's level on synthetic multi-stem songs whose stems are
known, render speed, and the lyrics lookup through the API. Not a test (tests/test_sing.py and
tests/test_sing_api.py assert the properties); the figures go to docs/benchmarks.md.

    .venv/bin/python benchmarks/bench_sing.py                 # 20 songs of 16 s at 44.1 kHz
    .venv/bin/python benchmarks/bench_sing.py --only separation --first-seed 100
                                                # the fresh songs, never used for tuning

Per method (``mid-side``, ``soft-mask``, and ``auto``, the per-track choice; and, so that the
comparison is not decided by where mid/side's band starts, mid/side with its band from 120 Hz
and from 60 Hz instead of 180, below the lowest note the synthetic leads sing, ~160 Hz):

* **lead reduction at level 0** (dB): 10·log10(‖lead‖² / ‖lead − plan.lead(lead)‖²), the energy
  of the lead stem against what is left of it. Both methods are linear once their mask is
  computed on the mix, so the plan is applied to the lead stem itself;
* **accompaniment SDR** (dB): 10·log10(‖acc‖² / ‖acc − out‖²) with ``acc`` the mix without
  the lead (background vocals included) and ``out`` the level-0 render of the mix: the lead's
  leftovers and the damage to everything else both count (plain SDR with NumPy; neither
  mir_eval nor museval is installed);
* **background vocals kept**: how far below the background stem the plan's take of it is;
* the same on the songs whose lead stays above plain mid/side's band edge, those where
  starting the band at 120 Hz instead of 180 gains mid/side < 0.5 dB of lead reduction: there
  the band edge decides nothing;
* level 1 == input, bit for bit, float32 and 16-bit;
* render speed for a 3-minute stereo 44.1 kHz track, pinned to one core, as × real time;
* the lyrics lookup: ``GET /v1/items/{id}/lyrics?at=MS`` through the app in-process (FastAPI's
  test client, sequential requests), p50/p99 latency and the rate that gives; synthetic tracks
  (lyrics built on a track's first read, then kept) and an imported LRC; and against
  ``segue serve`` in its own process at 300 req/s, open loop (``--only load``; with
  ``--reference`` the recommendations route after it, same server and rate: what the HTTP
  stack costs on the machine at the time);
* what the synthetic world's lyrics rows cost ``segue synth`` at 20,000 tracks.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from segue.sing.audio import from_float
from segue.sing.songs import render_song
from segue.sing.vocals import Plan, plan, render

#: mid/side with its band starting lower than the product's 180 Hz: the fair comparisons
LOWERED_HZ = (120.0, 60.0)


def _db(reference: np.ndarray, error: np.ndarray) -> float:
    return float(
        10
        * np.log10(
            np.sum(reference.astype(np.float64) ** 2) / np.sum(error.astype(np.float64) ** 2)
        )
    )


def separation(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    seeds = range(args.first_seed, args.first_seed + args.songs)
    songs = [render_song(seed, seconds=args.seconds, rate=args.rate) for seed in seeds]
    took = time.perf_counter() - started
    print(
        f"{len(songs)} songs (seeds {seeds.start}–{seeds.stop - 1}) of {args.seconds:g} s at "
        f"{args.rate} Hz rendered in {took:.1f} s"
    )
    rows: dict[str, list[tuple[float, float, float]]] = {}
    chosen: dict[str, int] = {}
    gated: dict[str, int] = {}
    exact = True
    for song in songs:
        for low in LOWERED_HZ:  # the centre cut with its band from lower down
            p = Plan("mid-side", song.rate, low_hz=low)
            out = song.mix - p.lead(song.mix)
            bg = song.stems["background"]
            rows.setdefault(f"mid-side from {low:.0f} Hz", []).append(
                (
                    _db(song.lead, song.lead - p.lead(song.lead)),
                    _db(song.accompaniment, song.accompaniment - out),
                    _db(bg, p.lead(bg)),
                )
            )
        sung = [
            (w.start_ms, w.end_ms) for ln in song.lyrics.lines for w in ln.words if w.singer != "bg"
        ]
        for label in ("mid-side", "soft-mask", "auto", "soft-mask + lyrics", "auto + lyrics"):
            method, _, with_lyrics = label.partition(" + ")
            given = sung if with_lyrics else None
            out, p = render(song.mix, song.rate, 0.0, method, given)  # type: ignore[arg-type]
            assert p is not None
            if label == "auto":
                chosen[p.method] = chosen.get(p.method, 0) + 1
            if with_lyrics and p.estimate is not None:
                gated[label] = gated.get(label, 0) + p.estimate.lyrics_used
            method = label
            lead = _db(song.lead, song.lead - p.lead(song.lead))
            sdr = _db(song.accompaniment, song.accompaniment - out)
            bg = song.stems["background"]
            kept = _db(bg, p.lead(bg))
            rows.setdefault(method, []).append((lead, sdr, kept))
        same, _ = render(song.mix, song.rate, 1.0)
        pcm = from_float(song.mix, np.dtype(np.int16))
        same16, _ = render(pcm, song.rate, 1.0)
        exact &= bool(np.array_equal(same, song.mix) and np.array_equal(same16, pcm))
    gain = np.array(rows["mid-side from 120 Hz"])[:, 0] - np.array(rows["mid-side"])[:, 0]
    high = gain < 0.5
    order = ["mid-side", *(f"mid-side from {low:.0f} Hz" for low in LOWERED_HZ)]
    rows = {m: rows[m] for m in [*order, *(m for m in rows if m not in order)]}
    for subset, keep in (
        (f"all {len(songs)} songs", np.ones(len(songs), dtype=bool)),
        (
            f"the {int(high.sum())} songs whose lead stays above 180 Hz (the band from 120 Hz "
            "gains mid/side < 0.5 dB)",
            high,
        ),
    ):
        if not keep.any():
            continue
        print(f"\n{subset}:\n")
        _table({m: np.array(v)[keep] for m, v in rows.items()}, order)
    print(f"\nauto chose: {chosen}; the lyrics gated the mask in {gated} songs")
    print(f"level 1 == input (float32 and int16, all songs): {exact}")


def _table(rows: dict[str, np.ndarray], centre_cuts: list[str]) -> None:
    """The figures per method, and each other method against plain mid/side and against the
    best of the mid/side variants on each measure (per song: better than all of them)."""
    print(
        "| method | lead reduction at 0, mean (min) dB | accompaniment SDR, mean (min) dB "
        "| background taken, dB below it, median (min) |"
    )
    print("|---|---|---|---|")
    for method, a in rows.items():
        print(
            f"| {method} | {a[:, 0].mean():.1f} ({a[:, 0].min():.1f}) | "
            f"{a[:, 1].mean():.1f} ({a[:, 1].min():.1f}) | {np.median(a[:, 2]):.1f} "
            f"({a[:, 2].min():.1f}) |"
        )
    base = rows["mid-side"]
    cuts = np.stack([rows[m] for m in centre_cuts])  # variant × song × measure
    best_lead = float(cuts[:, :, 0].mean(axis=1).max())
    best_sdr = float(cuts[:, :, 1].mean(axis=1).max())
    for method, a in rows.items():
        if method in centre_cuts:
            continue
        wins = int(np.sum((a[:, 0] > base[:, 0]) & (a[:, 1] > base[:, 1])))
        wins_all = int(np.sum((a[:, 0] > cuts[:, :, 0].max(0)) & (a[:, 1] > cuts[:, :, 1].max(0))))
        print(
            f"{method}: against plain mid-side {a[:, 0].mean() - base[:, 0].mean():+.1f} dB lead "
            f"reduction, {a[:, 1].mean() - base[:, 1].mean():+.1f} dB SDR on average, better "
            f"on both in {wins} of {len(a)} songs; against the best mid/side variant "
            f"{a[:, 0].mean() - best_lead:+.1f} dB lead, {a[:, 1].mean() - best_sdr:+.1f} dB "
            f"SDR, better than every variant on both in {wins_all} of {len(a)} songs"
        )


def speed(args: argparse.Namespace) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    seconds = 180.0
    parts = [render_song(100 + k, seconds=20.0, rate=44100).mix for k in range(2)]
    track = np.concatenate(parts * int(np.ceil(seconds / 40.0)))[: int(seconds * 44100)]
    print(f"\nrender speed, a {seconds:.0f} s stereo 44.1 kHz track, one core:")
    for method in ("mid-side", "soft-mask", "auto"):
        best = np.inf
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            render(track, 44100, 0.0, method)  # type: ignore[arg-type]
            best = min(best, time.perf_counter() - t0)
        print(
            f"  {method:9s} {best:5.2f} s = {seconds / best:5.1f}x real time "
            f"(best of {args.repeats})"
        )
    t0 = time.perf_counter()
    plan(track, 44100, "soft-mask")
    print(f"  (of which the soft mask's analysis: {time.perf_counter() - t0:.2f} s)")


def lyrics_latency(args: argparse.Namespace) -> None:
    from fastapi.testclient import TestClient

    from segue.api import create_app
    from segue.config import Settings
    from segue.data.synth import SynthParams
    from segue.jobs.ingest import load_synthetic_world
    from segue.store import StoredLyrics, open_store

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with open_store(f"sqlite:///{root / 'segue.sqlite'}") as store:
            load_synthetic_world(
                store, SynthParams(seed=7, n_users=200, n_tracks=600, n_events=5000)
            )
            song = render_song(1, seconds=16.0)
            from segue.data.lyrics import parse_lrc

            imported = parse_lrc(song.lrc, "song.lrc")
            store.put_lyrics([StoredLyrics("trk-000001", "lrc", "song.lrc", imported.to_json(), 0)])
        with open_store(f"sqlite:///{root / 'segue.sqlite'}") as store:
            from segue.jobs.sing import track_lyrics

            times = []
            for _ in range(args.lookups):
                item = f"trk-{int(rng.integers(0, 600)):06d}"
                t0 = time.perf_counter()
                found = track_lyrics(store, item)
                assert found is not None
                found.at(int(rng.integers(0, 200_000)))
                times.append(time.perf_counter() - t0)
            us = np.array(times) * 1e6
            print(
                f"\nthe lookup alone (store read + lyrics + bisection, no HTTP): "
                f"p50 {np.percentile(us, 50):.0f} µs, p99 {np.percentile(us, 99):.0f} µs "
                "(first reads of a track build its lyrics: ~1 ms)"
            )
        with TestClient(create_app(Settings(data_dir=root), watch_s=None)) as client:
            for label, ids, span in (
                (
                    "synthetic tracks (built on first read, then kept)",
                    [f"trk-{i:06d}" for i in range(600)],
                    200_000,
                ),
                ("an imported LRC", ["trk-000001"], 16_000),
            ):
                for _ in range(50):  # warm up
                    client.get(f"/v1/items/{ids[0]}/lyrics", params={"at": 1000})
                times = []
                t_all = time.perf_counter()
                for _ in range(args.lookups):
                    item = ids[int(rng.integers(0, len(ids)))]
                    at = int(rng.integers(0, span))
                    t0 = time.perf_counter()
                    r = client.get(f"/v1/items/{item}/lyrics", params={"at": at})
                    times.append(time.perf_counter() - t0)
                    assert r.status_code == 200, r.text
                total = time.perf_counter() - t_all
                ms = np.array(times) * 1000
                print(
                    f"\nlyrics ?at= lookup, {label}: {args.lookups:,} sequential requests, "
                    f"p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms, "
                    f"max {ms.max():.1f} ms; {args.lookups / total:,.0f} req/s on one connection"
                )


def lyrics_load(args: argparse.Namespace) -> None:
    """``?at=`` lookups at a fixed rate (open loop: each request is sent on schedule whether
    or not the ones before have answered) against ``segue serve`` in its own process, over
    20 keep-alive connections; latency from the scheduled send to the answer."""
    import asyncio
    import socket
    import subprocess
    import sys

    import httpx

    from segue.data.synth import SynthParams
    from segue.dataset.from_store import load_interactions, load_side_info
    from segue.jobs.ingest import load_synthetic_world
    from segue.registry.trained import train_models
    from segue.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with open_store(f"sqlite:///{root / 'segue.sqlite'}") as store:
            load_synthetic_world(
                store, SynthParams(seed=7, n_users=200, n_tracks=600, n_events=5000)
            )
            data = load_interactions(store)  # a trained model, as a deployment serves one
            train_models(data, ["popularity"], root / "models", side=load_side_info(store, data))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**os.environ, "SEGUE_DATA_DIR": str(root)}
        command = "from segue.cli.main import main; main()"
        server = subprocess.Popen(
            [
                sys.executable,
                "-c",
                command,
                "serve",
                "--port",
                str(port),
                "--model",
                "popularity",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/v1/ready", timeout=1).status_code == 200:  # warm
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            runs = {}
            for route in ("lyrics", "recommendations") if args.reference else ("lyrics",):
                runs[route] = asyncio.run(_open_loop(base, args.rate_rps, args.load_seconds, route))
        finally:
            server.terminate()
            server.wait(timeout=30)
    for route, latencies in runs.items():
        ms = np.array(latencies) * 1000
        what = "lyrics ?at=" if route == "lyrics" else "recommendations (k=10, the reference)"
        print(
            f"\n{what} under load: {args.rate_rps} req/s for {args.load_seconds} s against "
            f"segue serve (one process), {len(ms):,} answered: p50 "
            f"{np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms, "
            f"max {ms.max():.1f} ms; load average {os.getloadavg()[0]:.1f}"
        )


def _path(route: str, rng: np.random.Generator) -> str:
    """A request of the route measured: a random track and moment, or a random listener."""
    if route == "lyrics":
        item = f"trk-{int(rng.integers(0, 600)):06d}"
        return f"/v1/items/{item}/lyrics?at={int(rng.integers(0, 200_000))}"
    return f"/v1/users/usr-{int(rng.integers(0, 200)):07d}/recommendations?k=10"


async def _open_loop(base: str, rps: int, seconds: int, route: str = "lyrics") -> list[float]:
    """The serving benchmark's minimal keep-alive client (``bench_serving.Connection``):
    httpx's own overhead on this 2-core machine would be most of what is measured."""
    import asyncio
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_serving import Connection

    port = int(base.rsplit(":", 1)[1])
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(20):
        pool.put_nowait(await Connection.open(port))
    rng = np.random.default_rng(1)
    latencies: list[float] = []

    async def warm(k: int) -> None:  # every track once, 20 at a time: caches and threads
        conn = await pool.get()
        try:
            if route == "lyrics":
                await conn.request("GET", f"/v1/items/trk-{k:06d}/lyrics?at=1000")
            else:
                await conn.request("GET", f"/v1/users/usr-{k % 200:07d}/recommendations?k=10")
        finally:
            pool.put_nowait(conn)

    await asyncio.gather(*(warm(k) for k in range(600)))
    start = time.perf_counter() + 1.0  # after the tasks are made: none starts late

    async def one(k: int, path: str) -> None:
        scheduled = start + k / rps
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        conn = await pool.get()
        try:
            code, _ = await conn.request("GET", path)
            assert code == 200, code
        finally:
            pool.put_nowait(conn)
        latencies.append(time.perf_counter() - scheduled)
        if os.environ.get("BENCH_DEBUG") and latencies[-1] > 0.05:
            print(f"late at {scheduled - start:.2f} s: {latencies[-1] * 1000:.0f} ms")

    await asyncio.gather(*(one(k, _path(route, rng)) for k in range(rps * seconds)))
    while not pool.empty():
        pool.get_nowait().close()
    return latencies


def synth_cost() -> None:
    from segue.data.synth import SynthParams
    from segue.jobs.ingest import load_synthetic_world, synthetic_lyrics_rows
    from segue.store import open_store

    params = SynthParams(seed=7, n_users=1000, n_tracks=20_000, n_events=100_000)
    with tempfile.TemporaryDirectory() as tmp, open_store(f"sqlite:///{tmp}/s.sqlite") as store:
        t0 = time.perf_counter()
        load_synthetic_world(store, params)
        total = time.perf_counter() - t0
        items = list(store.iter_items())
        t0 = time.perf_counter()
        rows = synthetic_lyrics_rows(items, params.seed)
        store.put_lyrics(rows)
        lyrics = time.perf_counter() - t0
    print(
        f"\nsegue synth with 20,000 tracks (1,000 users, 100,000 events): {total:.1f} s in all, "
        f"of which the {len(rows):,} lyrics rows take {lyrics:.2f} s (written again here)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--songs", type=int, default=20)
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="songs seed N… (0–19 tune the mask's constants; 100–119 are kept fresh)",
    )
    parser.add_argument("--seconds", type=float, default=16.0)
    parser.add_argument("--rate", type=int, default=44100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--lookups", type=int, default=3000)
    parser.add_argument("--rate-rps", type=int, default=300)
    parser.add_argument("--load-seconds", type=int, default=10)
    parser.add_argument(
        "--reference",
        action="store_true",
        help="--only load: then the recommendations route at the same rate, same server",
    )
    parser.add_argument(
        "--only", choices=["separation", "speed", "lyrics", "load", "synth"], default=None
    )
    args = parser.parse_args()
    print(f"{platform.node()} · {os.cpu_count()} CPUs · numpy {np.__version__}")
    steps = {
        "separation": separation,
        "speed": speed,
        "lyrics": lyrics_latency,
        "load": lyrics_load,
        "synth": synth_cost,
    }
    for name, step in steps.items():
        if args.only in (None, name):
            if name == "synth":
                synth_cost()
            else:
                step(args)  # type: ignore[operator]


if __name__ == "__main__":
    main()
