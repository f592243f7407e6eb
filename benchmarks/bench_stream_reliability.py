"""The event stream under a poison event and a killed worker, with real ``segue worker``
processes, Redis Streams and a store (PostgreSQL, or SQLite with ``--sqlite``). Not a test
(tests/test_dead_letters.py and tests/test_stream_crash.py assert the same with bounds).

    .venv/bin/python benchmarks/bench_stream_reliability.py               # PostgreSQL
    .venv/bin/python benchmarks/bench_stream_reliability.py --sqlite
    .venv/bin/python benchmarks/bench_stream_reliability.py --runs 2 --events 20000

1. **Poison.** A running worker; a poison event is put straight onto the stream (a NUL in the
   user id, then ``ms_played`` = 2**63: neither gets past the API), then 1,000 valid events.
   Prints the seconds from publishing the poison until the 1,000 valid events are all stored,
   and for comparison the same 1,000 without poison.
2. **Kill and replace.** ``--events`` events on the stream, worker "doomed" persisting them;
   a second worker under a new name ("heir") is started, and "doomed" is SIGKILLed once a
   tenth is stored. Prints per run: lost (events never stored), duplicated (stored rows minus
   distinct event ids, and plays counted twice in the live state), messages "doomed" left
   pending, and seconds from the kill until everything was stored. The heir claims messages
   idle ``--reclaim-idle-s`` (default: the setting's default, 30 s).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis
import sqlalchemy as sa

from segue.data.model import Event, EventType, Item, ItemKind, User
from segue.online.bus import RedisStreamBus
from segue.online.factory import open_state
from segue.store import open_store

PG_ADMIN = os.environ.get(
    "SEGUE_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@localhost:5432/test"
)
REDIS_URL = os.environ.get("SEGUE_TEST_REDIS_URL", "redis://localhost:6379/0")
CLI = "from segue.cli.main import main; main()"


class World:
    """A fresh store and Redis prefix; dropped on exit."""

    def __init__(self, sqlite: bool, root: Path) -> None:
        self.prefix = f"segue-bench:{uuid.uuid4().hex[:10]}:"
        self.root = root
        self._pg_name = None
        if sqlite:
            self.url = f"sqlite:///{root / 'segue.sqlite'}"
        else:
            self._pg_name = f"segue_bench_{uuid.uuid4().hex[:10]}"
            admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{self._pg_name}"'))
            admin.dispose()
            self.url = PG_ADMIN.rsplit("/", 1)[0] + f"/{self._pg_name}"
        self.start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        with open_store(self.url) as store:
            store.upsert_items(
                [Item(id=f"t{i}", kind=ItemKind.TRACK, title=f"T{i}") for i in range(50)]
            )
            store.upsert_users([User(id=f"u{i}", signup_at=self.start) for i in range(100)])
        self.bus = RedisStreamBus(REDIS_URL, self.prefix)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "SEGUE_DATA_DIR": str(self.root),
            "SEGUE_DATABASE_URL": self.url,
            "SEGUE_REDIS_URL": REDIS_URL,
            "SEGUE_REDIS_PREFIX": self.prefix,
            **extra,
        }

    def worker(self, consumer: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-c", CLI, "worker", "--consumer", consumer, "--block-ms", "200"],
            env=self.env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def events(self, n: int, tag: str, offset_s: int = 0) -> list[Event]:
        return [
            Event(
                event_id=f"{tag}{i}",
                user_id=f"u{i % 100}",
                item_id=f"t{i % 50}",
                type=EventType.PLAY,
                timestamp=self.start + dt.timedelta(seconds=offset_s + i),
                ms_played=180_000,
            )
            for i in range(n)
        ]

    def close(self) -> None:
        self.bus.close()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
        if self._pg_name:
            admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self._pg_name}" WITH (FORCE)'))
            admin.dispose()


def _wait(check, timeout_s: float = 300.0, every_s: float = 0.005) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise SystemExit(f"gave up after {timeout_s} s")
        time.sleep(every_s)
    return time.monotonic() - started


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    return out


def poison(sqlite: bool, rounds: int = 3) -> None:
    backend = "SQLite" if sqlite else "PostgreSQL"
    with tempfile.TemporaryDirectory() as tmp:
        world = World(sqlite, Path(tmp))
        try:
            worker = world.worker("w1")
            raw = redis.Redis.from_url(REDIS_URL)
            with open_store(world.url) as store:
                # warm: the worker is up and has its item cache
                world.bus.publish(world.events(10, "warm"))
                _wait(lambda: store.count("events") == 10)
                for r in range(rounds):
                    offset = 10_000 * (r + 1)
                    base = store.count("events")
                    t0 = time.monotonic()
                    world.bus.publish(world.events(1000, f"clean{r}-", offset_s=offset))
                    _wait(lambda b=base: store.count("events") == b + 1000)
                    clean_s = time.monotonic() - t0
                    _wait(lambda: world.bus.pending("persist") == 0)

                    base = store.count("events")
                    bad = world.events(2, f"poison{r}-", offset_s=offset + 2000)
                    nul = bad[0].model_dump_json().replace('"u0"', '"u\\u0000x"')
                    huge = (
                        bad[1]
                        .model_dump_json()
                        .replace('"ms_played":180000', f'"ms_played":{2**63}')
                    )
                    valid = world.events(1000, f"after{r}-", offset_s=offset + 4000)
                    t0 = time.monotonic()
                    raw.xadd(world.bus.key, {"e": nul})
                    raw.xadd(world.bus.key, {"e": huge})
                    world.bus.publish(valid)
                    _wait(lambda b=base: store.count("events") == b + 1000)
                    poisoned_s = time.monotonic() - t0
                    _wait(lambda: world.bus.pending("persist") == 0)  # acknowledged too
                    print(
                        f"poison ({backend}) round {r + 1}: 1,000 valid events stored "
                        f"{poisoned_s:.3f} s after two poison events (without poison: "
                        f"{clean_s:.3f} s)"
                    )
            raw.close()
            out = _stop(worker)
            for letter in world.bus.dead_letters():
                print(
                    f"  dead letter {letter.fields().get('event_id')}: attempts "
                    f"{letter.attempts}: {letter.error[:150]}"
                )
            print("  worker: " + out.strip().splitlines()[-1])
        finally:
            world.close()


def poison_in_the_store(sqlite: bool, rounds: int = 3) -> None:
    """Poison that decodes but that the store refuses (built without validation, on the
    in-process bus: a NUL user id and ms_played 2**63): the worker's batch fails, the bus
    bisects it, the valid events are stored in the same pass."""
    from segue.online.bus import InProcessBus
    from segue.serving.worker import EventWorker

    backend = "SQLite" if sqlite else "PostgreSQL"
    with tempfile.TemporaryDirectory() as tmp:
        world = World(sqlite, Path(tmp))
        try:
            bus = InProcessBus()
            state = open_state(None)
            with open_store(world.url) as store:
                worker = EventWorker(bus, store, state)
                bus.publish(world.events(10, "warm"))
                worker.run_once()
                for r in range(rounds):
                    offset = 10_000 * (r + 1)
                    good = world.events(1002, f"x{r}-", offset_s=offset)
                    bad = [
                        Event.model_construct(**{**good[0].__dict__, "user_id": "u\x00x"}),
                        Event.model_construct(**{**good[1].__dict__, "ms_played": 2**63}),
                    ]
                    base = store.count("events")
                    t0 = time.monotonic()
                    bus.publish([*bad, *good[2:]])
                    while store.count("events") < base + 1000 or bus.pending("persist"):
                        worker.run_once()
                    took = time.monotonic() - t0
                    print(
                        f"poison refused by the store ({backend}, in-process bus) round "
                        f"{r + 1}: 1,000 valid events stored and both poison events "
                        f"dead-lettered in {took:.3f} s"
                    )
                for letter in bus.dead_letters()[:2]:
                    print(f"  dead letter: attempts {letter.attempts}: {letter.error[:120]}")
        finally:
            world.close()


def kill_and_replace(sqlite: bool, n: int, run: int, idle_s: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = World(sqlite, Path(tmp))
        extra = {"SEGUE_RECLAIM_IDLE_S": idle_s} if idle_s else {}
        try:
            events = world.events(n, "e")
            for chunk in range(0, n, 5_000):
                world.bus.publish(events[chunk : chunk + 5_000])
            doomed = world.worker("doomed", **extra)
            with open_store(world.url) as store:
                _wait(lambda: store.count("events") >= n // 10, every_s=0.01)
                heir = world.worker("heir", **extra)
                time.sleep(0.5)
                doomed.send_signal(signal.SIGKILL)
                doomed.wait(10)
                killed = time.monotonic()
                stored_at_kill = store.count("events")
                pending_at_kill = world.bus.pending("persist")
                took = _wait(
                    lambda: store.count("events") == n and world.bus.pending("persist") == 0,
                    timeout_s=600,
                    every_s=0.05,
                )
                rows = store.count("events")
                log = store.interactions()
            out = _stop(heir)
            state = open_state(REDIS_URL, world.prefix)
            now_ms = int((world.start + dt.timedelta(seconds=n)).timestamp() * 1000)
            _, day = state.item_counts([f"t{i}" for i in range(50)], now_ms)
            state.close()
            with sa.create_engine(world.url).connect() as conn:
                distinct = conn.execute(
                    sa.text("SELECT COUNT(DISTINCT event_id) FROM events")
                ).scalar_one()
            print(
                f"kill and replace run {run} ({'SQLite' if sqlite else 'PostgreSQL'}, {n:,} "
                f"events): stored at the kill {stored_at_kill:,}, pending in the group at the kill "
                f"{pending_at_kill:,}; all stored {time.monotonic() - killed:.1f} s after the "
                f"kill ({took:.1f} s polled); lost {n - distinct}, duplicated rows "
                f"{rows - distinct}, plays counted twice in the live state {int(day.sum()) - n}, "
                f"interactions {len(log):,}; heir: {out.strip().splitlines()[-1]}"
            )
        finally:
            world.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--reclaim-idle-s", default=None, help="SEGUE_RECLAIM_IDLE_S for both")
    parser.add_argument("--skip-poison", action="store_true")
    parser.add_argument("--skip-kill", action="store_true")
    args = parser.parse_args()
    if not args.skip_poison:
        poison(args.sqlite)
        poison_in_the_store(args.sqlite)
    if not args.skip_kill:
        for run in range(1, args.runs + 1):
            kill_and_replace(args.sqlite, args.events, run, args.reclaim_idle_s)


if __name__ == "__main__":
    main()
