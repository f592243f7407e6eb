"""Redis outage benchmark (issue 17, part 2): `segue serve` in Redis mode while its Redis is
stopped (SIGSTOP) and then killed, under a steady 20 requests/s.

Not a test: prints figures for docs/benchmarks.md.

    .venv/bin/python benchmarks/bench_outage.py            # builds the world on first run
    .venv/bin/python benchmarks/bench_outage.py --rate 20 --outage 20 --pg

What it does: a synthetic world in SQLite (``--pg``: PostgreSQL) with an ALS model; a Redis
server of its own (``redis-server --port <free> --save "" --appendonly no``, so stopping and
killing it touches no other Redis); ``segue serve`` against both; an open-loop client that
schedules half recommendation requests and half single-event posts at ``--rate`` per second
(latency counted from the scheduled time, so a stalled server cannot hide its queue). Phases:
baseline, Redis frozen (SIGSTOP) for ``--outage`` s, resumed, Redis killed (SIGKILL) for
``--outage`` s, restarted empty on the same port. For each phase: requests, 5xx, other
non-2xx, p50 / p99 / max latency; the time until ``/v1/ready`` reports ``state: redis`` again
after each outage (recovery without a restart); and whether every accepted event is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import Connection, _get_once  # the same minimal HTTP client

ROOT = Path("/tmp/segue-bench-outage")
PG_ADMIN = "postgresql+psycopg://postgres@localhost:5432/test"
PG_NAME = "segue_bench_outage"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_url() -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{PG_NAME}"


# -- the world --------------------------------------------------------------------------------
def build(args: argparse.Namespace) -> str:
    """The store URL, with a world and an ALS model in ROOT/data (built once)."""
    from segue.data.synth import SynthParams
    from segue.dataset.from_store import load_interactions, load_side_info
    from segue.jobs.ingest import load_synthetic_world
    from segue.registry.trained import train_models
    from segue.store import open_store

    url = _pg_url() if args.pg else f"sqlite:///{ROOT / 'segue.sqlite'}"
    marker = ROOT / ("built-pg" if args.pg else "built-sqlite")
    if marker.exists():
        return url
    ROOT.mkdir(parents=True, exist_ok=True)
    if args.pg:
        import sqlalchemy as sa

        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{PG_NAME}"'))
        admin.dispose()
    params = SynthParams(seed=7, n_users=args.users, n_tracks=args.tracks, n_events=args.events)
    started = time.perf_counter()
    with open_store(url) as store:
        load_synthetic_world(store, params)
        data = load_interactions(store)
        train_models(data, ["als"], ROOT / "data" / "models", side=load_side_info(store, data))
    marker.touch()
    print(f"world built and ALS trained in {time.perf_counter() - started:.0f} s")
    return url


def _sample(url: str, n: int) -> tuple[list[str], list[str]]:
    from segue.store import open_store

    with open_store(url) as store:
        users = [u.id for _, u in zip(range(n), store.iter_users(), strict=False)]
        items = [i.id for _, i in zip(range(n), store.iter_items(), strict=False)]
    return users, items


def _count_events(url: str) -> int:
    from segue.store import open_store

    with open_store(url) as store:
        return store.count("events")


# -- Redis and the server -----------------------------------------------------------------------
class PrivateRedis:
    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or "redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(ROOT)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


def start_server(url: str, redis_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")}
    env.update(
        SEGUE_DATA_DIR=str(ROOT / "data"),
        SEGUE_DATABASE_URL=url,
        SEGUE_REDIS_URL=redis_url,
        SEGUE_REDIS_PREFIX=f"segue-bench-outage:{uuid.uuid4().hex[:8]}:",
    )
    cmd = [sys.executable, "-m", "segue.cli.main", "serve", "--port", str(port), "--model", "als"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    started = time.perf_counter()
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"segue serve exited with {proc.returncode}")
        try:
            status, body = asyncio.run(_get_once(port, "/v1/ready"))
            if status == 200 and json.loads(body)["state"] == "redis":
                break
        except OSError:
            pass
        time.sleep(0.3)
    print(f"segue serve ready in {time.perf_counter() - started:.1f} s")
    return proc


# -- the load -------------------------------------------------------------------------------------
@dataclass
class Sample:
    at: float  # scheduled, seconds since the start
    kind: str
    status: int
    latency_s: float


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    accepted_events: int = 0
    marks: dict[str, float] = field(default_factory=dict)  # phase name -> start (s)
    recovered_after_s: dict[str, float | None] = field(default_factory=dict)


async def _drive(
    port: int, users: list[str], items: list[str], rate: float, duration: float, run: Run,
    start: float,
) -> None:  # fmt: skip
    """Open loop: request i is due at start + i / rate, whatever happened to earlier ones."""
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    rng = random.Random(0)

    async def one(i: int) -> None:
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        user = users[rng.randrange(len(users))]
        try:
            conn = idle.get_nowait()
        except asyncio.QueueEmpty:
            conn = await Connection.open(port)
        kind = "recommend" if i % 2 == 0 else "event"
        try:
            if kind == "recommend":
                status, _ = await conn.request("GET", f"/v1/users/{user}/recommendations?k=10")
            else:
                event = {"user_id": user, "item_id": rng.choice(items), "type": "play"}
                body = json.dumps({"events": [event]}).encode()
                status, _ = await conn.request("POST", "/v1/events", body)
                run.accepted_events += status == 202
            idle.put_nowait(conn)
        except Exception:
            status = 599  # the connection broke: counted as a server error
            conn.close()
        run.samples.append(Sample(due - start, kind, status, time.perf_counter() - due))

    await asyncio.gather(*(one(i) for i in range(int(rate * duration))))
    while not idle.empty():
        idle.get_nowait().close()


async def _state_is_redis(port: int) -> bool:
    try:
        status, body = await _get_once(port, "/v1/ready")
        return status == 200 and json.loads(body)["state"] == "redis"
    except OSError:
        return False


async def _scenario(
    port: int, redis: PrivateRedis, users: list[str], items: list[str], args: argparse.Namespace
) -> Run:
    run = Run()
    base, outage, after = args.baseline, args.outage, args.recovery
    total = base + outage + after + outage + after
    start = time.perf_counter() + 0.2
    load = asyncio.ensure_future(_drive(port, users, items, args.rate, total, run, start))

    async def at(t: float) -> None:
        await asyncio.sleep(max(0.0, start + t - time.perf_counter()))

    async def recovery(name: str, since: float) -> None:
        while time.perf_counter() - start < since + after:
            if await _state_is_redis(port):
                run.recovered_after_s[name] = time.perf_counter() - start - since
                return
            await asyncio.sleep(0.1)
        run.recovered_after_s[name] = None

    run.marks["baseline"] = 0.0
    await at(base)
    redis.signal(signal.SIGSTOP)
    run.marks["frozen"] = base
    await at(base + outage)
    redis.signal(signal.SIGCONT)
    run.marks["resumed"] = base + outage
    await recovery("frozen", base + outage)
    await at(base + outage + after)
    redis.kill()
    run.marks["killed"] = base + outage + after
    await at(base + 2 * outage + after)
    redis.start()  # empty, same port: a lost Redis replaced
    run.marks["restarted"] = base + 2 * outage + after
    await recovery("killed", base + 2 * outage + after)
    await load
    return run


def _report(run: Run, total: float) -> None:
    names = list(run.marks)
    bounds = [*run.marks.values(), total]
    print(f"\n{'phase':<10} {'from s':>6} {'reqs':>5} {'5xx':>4} {'other':>5} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")  # fmt: skip
    for name, lo, hi in zip(names, bounds, bounds[1:], strict=False):
        part = [s for s in run.samples if lo <= s.at < hi]
        if not part:
            continue
        lat = np.array([s.latency_s for s in part]) * 1000
        fivexx = sum(s.status >= 500 for s in part)
        other = sum(s.status >= 300 and s.status < 500 for s in part)
        print(
            f"{name:<10} {lo:>6.0f} {len(part):>5} {fivexx:>4} {other:>5} "
            f"{np.percentile(lat, 50):>7.1f} {np.percentile(lat, 99):>7.1f} {lat.max():>7.1f}"
        )
    slowest = sorted(run.samples, key=lambda s: -s.latency_s)[:5]
    print("slowest: " + ", ".join(
        f"{s.kind} at {s.at:.2f} s: {s.latency_s * 1000:.0f} ms ({s.status})" for s in slowest
    ))  # fmt: skip
    for name, seconds in run.recovered_after_s.items():
        shown = f"{seconds:.1f} s" if seconds is not None else "not within the recovery phase"
        print(f"back on Redis after the {name} outage ended: {shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--outage", type=float, default=20.0, help="seconds per outage")
    parser.add_argument("--baseline", type=float, default=10.0)
    parser.add_argument("--recovery", type=float, default=10.0)
    parser.add_argument("--pg", action="store_true", help="PostgreSQL store (default SQLite)")
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--tracks", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=300_000)
    args = parser.parse_args()

    url = build(args)
    users, items = _sample(url, 500)
    redis = PrivateRedis()
    redis.start()
    port = _free_port()
    proc = start_server(url, redis.url, port)
    try:
        before = _count_events(url)
        run = asyncio.run(_scenario(port, redis, users, items, args))
        time.sleep(3)  # the worker persists what is still on the stream
        stored = _count_events(url) - before
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        redis.kill()
    total = args.baseline + 2 * args.outage + 2 * args.recovery
    backend = "PostgreSQL" if args.pg else "SQLite"
    print(f"\n{args.rate:.0f} req/s (half recommendations, half single-event posts), "
          f"{backend} store, Redis frozen then killed for {args.outage:.0f} s each")  # fmt: skip
    _report(run, total)
    print(f"events accepted (202): {run.accepted_events}, stored: {stored}")


if __name__ == "__main__":
    main()
