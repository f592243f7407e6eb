"""The daily flow's batch and publish steps: every user's mixes as Parquet and as a registry
artifact, the lists loaded into the store for the version it promotes, served by the API, and
the campaign inputs skipped with a note while no click model exists."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from segue.api import create_app
from segue.batch.lifecycle import CAMPAIGN, MIXES, RECOMMENDATIONS
from segue.batch.runs import list_runs
from segue.config import Settings
from segue.registry import ModelRegistry
from segue.store import open_store

pytestmark = pytest.mark.slow
DAY = "2026-11-30"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("flow-publish") / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEGUE_", "METAFLOW_"))}
    done = subprocess.run(
        [sys.executable, "-m", "segue.cli.main", "--data-dir", str(data_dir), "flow", "run",
         "--date", DAY, "--ingest", "synthetic", "--models", "itemknn", "--k", "5",
         "--synth-users", "120", "--synth-tracks", "1200", "--synth-events", "5000"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "campaign: no click model" in done.stdout + done.stderr
    return data_dir


def test_the_flow_publishes_mixes_and_lists_for_the_promoted_version(run: Path) -> None:
    registry = ModelRegistry(run / "registry")
    version = registry.production("daily")
    assert version is not None and version.version == "v0001"
    day_mixes = run / "mixes" / f"date={DAY}" / "daily.parquet"
    assert (version.artifacts / MIXES).read_bytes() == day_mixes.read_bytes()
    assert not (version.artifacts / CAMPAIGN).exists()
    rows = pq.read_table(day_mixes).to_pylist()
    users = {r["user_id"] for r in rows}
    tops = {r["user_id"] for r in pq.read_table(version.artifacts / RECOMMENDATIONS).to_pylist()}
    assert all(r["date"] == dt.date.fromisoformat(DAY) for r in rows)
    with open_store(f"sqlite:///{run / 'segue.sqlite'}") as store:
        assert store.published_counts("daily", "v0001") == {"top": len(tops), "mix": len(users)}
        assert 0 < len(users) <= store.count("users")  # new listeners too, if a mix fills

    summary = list_runs(Settings(data_dir=run))[0].metrics
    assert summary["mix_rows"] == len(rows) and summary["campaign_rows"] == 0
    assert "no click model" in summary["campaign"]
    assert summary["published"]["stored"] == {"top": len(tops), "mix": len(users)}
    assert any("SEGUE_REDIS_URL" in n for n in summary["published"]["notes"])

    user = sorted(users)[3]
    expected = [
        (r["mix"], r["position"], r["item_id"], r["familiar"]) for r in rows if r["user_id"] == user
    ]
    settings = Settings(data_dir=run)
    with TestClient(create_app(settings, model="daily", watch_s=None, run_worker=False)) as c:
        body = c.get(f"/v1/users/{user}/mixes", params={"date": DAY}).json()
        served = [
            (m["number"], p, t["item_id"], t["familiar"])
            for m in body
            for p, t in enumerate(m["tracks"], start=1)
        ]
        assert served == expected
