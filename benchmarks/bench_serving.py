"""Serving benchmarks (real-time issue): load test, ingestion throughput, freshness.

Not a test: prints figures for docs/benchmarks.md. Steps, each its own sub-command:

    # 1. a 1M-user x 100k-track world in SQLite (embedded) and PostgreSQL (Redis mode), ALS
    .venv/bin/python benchmarks/bench_serving.py build --pg
    # 2. open-loop load from this process against `segue serve` on loopback
    .venv/bin/python benchmarks/bench_serving.py load --mode embedded --rates 100,200,300,400
    .venv/bin/python benchmarks/bench_serving.py load --mode redis --workers 2 --rates 300,500
    # 2b. what the exposure log costs: servers with it on and off, alternately, bandit exploring
    .venv/bin/python benchmarks/bench_serving.py load --mode embedded --rates 150,300,300 \
        --exposure-log both --rounds 2 --explore-share 0.2
    # 2c. similar items (the table published with the version) under the same load
    .venv/bin/python benchmarks/bench_serving.py load --mode embedded --rates 300,300 \
        --route similar --exposure-log off
    # 3. events through Redis Streams into PostgreSQL by `segue worker` processes
    .venv/bin/python benchmarks/bench_serving.py ingest --events 300000 --workers 2
    # 4. time from an event's acceptance to its effect on the next recommendation
    .venv/bin/python benchmarks/bench_serving.py freshness --mode redis

The load client is open-loop: requests are *scheduled* at a fixed rate and latency is counted
from the scheduled time, so a slow server cannot hide its queueing (no coordinated omission).
It speaks minimal HTTP/1.1 over keep-alive asyncio connections to stay light on the two cores
it shares with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path("/tmp/segue-bench-serving")
PG_ADMIN = "postgresql+psycopg://postgres@localhost:5432/test"
PG_NAME = "segue_bench_serving"
REDIS_URL = "redis://localhost:6379/0"


def pg_url() -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{PG_NAME}"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- build ------------------------------------------------------------------------------------


def build(args: argparse.Namespace) -> None:
    import sqlalchemy as sa

    from segue.data.synth import SynthParams
    from segue.dataset.from_store import load_interactions, load_side_info
    from segue.jobs.ingest import load_synthetic_world
    from segue.registry.trained import train_models
    from segue.store import open_store

    params = SynthParams(
        seed=args.seed, n_users=args.users, n_tracks=args.tracks, n_events=args.events
    )
    ROOT.mkdir(parents=True, exist_ok=True)
    sqlite = ROOT / "segue.sqlite"
    if not args.keep:
        for path in ROOT.glob("segue.sqlite*"):
            path.unlink()
    started = time.perf_counter()
    with open_store(f"sqlite:///{sqlite}") as store:
        if not args.keep:
            load_synthetic_world(store, params)
        loaded = time.perf_counter()
        print(f"sqlite world: {store.count('events'):,} events in {loaded - started:.0f} s")
        data = load_interactions(store)
        side = load_side_info(store, data, friends=False)
        read = time.perf_counter()
        print(f"read back in {read - loaded:.0f} s", flush=True)
        # with the similar-items table, as `segue train` and the daily flow publish it
        settings = {args.model: json.loads(args.params)} if args.params else None
        train_models(
            data, [args.model], ROOT / "data" / "models", side=side, params=settings, similar=True
        )
        trained = time.perf_counter()
    print(
        f"sqlite world {args.users:,} users x {args.tracks:,} tracks x {args.events:,} events: "
        f"load {loaded - started:.0f} s, read {read - loaded:.0f} s, "
        f"train {args.model} {trained - read:.0f} s, peak {_rss_mib():.0f} MiB",
        flush=True,
    )
    if args.pg:
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{PG_NAME}"'))
        started = time.perf_counter()
        with open_store(pg_url()) as store:
            load_synthetic_world(store, params)
        print(f"postgres world: load {time.perf_counter() - started:.0f} s")


# -- server -----------------------------------------------------------------------------------


def _env(mode: str, prefix: str) -> dict[str, str]:
    env = {**os.environ, "SEGUE_DATA_DIR": str(ROOT / "data")}
    if mode == "embedded":
        env["SEGUE_DATABASE_URL"] = f"sqlite:///{ROOT / 'segue.sqlite'}"
        env.pop("SEGUE_REDIS_URL", None)
    else:
        env["SEGUE_DATABASE_URL"] = pg_url()
        env["SEGUE_REDIS_URL"] = REDIS_URL
        env["SEGUE_REDIS_PREFIX"] = prefix
    env.pop("SEGUE_API_KEYS", None)
    return env


@contextlib.contextmanager
def server(
    mode: str,
    workers: int,
    port: int,
    model: str,
    prefix: str,
    persist: bool = True,
    env: dict[str, str] | None = None,
):
    cmd = [sys.executable, "-m", "segue.cli.main", "serve", "--port", str(port)]
    cmd += ["--workers", str(workers), "--model", model]
    cmd += [] if persist else ["--no-persist"]
    proc = subprocess.Popen(cmd, env={**_env(mode, prefix), **(env or {})}, start_new_session=True)
    try:
        started = time.perf_counter()
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}")
            try:
                status, body = asyncio.run(_get_once(port, "/v1/ready"))
                if status == 200 and json.loads(body)["ready"]:
                    # every worker must be up: ask a few times over fresh connections
                    break
            except OSError:
                pass
            time.sleep(0.5)
        print(f"server ready in {time.perf_counter() - started:.0f} s ({mode}, {workers} workers)")
        time.sleep(3 if workers > 1 else 0)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


class Connection:
    """One keep-alive HTTP/1.1 connection; enough protocol for our own server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        await self.writer.drain()
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def _get_once(port: int, path: str) -> tuple[int, bytes]:
    conn = await Connection.open(port)
    try:
        return await conn.request("GET", path)
    finally:
        conn.close()


# -- load -------------------------------------------------------------------------------------


async def _open_loop(
    port: int,
    users: list[str],
    rate: float,
    duration: float,
    connections: int,
    route: str = "/v1/users/{}/recommendations?k=10",
) -> dict:
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await Connection.open(port))
    latencies: list[float] = []
    errors = 0
    rng = random.Random(0)
    n = int(rate * duration)
    start = time.perf_counter() + 0.1

    async def one(i: int) -> None:
        nonlocal errors
        scheduled = start + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        user = users[rng.randrange(len(users))]
        conn = await pool.get()
        try:
            status, _ = await conn.request("GET", route.format(user))
            if status != 200:
                errors += 1
        except Exception:
            errors += 1
            conn = await Connection.open(port)
        finally:
            pool.put_nowait(conn)
        latencies.append(time.perf_counter() - scheduled)

    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().close()
    lat = np.array(latencies) * 1000
    return {
        "rate": rate,
        "achieved": len(lat) / elapsed,
        "p50_ms": float(np.percentile(lat, 50)),
        "p90_ms": float(np.percentile(lat, 90)),
        "p99_ms": float(np.percentile(lat, 99)),
        "errors": errors,
    }


def _sample_users(n: int, model: str = "als") -> list[str]:
    """Known users (from the trained model's id map) and a share of unknown ones (cold start)."""
    from segue.dataset import IdMap

    ids = IdMap.load(ROOT / "data" / "models" / model / "users.idmap").ids
    rng = np.random.default_rng(0)
    known = [str(x) for x in rng.choice(ids, size=n, replace=False)]
    return known + [f"cold-{i}" for i in range(n // 20)]


def _metric(port: int, name: str) -> float:
    """One counter of the server's ``/metrics`` (0 when absent)."""
    _, body = asyncio.run(_get_once(port, "/metrics"))
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _sample_items(n: int, model: str = "als") -> list[str]:
    """Items the trained model knows (those ``/similar`` answers from its table)."""
    from segue.dataset import IdMap

    ids = IdMap.load(ROOT / "data" / "models" / model / "items.idmap").ids
    rng = np.random.default_rng(0)
    return [str(x) for x in rng.choice(ids, size=min(n, len(ids)), replace=False)]


#: ``--route``: what the load asks for, ``{}`` standing for a listener's or an item's id
ROUTES = {
    "recommendations": "/v1/users/{}/recommendations?k=10",
    "similar": "/v1/items/{}/similar?k=10",
    # the floor: what the HTTP stack, the middleware and this client cost on their own
    "health": "/v1/health?{}",
}


async def _play_for(port: int, users: list[str], items: list[str], batch: int = 500) -> None:
    """One play of a random catalog item per listener, through the API as clients send them,
    so that these listeners' next lists are scored from fresh plays (the history path)."""
    conn = await Connection.open(port)
    rng = random.Random(1)
    try:
        for start in range(0, len(users), batch):
            events = [
                {"event_id": uuid.uuid4().hex, "user_id": user, "item_id": rng.choice(items),
                 "type": "play"}
                for user in users[start : start + batch]
            ]  # fmt: skip
            status, body = await conn.request(
                "POST", "/v1/events", json.dumps({"events": events}).encode()
            )
            if status != 202:
                raise SystemExit(f"posting plays failed: {status} {body[:200]!r}")
    finally:
        conn.close()


def load(args: argparse.Namespace) -> None:
    """The load test; with ``--exposure-log both`` one server with the exposure log on, then
    one with it off, ``--rounds`` times, so that the two are compared under the same noise.
    ``--route similar`` asks for similar items of random catalog items instead."""
    route = ROUTES[args.route]
    sample = _sample_items if args.route != "recommendations" else _sample_users
    users = sample(20_000, args.model)
    env = {"SEGUE_EXPLORE_SHARE": str(args.explore_share)}
    logs = {"on": ["true"], "off": ["false"], "both": ["true", "false"]}[args.exposure_log]
    print(
        "| exposure log | mode | workers | target req/s | achieved | p50 ms | p90 ms | p99 ms "
        "| errors | lists published | CPU ms/request: server / client / Redis / machine |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for _ in range(args.rounds):
        for log_on in logs:
            prefix = f"bench-{uuid.uuid4().hex[:6]}:"
            run_env = {**env, "SEGUE_EXPOSURE_LOG": log_on}
            persist = not args.no_persist
            with server(
                args.mode, args.workers, args.port, args.model, prefix, persist, run_env
            ) as proc:
                if args.fresh > 0:  # a share of the known listeners played since training
                    known = [u for u in users if not u.startswith("cold-")]
                    fresh = known[: int(args.fresh * len(known))]
                    asyncio.run(_play_for(args.port, fresh, _sample_items(5_000, args.model)))
                    time.sleep(5)  # the event worker applies them to the online state
                # warm-up, not counted: the first 20 s at full rate after a start measured p99
                # 30-145 ms where later windows measured 9-11 ms (caches, connections, faults)
                asyncio.run(_open_loop(args.port, users, 150, 20, args.connections, route))
                for rate in [float(r) for r in args.rates.split(",")]:
                    before = _cpu_split(proc.pid)
                    r = asyncio.run(
                        _open_loop(args.port, users, rate, args.duration, args.connections, route)
                    )
                    after = _cpu_split(proc.pid)
                    n = int(rate * args.duration)  # requests sent, as _open_loop sends them
                    cpu = " / ".join(
                        f"{1000 * (after[key] - before[key]) / n:.2f}" for key in after
                    )
                    published = _metric(args.port, "segue_exposures_logged_total")
                    print(
                        f"| {'on' if log_on == 'true' else 'off'} | {args.mode} | "
                        f"{args.workers} | {rate:.0f} | {r['achieved']:.0f} | "
                        f"{r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | "
                        f"{r['errors']} | {published:,.0f} | {cpu} |",
                        flush=True,
                    )
                    if r["p99_ms"] > 1000:
                        break
            _cleanup_redis(prefix)


# -- freshness --------------------------------------------------------------------------------


async def _freshness(port: int, users: list[str], trials: int) -> list[float]:
    from segue.store import open_store

    conn = await Connection.open(port)
    url = f"sqlite:///{ROOT / 'segue.sqlite'}"
    out: list[float] = []
    gets: list[int] = []
    with open_store(url) as store:
        for user in users:
            if len(out) >= trials:
                break
            profile = store.get_user(user)
            if profile is None or not profile.consent_personalisation:
                continue  # without consent the list must not change: not a freshness trial
            _, body = await conn.request("GET", f"/v1/users/{user}/recommendations?k=10")
            items = json.loads(body)["items"]
            top = store.get_item(items[0]["item_id"])
            if top is None or top.artist_id is None:
                continue
            events = [
                {"event_id": uuid.uuid4().hex, "user_id": user, "item_id": top.id, "type": "skip"}
                for _ in range(2)
            ]
            payload = json.dumps({"events": events}).encode()
            status, _ = await conn.request("POST", "/v1/events", payload)
            accepted = time.perf_counter()
            assert status == 202
            n_gets = 0
            while True:
                _, body = await conn.request("GET", f"/v1/users/{user}/recommendations?k=10")
                n_gets += 1
                if json.loads(body)["items"][0]["item_id"] != top.id:
                    out.append(time.perf_counter() - accepted)
                    gets.append(n_gets)
                    break
                if time.perf_counter() - accepted > 5:
                    out.append(float("inf"))
                    break
    conn.close()
    print(f"requests needed until the list changed: {np.bincount(gets).tolist()} (index = count)")
    return out


def freshness(args: argparse.Namespace) -> None:
    prefix = f"bench-{uuid.uuid4().hex[:6]}:"
    users = _sample_users(5_000, args.model)
    random.Random(1).shuffle(users)
    users = [u for u in users if not u.startswith("cold-")]
    with server(args.mode, args.workers, args.port, args.model, prefix, not args.no_persist):
        times = np.array(asyncio.run(_freshness(args.port, users, args.trials))) * 1000
    print(
        f"freshness ({args.mode}, {len(times)} trials): acceptance -> changed list "
        f"p50 {np.percentile(times, 50):.1f} ms, p99 {np.percentile(times, 99):.1f} ms, "
        f"max {times.max():.1f} ms"
    )
    _cleanup_redis(prefix)


# -- ingestion --------------------------------------------------------------------------------


def ingest(args: argparse.Namespace) -> None:
    import datetime as dt

    from segue.data.model import Event, EventType
    from segue.dataset import IdMap
    from segue.online.bus import RedisStreamBus

    prefix = f"bench-{uuid.uuid4().hex[:6]}:"
    users = IdMap.load(ROOT / "data" / "models" / "als" / "users.idmap").ids
    items = IdMap.load(ROOT / "data" / "models" / "als" / "items.idmap").ids
    rng = np.random.default_rng(2)
    start = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    bus = RedisStreamBus(REDIS_URL, prefix)
    published = time.perf_counter()
    batch: list[Event] = []
    for n in range(args.events):
        batch.append(
            Event(
                event_id=f"bench-{prefix}{n}",
                user_id=str(users[rng.integers(len(users))]),
                item_id=str(items[rng.integers(len(items))]),
                type=EventType.PLAY,
                timestamp=start + dt.timedelta(milliseconds=n),
            )
        )
        if len(batch) == 5_000:
            bus.publish(batch)
            batch = []
    bus.publish(batch)
    publish_s = time.perf_counter() - published
    env = _env("redis", prefix)
    stored_since = _stored_since(pg_url())
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "segue.cli.main",
                "worker",
                "--once",
                "--batch",
                str(args.batch),
                "--consumer",
                f"w{i}",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for i in range(args.workers)
    ]
    samples: list[tuple[float, int]] = []
    while any(p.poll() is None for p in procs):
        samples.append((time.perf_counter(), stored_since()))
        time.sleep(1.0)
    elapsed = time.perf_counter() - started
    cpu = {k: v - cpu_before[k] for k, v in _cpu_seconds().items()}
    stored = stored_since()
    # steady state: from 10% to 90% of the events stored (process start and the workers'
    # catalog load excluded, as they happen once per worker, not per event)
    t10 = next(t for t, n in samples if n >= 0.1 * stored)
    n10 = next(n for t, n in samples if n >= 0.1 * stored)
    t90, n90 = next((t, n) for t, n in samples if n >= 0.9 * stored)
    print(
        f"ingestion: published {args.events:,} events in {publish_s:.1f} s "
        f"({args.events / publish_s:,.0f}/s); {args.workers} worker(s) persisted {stored:,} into "
        f"PostgreSQL and applied them to the Redis state in {elapsed:.1f} s all told; "
        f"steady state {(n90 - n10) / (t90 - t10):,.0f} events/s"
    )
    others = cpu["machine"] - cpu["workers"] - cpu["redis"]
    print(
        f"CPU per event: workers {cpu['workers'] / stored * 1e6:.0f} µs, Redis "
        f"{cpu['redis'] / stored * 1e6:.0f} µs, PostgreSQL and the rest "
        f"{others / stored * 1e6:.0f} µs (machine busy {cpu['machine'] / elapsed:.2f} cores)"
    )
    _cleanup_redis(prefix)


def _stored_since(url: str) -> Callable[[], int]:
    """A counter of the events stored from now on. Counting the whole 10M-row table every
    second would itself cost PostgreSQL a core-second per call, stolen from the workers;
    a range of the primary key only reads the new rows."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        last = conn.execute(sa.text("SELECT COALESCE(MAX(key), 0) FROM events")).scalar_one()

    def count() -> int:
        with engine.connect() as conn:
            query = sa.text("SELECT count(*) FROM events WHERE key > :last")
            return int(conn.execute(query, {"last": last}).scalar_one())

    return count


def _cpu_seconds() -> dict[str, float]:
    """CPU used so far by this process's children (the workers), by Redis, and by the
    whole machine (PostgreSQL is what remains, on an otherwise quiet machine)."""
    import redis

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    with redis.Redis.from_url(REDIS_URL) as client:
        info = client.info("cpu")
    with open("/proc/stat") as stat:
        ticks = [int(x) for x in stat.readline().split()[1:]]
    busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
    return {
        "workers": children.ru_utime + children.ru_stime,
        "redis": float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
        "machine": busy / os.sysconf("SC_CLK_TCK"),
    }


def _tree_cpu_seconds(root: int) -> float:
    """CPU used so far by the live processes under ``root`` (the server and its workers)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    return sum(times.get(pid, 0.0) for pid in tree)


def _cpu_split(server_pid: int) -> dict[str, float]:
    """CPU seconds so far: the server's processes, this load client, Redis, the machine."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "server": _tree_cpu_seconds(server_pid),
        "client": own.ru_utime + own.ru_stime,
        "redis": _cpu_seconds()["redis"],
        "machine": _cpu_seconds()["machine"],
    }


def _cleanup_redis(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=10_000))
    for chunk in range(0, len(keys), 10_000):
        client.delete(*keys[chunk : chunk + 10_000])
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--users", type=int, default=1_000_000)
    b.add_argument("--tracks", type=int, default=100_000)
    b.add_argument("--events", type=int, default=10_000_000)
    b.add_argument("--seed", type=int, default=7)
    b.add_argument("--pg", action="store_true", help="also load the world into PostgreSQL")
    b.add_argument("--keep", action="store_true", help="reuse the SQLite world, only train")
    b.add_argument(
        "--params",
        default="",
        help="the model's settings as JSON, e.g. the pipeline's generators at this scale: "
        '\'{"generators": ["als", "itemknn", "content", "trending"], "folds": 2}\'',
    )
    for p in (b, *(sub.add_parser(n) for n in ("load", "freshness", "ingest"))):
        p.add_argument("--model", default="als")
        if p is b:
            continue
        p.add_argument("--mode", choices=["embedded", "redis"], default="embedded")
        p.add_argument("--workers", type=int, default=1)
        p.add_argument("--port", type=int, default=8765)
        if p.prog.endswith("load"):
            p.add_argument("--rates", default="100,200,300,400,600")
            p.add_argument("--duration", type=float, default=20.0)
            p.add_argument("--connections", type=int, default=32)
            p.add_argument(
                "--exposure-log",
                choices=["on", "off", "both"],
                default="on",
                help="both: servers with the log on and off, alternately",
            )
            p.add_argument("--rounds", type=int, default=1, help="how often to alternate")
            p.add_argument("--route", choices=sorted(ROUTES), default="recommendations")
            p.add_argument("--explore-share", type=float, default=0.0, help="SEGUE_EXPLORE_SHARE")
            p.add_argument(
                "--fresh",
                type=float,
                default=0.0,
                help="share of the known listeners given one play before the load (their "
                "lists are then scored from fresh plays, as an active listener's are)",
            )
        if p.prog.endswith(("load", "freshness")):
            p.add_argument("--no-persist", action="store_true", help="no worker in the API")
        if p.prog.endswith("freshness"):
            p.add_argument("--trials", type=int, default=200)
        if p.prog.endswith("ingest"):
            p.add_argument("--events", type=int, default=300_000)
            p.add_argument("--batch", type=int, default=2_000)
    args = parser.parse_args()
    {"build": build, "load": load, "freshness": freshness, "ingest": ingest}[args.command](args)


if __name__ == "__main__":
    main()
