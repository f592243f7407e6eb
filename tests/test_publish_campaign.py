"""The daily run's campaign inputs: the decisions of ``segue nba run`` per user as Parquet,
without queuing anything, then loaded into the store with the version."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from segue.batch.lifecycle import CAMPAIGN, MIXES, RECOMMENDATIONS
from segue.batch.publish import batch_campaign, publish_version
from segue.data.synth import SynthParams
from segue.data.synth.nba import NBASimParams
from segue.jobs.nba import simulate_nba, train_click_model
from segue.nba.campaign import CAMPAIGN_SCHEMA, run_campaign
from segue.nba.policy import in_holdout
from segue.registry import ModelRegistry
from segue.store import open_store

pytestmark = pytest.mark.slow  # a synthetic world and a click model: about 5 s
NOW = dt.datetime(2025, 1, 1, 0, 30, tzinfo=dt.UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAY = NOW.date()


def test_campaign_inputs_are_the_campaigns_decisions_per_user(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'segue.sqlite'}")
    model_dir = tmp_path / "models"
    out = tmp_path / "campaigns" / "daily.parquet"
    params = SynthParams(seed=11, n_users=300, n_tracks=400, n_events=12_000)
    simulate_nba(store, params, NBASimParams(n_impressions=8_000), tmp_path / "truth.parquet")

    skipped = batch_campaign(store, model_dir, out, DAY, now_ms=NOW_MS)
    assert skipped.inputs is None and "no click model" in skipped.skipped
    assert "segue nba train" in skipped.skipped and not out.exists()

    train_click_model(store, model_dir)
    done = batch_campaign(store, model_dir, out, DAY, campaign="daily", now_ms=NOW_MS)
    assert done.skipped is None and done.inputs.users == 300
    table = pq.read_table(out)
    assert table.schema == CAMPAIGN_SCHEMA and not list(out.parent.glob("*.tmp"))
    rows = table.to_pylist()
    assert done.inputs.rows == len(rows) and store.outbox_counts().get("pending", 0) == 0
    by_user: dict[str, list[dict]] = {}
    for r in rows:
        by_user.setdefault(r["user_id"], []).append(r)
    users = {u.id: u for u in store.iter_users()}
    ids = sorted(users)
    holdout = {
        u
        for u, h in zip(ids, in_holdout(np.array(ids, dtype=object), "daily", 0.1), strict=True)
        if h
    }
    assert holdout and not set(by_user) & holdout  # the holdout gets nothing
    assert not any(users[u].kids_profile for u in by_user)
    for ranked in by_user.values():
        assert [r["rank"] for r in ranked] == list(range(1, len(ranked) + 1))
        assert len(ranked) <= 4 and all(r["date"] == DAY for r in ranked)
        assert not any(r["chosen"] for r in ranked[1:])  # the message to send comes first
        others = [r["expected_value"] for r in ranked[1 if ranked[0]["chosen"] else 0 :]]
        assert others == sorted(others, reverse=True)
        assert len({r["item_id"] for r in ranked}) == len(ranked)  # one channel per item

    # the chosen rows are exactly the messages `segue nba run` queues for the same moment
    result = run_campaign(store, model_dir, "daily", NOW_MS)
    assert result.queued == done.inputs.chosen > 0
    queued = {
        (m.user_id, m.item_id, m.channel, round(m.p_click, 5), m.scheduled_ms)
        for m in store.outbox_messages(campaign="daily")
    }
    chosen = {
        (r["user_id"], r["item_id"], r["channel"], round(r["p_click"], 5), r["send_at_ms"])
        for r in rows
        if r["chosen"]
    }
    assert chosen == queued

    # published with a version, each user's actions are one store row in rank order
    registry = ModelRegistry(tmp_path / "registry")
    folder = tmp_path / "model"
    folder.mkdir()
    version = registry.publish("daily", folder, {"model_type": "als"}, extra={CAMPAIGN: out})
    assert not (version.artifacts / RECOMMENDATIONS).exists()
    assert not (version.artifacts / MIXES).exists()
    report = publish_version(store, version, None)
    assert report.stored == {"nba": len(by_user)}
    for user in list(by_user)[:20]:
        body = json.loads(store.published_list("daily", version.version, "nba", user).payload)
        assert [(a["rank"], a["item_id"], a["channel"], a["chosen"]) for a in body] == [
            (r["rank"], r["item_id"], r["channel"], r["chosen"]) for r in by_user[user]
        ]
        assert [a["expected_value"] for a in body] == [
            pytest.approx(r["expected_value"], abs=1e-6) for r in by_user[user]
        ]
    store.close()
