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


def test_spark_batch_lists_obey_consent_and_the_kids_rule(tmp_path: Path) -> None:
    """The Spark engine scores everyone a rule leaves alone; listeners without personalisation
    consent get their context's one list and kids profiles no explicit items, exactly as the
    in-process batch gives them, in the same folder."""
    from segue.batch.daily import DayPlan, batch_recommendations, train_candidate
    from segue.batch.lists import batch_recommend
    from segue.dataset.from_store import load_side_info

    store = open_store(f"sqlite:///{tmp_path / 'segue.sqlite'}")
    world = SynthParams(seed=2, n_users=150, n_tracks=200, n_events=20_000, n_podcast_shows=0,
                        n_podcast_episodes=0, n_videos=0, n_audiobooks=0)  # fmt: skip
    load_synthetic_world(store, world)
    data = load_interactions(store)
    trained_users = {str(u) for u in data.users.ids[np.flatnonzero(data.user_counts() > 0)]}
    by_country: dict[str | None, list[str]] = {}
    for user in store.iter_users():
        if user.id in trained_users:
            by_country.setdefault(user.country, []).append(user.id)
    _, people = max(by_country.items(), key=lambda kv: len(kv[1]))
    no_consent, kids = people[:3], people[3:6]
    for user in no_consent:
        store.set_user_flags(user, consent_personalisation=False)
    for user in kids:
        store.set_user_flags(user, kids_profile=True)
    side = load_side_info(store, data)
    plan = DayPlan(date=dt.date(2026, 11, 30), models=("als",), engine="spark", k=10)
    config = SparkConfig(master="local[2]", partitions=2, work_dir=str(tmp_path / "spark"))
    models = tmp_path / "models"
    trained = train_candidate(data, "als", plan, models, spark=config)
    out = tmp_path / "batch"
    rows = batch_recommendations(trained, models, plan, out, spark=config, side=side)
    table = pq.read_table(out).to_pandas()
    assert rows == len(table)
    lists = {u: g.sort_values("rank")["item_id"].tolist() for u, g in table.groupby("user_id")}
    assert set(lists) == trained_users  # everyone once: Spark's part and the rules' part
    assert lists[no_consent[0]] == lists[no_consent[1]] == lists[no_consent[2]]
    local = tmp_path / "local.parquet"
    batch_recommend(trained, local, k=10, date=plan.date, side=side)
    expected = pq.read_table(local).to_pandas()
    for user in [*no_consent, *kids]:
        mine = expected[expected.user_id == user].sort_values("rank")["item_id"].tolist()
        assert lists[user] == mine, user
    explicit = {i.id for i in store.iter_items() if i.explicit}
    assert explicit, "the world has explicit tracks"
    for user in kids:
        assert not set(lists[user]) & explicit
    assert lists[people[6]] != lists[no_consent[0]]  # Spark's own, personal list
    store.close()
