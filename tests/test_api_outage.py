"""The API while its Redis is stopped (SIGSTOP) or killed: fast answers, no 5xx, no lost
event, and back on Redis without a restart.

Runs against a Redis server of the test's own (``private_redis``), so stopping it touches no
other test; the store is a real SQLite file. No model is trained: the popularity model fitted
from the store serves, which reads and writes the live state like any other.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from private_redis import PrivateRedis
from segue.api import create_app
from segue.config import Settings
from segue.data.synth import SynthParams
from segue.jobs.ingest import load_synthetic_world
from segue.store import open_store

PARAMS = SynthParams(
    seed=5,
    n_users=120,
    n_tracks=400,
    n_events=6_000,
    n_podcast_shows=2,
    n_podcast_episodes=10,
    n_videos=4,
    n_audiobooks=2,
)
#: The slowest any request may be while Redis is stopped (the old client took 9.4 s).
MAX_S = 1.0


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("outage-world")
    with open_store(f"sqlite:///{root / 'segue.sqlite'}") as store:
        load_synthetic_world(store, PARAMS)
    return root


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _drive(
    client: TestClient, users: list[str], items: list[str], n: int
) -> tuple[list[int], list[float], list[str]]:
    """``n`` recommendation requests and ``n`` single-event posts, alternating."""
    statuses: list[int] = []
    seconds: list[float] = []
    event_ids: list[str] = []
    for i in range(n):
        user = users[i % len(users)]
        start = time.perf_counter()
        r = client.get(f"/v1/users/{user}/recommendations", params={"k": 10})
        seconds.append(time.perf_counter() - start)
        statuses.append(r.status_code)
        event_id = uuid.uuid4().hex
        event = {"event_id": event_id, "user_id": user, "item_id": items[i % 50], "type": "play"}
        body = {"events": [event]}
        start = time.perf_counter()
        r = client.post("/v1/events", json=body)
        seconds.append(time.perf_counter() - start)
        statuses.append(r.status_code)
        if r.status_code == 202:
            event_ids.append(event_id)
    return statuses, seconds, event_ids


def _wait_for(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_a_stopped_then_killed_redis_costs_no_5xx_and_little_time(
    data_dir: Path, redis_server: PrivateRedis
) -> None:
    settings = Settings(
        data_dir=data_dir,
        redis_url=redis_server.url,
        redis_prefix=f"segue-outage:{uuid.uuid4().hex[:8]}:",
        redis_retry_s=0.5,
    )
    with open_store(settings.resolved_database_url) as store:
        users = sorted(u.id for u in store.iter_users())[:20]
        items = sorted(i.id for i in store.iter_items())[:50]
        before = store.count("events")
    with TestClient(create_app(settings, watch_s=None)) as client:
        statuses, _, ids = _drive(client, users, items, 5)
        assert set(statuses) == {200, 202}
        assert client.get("/v1/ready").json()["state"] == "redis"
        # the worker's blocking reads (BLOCK longer than the call timeout) are no failures
        time.sleep(1.0)
        breaker = client.app.state.services.breaker  # type: ignore[attr-defined]
        assert breaker.trips == 0 and client.get("/v1/ready").json()["state"] == "redis"

        redis_server.freeze()
        try:
            statuses, seconds, frozen_ids = _drive(client, users, items, 40)
            ready = client.get("/v1/ready").json()
        finally:
            redis_server.thaw()
        assert all(s < 500 for s in statuses), statuses
        assert set(statuses) == {200, 202}
        assert max(seconds) <= MAX_S, f"slowest request {max(seconds):.2f} s with Redis stopped"
        assert statistics.median(seconds) <= 0.1, "after the first failure, Redis is skipped"
        assert sum(s > 0.25 for s in seconds) <= 3, sorted(seconds)[-5:]
        assert ready["state"] == "degraded"
        # resumed: back on Redis without a restart
        assert _wait_for(lambda: client.get("/v1/ready").json()["state"] == "redis", 10)

        # what went onto the stream is persisted before the kill (this Redis keeps nothing)
        with open_store(settings.resolved_database_url) as store:
            so_far = before + len(ids) + len(frozen_ids)
            assert _wait_for(lambda: store.count("events") >= so_far, 15)
        redis_server.kill()
        statuses, seconds, killed_ids = _drive(client, users, items, 20)
        assert set(statuses) == {200, 202}
        assert max(seconds) <= MAX_S and statistics.median(seconds) <= 0.1
        assert client.get("/v1/ready").json()["state"] == "degraded"
        redis_server.start()  # same port, empty: a lost Redis replaced
        assert _wait_for(lambda: client.get("/v1/ready").json()["state"] == "redis", 10)
        statuses, _, after_ids = _drive(client, users, items, 5)
        assert set(statuses) == {200, 202}

        metrics = client.get("/metrics").text
        assert 'segue_fallbacks_total{kind="bus_unavailable"}' in metrics
        assert 'segue_degraded{component="redis"} 0.0' in metrics
        expected = len(ids) + len(frozen_ids) + len(killed_ids) + len(after_ids)
        with open_store(settings.resolved_database_url) as store:
            # every accepted event is stored: directly during the outages, by the worker else
            assert _wait_for(lambda: store.count("events") >= before + expected, 15)
            assert store.count("events") == before + expected
