"""The exposure writer: a serving process without Redis stores its served lists in a child
process, with the stream's rules — stored once however often published, nothing of an erased
listener, a malformed record dead-lettered in the serving process's dead letters while the
next ones are stored, a killed child replaced, and everything written stored before it exits.
Both stores (SQLite file and PostgreSQL); a real child process each time.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from segue.api import create_app
from segue.config import Settings
from segue.data.model import User
from segue.online.bus import BusUnavailable, DeadLetter, InProcessBus
from segue.serving.exposure_writer import ExposureWriter, shareable
from segue.serving.exposures import EXPOSURE_CODEC, ExposureLog
from segue.store import Store
from test_exposures import _exposure  # the same served list as the store tests use

EVERYTHING = (0, 2**62)


def _stored(store: Store) -> list[str]:
    return sorted(e.request_id for e in store.exposures_between(*EVERYTHING))


@pytest.fixture
def dead() -> list[DeadLetter]:
    return []


@pytest.fixture
def writer(store: Store, dead: list[DeadLetter]) -> Iterator[ExposureWriter]:
    w = ExposureWriter(store.url, max_attempts=3, on_dead=dead.append)
    try:
        yield w
    finally:
        w.close()


def test_published_lists_are_stored_by_the_child_once(writer: ExposureWriter, store: Store) -> None:
    lists = [_exposure(n) for n in range(40)]
    assert writer.publish(lists) == 40
    assert writer.publish(lists[:5]) == 5  # published again (a retried publish): kept once
    assert writer.sync() == 0
    assert _stored(store) == sorted(f"r{n}" for n in range(40))
    first = next(e for e in store.exposures_between(*EVERYTHING) if e.request_id == "r1")
    assert first == lists[1], "every field arrives as it was served"


def test_lists_of_an_erased_listener_are_not_stored(writer: ExposureWriter, store: Store) -> None:
    signup = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    store.upsert_users([User(id=u, signup_at=signup) for u in ("gone", "stays")])
    assert store.erase_user("gone", now_ms=2_000) is not None
    writer.publish([_exposure(1, "gone"), _exposure(2, "stays"), _exposure(3, "anon")])
    assert writer.sync() == 0
    assert {e.user_id for e in store.exposures_between(*EVERYTHING)} == {"stays", "anon"}


def test_a_malformed_list_is_dead_lettered_in_the_parent_and_the_next_are_stored(
    writer: ExposureWriter, store: Store, dead: list[DeadLetter]
) -> None:
    good = json.loads(EXPOSURE_CODEC.encode(_exposure(2)))
    writer.publish([_exposure(1), json.dumps({**good, "ts_ms": "yesterday"}), "not json"])
    writer.publish([replace(_exposure(3), items=("t1", 2)), _exposure(4)])  # type: ignore[arg-type]
    assert writer.sync() == 0
    assert _stored(store) == ["r1", "r4"]
    letters = writer.dead_letters()
    assert [letter.stream for letter in letters] == ["exposures"] * 3 and dead == letters
    assert "ts_ms" in letters[0].error and letters[0].fields()["request_id"] == "r2"
    assert "items" in letters[2].error and letters[2].fields()["request_id"] == "r3"
    assert writer.dead_count() == 3
    # a replay writes the payload to the child again (still bad: dead again)...
    assert writer.replay_dead([letters[0].id]) == [letters[0].id]
    assert writer.sync() == 0
    assert writer.dead_count() == 3 and writer.dead_letters()[-1].fields()["request_id"] == "r2"
    # ... a dead letter whose cause is mended meanwhile is stored by its replay
    mended = writer.dead_box.bury(
        replace(letters[1], payload=EXPOSURE_CODEC.encode(_exposure(5))), "", writer
    )
    writer.dead_box.take([mended.id])
    writer.dead_box.bury(mended, EXPOSURE_CODEC.encode(_exposure(5)), writer)
    assert writer.replay_dead([writer.dead_letters()[-1].id])
    assert writer.sync() == 0 and "r5" in _stored(store)
    assert len(writer.drop_dead(None)) == 3 and writer.dead_count() == 0


def test_a_killed_child_is_replaced_and_the_next_lists_are_stored(
    writer: ExposureWriter, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    writer.restart_s = 0.0  # (by default at most every 5 s)
    writer.publish([_exposure(1)])
    assert writer.sync() == 0
    first = writer._proc
    assert first is not None
    first.kill()
    first.wait()
    writer.publish([_exposure(2), _exposure(3)])  # finds it gone: starts another first
    assert writer.sync() == 0
    assert writer._proc is not first and writer._proc.poll() is None
    assert _stored(store) == ["r1", "r2", "r3"]
    assert "exposure writer exited (code -9)" in caplog.text


def test_a_child_that_cannot_open_its_store_leaves_the_log_buffering(tmp_path: Path) -> None:
    """The store cannot be opened (here: its folder is a file): the child exits, writes fail
    as ``BusUnavailable`` and the exposure log keeps its lists for the next try; the child
    is not started again on every write."""
    (tmp_path / "not-a-folder").write_text("")
    url = f"sqlite:///{tmp_path / 'not-a-folder' / 'segue.sqlite'}"
    writer = ExposureWriter(url, restart_s=60)
    try:
        log = ExposureLog(writer)
        log.log(_exposure(1))
        log.flush()  # the first write may reach the pipe before the child has died
        assert writer.sync(timeout_s=30) == -1, "no child answers"
        first = writer._proc
        log.log(_exposure(2))
        assert log.flush() == 0 and log.pending() >= 1, "kept for the next flush"
        assert writer._proc is first, "not restarted within restart_s"
        with pytest.raises(BusUnavailable, match="exposure writer exited"):
            writer.publish([_exposure(3)])
    finally:
        writer.close()


def test_closing_stores_everything_written_then_the_child_exits(
    writer: ExposureWriter, store: Store
) -> None:
    writer.publish([_exposure(n) for n in range(300)])  # no sync: close must not lose them
    child = writer._proc
    writer.close()
    assert child is not None and child.returncode == 0
    assert len(_stored(store)) == 300
    with pytest.raises(BusUnavailable):
        writer.publish([_exposure(301)])


def test_a_stop_signal_to_the_process_group_loses_nothing(
    writer: ExposureWriter, store: Store
) -> None:
    """Ctrl-C or a service manager's stop signals the child with its parent: it stores
    what it holds once the parent closes the pipe, instead of dying with it (before: killed
    by SIGTERM, the lists it held were lost and a new child was started)."""
    import signal

    writer.publish([_exposure(n) for n in range(200)])
    assert writer.sync() == 0  # the child is up (its signal dispositions set)
    writer.publish([_exposure(n) for n in range(200, 220)])
    child = writer._proc
    assert child is not None
    for stop in (signal.SIGINT, signal.SIGTERM):
        child.send_signal(stop)
    time.sleep(0.3)
    assert child.poll() is None, "the child outlives a stop signal"
    writer.publish([_exposure(n) for n in range(220, 250)])
    assert writer._proc is child, "still the same child"
    writer.close()
    assert child.returncode == 0
    assert len(_stored(store)) == 250


def test_only_a_store_another_process_can_open_gets_a_child() -> None:
    assert shareable("sqlite:////tmp/x/segue.sqlite")
    assert shareable("postgresql+psycopg://localhost/test")
    assert not shareable("sqlite://")
    assert not shareable("sqlite:///:memory:")
    assert not shareable("sqlite:///file:x?mode=memory&uri=true")


@pytest.mark.parametrize("writer_kind", ["process", "thread"])
def test_embedded_serving_stores_served_lists_with_either_writer(
    tmp_path: Path, writer_kind: str
) -> None:
    """``segue serve`` without Redis: the process writer by default, the thread on request;
    either way ``flush_exposures`` leaves the served lists stored and a bad one listed in
    ``GET /v1/admin/dead-letters``."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 's.db'}",
        exposure_writer=writer_kind,  # type: ignore[arg-type]
    )
    with TestClient(create_app(settings, watch_s=None)) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        kind = ExposureWriter if writer_kind == "process" else InProcessBus
        assert isinstance(services.exposure_bus, kind)
        assert (services.worker.worker.exposures is None) == (writer_kind == "process")
        for n in range(3):
            services.exposures.log(_exposure(n))
        services.exposure_bus.publish([replace(_exposure(9), items=("t1", 2))])
        deadline = time.monotonic() + 10
        while not client.get("/v1/admin/dead-letters").json():
            assert time.monotonic() < deadline, "the bad record was never dead-lettered"
            services.flush_exposures()
            time.sleep(0.05)
        services.flush_exposures()
        (letter,) = client.get("/v1/admin/dead-letters").json()
        assert letter["stream"] == "exposures" and "items" in letter["error"]
        assert _stored(services.store) == ["r0", "r1", "r2"]
