"""The evaluation runner: identical splits for every model, determinism, the protocols'
promises (no held-out pair reaches training), buckets, and the job the demo uses."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp

from segue.dataset import (
    Binary,
    Interactions,
    SideInfo,
    global_temporal_split,
    new_item_split,
    new_user_split,
    random_split,
)
from segue.errors import DatasetError, SegueError
from segue.eval import (
    Candidate,
    ColdItemsProtocol,
    ColdUsersProtocol,
    evaluate,
    registry_candidates,
)
from segue.eval.metrics import ranking_scores
from segue.jobs.evaluate import ModelResult, evaluate_models
from segue.models.itemknn import ItemKNNRecommender
from segue.models.popularity import PopularityRecommender
from test_eval_data import synthetic_interactions, synthetic_side


class Recording(PopularityRecommender):
    """Popularity that writes down what the runner gave it: the training matrix it was fitted
    on, and the users and mask it was asked to rank with."""

    def __init__(self, log: list[dict], tag: str) -> None:
        super().__init__()
        self.log = log
        self.tag = tag

    def fit(self, interactions: sp.csr_matrix, side: SideInfo | None = None) -> Recording:
        self.log.append({"tag": self.tag, "train": interactions.copy()})
        return super().fit(interactions, side)

    def recommend(self, users, k=10, **kwargs):
        self.log[-1]["users"] = np.array(users)
        self.log[-1]["exclude"] = kwargs["exclude"].copy()
        return super().recommend(users, k, **kwargs)


def recorders(log: list[dict], tags: list[str]) -> list[Candidate]:
    return [Candidate(t, lambda t=t: Recording(log, t), Binary()) for t in tags]


def same_matrix(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    return a.shape == b.shape and (a != b).nnz == 0


@pytest.fixture(scope="module")
def data() -> Interactions:
    return synthetic_interactions()


def test_every_model_gets_the_same_split_of_each_seed(data: Interactions) -> None:
    log: list[dict] = []
    evaluate(data, recorders(log, ["a", "b", "c"]), "random", seeds=[0, 1])
    assert [entry["tag"] for entry in log] == ["a", "b", "c"] * 2
    for seed, group in ((0, log[:3]), (1, log[3:])):
        split = random_split(data, (0.8, 0.1, 0.1), seed=seed)
        expected_train = split.train.binary_matrix()
        expected_mask = (expected_train + split.valid.binary_matrix()).tocsr()
        expected_users = np.flatnonzero(split.test.user_counts() > 0)
        for entry in group:
            assert same_matrix(entry["train"], expected_train)
            assert same_matrix(entry["exclude"], expected_mask)
            np.testing.assert_array_equal(entry["users"], expected_users)
    assert not same_matrix(log[0]["train"], log[3]["train"])  # seeds do change the split


def test_same_seeds_give_the_same_numbers(data: Interactions) -> None:
    side = synthetic_side(data)
    candidates = registry_candidates(["popularity", "itemknn"])
    first = evaluate(data, candidates, "random", seeds=[3, 4], side=side, auc=True)
    again = evaluate(data, candidates, "random", seeds=[3, 4], side=side, auc=True)
    other = evaluate(data, candidates, "random", seeds=[5, 6], side=side, auc=True)
    # assert_equal: exact, with NaN (an empty bucket) equal to NaN
    np.testing.assert_equal([r.metrics for r in first.runs], [r.metrics for r in again.runs])
    np.testing.assert_equal([r.by_bucket for r in first.runs], [r.by_bucket for r in again.runs])
    np.testing.assert_equal([r.curves for r in first.runs], [r.curves for r in again.runs])
    assert first.summaries[1].mean != other.summaries[1].mean
    # structure in the data is found: item-kNN beats popularity on every seed
    for seed in (3, 4):
        pop, knn = (r for r in first.runs if r.seed == seed)
        assert knn.metrics["ndcg"] > pop.metrics["ndcg"]


def test_metrics_match_a_popularity_ranking_built_by_hand(data: Interactions) -> None:
    evaluation = evaluate(data, registry_candidates(["popularity"]), "random", seeds=[2], k=5)
    split = random_split(data, (0.8, 0.1, 0.1), seed=2)
    listeners = split.train.item_counts().astype(float)
    masked = (split.train.binary_matrix() + split.valid.binary_matrix()).toarray() > 0
    users = np.flatnonzero(split.test.user_counts() > 0)
    ranked = []
    for user in users:
        scores = np.where(masked[user], -np.inf, listeners)
        ranked.append(np.argsort(-scores, kind="stable")[:5])
    expected = ranking_scores(np.array(ranked), split.test.binary_matrix()[users], 5).mean()
    got = evaluation.runs[0].metrics
    for name in ("precision", "recall", "ndcg", "hit_rate"):
        assert got[name] == pytest.approx(expected[name])
    assert got["users"] == len(users)
    assert evaluation.split_sizes[2] == split.sizes


def test_a_user_cap_ranks_a_seeded_draw_of_the_held_out_users(data: Interactions) -> None:
    log: list[dict] = []
    evaluate(data, recorders(log, ["all"]), "random", seeds=[1])
    everyone = log[0]["users"]
    cap = len(everyone) // 3
    evaluate(data, recorders(log, ["a", "b"]), "random", seeds=[1], max_users=cap)
    evaluate(data, recorders(log, ["again"]), "random", seeds=[1], max_users=cap)
    evaluate(data, recorders(log, ["other"]), "random", seeds=[2], max_users=cap)
    drawn = log[1]["users"]
    assert len(drawn) == cap and np.all(np.diff(drawn) > 0)  # distinct, in index order
    assert np.isin(drawn, everyone).all()
    np.testing.assert_array_equal(log[2]["users"], drawn)  # every candidate ranks the same ones
    np.testing.assert_array_equal(log[3]["users"], drawn)  # and the seed fixes them
    other_everyone = np.flatnonzero(random_split(data, (0.8, 0.1, 0.1), seed=2).test.user_counts())
    assert np.isin(log[4]["users"], other_everyone).all()
    assert not np.array_equal(log[4]["users"], drawn)
    # the metrics are those of the drawn users alone, by hand as in the test above
    capped = evaluate(data, registry_candidates(["popularity"]), "random", seeds=[1], k=5,
                      max_users=cap)  # fmt: skip
    split = random_split(data, (0.8, 0.1, 0.1), seed=1)
    listeners = split.train.item_counts().astype(float)
    masked = (split.train.binary_matrix() + split.valid.binary_matrix()).toarray() > 0
    ranked = [np.argsort(-np.where(masked[u], -np.inf, listeners), kind="stable")[:5]
              for u in drawn]  # fmt: skip
    expected = ranking_scores(np.array(ranked), split.test.binary_matrix()[drawn], 5).mean()
    assert capped.runs[0].metrics["users"] == cap
    assert capped.runs[0].metrics["ndcg"] == pytest.approx(expected["ndcg"])
    # a cap above the held-out users changes nothing
    full = evaluate(data, registry_candidates(["popularity"]), "random", seeds=[1], k=5)
    loose = evaluate(data, registry_candidates(["popularity"]), "random", seeds=[1], k=5,
                     max_users=len(everyone))  # fmt: skip
    np.testing.assert_equal(loose.runs[0].metrics, full.runs[0].metrics)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(SegueError, match="max_users"):
            evaluate(data, registry_candidates(["popularity"]), "random", max_users=bad)


def test_mean_and_std_are_over_seeds(data: Interactions) -> None:
    evaluation = evaluate(data, registry_candidates(["itemknn"]), "random", seeds=[0, 1, 2])
    values = [r.metrics["ndcg"] for r in evaluation.runs]
    summary = evaluation.summary("itemknn")
    assert summary.mean["ndcg"] == pytest.approx(np.mean(values))
    assert summary.std["ndcg"] == pytest.approx(np.std(values, ddof=1))
    assert summary.n_seeds == 3
    # the curve at the main k is the main metric
    assert summary.curves["ndcg"][10] == pytest.approx(summary.mean["ndcg"])
    with pytest.raises(SegueError, match="no model"):
        evaluation.summary("nope")


def test_buckets_partition_the_ranked_users_by_training_pairs(data: Interactions) -> None:
    evaluation = evaluate(data, registry_candidates(["itemknn"]), "random", seeds=[0])
    run = evaluation.runs[0]
    assert evaluation.buckets == ("0", "1-5", "6-20", "21-50", ">50")
    split = random_split(data, (0.8, 0.1, 0.1), seed=0)
    users = np.flatnonzero(split.test.user_counts() > 0)
    train_counts = split.train.user_counts()[users]
    expected = {
        "0": (train_counts == 0).sum(),
        "1-5": ((train_counts >= 1) & (train_counts <= 5)).sum(),
        "6-20": ((train_counts >= 6) & (train_counts <= 20)).sum(),
        "21-50": ((train_counts >= 21) & (train_counts <= 50)).sum(),
        ">50": (train_counts > 50).sum(),
    }
    assert {label: row["users"] for label, row in run.by_bucket.items()} == expected
    # the user-weighted mean of the buckets is the overall mean
    weighted = sum(row["ndcg"] * row["users"] for row in run.by_bucket.values() if row["users"] > 0)
    assert weighted / len(users) == pytest.approx(run.metrics["ndcg"])


def test_cold_users_never_see_held_out_pairs_in_training(data: Interactions) -> None:
    log: list[dict] = []
    protocol = ColdUsersProtocol(n_onboarding=2)
    evaluation = evaluate(data, recorders(log, ["a"]), protocol, seeds=[1])
    split = new_user_split(data, test_fraction=0.1, valid_fraction=0.1, n_onboarding=2, seed=1)
    fitted, exclude = log[0]["train"], log[0]["exclude"]
    test_users = np.unique(split.test.pairs.user)
    # no test or validation pair is in the matrix the model was fitted on...
    for part in (split.test, split.valid):
        assert fitted.multiply(part.binary_matrix()).nnz == 0
    # ...but each held-out user's onboarding pairs are, and they are masked at ranking time
    assert np.all(np.diff(fitted.indptr)[test_users] == 2)
    assert fitted[test_users].multiply(exclude[test_users]).nnz == 2 * len(test_users)
    np.testing.assert_array_equal(log[0]["users"], test_users)  # only held-out users ranked
    assert evaluation.runs[0].by_bucket["1-5"]["users"] == len(test_users)


def test_cold_items_never_see_held_out_items_in_training(data: Interactions) -> None:
    log: list[dict] = []
    evaluate(data, recorders(log, ["a"]), ColdItemsProtocol(), seeds=[2])
    split = new_item_split(data, test_fraction=0.1, valid_fraction=0.1, seed=2)
    fitted, exclude = log[0]["train"], log[0]["exclude"]
    held_items = np.unique(np.concatenate([split.test.pairs.item, split.valid.pairs.item]))
    assert fitted[:, held_items].nnz == 0
    test_items = np.unique(split.test.pairs.item)
    assert exclude[:, test_items].nnz == 0  # the held-out items stay candidates
    assert set(log[0]["users"]) <= set(np.flatnonzero(split.train.user_counts() > 0))


def test_cold_items_recall_rewards_a_model_that_can_score_new_items(data: Interactions) -> None:
    """A model that knows the held-out items (by an oracle list) finds them; popularity,
    which gives an item nobody played no score, cannot: recall is measured on new items."""
    split = new_item_split(data, test_fraction=0.1, valid_fraction=0.1, seed=0)
    new = np.unique(split.test.pairs.item)

    class FavoursNewItems(PopularityRecommender):
        def score(self, users: np.ndarray) -> np.ndarray:
            scores = super().score(users)
            scores[:, new] += 1_000.0
            return scores

    candidates = [
        Candidate("oracle", FavoursNewItems, Binary()),
        Candidate("popularity", PopularityRecommender, Binary()),
    ]
    evaluation = evaluate(data, candidates, ColdItemsProtocol(), seeds=[0], k=50)
    assert evaluation.summary("oracle").mean["recall"] > 0.5
    assert evaluation.summary("popularity").mean["recall"] == 0.0


def test_temporal_protocol_needs_times_and_runs_once(data: Interactions) -> None:
    log: list[dict] = []
    evaluation = evaluate(data, recorders(log, ["a"]), "temporal", seeds=[0, 1, 2])
    assert evaluation.seeds == (0,)  # the split ignores the seed
    split = global_temporal_split(data, (0.8, 0.1, 0.1))
    assert same_matrix(log[0]["train"], split.train.binary_matrix())
    assert np.all(split.train.user_counts()[log[0]["users"]] > 0)  # users with history only
    flat = replace(data, pairs=replace(data.pairs, last_ts=np.zeros(len(data), dtype=np.int64)))
    with pytest.raises(DatasetError, match="temporal protocol needs event times"):
        evaluate(flat, recorders([], ["a"]), "temporal")


def test_a_grid_is_tuned_per_seed_on_validation(data: Interactions) -> None:
    grid = {"neighbours": [2, 50], "shrink": [0.0]}
    tuned = Candidate("knn", ItemKNNRecommender, Binary(), grid=grid)
    evaluation = evaluate(data, [tuned], "random", seeds=[0, 1])
    for run in evaluation.runs:
        assert run.params["neighbours"] in (2, 50) and run.params["shrink"] == 0.0
        assert run.tune_seconds > 0


def test_bad_arguments_are_named(data: Interactions) -> None:
    pop = registry_candidates(["popularity"])
    with pytest.raises(SegueError, match="unknown evaluation protocol 'later'"):
        evaluate(data, pop, "later")
    with pytest.raises(SegueError, match="seeds repeat"):
        evaluate(data, pop, seeds=[1, 1])
    with pytest.raises(SegueError, match="integers >= 0"):
        evaluate(data, pop, seeds=[-1])
    with pytest.raises(SegueError, match="unique"):
        evaluate(data, pop + pop)
    with pytest.raises(SegueError, match="at least one model"):
        evaluate(data, [])
    with pytest.raises(SegueError, match="k must be"):
        evaluate(data, pop, k=0)
    with pytest.raises(SegueError, match="unknown model"):
        registry_candidates(["nope"])
    with pytest.raises(SegueError, match="item_vectors has 3 rows"):
        evaluate(data, pop, item_vectors=np.ones((3, 2)))


def test_diversity_uses_catalog_labels_or_training_columns(data: Interactions) -> None:
    pop = registry_candidates(["popularity"])
    with_side = evaluate(data, pop, seeds=[0], side=synthetic_side(data))
    without = evaluate(data, pop, seeds=[0])
    assert with_side.diversity_basis == "catalog genres and tags"
    assert without.diversity_basis == "training columns"
    for evaluation in (with_side, without):
        assert 0.0 <= evaluation.runs[0].metrics["diversity"] <= 1.0


def test_evaluate_models_keeps_the_demo_contract(data: Interactions) -> None:
    results = evaluate_models(data, ["popularity", "itemknn"], k=10, seed=4)
    assert [r.model for r in results] == ["popularity", "itemknn"]
    runner = evaluate(data, registry_candidates(["popularity", "itemknn"]), seeds=[4])
    for result, run in zip(results, runner.runs, strict=True):
        assert isinstance(result, ModelResult)
        assert result.metrics == run.metrics
        assert result.fit_seconds >= 0 and result.recommend_seconds >= 0
        for key in ("precision", "recall", "ndcg", "hit_rate", "map", "mrr", "coverage"):
            assert 0.0 <= result.metrics[key] <= 1.0
        assert not math.isnan(result.metrics["novelty"])
