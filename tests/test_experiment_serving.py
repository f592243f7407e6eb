"""Experiments served for real: `segue experiments create | start | list | stop | report` on a
data directory, the API assigning each listener by the salted hash and serving their
variant's pipeline settings, the exposure log recording the assignment, and the report
reading what each variant's lists led to."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

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

    _cli(data, "experiments", "create", "cap", "--variant", "control",
         "--variant", "one-each:max_per_artist=1")  # fmt: skip
    assert "draft" in _cli(data, "experiments", "list")
    with pytest.raises(SegueError, match="not a setting"):
        _cli(data, "experiments", "create", "x", "--variant", "a", "--variant", "b:colour=red")
    _cli(data, "experiments", "start", "cap")
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
        services.exposures.flush()
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

    _cli(data, "experiments", "stop", "cap")
    assert "stopped" in _cli(data, "experiments", "list")
    with TestClient(create_app(settings, watch_s=None)) as client:
        again = client.get(f"/v1/users/{users[0]}/recommendations", params={"k": 10}).json()
        client.app.state.services.exposures.flush()  # type: ignore[attr-defined]
    with open_store(settings.resolved_database_url) as store:
        last = {e.request_id: e for e in store.exposures_between(0, 2**62)}[again["request_id"]]
    assert last.experiments == {}
