"""Grid tuning on the validation part: the winner is the best validation score, and the tuner
is built so that it only ever holds train and validation."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import scipy.sparse as sp

from segue.dataset import Binary, Interactions, SideInfo, random_split
from segue.errors import SegueError
from segue.eval import TuningData, tune, tune_on
from segue.eval.metrics import ranking_scores
from segue.models.itemknn import ItemKNNRecommender
from segue.models.popularity import PopularityRecommender
from test_eval_data import synthetic_interactions


@pytest.fixture(scope="module")
def data() -> Interactions:
    return synthetic_interactions()


def test_the_winner_is_the_best_validation_score(data: Interactions) -> None:
    grid = {"neighbours": [1, 5, 50], "shrink": [0.0, 25.0]}
    result = tune(ItemKNNRecommender, grid, data, seed=3, weighting=Binary(), k=10)

    # the same search by hand
    split = random_split(data, (0.8, 0.1, 0.1), seed=3)
    users = np.flatnonzero(split.valid.user_counts() > 0)
    relevant = split.valid.binary_matrix()[users]
    by_hand = {}
    for neighbours in grid["neighbours"]:
        for shrink in grid["shrink"]:
            model = ItemKNNRecommender(neighbours, shrink).fit(split.train.matrix(Binary()))
            recs = model.recommend(users, 10, exclude=split.train.binary_matrix())
            by_hand[(neighbours, shrink)] = ranking_scores(recs.items, relevant, 10).mean()["ndcg"]
    best = max(by_hand, key=by_hand.get)
    assert (result.best_params["neighbours"], result.best_params["shrink"]) == best
    assert result.best_score == pytest.approx(by_hand[best])
    assert len(result.table) == 6
    for row in result.table:
        key = (row.params["neighbours"], row.params["shrink"])
        assert row.metrics["ndcg"] == pytest.approx(by_hand[key])
    assert len(set(by_hand.values())) > 1  # the grid matters on this data

    again = tune(ItemKNNRecommender, grid, data, seed=3, weighting=Binary(), k=10)
    assert [r.metrics for r in again.table] == [r.metrics for r in result.table]


class Recording(PopularityRecommender):
    def __init__(self, log: list[dict], tag: str = "") -> None:
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


def test_the_tuner_holds_train_and_validation_only(data: Interactions) -> None:
    # By construction: what tune_on accepts has no place for a test part.
    assert [f.name for f in dataclasses.fields(TuningData)] == ["train", "valid"]

    log: list[dict] = []
    result = tune(functools.partial(Recording, log), {"tag": ["a", "b"]}, data, seed=1)
    split = random_split(data, (0.8, 0.1, 0.1), seed=1)
    train = split.train.binary_matrix()
    valid_users = np.flatnonzero(split.valid.user_counts() > 0)
    assert [entry["tag"] for entry in log] == ["a", "b"]
    for entry in log:
        assert (entry["train"] != train).nnz == 0  # fitted on train exactly
        assert entry["train"].multiply(split.test.binary_matrix()).nnz == 0
        assert (entry["exclude"] != train).nnz == 0  # validation is the truth, not masked
        np.testing.assert_array_equal(entry["users"], valid_users)
    # tune() is tune_on() of the split's train and validation parts; the test part is dropped
    direct = tune_on(functools.partial(Recording, []), {"tag": ["a", "b"]}, TuningData(*split[:2]))
    assert [r.metrics for r in direct.table] == [r.metrics for r in result.table]
    assert result.best_params == {"tag": "a"}  # equal scores: the first in grid order wins


def test_bad_grids_and_data_are_named(data: Interactions) -> None:
    split = random_split(data, (0.8, 0.1, 0.1), seed=0)
    holdout = TuningData(split.train, split.valid)
    with pytest.raises(SegueError, match=r"grid\['neighbours'\] must be a non-empty list"):
        tune_on(ItemKNNRecommender, {"neighbours": []}, holdout)
    with pytest.raises(SegueError, match=r"grid\['shrink'\]"):
        tune_on(ItemKNNRecommender, {"shrink": "10"}, holdout)
    with pytest.raises(SegueError, match=r"rejected parameters.*'neighbours': 0"):
        tune_on(ItemKNNRecommender, {"neighbours": [0]}, holdout)
    with pytest.raises(SegueError, match=r"rejected parameters.*bogus"):
        tune_on(ItemKNNRecommender, {"bogus": [1]}, holdout)
    with pytest.raises(SegueError, match="cannot tune for 'coverage'"):
        tune_on(ItemKNNRecommender, {}, holdout, metric="coverage")
    with pytest.raises(SegueError, match="validation part is empty"):
        TuningData(split.train, split.valid.subset(np.zeros(len(split.valid), dtype=bool)))
    with pytest.raises(SegueError, match="needs TuningData"):
        tune_on(ItemKNNRecommender, {}, split)  # a whole Split (with test) is refused
