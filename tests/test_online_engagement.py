"""Engagement, retention, churn, novelty and diversity of the listeners shown lists, per day
and arm, on a small log whose every figure is worked out by hand below."""

from __future__ import annotations

import datetime as dt
import math

from segue.data.model import Event, EventType, Item, ItemKind, User
from segue.jobs.online_metrics import online_metrics
from segue.store import Store
from segue.store.exposures import Exposure

D = dt.datetime(2026, 11, 2, 10, tzinfo=dt.UTC)
MIN = 60_000
DAY = 24 * 60 * MIN


def _ms(day: int, minutes: int = 0) -> int:
    return int(D.timestamp() * 1000) + day * DAY + minutes * MIN


def _world(store: Store) -> None:
    artists = {"t1": "a1", "t2": "a1", "t3": "a2"}
    store.upsert_items(
        [Item(id=i, kind=ItemKind.TRACK, title=i.upper(), artist_id=a) for i, a in artists.items()]
    )
    store.upsert_users(
        [User(id=f"u{i}", signup_at=D - dt.timedelta(days=60)) for i in range(1, 10)]
    )

    def shown(n: int, user: str, items: tuple[str, ...], model: str) -> Exposure:
        return Exposure(f"r{n}", user, _ms(0), "home", model, "v1", "personal", items)

    store.add_exposures(
        [
            shown(1, "u1", ("t1", "t2"), "als"),  # one artist twice: diversity 0.5
            shown(2, "u2", ("t1", "t3"), "als"),  # diversity 1.0
            shown(3, "u3", ("t3",), "pop"),
            shown(4, "u4", ("t3",), "pop"),
        ]
    )
    n = iter(range(1_000))

    def play(user: str, item: str, at: int, ms: int = MIN) -> Event:
        when = dt.datetime.fromtimestamp(at / 1000, tz=dt.UTC)
        return Event(event_id=f"e{next(n)}", user_id=user, item_id=item, type=EventType.PLAY,
                     timestamp=when, ms_played=ms)  # fmt: skip

    store.add_events(
        [
            play("u9", "t1", _ms(-3)),
            play("u9", "t1", _ms(-3, 5)),
            play("u9", "t1", _ms(-3, 10)),  # t1 played 3 times in the 28 days before
            play("u1", "t1", _ms(0, 1)),
            play("u1", "t2", _ms(0, 10)),  # same session: 0:01 → 0:11, 10 minutes
            play("u1", "t3", _ms(0, 120)),  # a gap of 109 min: a second session, 1 minute
            play("u1", "t3", _ms(1)),  # D1
            play("u1", "t3", _ms(7)),  # D7
            play("u2", "t3", _ms(0, 5)),  # one session of 1 minute, never back: churned
            play("u3", "t1", _ms(1)),  # pop: u3 back on D1; u4 never plays
            play("u9", "t2", _ms(30)),  # the log reaches D30
        ]
    )


def test_engagement_retention_churn_novelty_and_diversity_per_arm(store: Store) -> None:
    _world(store)
    rows = {r.arm: r for r in online_metrics(store, D.date(), D.date())}
    als, pop = rows["als@v1"], rows["pop@v1"]
    assert als.sessions_per_listener == 1.5  # u1 two sessions, u2 one
    assert math.isclose(als.session_minutes, (10 + 1 + 1) / 3)
    assert (als.d1, als.d7, als.d30, als.churn) == (0.5, 0.5, 0.0, 0.5)
    assert (pop.sessions_per_listener, pop.session_minutes) == (0.0, 0.0)
    assert (pop.d1, pop.d7, pop.d30, pop.churn) == (0.5, 0.0, 0.0, 0.5)
    assert als.diversity == 0.75 and pop.diversity == 1.0
    # plays before D: t1 three times; four items' worth of add-one smoothing (t1 seen, t1-3 shown)
    assert math.isclose(als.novelty, (2 * math.log2(7 / 4) + 2 * math.log2(7)) / 4)
    assert math.isclose(pop.novelty, math.log2(7))


def test_retention_and_churn_wait_for_the_days_they_need(store: Store) -> None:
    _world(store)
    later = dt.date(2026, 11, 20)
    store.add_exposures(
        [Exposure("r9", "u1", _ms(18), "home", "als", "v1", "personal", ("t1",))]
    )
    rows = {(r.day, r.arm): r for r in online_metrics(store, later, later)}
    cell = rows[later, "als@v1"]
    # the log ends on D+30 = Dec 2: Nov 20 + 1 and + 7 are in it, + 30 and + 14 are not
    assert cell.d1 == 0.0 and cell.d7 == 0.0
    assert cell.d30 is None and cell.churn is None
    fits = {(r.day, r.arm): r for r in online_metrics(store, later, later, churn_days=12)}
    assert fits[later, "als@v1"].churn == 1.0  # u1 silent from Nov 21 to Dec 2
    past = {(r.day, r.arm): r for r in online_metrics(store, later, later, churn_days=13)}
    assert past[later, "als@v1"].churn is None


def test_segue_metrics_online_prints_the_listener_table(store: Store, database_url: str) -> None:
    from typer.testing import CliRunner

    from segue.cli.main import app

    _world(store)
    env = {"SEGUE_DATABASE_URL": database_url, "SEGUE_REDIS_URL": ""}
    shown = CliRunner().invoke(app, ["metrics", "online", "--from", "2026-11-02"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "| 2026-11-02 | als@v1 | 1.50 | 4.0 | 50.0% | 50.0% | 0.0% | 50.0% |" in shown.output
    late = CliRunner().invoke(
        app, ["metrics", "online", "--from", "2026-11-02", "--churn-days", "40"], env=env
    )
    assert "| churn 40d |" in late.output and "| 0.0% | — |" in late.output


def test_the_daily_step_writes_them_and_serve_exposes_them_to_prometheus(tmp_path) -> None:
    import json

    from fastapi.testclient import TestClient

    from segue.api import create_app
    from segue.batch.online import write_online_metrics
    from segue.config import Settings
    from segue.store import open_store

    url, data = f"sqlite:///{tmp_path / 'segue.sqlite'}", tmp_path / "data"
    with open_store(url) as store:
        _world(store)
        summary = write_online_metrics(store, data, D.date() + dt.timedelta(days=1))
    assert summary == {"rows": 2, "latest_day": "2026-11-02", "arms": 2, "exposures_exported": 4}
    import pyarrow.parquet as pq

    day = pq.read_table(data / "exposures" / "date=2026-11-02" / "exposures.parquet")
    assert sorted(day.column("request_id").to_pylist()) == ["r1", "r2", "r3", "r4"]
    assert pq.read_table(data / "exposures" / "date=2026-11-03" / "exposures.parquet").num_rows == 0
    lines = (data / "online" / "metrics.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["arm"] for x in lines) == ["als@v1", "pop@v1"]
    with TestClient(
        create_app(Settings(data_dir=data, database_url=url), watch_s=None, run_worker=False)
    ) as client:
        text = client.get("/metrics").text
        assert 'segue_online_d1{arm="als@v1"} 0.5' in text
        assert 'segue_online_diversity{arm="als@v1"} 0.75' in text
        assert 'segue_online_lists{arm="pop@v1"} 2.0' in text
        # read at each scrape: the next day's file shows at once; a figure not yet known
        # (None) gives no sample rather than a made-up one
        latest = data / "online" / "latest.json"
        later = {"arm": "als@v2", "ctr": 0.25, "d1": 0.4, "d30": None}
        latest.write_text(json.dumps({"day": "2026-11-03", "rows": [later]}))
        text = client.get("/metrics").text
    assert 'segue_online_ctr{arm="als@v2"} 0.25' in text and "als@v1" not in text
    assert "segue_online_d1{" in text and "segue_online_d30{" not in text
