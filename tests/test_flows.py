"""The daily Metaflow flow end to end on a tiny synthetic world, its gate, and its records."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from segue.batch.daily import (
    DayPlan,
    best_candidate,
    joined_results,
    load_snapshot,
    parse_date,
    snapshot_dataset,
    training_jobs,
)
from segue.batch.lifecycle import RECOMMENDATIONS, load_production
from segue.batch.runs import list_runs, run_steps
from segue.config import Settings
from segue.data.synth import SynthParams
from segue.errors import SegueError
from segue.jobs.ingest import load_synthetic_world
from segue.registry import ModelRegistry
from segue.store import open_store

pytestmark = pytest.mark.slow
SEGUE = [sys.executable, "-m", "segue.cli.main"]
TINY = ["--synth-users", "150", "--synth-tracks", "200", "--synth-events", "4000"]


def _segue(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEGUE_", "METAFLOW_"))}
    return subprocess.run(
        [*SEGUE, "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("flow") / "data"
    done = _segue(data_dir, "flow", "run", "--date", "2026-11-30", "--ingest", "synthetic",
                  "--models", "popularity,itemknn", "--k", "5", "--eval-users", "40",
                  *TINY)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return data_dir


def test_the_flow_publishes_the_best_model_with_every_users_list(first_run: Path) -> None:
    registry = ModelRegistry(first_run / "registry")
    served = load_production(registry, "daily")
    assert served is not None and served.version.version == "v0001"
    manifest = served.version.manifest
    # the chosen model is the better candidate on the held-out split
    candidates = manifest["candidates"]
    assert set(candidates) == {"popularity", "itemknn"}
    assert manifest["model_type"] == max(candidates, key=candidates.get)
    assert manifest["metrics"]["ndcg@10"] == pytest.approx(candidates[manifest["model_type"]])
    assert manifest["metrics"]["users"] == 40  # --eval-users: a draw of the held-out users
    # the manifest's data block matches the store
    store = open_store(f"sqlite:///{first_run / 'segue.sqlite'}")
    log = store.interactions()
    assert manifest["training_data"]["events"] == len(log)
    assert manifest["training_data"]["users"] == len(served.trained.users)
    # its first step measured the exposure log's last 30 days: no list served yet, so none
    online = json.loads((first_run / "online" / "latest.json").read_text())
    assert online == {"day": None, "rows": []}

    # batch lists: k unplayed items for every user with history, same file in the registry
    day_file = first_run / "batch" / "date=2026-11-30" / "daily.parquet"
    rows = pq.read_table(day_file).to_pylist()
    assert (served.version.artifacts / RECOMMENDATIONS).read_bytes() == day_file.read_bytes()
    fitted = served.trained.model._fitted()  # the positive plays the model learnt from
    users, items = served.trained.users.ids, served.trained.items.ids
    played = {
        str(users[u]): {str(i) for i in items[fitted[u].indices]} for u in range(fitted.shape[0])
    }
    by_user: dict[str, list[dict]] = {}
    for row in rows:
        by_user.setdefault(row["user_id"], []).append(row)
    with_history = {str(u) for u in users[np.flatnonzero(np.diff(fitted.indptr))]}
    assert set(by_user) == with_history
    for user, recs in by_user.items():
        assert [r["rank"] for r in recs] == [1, 2, 3, 4, 5]
        assert not {r["item_id"] for r in recs} & played[user]
        assert all(r["date"] == dt.date(2026, 11, 30) for r in recs)
    # the scratch folder of a successful run is gone
    assert list((first_run / "flows").iterdir()) == []


def test_a_run_refused_by_the_gate_leaves_production_untouched(first_run: Path) -> None:
    registry = ModelRegistry(first_run / "registry")
    before = registry.production("daily")
    # a production figure no candidate can reach: the new run must be refused
    boosted = dict(before.manifest, metrics={"ndcg@10": 0.999})
    high = registry.publish("daily", before.path, boosted)
    registry.promote("daily", high.version)
    day_file = first_run / "batch" / "date=2026-11-30" / "daily.parquet"
    day_bytes = day_file.read_bytes()

    done = _segue(first_run, "flow", "run", "--date", "2026-11-30", "--models", "itemknn")
    assert done.returncode == 2
    assert "production is unchanged" in done.stderr
    assert "refused to publish: ndcg@10" in done.stderr
    # an expected outcome is one line; Metaflow's traceback is only in the run's log
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "step gate" in done.stdout
    logs = sorted((first_run / "logs").glob("flow-2026-11-30-*.log"))
    assert "GateRefused" in logs[-1].read_text(encoding="utf-8")
    assert registry.production("daily").version == high.version
    assert [v.version for v in registry.versions("daily")] == ["v0001", "v0002"]
    assert day_file.read_bytes() == day_bytes  # the gate runs before the batch step

    runs = list_runs(Settings(data_dir=first_run))
    assert [(r.successful, r.status) for r in runs[:2]] == [(False, "failed"), (True, "ok")]
    # the admin console's steps of each run: the failed one stops at the gate, with its error
    failed = run_steps(Settings(data_dir=first_run), runs[0].run_id)
    assert [s.name for s in failed] == ["start", "dataset", "train", "choose", "gate"]
    assert [s.status for s in failed] == ["ok"] * 4 + ["failed"]
    assert failed[-1].error is not None and "GateRefused: refused: ndcg@10" in failed[-1].error
    # one candidate: its gate metrics and its fit are two tasks of the train step
    assert [s.tasks for s in failed] == [1, 1, 2, 1, 1]
    assert all(s.seconds is not None and s.seconds >= 0 for s in failed)
    done = run_steps(Settings(data_dir=first_run), runs[1].run_id)
    assert done[-1].name == "end" and {s.status for s in done} == {"ok"}
    with pytest.raises(SegueError, match="no run"):
        run_steps(Settings(data_dir=first_run), "1")
    newest_ok = runs[1]
    assert newest_ok.parameters["models"] == "popularity,itemknn"
    assert newest_ok.parameters["date"] == "2026-11-30"
    assert newest_ok.metrics["version"] == "v0001"
    v1 = registry.get("daily", "v0001").manifest
    assert newest_ok.metrics["ndcg@10"] == pytest.approx(v1["metrics"]["ndcg@10"])
    assert "summary" in newest_ok.artifacts and "data_summary" in newest_ok.artifacts

    listing = _segue(first_run, "runs")
    assert listing.returncode == 0 and "failed" in listing.stdout and "ok" in listing.stdout

    # the registry commands: the gate guards promote, rollback goes back one promotion
    refused = _segue(first_run, "models", "promote", "daily", "v0001")
    assert refused.returncode == 2 and "refused" in refused.stderr
    assert registry.production("daily").version == "v0002"
    back = _segue(first_run, "models", "rollback", "daily")
    assert back.returncode == 0 and "rolled back to v0001" in back.stdout
    assert registry.production("daily").version == "v0001"
    unknown = _segue(first_run, "models", "promote", "daily", "v0042")
    assert unknown.returncode == 2 and "no version v0042" in unknown.stderr
    shown = _segue(first_run, "models", "show", "daily")
    assert shown.returncode == 0 and '"version": "v0001"' in shown.stdout


def test_a_past_date_uses_only_that_days_data(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'segue.sqlite'}")
    load_synthetic_world(store, SynthParams(seed=3, n_users=60, n_tracks=80, n_events=2000))
    everything = store.interactions()
    middle = dt.date(2024, 6, 30)
    plan = DayPlan(middle, ("popularity",))
    summary = snapshot_dataset(store, plan, tmp_path / "snap.pkl")
    before = int((everything.ts_ms < plan.end_ms).sum())
    assert 0 < summary["events"] == before < len(everything)
    assert summary["end"] < "2024-07-01"
    assert len(load_snapshot(tmp_path / "snap.pkl")) == summary["pairs"]
    assert parse_date("2026-01-02") == dt.date(2026, 1, 2)
    with pytest.raises(Exception, match="YYYY-MM-DD"):
        parse_date("yesterday-ish")
    with pytest.raises(Exception, match="trains ALS only"):
        DayPlan(middle, ("itemknn",), engine="spark")
    with pytest.raises(Exception, match="eval-users must be >= 0"):
        DayPlan(middle, ("itemknn",), eval_users=-1)


def test_each_candidates_gate_metrics_and_fit_are_joined_before_the_choice() -> None:
    plan = DayPlan(dt.date(2026, 11, 30), ("als", "itemknn"))
    jobs = training_jobs(plan)
    assert jobs == [("als", "gate"), ("als", "fit"), ("itemknn", "gate"), ("itemknn", "fit")]

    def fit(name: str) -> dict:
        order = plan.models.index(name)
        return {"name": name, "role": "fit", "order": order, "model_dir": f"/m/{name}"}

    def gate(name: str, ndcg: float) -> dict:
        return {"name": name, "role": "gate", "metrics": {"ndcg@10": ndcg}}

    # tasks finish in any order; the results come back in --models order, each whole
    parts = [fit("itemknn"), gate("als", 0.2), gate("itemknn", 0.3), fit("als")]
    results = joined_results(parts)
    assert [r["name"] for r in results] == ["als", "itemknn"]
    assert results[1] == {
        "name": "itemknn", "order": 1, "model_dir": "/m/itemknn", "metrics": {"ndcg@10": 0.3}
    }  # fmt: skip
    assert best_candidate(results, "ndcg@10")["model_dir"] == "/m/itemknn"
    # a candidate without metrics is never chosen by default, nor one never fitted
    with pytest.raises(SegueError, match="'als': no gate result"):
        joined_results([fit("als"), fit("itemknn"), gate("itemknn", 0.3)])
    with pytest.raises(SegueError, match="'itemknn': no fit result"):
        joined_results([fit("als"), gate("als", 0.2), gate("itemknn", 0.3)])
    with pytest.raises(SegueError, match="two 'gate' results"):
        joined_results([fit("als"), gate("als", 0.2), gate("als", 0.1)])


def test_the_flow_steps_get_the_settings_the_command_line_chose(tmp_path: Path) -> None:
    from segue.batch.runs import metaflow_env
    from segue.config import Settings

    chosen = Settings(
        data_dir=tmp_path,
        database_url="postgresql://segue@db/segue",
        redis_url="redis://cache:6379/1",
        redis_prefix="day:",
    )
    env = metaflow_env(chosen, base={"SEGUE_REDIS_URL": "redis://from-the-shell/0"})
    assert env["SEGUE_DATA_DIR"] == str(tmp_path.resolve())
    assert env["SEGUE_DATABASE_URL"] == "postgresql://segue@db/segue"
    assert (env["SEGUE_REDIS_URL"], env["SEGUE_REDIS_PREFIX"]) == ("redis://cache:6379/1", "day:")


def test_the_flow_trains_gates_and_publishes_the_pipeline_which_serve_then_serves(
    tmp_path: Path,
) -> None:
    """Issue 19 item 5: the staged pipeline as a candidate of the daily flow (trained,
    evaluated, gated, published with its lists) and served from the registry by name, fresh
    plays included."""
    from fastapi.testclient import TestClient

    from segue.api import create_app

    data_dir = tmp_path / "data"
    done = _segue(data_dir, "flow", "run", "--date", "2026-11-30", "--ingest", "synthetic",
                  "--models", "pipeline", "--k", "5", *TINY)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    served = load_production(ModelRegistry(data_dir / "registry"), "daily")
    assert served is not None and served.version.manifest["model_type"] == "pipeline"
    assert served.version.manifest["candidates"]["pipeline"] > 0
    tops = pq.read_table(served.version.artifacts / RECOMMENDATIONS).to_pylist()
    user = tops[0]["user_id"]
    with TestClient(create_app(Settings(data_dir=data_dir), model="daily", watch_s=None)) as c:
        first = c.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json()
        assert first["path"] in ("personal", "batch") and not first["degraded"], first
        played = first["items"][0]["item_id"]
        event = {"event_id": "e1", "user_id": user, "item_id": played, "type": "play"}
        assert c.post("/v1/events", json={"events": [event]}).status_code == 202
        after = c.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json()
        assert after["path"] == "personal" and after["fresh_plays"] == 1, after
        assert not after["degraded"] and played not in {i["item_id"] for i in after["items"]}
