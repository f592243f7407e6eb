"""The hybrid: weights learned on held-out training data, blending, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from segue.dataset.splits import inner_holdout
from segue.errors import SegueError
from segue.models.hybrid import HybridRecommender
from segue.ranking import standardise as _standardise


def _planted(seed: int = 0, n_users: int = 200, n_items: int = 60) -> sp.csr_matrix:
    """Two taste blocks plus a popular head, so item-kNN is informative and popularity is not."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for u in range(n_users):
        block = np.arange(0, 30) if u % 2 == 0 else np.arange(30, 60)
        for item in rng.choice(block, size=8, replace=False):
            rows.append(u)
            cols.append(int(item))
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    x.sum_duplicates()
    return x


def test_holdout_moves_a_share_of_each_users_items_and_loses_nothing() -> None:
    x = _planted()
    train, valid = inner_holdout(x, 0.25, seed=3)
    assert train.nnz + valid.nnz == x.nnz
    assert (train.multiply(valid)).nnz == 0
    assert np.all(np.diff(valid.indptr) == 2)  # round(0.25 * 8)
    again, _ = inner_holdout(x, 0.25, seed=3)
    assert (again != train).nnz == 0


def test_learned_weights_prefer_the_informative_component() -> None:
    model = HybridRecommender(components=("itemknn", "popularity"), seed=0).fit(_planted())
    assert model.weights is not None
    assert sum(model.weights) == pytest.approx(1.0)
    assert model.weights[0] > model.weights[1]
    assert model.validation_ndcg is not None and model.validation_ndcg > 0


def test_fixed_weights_skip_learning_and_scores_are_the_weighted_standardised_sum() -> None:
    x = _planted()
    model = HybridRecommender(components=("itemknn", "popularity"), weights=(0.5, 0.5)).fit(x)
    assert model.validation_ndcg is None
    users = np.arange(5)
    expected = 0.5 * _standardise(model.models[0].score(users)) + 0.5 * _standardise(
        model.models[1].score(users)
    )
    np.testing.assert_allclose(model.score(users), expected, rtol=1e-5)


def test_standardise_treats_unscorable_items_as_the_row_minimum() -> None:
    z = _standardise(np.array([[1.0, 2.0, 3.0, -np.inf]], dtype=np.float32))
    assert z[0, 3] == pytest.approx(z[0, 0])
    assert z[0, :3].mean() == pytest.approx(0.0, abs=1e-6)


def test_save_and_load_reproduce_the_lists(tmp_path: Path) -> None:
    x = _planted(1)
    model = HybridRecommender(components=("itemknn", "popularity"), seed=2).fit(x)
    model.save(tmp_path / "hybrid")
    loaded = HybridRecommender.load(tmp_path / "hybrid")
    assert loaded.weights == model.weights
    before = model.recommend(np.arange(20), k=5)
    after = loaded.recommend(np.arange(20), k=5)
    np.testing.assert_array_equal(before.items, after.items)


def test_reasons_come_from_the_dominant_component() -> None:
    model = HybridRecommender(components=("itemknn", "popularity"), weights=(1.0, 0.0)).fit(
        _planted()
    )
    recs = model.recommend([0], k=3)
    assert {r.code for r in recs.reasons(0)} == {"because_you_played"}


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(SegueError, match="at least one"):
        HybridRecommender(components=())
    with pytest.raises(SegueError, match="itself"):
        HybridRecommender(components=("hybrid",))
    with pytest.raises(SegueError, match="weights"):
        HybridRecommender(components=("itemknn",), weights=(0.5, 0.5))


def test_zero_weight_components_are_neither_fitted_nor_saved(tmp_path: Path) -> None:
    model = HybridRecommender(components=("itemknn", "popularity"), weights=(1.0, 0.0))
    model.fit(_planted())
    assert model.models[1]._train is None  # popularity never fitted
    model.save(tmp_path / "h")
    assert not list((tmp_path / "h").glob("component-1-*"))
    loaded = HybridRecommender.load(tmp_path / "h")
    np.testing.assert_array_equal(
        loaded.recommend(np.arange(10), k=4).items, model.recommend(np.arange(10), k=4).items
    )
