"""ALS on Spark in ``local[2]``: it learns, its batch scoring agrees with the factors, and the
model it gives back is an ordinary saved segue ALS model."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from segue.data.synth import SynthParams
from segue.dataset import Binary, random_split
from segue.dataset.from_store import load_interactions
from segue.eval.metrics import ranking_scores
from segue.jobs.ingest import load_synthetic_world
from segue.models.names import model_spec
from segue.models.spark_als import (
    SparkALSRecommender,
    SparkConfig,
    java_available,
    save_spark_model,
    spark_recommend,
)
from segue.registry.trained import TrainedModel, load_trained, save_trained
from segue.store import open_store

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not java_available(), reason="Spark needs Java 17+ (no java on PATH)"),
]


def test_spark_als_learns_and_scores_every_user_like_its_factors(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'segue.sqlite'}")
    world = SynthParams(seed=1, n_users=200, n_tracks=200, n_events=30_000, n_podcast_shows=5,
                        n_podcast_episodes=20, n_videos=10, n_audiobooks=2)  # fmt: skip
    load_synthetic_world(store, world)
    data = load_interactions(store)
    train, _, test = random_split(data, seed=0)
    weighting = model_spec("als").weighting
    config = SparkConfig(master="local[2]", partitions=2, work_dir=str(tmp_path / "spark"))
    model = SparkALSRecommender(factors=16, iterations=5, spark=config)
    model.fit(train.matrix(weighting))
    assert model.user_factors.shape == (data.n_users, 16)
    assert model.item_factors.shape == (data.n_items, 16)

    # it learns: NDCG@10 on held-out pairs well above the popularity list
    users = np.flatnonzero(test.user_counts() > 0)
    relevant = test.binary_matrix()[users]
    ndcg_spark = ranking_scores(model.recommend(users, 10).items, relevant, 10).mean()["ndcg"]
    popularity = model_spec("popularity").factory().fit(train.matrix(Binary()))
    ndcg_pop = ranking_scores(popularity.recommend(users, 10).items, relevant, 10).mean()["ndcg"]
    assert ndcg_spark > 1.2 * ndcg_pop

    # Spark's batch lists: k unplayed items per trained user, the factors' own top k
    spark_dir = tmp_path / "als.spark"
    save_spark_model(model, str(spark_dir / "model"))
    out = tmp_path / "recs.parquet"
    day = dt.date(2026, 11, 30)
    fitted = model._fitted()
    assert model.ratings_path is not None
    rows = spark_recommend(str(spark_dir / "model"), model.ratings_path, fitted, data.users,
                           data.items, str(out), k=5, date=day, config=config)  # fmt: skip
    table = pq.read_table(out).to_pylist()
    assert rows == len(table)
    trained_users = np.flatnonzero(np.diff(fitted.indptr))
    local = model.recommend(trained_users, 5)
    by_user: dict[str, list[dict]] = {}
    for row in table:
        by_user.setdefault(row["user_id"], []).append(row)
    assert set(by_user) == {str(u) for u in data.users.ids[trained_users]}
    agree = 0
    for row_index, user in enumerate(trained_users):
        recs = sorted(by_user[str(data.users.ids[user])], key=lambda r: r["rank"])
        assert [r["rank"] for r in recs] == [1, 2, 3, 4, 5]
        assert all(r["date"] == day for r in recs)
        played = set(data.items.ids[fitted[user].indices])
        assert not {r["item_id"] for r in recs} & played
        expected = [str(i) for i in data.items.ids[local.items[row_index]]]
        scores = np.array([r["score"] for r in recs])
        np.testing.assert_allclose(scores, local.scores[row_index], rtol=1e-4, atol=1e-5)
        agree += [r["item_id"] for r in recs] == expected
    assert agree >= 0.95 * len(trained_users)  # exact ties may order differently

    # saved, it loads as the in-process ALS and ranks the same
    saved = tmp_path / "models"
    save_trained(TrainedModel("als", model, data.users, data.items), saved / "als")
    loaded = load_trained(saved, "als")
    assert type(loaded.model).__name__ == "ALSRecommender"
    np.testing.assert_array_equal(loaded.model.recommend(trained_users, 5).items, local.items)
