"""Bounded chaos: events posted to a serving process while its Redis freezes and a stream
worker is killed and replaced under a new name. Nothing is lost, nothing stored twice, and no
request gets a 5xx.

Real parts: ``segue serve`` and ``segue worker`` processes, a private ``redis-server`` (so it can
be frozen with SIGSTOP without touching the shared one) and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import _reset_postgres
from segue.data.model import Event, EventType, Item, ItemKind, User
from segue.store import open_store

N_EVENTS = 3_000
BATCH = 25
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is needed for the chaos test (Debian's redis-server package)")
    port = _free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("the private redis-server did not start")
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(timeout=10)


def _segue(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "segue.cli.main", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _post(url: str, events: list[dict]) -> int:
    body = json.dumps({"events": events}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:  # no answer within the timeout counts as a failed request
        return 0


@pytest.mark.slow
def test_events_survive_a_frozen_redis_and_a_killed_worker(
    pg_database_url: str, private_redis: tuple[str, subprocess.Popen], tmp_path: Path
) -> None:
    redis_url, redis_proc = private_redis
    _reset_postgres(pg_database_url)
    with open_store(pg_database_url) as store:
        store.upsert_items(
            [Item(id=f"t{i}", kind=ItemKind.TRACK, title=f"T{i}") for i in range(50)]
        )
        store.upsert_users([User(id=f"u{i}", signup_at=START) for i in range(100)])
        store.add_events(  # something to serve a popularity list from
            [
                Event(event_id=f"seed{i}", user_id=f"u{i}", item_id=f"t{i % 50}",
                      type=EventType.PLAY, timestamp=START)
                for i in range(100)
            ]
        )  # fmt: skip
    env = {
        **os.environ,
        "SEGUE_DATA_DIR": str(tmp_path / "data"),
        "SEGUE_DATABASE_URL": pg_database_url,
        "SEGUE_REDIS_URL": redis_url,
        "SEGUE_REDIS_PREFIX": "chaos:",
    }
    env.pop("SEGUE_API_KEYS", None)
    port = _free_port()
    server = _segue(env, "serve", "--port", str(port), "--no-persist", "--fallback", "popularity")
    workers = [_segue(env, "worker", "--consumer", "first", "--batch", "100")]
    url = f"http://127.0.0.1:{port}/v1/events"
    statuses: list[int] = []
    frozen_until = float("inf")
    frozen_latencies: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "segue serve did not start"
                time.sleep(0.2)
        for n in range(0, N_EVENTS, BATCH):
            if n == N_EVENTS // 4:
                redis_proc.send_signal(signal.SIGSTOP)  # Redis freezes for 3 s
                frozen_until = time.monotonic() + 3
            frozen = time.monotonic() < frozen_until
            if n > N_EVENTS // 4 and not frozen:
                redis_proc.send_signal(signal.SIGCONT)
            if n == N_EVENTS // 2:
                workers[0].send_signal(signal.SIGKILL)  # mid-stream, with messages pending
                workers.append(_segue(env, "worker", "--consumer", "replacement", "--batch", "100"))
            sent = time.monotonic()
            statuses.append(
                _post(
                    url,
                    [
                        {"event_id": f"c{k}", "user_id": f"u{k % 100}", "item_id": f"t{k % 50}",
                         "type": "play", "timestamp": (START + dt.timedelta(seconds=k)).isoformat()}
                        for k in range(n, min(n + BATCH, N_EVENTS))
                    ],
                )
            )
            if frozen:
                frozen_latencies.append(time.monotonic() - sent)
        redis_proc.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 120
        with open_store(pg_database_url) as store:
            while True:
                stored = store.count("events") - 100
                if stored >= N_EVENTS or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        engine = sa.create_engine(pg_database_url)
        with engine.connect() as conn:
            ids = list(
                conn.execute(sa.text("SELECT event_id FROM events WHERE event_id LIKE 'c%'"))
                .scalars()
            )
        engine.dispose()
    finally:
        for proc in (server, *workers):
            if proc.poll() is None:
                proc.terminate()
        for proc in (server, *workers):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    assert len(frozen_latencies) >= 10, "the posts must overlap the freeze"
    assert max(frozen_latencies) < 2.0, "a frozen Redis must not hold requests up"
    assert [s for s in statuses if s >= 500] == [], "no request may get a 5xx"
    assert all(s == 202 for s in statuses), sorted(set(statuses))
    assert len(ids) == len(set(ids)), "an event was stored twice"
    assert len(set(ids)) == N_EVENTS, f"{N_EVENTS - len(set(ids))} events were lost"
