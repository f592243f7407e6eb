"""Next-best-action policies as experiment variants: the listener's variant sets the policy's
thresholds for their real-time answer, the answer is logged like any served list (surface
``nba``, with the assignment), and the same variant's settings do not disturb other surfaces."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from segue.api import create_app
from segue.cli.main import app
from segue.config import Settings
from segue.data.synth import SynthParams
from segue.data.synth.nba import NBASimParams
from segue.experiments.assignment import position
from segue.experiments.book import EXPERIMENTS_FILE, ExperimentBook
from segue.jobs import nba
from segue.store import open_store

NOW = "2025-01-01T12:00:00Z"  # daytime in UTC: no quiet hours


def test_a_variant_sets_the_next_best_action_policy(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        nba.simulate_nba(store, SynthParams(seed=5, n_users=200, n_tracks=300, n_events=8_000),
                         NBASimParams(n_impressions=4_000), tmp_path / "truth.parquet")  # fmt: skip
        nba.train_click_model(store, data / "models")
        users = [u.id for u in store.iter_users() if not u.kids_profile][:60]
    env = {"SEGUE_DATA_DIR": str(data)}
    for args in (
        ["experiments", "create", "nba-bar", "--variant", "usual",
         "--variant", "strict:nba_min_expected_value=1.0"],
        ["experiments", "start", "nba-bar"],
    ):  # fmt: skip
        done = CliRunner().invoke(app, args, env=env)
        assert done.exit_code == 0, done.output
    salt = ExperimentBook(data / EXPERIMENTS_FILE).get("nba-bar").experiment.hash_salt
    arm = {u: "usual" if position(salt, u) < 0.5 else "strict" for u in users}
    with TestClient(create_app(Settings(data_dir=data), watch_s=None)) as client:
        answers = {
            u: client.get(f"/v1/users/{u}/next-best-action", params={"now": NOW}).json()
            for u in users
        }
        # the nba_ settings are not the recommendation list's: it is served as usual
        strict = next(u for u in users if arm[u] == "strict")
        assert client.get(f"/v1/users/{strict}/recommendations").status_code == 200
        client.app.state.services.flush_exposures()  # type: ignore[attr-defined]
    # no suggestion is worth 1.0: the strict arm's listeners get none, the others mostly do
    assert all(answers[u]["best"] is None for u in users if arm[u] == "strict")
    usual = [u for u in users if arm[u] == "usual"]
    assert sum(answers[u]["best"] is not None for u in usual) > len(usual) / 2
    with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
        logged = [e for e in store.exposures_between(0, 2**62) if e.surface == "nba"]
    assert {e.user_id for e in logged} == {u for u in usual if answers[u]["best"] is not None}
    for e in logged:
        answer = answers[e.user_id]
        shown = [answer["best"], *answer["alternatives"]]
        assert list(e.items) == [s["action"]["item_id"] for s in shown]
        assert e.experiments == {"nba-bar": "usual"} and e.context["channel"] == shown[0]["channel"]
        assert abs(e.ts_ms / 1000 - dt.datetime.now(dt.UTC).timestamp()) < 300
