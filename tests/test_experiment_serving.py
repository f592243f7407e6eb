"""Experiments served for real: `segue experiments create | start | list | stop | report` on a
data directory, the API assigning each listener by the salted hash and serving their
variant's pipeline settings, the exposure log recording the assignment, and the report
reading what each variant's lists led to."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from segue.api import create_app
from segue.cli.main import app
from segue.config import Settings
from segue.data.synth import SynthParams
from segue.dataset.from_store import load_interactions, load_side_info
from segue.errors import SegueError
from segue.experiments.assignment import position
from segue.experiments.book import EXPERIMENTS_FILE, ExperimentBook
from segue.experiments.stats import obrien_fleming_bounds, obrien_fleming_spent
from segue.jobs.experiments import experiment_report
from segue.jobs.ingest import load_synthetic_world
from segue.registry.trained import train_models
from segue.store import open_store


def _cli(data: Path, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"SEGUE_DATA_DIR": str(data)})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def test_an_experiment_from_creation_to_report(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        load_synthetic_world(store, SynthParams(seed=8, n_users=120, n_tracks=300, n_events=8_000))
        interactions = load_interactions(store)
        side = load_side_info(store, interactions)
        train_models(interactions, ["als"], data / "models", side=side)
        users = [str(u) for u in interactions.users.ids[:100]]
        artist = {i.id: i.artist_id for i in store.iter_items()}

    made = _cli(data, "experiments", "create", "cap", "--variant", "control",
                "--variant", "one-each:max_per_artist=1", "--days", "14")  # fmt: skip
    assert "planned for 14 days" in made
    listed = _cli(data, "experiments", "list")
    assert "draft" in listed and "14 days" in listed
    assert ExperimentBook(data / EXPERIMENTS_FILE).get("cap").days == 14
    with pytest.raises(SegueError, match="between 1 and 366 days, got 0"):
        _cli(data, "experiments", "create", "y", "--variant", "a", "--variant", "b", "--days", "0")
    with pytest.raises(SegueError, match="not a setting"):
        _cli(data, "experiments", "create", "x", "--variant", "a", "--variant", "b:colour=red")
    _cli(data, "experiments", "start", "cap")
    today = dt.datetime.now(dt.UTC).date()
    assert f"14 days (to {today + dt.timedelta(days=13)})" in _cli(data, "experiments", "list")
    with pytest.raises(SegueError, match="is running; cannot running"):
        _cli(data, "experiments", "start", "cap")
    with pytest.raises(SegueError, match="overlap in layer"):
        _cli(data, "experiments", "create", "other", "--variant", "a", "--variant", "b")
        _cli(data, "experiments", "start", "other")

    salt = ExperimentBook(data / EXPERIMENTS_FILE).get("cap").experiment.hash_salt
    expected = {u: "control" if position(salt, u) < 0.5 else "one-each" for u in users}
    settings = Settings(data_dir=data)
    with TestClient(create_app(settings, watch_s=None)) as client:
        answers = {
            u: client.get(f"/v1/users/{u}/recommendations", params={"k": 10}).json()
            for u in users
        }
        plays = []
        for u, answer in answers.items():
            if expected[u] == "one-each":  # only the treatment's listeners play from lists
                plays.append(
                    {"event_id": uuid.uuid4().hex, "user_id": u,
                     "item_id": answer["items"][0]["item_id"], "type": "play",
                     "ms_played": 200_000}
                )  # fmt: skip
        assert client.post("/v1/events", json={"events": plays}).status_code == 202
        services = client.app.state.services  # type: ignore[attr-defined]
        services.worker.drain()
        services.flush_exposures()
    for u, answer in answers.items():
        artists = [artist[i["item_id"]] for i in answer["items"]]
        if expected[u] == "one-each":
            assert len(set(artists)) == len(artists), u  # its setting was served
    assert any(
        len(set(a)) < len(a)
        for a in ([artist[i["item_id"]] for i in answers[u]["items"]] for u in users
                  if expected[u] == "control")
    )  # fmt: skip  (the control's lists repeat artists: the arms really differ)

    with open_store(settings.resolved_database_url) as store:
        logged = store.exposures_between(0, 2**62)
        assigned = {e.user_id: e.experiments for e in logged}
        assert assigned == {u: {"cap": expected[u]} for u in users}
        today = dt.datetime.now(dt.UTC).date()
        report = experiment_report(store, ExperimentBook(data / EXPERIMENTS_FILE), "cap",
                                   today, today)  # fmt: skip
    n_treated = sum(v == "one-each" for v in expected.values())
    assert report.listeners == {"control": len(users) - n_treated, "one-each": n_treated}
    assert report.split is not None and not report.split.mismatch
    ctr = next(m for m in report.metrics if m.metric.startswith("CTR"))
    assert (ctr.effect.control, ctr.effect.treatment) == (0.0, 1.0)
    assert "| CTR per list (delta method) | one-each |" in report.markdown()
    assert report.planned_days == 14 and ctr.sequential is not None
    assert (ctr.sequential.day, ctr.sequential.planned_days) == (1, 14)  # the first look

    _cli(data, "experiments", "stop", "cap")
    assert "stopped" in _cli(data, "experiments", "list")
    with TestClient(create_app(settings, watch_s=None)) as client:
        again = client.get(f"/v1/users/{users[0]}/recommendations", params={"k": 10}).json()
        client.app.state.services.flush_exposures()  # type: ignore[attr-defined]
    with open_store(settings.resolved_database_url) as store:
        last = {e.request_id: e for e in store.exposures_between(0, 2**62)}[again["request_id"]]
    assert last.experiments == {}


def test_a_variant_can_be_a_registry_version_served_beside_production(tmp_path: Path) -> None:
    from segue.batch.lifecycle import build_manifest, publish_trained
    from segue.registry import ModelRegistry

    data = tmp_path / "data"
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        load_synthetic_world(store, SynthParams(seed=9, n_users=80, n_tracks=200, n_events=5_000))
        interactions = load_interactions(store)
        side = load_side_info(store, interactions)
        users = [str(u) for u in interactions.users.ids[:60]]
    registry = ModelRegistry(data / "registry")
    for name in ("popularity", "als"):  # v0001 popularity, v0002 als (production)
        trained = train_models(interactions, [name], side=side)[name]
        manifest = build_manifest(trained, {"ndcg@10": 0.1}, data={"events": 5_000})
        publish_trained(registry, "als", trained, manifest, force=True)
    assert registry.production("als").version == "v0002"

    _cli(data, "experiments", "create", "old-model", "--variant", "now",
         "--variant", "before:version=v0001", "--variant", "gone:version=v0099")  # fmt: skip
    with pytest.raises(SegueError, match="version=v1 is out of range"):
        _cli(data, "experiments", "create", "bad", "--variant", "a", "--variant", "b:version=v1")
    _cli(data, "experiments", "start", "old-model")
    salt = ExperimentBook(data / EXPERIMENTS_FILE).get("old-model").experiment.hash_salt
    third = 1 / 3
    arm = {u: ("now", "before", "gone")[min(int(position(salt, u) / third), 2)] for u in users}
    assert set(arm.values()) == {"now", "before", "gone"}
    with TestClient(create_app(Settings(data_dir=data), watch_s=None)) as client:
        answers = {u: client.get(f"/v1/users/{u}/recommendations").json() for u in users}
        client.app.state.services.flush_exposures()  # type: ignore[attr-defined]
        metrics = client.get("/metrics").text
    for u, answer in answers.items():
        # the variant's version serves its listeners; one that does not exist falls back to
        # production (and is counted), never to an error
        expected = {"now": ("als", "v0002"), "before": ("popularity", "v0001"),
                    "gone": ("als", "v0002")}[arm[u]]  # fmt: skip
        assert (answer["model"], answer["version"]) == expected, u
    gone = sum(1 for a in arm.values() if a == "gone")
    assert f'segue_fallbacks_total{{kind="experiment_version"}} {float(gone)}' in metrics
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        logged = {e.user_id: e for e in store.exposures_between(0, 10**14)}
    assert {u: (e.version, e.experiments["old-model"]) for u, e in logged.items()} == {
        u: (answers[u]["version"], arm[u]) for u in users
    }


def test_guardrails_catch_a_variant_that_wins_by_hurting_the_service(
    store, tmp_path: Path
) -> None:
    from segue.data.model import Event, EventType, Item, ItemKind, User
    from segue.experiments.book import RUNNING, new_plan
    from segue.store.exposures import Exposure

    book = ExperimentBook(tmp_path / EXPERIMENTS_FILE)
    book.create(new_plan("x", [("a", None, {}), ("b", None, {}), ("c", None, {})], days=14))
    book.set_status("x", RUNNING, 0)
    day = dt.datetime(2026, 11, 2, 12, tzinfo=dt.UTC)
    t0 = int(day.timestamp() * 1000)
    store.upsert_items([Item(id=f"t{i}", kind=ItemKind.TRACK, title=f"T{i}") for i in range(4)])
    users = [f"u{i}" for i in range(90)]
    store.upsert_users([User(id=u, signup_at=day - dt.timedelta(days=9)) for u in users])
    rng = np.random.default_rng(0)
    shown, events = [], []
    for n, u in enumerate(users):
        variant = "abc"[n % 3]
        # b: skips most of what it shows, from the fallback path half the time, 3x slower;
        # c: like a, which every guardrail must let pass
        skip_share = 0.8 if variant == "b" else 0.2
        for j in range(4):
            path = "fallback" if variant == "b" and j % 2 else "personal"
            served = rng.uniform(3_000, 6_000) * (3 if variant == "b" else 1)
            shown.append(Exposure(f"r{n}-{j}", u, t0 + j * 3_600_000, "home", "als", "v1", path,
                                  (f"t{j}",), {"x": variant}, {"served_us": str(int(served))}))
            kind = EventType.SKIP if rng.random() < skip_share else EventType.PLAY
            events.append(Event(event_id=f"e{n}-{j}", user_id=u, item_id=f"t{j}", type=kind,
                                timestamp=day + dt.timedelta(hours=j, minutes=1),
                                ms_played=200_000 if kind == EventType.PLAY else 3_000))
    store.add_exposures(shown)  # fmt: skip
    store.add_events(events)
    report = experiment_report(store, book, "x", day.date(), day.date())
    verdict = {(g.name, g.variant): g.breached for g in report.guardrails}
    assert verdict == {
        ("skip rate per listener", "b"): True,
        ("lists from the fallback path", "b"): True,
        ("serving time p99 (ms)", "b"): True,
        ("skip rate per listener", "c"): False,
        ("lists from the fallback path", "c"): False,
        ("serving time p99 (ms)", "c"): False,
    }
    assert "## Guardrails" in report.markdown() and "**BREACHED**" in report.markdown()


def test_operators_run_experiments_over_the_admin_api(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        load_synthetic_world(store, SynthParams(seed=4, n_users=60, n_tracks=120, n_events=3_000))
        users = [u.id for u in store.iter_users()][:40]
    settings = Settings(data_dir=data, api_keys="boss=admin,reader=read")
    boss, reader = {"X-API-Key": "boss"}, {"X-API-Key": "reader"}
    capped = {"name": "b", "settings": {"max_per_artist": 1}}
    body = {"id": "cap", "variants": [{"name": "a"}, capped]}
    with TestClient(create_app(settings, watch_s=None)) as client:
        url = "/v1/admin/experiments"
        assert client.post(url, json=body, headers=reader).status_code == 403
        made = client.post(url, json=body, headers=boss)
        assert made.status_code == 201, made.text
        assert made.json()["variants"][1] == {"name": "b", "share": 0.5,
                                              "settings": {"max_per_artist": 1}}  # fmt: skip
        assert made.json()["days"] is None
        planned = client.post(url, json={**body, "id": "planned", "layer": "other", "days": 7},
                              headers=boss)  # fmt: skip
        assert planned.status_code == 201 and planned.json()["days"] == 7
        assert ExperimentBook(data / EXPERIMENTS_FILE).get("planned").days == 7
        for days in (0, 2.5, "x"):
            bad_days = client.post(url, json={**body, "id": "d", "days": days}, headers=boss)
            assert bad_days.status_code == 422 and "days" in bad_days.text
        assert client.post(url, json=body, headers=boss).status_code == 409
        bad = {**body, "id": "bad", "variants": [{"name": "a"},
                                                 {"name": "b", "settings": {"colour": "red"}}]}
        refused = client.post(url, json=bad, headers=boss)
        assert refused.status_code == 422 and "'colour' is not a setting" in refused.text
        assert client.post(f"{url}/nope/start", headers=boss).status_code == 404
        started = client.post(f"{url}/cap/start", headers=boss)
        assert started.json()["status"] == "running"
        assert client.post(f"{url}/cap/start", headers=boss).status_code == 409
        # the book the CLI reads is the one written, and serving assigns from it at once
        assert ExperimentBook(data / EXPERIMENTS_FILE).get("cap").status == "running"
        for u in users:
            client.get(f"/v1/users/{u}/recommendations", headers=reader)
        client.app.state.services.flush_exposures()  # type: ignore[attr-defined]
        report = client.get(f"{url}/cap/report", headers=boss).json()
        assert sum(report["listeners"].values()) == len(users)
        assert report["sample_ratio_mismatch"] is False
        assert report["markdown"].startswith("# Experiment cap")
        assert report["planned_days"] is None  # no plan: the always-valid p is to read
        assert all(e["sequential"] is None for e in report["effects"])
        assert "no planned duration" in report["markdown"]
        assert [e["id"] for e in client.get(url, headers=boss).json()] == ["cap", "planned"]
        assert client.post(f"{url}/cap/stop", headers=boss).json()["status"] == "stopped"


def test_a_book_written_before_planned_durations_still_loads(tmp_path: Path) -> None:
    path = tmp_path / EXPERIMENTS_FILE
    old = {"id": "old", "layer": "default", "start": 0.0, "end": 1.0, "ramp": [], "salt": "",
           "variants": [{"name": "a", "share": 0.5, "settings": {}},
                        {"name": "b", "share": 0.5, "settings": {}}],
           "status": "running", "started_ms": 0, "stopped_ms": None}  # fmt: skip
    path.write_text(json.dumps({"holdout": 0.0, "experiments": [old]}), encoding="utf-8")
    book = ExperimentBook(path)
    assert book.get("old").days is None and "old" in book.running()[1]
    assert "| old " in _cli(tmp_path, "experiments", "list").replace("│", "|")
    book.set_status("old", "stopped", 5)  # rewritten with its (absent) plan: still none
    assert json.loads(path.read_text())["experiments"][0]["days"] is None
    path.write_text(json.dumps({"experiments": [{**old, "days": -3}]}), encoding="utf-8")
    with pytest.raises(SegueError, match="experiment 'old''s days: between 1 and 366 days, got -3"):
        ExperimentBook(path).get("old")


def test_the_report_follows_each_effect_day_by_day_with_always_valid_p_values(
    tmp_path: Path,
) -> None:
    from segue.data.model import Event, EventType, Item, ItemKind, User
    from segue.experiments.book import RUNNING, new_plan
    from segue.store.exposures import Exposure

    data = tmp_path / "data"
    book = ExperimentBook(data / EXPERIMENTS_FILE)
    book.create(new_plan("x", [("a", None, {}), ("b", None, {}), ("c", None, {})], days=14))
    book.set_status("x", RUNNING, 0)
    first = dt.datetime(2026, 11, 2, 12, tzinfo=dt.UTC)
    users = [f"u{i}" for i in range(300)]
    rng = np.random.default_rng(1)
    shown, events = [], []
    for day in range(5):
        when = first + dt.timedelta(days=day)
        for n, u in enumerate(users):
            variant = "abc"[n % 3]
            rid = f"r{day}-{n}"
            shown.append(Exposure(rid, u, int(when.timestamp() * 1000), "home", "als", "v1",
                                  "personal", ("t0",), {"x": variant}))  # fmt: skip
            if rng.random() < (0.6 if variant == "b" else 0.3):  # b: twice the plays
                events.append(Event(event_id=f"e{rid}", user_id=u, item_id="t0",
                                    type=EventType.PLAY, ms_played=100_000,
                                    timestamp=when + dt.timedelta(minutes=2)))  # fmt: skip
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        store.upsert_items([Item(id="t0", kind=ItemKind.TRACK, title="T0")])
        store.upsert_users([User(id=u, signup_at=first - dt.timedelta(days=9)) for u in users])
        store.add_exposures(shown)
        store.add_events(events)
        report = experiment_report(store, book, "x", first.date(), first.date() + dt.timedelta(4))
    ctr = {v: [x for x in report.trajectory if x.metric.startswith("CTR") and x.variant == v]
           for v in "bc"}  # fmt: skip
    assert [x.day.day for x in ctr["b"]] == [2, 3, 4, 5, 6]
    for seq in ctr.values():  # always-valid p-values only go down, and never below the fixed
        ps = [x.always_valid_p for x in seq]
        assert ps == sorted(ps, reverse=True)
    final = {m.variant: m for m in report.metrics if m.metric.startswith("CTR")}
    assert final["b"].always_valid_p < 0.01 and final["c"].always_valid_p > 0.05
    assert final["b"].always_valid_p >= final["b"].effect.p
    # the interval narrows as the days add listeners' lists
    widths = [x.effect.high - x.effect.low for x in ctr["b"]]
    assert widths[-1] < widths[0] / 1.8
    # planned for 14 days: on day 5 of 14, b's doubled plays have crossed the O'Brien-Fleming
    # boundary (stop for efficacy before the planned end) and c, an A/A of a, has not
    assert report.planned_days == 14
    for m in report.metrics:
        s = m.sequential
        assert s is not None and (s.day, s.planned_days) == (5, 14)
        assert s.spent == pytest.approx(float(obrien_fleming_spent(5 / 14)))
        assert s.bound == pytest.approx(float(obrien_fleming_bounds(np.arange(1, 6) / 14)[-1]))
        if m.variant == "c":
            assert not s.crossed and abs(s.z) < s.bound, m
    b = final["b"].sequential
    assert b is not None and b.crossed and b.crossed_day is not None and b.crossed_day < 5
    # the plot's boundary on the effect's scale: the effect is beyond it exactly on the days
    # whose |z| reached the z boundary, and it narrows towards the planned end's
    for seq, decision in ((ctr["b"], b), (ctr["c"], final["c"].sequential)):
        looks = [x for x in report.trajectory if x.metric == seq[0].metric
                 and x.variant == seq[0].variant]  # fmt: skip
        beyond = [abs(x.effect.difference) >= x.boundary for x in looks]
        assert beyond == [abs(z) >= bound for _, z, bound in decision.path]
    edge = [x.boundary for x in report.trajectory if x.metric == ctr["b"][0].metric
            and x.variant == "b"]  # fmt: skip
    assert edge == sorted(edge, reverse=True) and edge[0] > 1.5 * edge[-1]
    text = report.markdown()
    assert "## Group-sequential test" in text and "stop for efficacy" in text
    assert "peeking daily with a plan" in text and "no planned duration" not in text

    out = tmp_path / "report"
    text = _cli(data, "experiments", "report", "x", "--from", "2026-11-02", "--to", "2026-11-06",
                "--out", str(out))  # fmt: skip
    assert "always-valid p" in text and "day 5 of 14" in text
    assert (out / "cumulative-effects.png").read_bytes()[:4] == b"\x89PNG"
    assert (
        "![each effect over time, cumulative](cumulative-effects.png)"
        in (out / "report.md").read_text()
    )


def test_cuped_on_the_weeks_before_narrows_the_minutes_interval(store, tmp_path: Path) -> None:
    from segue.data.model import Event, EventType, Item, ItemKind, User
    from segue.experiments.book import RUNNING, new_plan
    from segue.store.exposures import Exposure

    book = ExperimentBook(tmp_path / EXPERIMENTS_FILE)
    book.create(new_plan("x", [("a", None, {}), ("b", None, {})]))
    book.set_status("x", RUNNING, 0)
    first = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
    users = [f"u{i}" for i in range(400)]
    rng = np.random.default_rng(3)
    habit = rng.lognormal(1.5, 0.6, len(users))  # minutes a listener plays per list, and before
    store.upsert_items([Item(id="t0", kind=ItemKind.TRACK, title="T0")])
    store.upsert_users([User(id=u, signup_at=first - dt.timedelta(days=60)) for u in users])
    shown, events = [], []
    for n, u in enumerate(users):
        variant = "ab"[n % 2]
        for back in (3, 8, 12):  # the weeks before: the covariate, from the same habit
            minutes = habit[n] * rng.uniform(0.8, 1.2)
            events.append(Event(event_id=f"p{n}-{back}", user_id=u, item_id="t0",
                                type=EventType.PLAY, ms_played=int(minutes * 60_000),
                                timestamp=first - dt.timedelta(days=back)))  # fmt: skip
        when = first + dt.timedelta(hours=n % 10)
        shown.append(Exposure(f"r{n}", u, int(when.timestamp() * 1000), "home", "als", "v1",
                              "personal", ("t0",), {"x": variant}))  # fmt: skip
        minutes = habit[n] * rng.uniform(0.8, 1.2) + (1.0 if variant == "b" else 0.0)
        events.append(Event(event_id=f"e{n}", user_id=u, item_id="t0", type=EventType.PLAY,
                            ms_played=int(minutes * 60_000),
                            timestamp=when + dt.timedelta(minutes=1)))  # fmt: skip
    store.add_exposures(shown)
    store.add_events(events)
    report = experiment_report(store, book, "x", first.date(), first.date())
    minutes = next(m for m in report.metrics if m.metric.startswith("minutes"))
    assert minutes.metric == "minutes per listener (CUPED)"
    assert report.cuped["b"] > 0.5  # habits persist: most of the variance was theirs
    e = minutes.effect
    assert e.low < 1.0 < e.high and e.high - e.low < 0.7  # the planted +1 minute, tightly
    assert "CUPED on each listener's minutes in the 14 days before" in report.markdown()


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"max_per_artist": float("inf")}, "takes a int"),
        ({"max_per_artist": 2.7}, "takes a int"),
        ({"max_per_artist": "many"}, "takes a int"),
        ({"explore_share": float("nan")}, "out of range"),
        ({"explore_share": 0.5}, "out of range"),
        ({"version": 3}, "out of range"),
        ({"surface": True}, "takes a str"),
        ({"colour": "red"}, "not a setting"),
    ],
)
def test_variant_settings_refuse_what_they_cannot_serve(raw: dict, says: str) -> None:
    from segue.experiments.book import check_settings

    with pytest.raises(SegueError, match=says):
        check_settings(raw, "variant 'b'")


def test_variant_settings_take_what_the_json_or_the_command_line_gives() -> None:
    from segue.experiments.book import check_settings, parse_settings

    assert check_settings({"max_per_artist": 2.0, "explore_share": 0.1}, "v") == {
        "max_per_artist": 2, "explore_share": 0.1
    }  # fmt: skip
    assert parse_settings("version=v0003,nba_min_expected_value=0.5", "v") == {
        "version": "v0003", "nba_min_expected_value": 0.5
    }  # fmt: skip
