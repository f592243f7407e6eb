"""The exposure log: every served list recorded as shown (request id, listener, items in
order, model version, path, surface, context), published by a thread of its own onto the
exposures stream and stored by the stream's worker, idempotent by request id (the stream's
rules are tests/test_exposure_stream.py); over the API, the answer carries its request id and
the log holds exactly what was answered."""

from __future__ import annotations

import datetime as dt
import time

from fastapi.testclient import TestClient

from segue.api import create_app
from segue.config import Settings
from segue.data.synth import SynthParams
from segue.dataset.from_store import load_interactions, load_side_info
from segue.errors import SegueError
from segue.jobs.ingest import load_synthetic_world
from segue.online.bus import InProcessBus
from segue.online.state import InProcessState
from segue.registry.trained import train_models
from segue.serving.exposures import EXPOSURE_CODEC, EXPOSURES_STREAM, ExposureLog
from segue.serving.worker import EventWorker
from segue.store import Store, open_store
from segue.store.exposures import Exposure


def _exposure(n: int, user: str = "u1") -> Exposure:
    return Exposure(
        request_id=f"r{n}",
        user_id=user,
        ts_ms=1_000 + n,
        surface="home",
        model="als",
        version="v0001",
        path="personal",
        items=(f"t{n}", f"t{n + 1}"),
        experiments={"ranker": "b"},
        context={"device": "phone"},
        propensities=(0.5, 0.25) if n % 2 else None,
    )


def test_exposures_round_trip_once_per_request_id(store: Store) -> None:
    first = [_exposure(n) for n in range(5)]
    assert store.add_exposures(first) == 5
    assert store.add_exposures([_exposure(2), _exposure(7)]) == 1  # r2 again: ignored
    stored = store.exposures_between(0, 10**12)
    assert [e.request_id for e in stored] == ["r0", "r1", "r2", "r3", "r4", "r7"]
    assert stored[1] == first[1] and stored[1].propensities == (0.5, 0.25)
    assert [e.request_id for e in store.exposures_between(1_002, 1_004)] == ["r2", "r3"]
    assert store.exposures_between(0, 10**12, user_id="nobody") == []


def test_the_thread_publishes_without_being_asked(store: Store) -> None:
    bus = InProcessBus(stream=EXPOSURES_STREAM, codec=EXPOSURE_CODEC)
    exposure_log = ExposureLog(bus, flush_s=0.05)
    exposure_log.start()
    worker = EventWorker(InProcessBus(), store, InProcessState(), exposures=bus)
    try:
        exposure_log.log(_exposure(1))
        deadline = time.monotonic() + 5
        while exposure_log.pending() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert exposure_log.pending() == 0 and store.exposures_between(0, 10**12) == []
        assert worker.run_once().exposures == 1  # on the stream; the worker stores it
        assert [e.request_id for e in store.exposures_between(0, 10**12)] == ["r1"]
    finally:
        exposure_log.close()


def test_every_list_the_api_answers_is_in_the_log(tmp_path) -> None:
    data = tmp_path / "data"
    url = f"sqlite:///{tmp_path / 'segue.sqlite'}"
    with open_store(url) as store:
        load_synthetic_world(store, SynthParams(seed=3, n_users=80, n_tracks=150, n_events=3_000))
        interactions = load_interactions(store)
        side = load_side_info(store, interactions)
        train_models(interactions, ["als"], data / "models", side=side)
        user = str(interactions.users.ids[0])
    with TestClient(create_app(Settings(data_dir=data, database_url=url), watch_s=None)) as c:
        answers = [
            c.get(f"/v1/users/{user}/recommendations", params={"k": 5, "device": "phone"}).json()
            for _ in range(3)
        ]
        c.get("/v1/users/new-listener/recommendations", params={"k": 4})
        c.app.state.services.flush_exposures()  # type: ignore[attr-defined]
    with open_store(url) as store:
        logged = {e.request_id: e for e in store.exposures_between(0, 10**13)}
    assert len(logged) == 4 and len({a["request_id"] for a in answers}) == 3
    now = dt.datetime.now(dt.UTC).timestamp() * 1000
    for answer in answers:
        shown = logged[answer["request_id"]]
        assert shown.user_id == user and shown.surface == "home"
        assert list(shown.items) == [i["item_id"] for i in answer["items"]]
        assert (shown.model, shown.version, shown.path) == (
            answer["model"], answer["version"], answer["path"]
        )  # fmt: skip
        assert shown.context["device"] == "phone"
        assert 0 < int(shown.context["served_us"]) < 5_000_000  # how long the answer took
        assert now - 60_000 < shown.ts_ms <= now
    newcomer = [e for e in logged.values() if e.user_id == "new-listener"]
    assert len(newcomer) == 1 and len(newcomer[0].items) == 4


# -- online metrics -------------------------------------------------------------------------
T = dt.datetime(2026, 11, 2, 12, tzinfo=dt.UTC)
T_MS = int(T.timestamp() * 1000)
MIN = 60_000


def _fill_outcomes(store: Store) -> None:
    from segue.data.model import Event, EventType, Item, ItemKind, User

    store.upsert_items([Item(id=f"t{i}", kind=ItemKind.TRACK, title=f"T{i}") for i in range(1, 6)])
    store.upsert_users([User(id=f"u{i}", signup_at=T - dt.timedelta(days=30)) for i in (1, 2, 3)])

    def shown(n: int, user: str, at: int, items: tuple[str, ...], model: str) -> Exposure:
        return Exposure(f"r{n}", user, at, "home", model, "v1", "personal", items)

    store.add_exposures(
        [
            shown(1, "u1", T_MS, ("t1", "t2"), "als"),
            shown(2, "u2", T_MS + 60 * MIN, ("t3",), "als"),
            shown(3, "u3", T_MS, ("t1",), "popularity"),
            shown(4, "u1", T_MS + 24 * 60 * MIN, ("t4",), "als"),  # the next day
        ]
    )

    def event(n: int, user: str, item: str, at: int, kind: EventType, ms: int) -> Event:
        when = dt.datetime.fromtimestamp(at / 1000, tz=dt.UTC)
        return Event(event_id=f"e{n}", user_id=user, item_id=item, type=kind, timestamp=when,
                     ms_played=ms)  # fmt: skip

    play, skip = EventType.PLAY, EventType.SKIP
    store.add_events(
        [
            event(1, "u1", "t2", T_MS + 10 * MIN, play, 200_000),  # r1: played, converted
            event(2, "u1", "t1", T_MS + 120 * MIN, play, 200_000),  # past the window
            event(3, "u1", "t5", T_MS + 1 * MIN, play, 200_000),  # not in the list
            event(4, "u2", "t3", T_MS + 61 * MIN, skip, 5_000),  # r2: a skip only
            event(5, "u3", "t1", T_MS + 5 * MIN, play, 10_000),  # r3: played, too short
            event(6, "u3", "t1", T_MS - 5 * MIN, play, 200_000),  # before it was shown
        ]
    )


def test_online_metrics_attribute_what_each_list_led_to(store: Store) -> None:
    from segue.jobs.online_metrics import online_metrics

    _fill_outcomes(store)
    rows = online_metrics(store, T.date(), T.date() + dt.timedelta(days=1))
    by = {(r.day.isoformat(), r.arm): r for r in rows}
    assert list(by) == [
        ("2026-11-02", "als@v1"), ("2026-11-02", "popularity@v1"), ("2026-11-03", "als@v1")
    ]  # fmt: skip
    als = by["2026-11-02", "als@v1"]
    assert (als.lists, als.listeners, als.ctr, als.conversion, als.skip_rate) == (
        2, 2, 0.5, 0.5, 0.5
    )  # fmt: skip
    assert abs(als.minutes_per_listener - 200 / 60 / 2) < 1e-9
    pop = by["2026-11-02", "popularity@v1"]
    assert (pop.ctr, pop.conversion, pop.skip_rate) == (1.0, 0.0, 0.0)
    assert abs(pop.minutes_per_listener - 10 / 60) < 1e-9
    later = by["2026-11-03", "als@v1"]
    assert (later.lists, later.ctr, later.minutes_per_listener) == (1, 0.0, 0.0)
    # a shorter window loses the play ten minutes after r1, keeps the one after five
    short = {r.arm: r for r in online_metrics(store, T.date(), T.date(), window_s=400)}
    assert short["als@v1"].ctr == 0.0 and short["popularity@v1"].ctr == 1.0


def test_segue_metrics_online_prints_them(store: Store, database_url: str) -> None:
    import json

    from typer.testing import CliRunner

    from segue.cli.main import app

    _fill_outcomes(store)
    env = {"SEGUE_DATABASE_URL": database_url, "SEGUE_REDIS_URL": ""}
    runner = CliRunner()
    shown = runner.invoke(app, ["metrics", "online", "--from", "2026-11-02", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    rows = [json.loads(line) for line in shown.output.splitlines()]
    assert [(r["arm"], r["lists"], r["ctr"]) for r in rows] == [
        ("als@v1", 2, 0.5), ("popularity@v1", 1, 1.0)
    ]  # fmt: skip
    table = runner.invoke(app, ["metrics", "online", "--from", "2026-11-02"], env=env)
    assert "| 2026-11-02 | als@v1 | 2 | 2 | 50.0% | 50.0% | 50.0% | 1.7 |" in table.output
    empty = runner.invoke(app, ["metrics", "online", "--from", "2020-01-01"], env=env)
    assert "no lists were served" in empty.output
    backwards = runner.invoke(
        app, ["metrics", "online", "--from", "2026-11-03", "--to", "2026-11-02"], env=env
    )
    assert isinstance(backwards.exception, SegueError)  # main() prints it as one line
    assert "before --from" in str(backwards.exception)


def test_the_log_exports_to_parquet_and_counts_like_any_table(store: Store, tmp_path) -> None:
    import pyarrow.parquet as pq

    store.add_exposures([_exposure(n) for n in range(3)])
    assert store.count("exposures") == 3
    path = tmp_path / "exposures.parquet"
    assert store.export_parquet("exposures", path) == 3
    rows = pq.read_table(path).to_pylist()
    assert [r["request_id"] for r in rows] == ["r0", "r1", "r2"]
    assert rows[1]["items"] == ["t1", "t2"] and rows[1]["propensities"] == [0.5, 0.25]
    assert rows[0]["propensities"] is None
    assert rows[2]["timestamp"].timestamp() * 1000 == rows[2]["ts_ms"] == 1_002
    assert rows[0]["experiments"] == '{"ranker": "b"}'
