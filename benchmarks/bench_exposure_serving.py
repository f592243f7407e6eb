"""What the exposure log adds to a served request, end to end, in one process: alternating
blocks with the log on and off on the same running service, so that the machine's drift
(the shared VM moves a window's p99 by more than the 1 ms asked about) falls on both arms.

Not a test. The service is ``create_app`` as ``segue serve`` builds it (embedded bus by
default, the log's publishing thread in the process and the lists stored by its child process
(``--writer thread``: by the stream worker in the process), the top-slot
bandit exploring at ``--explore-share``), on a synthetic world with a trained ALS model. The
recommendations route is called in process over ASGI (httpx's transport: no sockets, whose
cost is the same with or without the log), open loop at ``--rate`` per second: each request
starts on schedule whether or not earlier ones have answered, and its latency runs from the
scheduled start to the answer, queueing included. Blocks of ``--block-s`` seconds alternate
log on / log off in ABBA order; in an "off" block the route finds no log
(``services.exposures`` set aside), while the log's thread and the worker finish what the
"on" block left, which is their cost too. The first ``--skip-s`` of each block is dropped.

Prints each arm's pooled p50 / p99 and the difference of p99 (on − off) with a 95 % interval
from resampling blocks within each arm; the same for the median of the blocks' own p99, which
a stall of the shared machine (it hits whichever arm is running) moves far less; and checks
that every list served with the log on reached the store once.

    .venv/bin/python benchmarks/bench_exposure_serving.py
    .venv/bin/python benchmarks/bench_exposure_serving.py --writer thread
    .venv/bin/python benchmarks/bench_exposure_serving.py --bus redis
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
from fastapi import FastAPI

REDIS_URL = os.environ.get("SEGUE_TEST_REDIS_URL", "redis://localhost:6379/0")


def _world(root: Path, args: argparse.Namespace) -> list[str]:
    """A world with a trained model; the listener ids to ask for."""
    from segue.data.synth import SynthParams
    from segue.dataset.from_store import load_interactions, load_side_info
    from segue.jobs.ingest import load_synthetic_world
    from segue.registry.trained import train_models
    from segue.store import open_store

    params = SynthParams(seed=7, n_users=args.users, n_tracks=args.tracks, n_events=args.events)
    with open_store(f"sqlite:///{root / 'segue.sqlite'}") as store:
        load_synthetic_world(store, params)
        data = load_interactions(store)
        train_models(data, ["als"], root / "models", side=load_side_info(store, data))
        return [str(u) for u in data.users.ids]


async def _block(
    client: httpx.AsyncClient,
    users: list[str],
    rate: int,
    seconds: float,
    rng: np.random.Generator,
) -> list[tuple[float, float]]:
    """One block's requests on schedule: (seconds into the block, latency in s) each."""
    n = int(rate * seconds)
    paths = [f"/v1/users/{users[i]}/recommendations?k=10" for i in rng.integers(0, len(users), n)]
    start = time.perf_counter() + 0.05
    out: list[tuple[float, float]] = []

    async def one(k: int) -> None:
        scheduled = start + k / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        r = await client.get(paths[k])
        if r.status_code != 200:
            raise RuntimeError(f"{paths[k]}: {r.status_code} {r.text[:200]}")
        out.append((scheduled - start, time.perf_counter() - scheduled))

    await asyncio.gather(*(one(k) for k in range(n)))
    return out


async def _run(
    app: FastAPI, users: list[str], args: argparse.Namespace
) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(1)
    blocks: dict[str, list[np.ndarray]] = {"on": [], "off": []}
    async with app.router.lifespan_context(app):
        svc = app.state.services
        log = svc.exposures
        assert log is not None, "the log is on in these settings"
        assert svc.warmed is not None and await asyncio.to_thread(svc.warmed.wait, 300)
        held_back = None
        if args.no_store_during and svc.worker is not None:  # what the storing costs
            held_back, svc.worker.worker.exposures = svc.worker.worker.exposures, None
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            warm = await _block(client, users, args.rate // 2, 5.0, rng)  # caches, the bandit
            order = ["on", "off", "off", "on"] * (args.blocks // 4)
            for arm in order:
                svc.exposures = log if arm == "on" else None
                got = await _block(client, users, args.rate, args.block_s, rng)
                blocks[arm].append(np.array([lat for t, lat in got if t >= args.skip_s]))
                if args.each:
                    print(f"  block {len(blocks['on']) + len(blocks['off']):3} log {arm:3}: "
                          f"p99 {np.percentile(blocks[arm][-1], 99) * 1000:6.1f} ms")  # fmt: skip
            svc.exposures = log
        if held_back is not None:
            svc.worker.worker.exposures = held_back
        svc.flush_exposures()
        served_on = len(warm) + sum(int(args.rate * args.block_s) for a in order if a == "on")
        stored = svc.store.count("exposures")
        print(f"lists served with the log on (warm-up included): {served_on:,}; stored: "
              f"{stored:,}{'' if stored == served_on else '  <-- NOT EQUAL'}")  # fmt: skip
    return blocks


def _p(values: list[np.ndarray], q: float) -> float:
    return float(np.percentile(np.concatenate(values), q) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--tracks", type=int, default=5_000)
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--rate", type=int, default=300)
    parser.add_argument("--blocks", type=int, default=40, help="a multiple of 4 (ABBA)")
    parser.add_argument("--block-s", type=float, default=3.0)
    parser.add_argument("--skip-s", type=float, default=0.5)
    parser.add_argument("--explore-share", type=float, default=0.2)
    parser.add_argument("--bus", choices=["memory", "redis"], default="memory")
    parser.add_argument("--each", action="store_true", help="print every block's p99")
    parser.add_argument(
        "--writer",
        choices=["process", "thread"],
        default="process",
        help="embedded bus: who stores the lists (Settings.exposure_writer)",
    )
    parser.add_argument(
        "--no-store-during",
        action="store_true",
        help="the worker stores the lists only after the blocks: the log's cost without it",
    )
    args = parser.parse_args()
    if args.no_store_during and args.bus == "memory" and args.writer == "process":
        parser.error("--no-store-during holds back the worker thread: add --writer thread")

    from threadpoolctl import threadpool_limits

    from segue.api import create_app
    from segue.config import Settings

    threadpool_limits(1)  # as segue serve runs
    if os.environ.get("BENCH_SWITCH_S"):  # an experiment: the interpreter's switch interval
        import sys

        sys.setswitchinterval(float(os.environ["BENCH_SWITCH_S"]))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        users = _world(root, args)
        print(f"world and model: {time.perf_counter() - started:.0f} s")
        redis = {"redis_url": REDIS_URL, "redis_prefix": f"bench-{uuid.uuid4().hex[:8]}:"}
        settings = Settings(
            data_dir=root,
            database_url=f"sqlite:///{root / 'segue.sqlite'}",
            exposure_log=True,
            explore_share=args.explore_share,
            exposure_writer=args.writer,
            **(redis if args.bus == "redis" else {}),
        )
        app = create_app(settings, model="als", watch_s=None, warm=True)
        blocks = asyncio.run(_run(app, users, args))
        if args.bus == "redis":
            import redis as redis_lib

            client = redis_lib.Redis.from_url(REDIS_URL)
            for key in client.scan_iter(f"{redis['redis_prefix']}*"):
                client.delete(key)
    rng = np.random.default_rng(2)
    block_p99 = {a: np.array([np.percentile(v, 99) * 1000 for v in b]) for a, b in blocks.items()}
    diffs, median_diffs = [], []
    for _ in range(2_000):
        pick = {a: rng.integers(0, len(b), len(b)) for a, b in blocks.items()}
        diffs.append(_p([blocks["on"][i] for i in pick["on"]], 99)
                     - _p([blocks["off"][i] for i in pick["off"]], 99))  # fmt: skip
        median_diffs.append(np.median(block_p99["on"][pick["on"]])
                            - np.median(block_p99["off"][pick["off"]]))  # fmt: skip
    low, high = np.percentile(diffs, [2.5, 97.5])
    for arm, values in blocks.items():
        n = sum(len(v) for v in values)
        per_block = [float(np.percentile(v, 99) * 1000) for v in values]
        print(f"log {arm:3}: {len(values)} blocks, {n:,} requests: p50 {_p(values, 50):.2f} ms, "
              f"p99 {_p(values, 99):.2f} ms (blocks' own p99 {min(per_block):.1f}–"
              f"{max(per_block):.1f} ms)")  # fmt: skip
    diff = _p(blocks["on"], 99) - _p(blocks["off"], 99)
    median = float(np.median(block_p99["on"]) - np.median(block_p99["off"]))
    m_low, m_high = np.percentile(median_diffs, [2.5, 97.5])
    print(f"median of the blocks' p99, on − off: {median:+.2f} ms [95 % {m_low:+.2f}, "
          f"{m_high:+.2f}] (a spike of the machine moves one block, not the median)")  # fmt: skip
    load = os.getloadavg()[0]
    writer = f", writer {args.writer}" if args.bus == "memory" else ""
    print(f"p99 on − off: {diff:+.2f} ms [95 % {low:+.2f}, {high:+.2f}] "
          f"(bus {args.bus}{writer}, {args.rate} req/s, load average {load:.1f})")  # fmt: skip


if __name__ == "__main__":
    main()
