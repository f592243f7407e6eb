"""Expected outcomes in one line: an outage logged once, then a summary now and then (not a
line or traceback a second); answers say "degraded" exactly when /v1/ready does."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

import products_world as world
from segue.api import create_app
from segue.config import Settings
from segue.online.bus import BusUnavailable
from segue.registry.trained import save_trained
from segue.serving.intake import BackgroundWorker, Repeats
from segue.serving.live import STATE_FALLBACK
from segue.store import open_store


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_repeated_trouble_is_one_line_then_a_summary_every_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _Clock()
    logger = logging.getLogger("segue.test.repeats")
    repeats = Repeats(logger, "event worker", every_s=30.0, clock=clock)
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        for second in range(95):  # an outage of 95 s, one failure a second
            clock.now = float(second)
            repeats.trouble("BusUnavailable", "waiting: cannot reach Redis")
        clock.now = 96.0
        repeats.over()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings[0] == "event worker: waiting: cannot reach Redis"
    assert [w.split(" (")[0] for w in warnings[1:4]] == [
        "event worker: still waiting: cannot reach Redis"
    ] * 3  # at 30, 60 and 90 s
    assert "30 more time(s) in 30 s; since 30 s" in warnings[1]
    assert warnings[4] == "event worker: running again after 96 s"
    assert len(warnings) == 5
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 94  # the detail, kept


def test_the_serving_worker_loop_does_not_log_each_failed_second(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = {"n": 0}
    done = threading.Event()

    def run_once(batch: int, block_ms: int = 0) -> SimpleNamespace:
        calls["n"] += 1
        if calls["n"] <= 300:
            raise BusUnavailable("cannot reach Redis at redis://localhost:1 for the event bus")
        done.set()
        return SimpleNamespace(persisted=0, rejected=[], received=0)

    worker = BackgroundWorker(SimpleNamespace(run_once=run_once), retry_s=0.0)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="segue.serving.intake"):
        worker.start()
        assert done.wait(20)
        worker.close()
    lines = [r for r in caplog.records if r.name == "segue.serving.intake"]
    assert calls["n"] > 300
    assert len(lines) <= 3, [r.getMessage() for r in lines]  # first, maybe a summary, the end
    assert not any(r.exc_info for r in lines)
    assert lines[-1].getMessage().startswith("event worker: running again")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_answers_say_degraded_when_ready_does(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'segue.sqlite'}") as store:
        world.build(store)
        trained, _ = world.trained(store)
    save_trained(trained, tmp_path / "models")
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'segue.sqlite'}",
        redis_url=f"redis://127.0.0.1:{_free_port()}/0",  # nothing listens there
        redis_retry_s=60.0,
    )
    with TestClient(create_app(settings, model="itemknn", watch_s=None)) as client:
        answers = [client.get("/v1/users/main/recommendations", params={"k": 3}) for _ in range(3)]
        ready = client.get("/v1/ready").json()
    assert ready["state"] == "degraded"
    for answer in answers[1:]:  # the first request is the one that finds Redis gone
        assert answer.status_code == 200, answer.text
        assert STATE_FALLBACK in answer.json()["degraded"]


def test_the_standalone_worker_says_an_outage_once(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from private_redis import PrivateRedis

    redis_server = PrivateRedis(tmp_path)
    redis_server.start()
    with open_store(f"sqlite:///{tmp_path / 'segue.sqlite'}") as store:
        world.build(store)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")}
    env.update(SEGUE_REDIS_URL=redis_server.url, SEGUE_REDIS_PREFIX="segue-worker-outage:")
    worker = subprocess.Popen(
        [sys.executable, "-c", "from segue.cli.main import main; main()", "--data-dir",
         str(tmp_path), "worker"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        _wait_until_consuming(redis_server.url, "segue-worker-outage:events")
        threading.Event().wait(1.0)  # consuming
        redis_server.kill()
        threading.Event().wait(5.0)  # five failed seconds
        redis_server.start()
        threading.Event().wait(3.0)
    finally:
        worker.send_signal(2)  # Ctrl-C
        out, _ = worker.communicate(timeout=30)
        redis_server.kill()
    waiting = [line for line in out.splitlines() if "waiting" in line]
    assert 1 <= len(waiting) <= 2, out  # once (a summary only after 30 s), not a line a second
    assert "Traceback" not in out


def _wait_until_consuming(url: str, stream: str, timeout_s: float = 60.0) -> None:
    """Until the worker has made its consumer group (its start takes seconds on a loaded
    machine: a fixed wait killed Redis before it had connected)."""
    import time

    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            try:
                if client.xinfo_groups(stream):
                    return
            except redis.ResponseError:  # no stream yet
                pass
            time.sleep(0.1)
    finally:
        client.close()
    raise AssertionError(f"the worker never started consuming {stream}")
