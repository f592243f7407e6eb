"""Beyond-accuracy, rating and AUC metrics against cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import mannwhitneyu

from segue.eval.beyond import (
    average_recommendation_popularity,
    catalog_vectors,
    exposure_gini,
    intra_list_diversity,
    popularity_percentile,
)
from segue.eval.metrics import auc_scores, mae, rmse

# item 0 = (1, 0), item 1 = (0, 1), item 2 = (1, 1), item 3 unknown (all zero)
VECTORS = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
DIAGONAL = 1 - 1 / math.sqrt(2)  # 1 - cos(45°)


def test_intra_list_diversity_by_hand() -> None:
    ranked = np.array([[0, 1, 2], [2, 0, 3], [0, 3, -1], [1, 1, -1]])
    ild = intra_list_diversity(ranked, VECTORS)
    assert ild[0] == pytest.approx((1.0 + DIAGONAL + DIAGONAL) / 3)
    assert ild[1] == pytest.approx(DIAGONAL)  # the unknown item's pairs are left out
    assert math.isnan(ild[2])  # one known item: no pair to measure
    assert ild[3] == pytest.approx(0.0)  # the same item twice is not diverse


def test_intra_list_diversity_accepts_sparse_and_nan_rows() -> None:
    ranked = np.array([[0, 1, 2]])
    sparse = intra_list_diversity(ranked, sp.csr_matrix(VECTORS))
    with_nan = VECTORS.copy()
    with_nan[2] = [np.nan, 1.0]  # a NaN makes item 2 unknown: only the pair (0, 1) remains
    assert sparse[0] == pytest.approx((1.0 + 2 * DIAGONAL) / 3)
    assert intra_list_diversity(ranked, with_nan)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="item_vectors has 4 rows"):
        intra_list_diversity(np.array([[0, 7]]), VECTORS)


def test_average_recommendation_popularity_by_hand() -> None:
    popularity = np.array([10, 4, 0, 6])
    ranked = np.array([[0, 1], [3, -1], [-1, -1]])  # the empty list does not count
    assert average_recommendation_popularity(ranked, popularity) == pytest.approx((7 + 6) / 2)


def test_popularity_percentile_by_hand() -> None:
    popularity = np.array([10, 4, 0, 6])  # sorted 0, 4, 6, 10 -> (less + equal/2) / 4
    ranked = np.array([[0, 1], [2, -1]])
    item0, item1, item2 = 3.5 / 4, 1.5 / 4, 0.5 / 4
    expected = ((item0 + item1) / 2 + item2) / 2
    assert popularity_percentile(ranked, popularity) == pytest.approx(expected)
    # ties share their middle: items 0 and 1 have 1 less popular item and 2 equal
    assert popularity_percentile(np.array([[0]]), np.array([5, 5, 1])) == pytest.approx(2 / 3)


def test_exposure_gini_by_hand() -> None:
    # exposures 2, 1, 0: sum |xi - xj| over ordered pairs = 8; G = 8 / (2 n^2 mean) = 8/18
    assert exposure_gini(np.array([[0, 1], [0, -1]]), 3) == pytest.approx(4 / 9)
    assert exposure_gini(np.array([[0, 1], [2, 3]]), 4) == pytest.approx(0.0)
    assert exposure_gini(np.array([[2], [2], [2]]), 4) == pytest.approx(3 / 4)
    assert math.isnan(exposure_gini(np.array([[-1]]), 4))


def test_rmse_and_mae_by_hand() -> None:
    predicted, true = np.array([1.0, 2.0, 3.0]), np.array([1.0, 4.0, 0.0])  # errors 0, 2, 3
    assert rmse(predicted, true) == pytest.approx(math.sqrt(13 / 3))
    assert mae(predicted, true) == pytest.approx(5 / 3)
    with pytest.raises(ValueError, match="shape"):
        rmse(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="finite"):
        mae(np.array([np.nan]), np.array([1.0]))
    with pytest.raises(ValueError, match="no values"):
        mae(np.array([]), np.array([]))


def test_auc_by_hand() -> None:
    scores = np.array(
        [
            [0.9, 0.1, 0.5, 0.5, 0.3],
            [0.9, 0.1, 0.5, 0.5, 0.3],
            [0.9, 0.1, 0.5, 0.5, 0.3],
        ]
    )
    relevant = sp.csr_matrix(np.array([[0, 0, 1, 0, 1], [0, 0, 0, 0, 0], [0, 1, 1, 1, 1]]))
    exclude = sp.csr_matrix(np.array([[1, 0, 0, 0, 0]] * 3))
    auc = auc_scores(scores, relevant, exclude)
    # row 0, item 0 masked: positives 0.5 and 0.3 against negatives 0.1 and 0.5:
    # wins 1 + 1, a tie 0.5, a loss 0 -> 2.5 / 4
    assert auc[0] == pytest.approx(0.625)
    assert math.isnan(auc[1])  # nothing relevant
    assert math.isnan(auc[2])  # nothing left to be a negative
    # without the mask, item 0 (0.9) is a negative that beats both positives: 2.5 / 6
    assert auc_scores(scores[:1], relevant[:1])[0] == pytest.approx(2.5 / 6)


def test_auc_against_mann_whitney_on_random_rows() -> None:
    """AUC is the Mann-Whitney U over (positives, negatives); ties and unscorable items
    (-inf, tied at the bottom) included, masked items neither."""
    rng = np.random.default_rng(7)
    n_rows, n_items = 60, 40
    scores = rng.integers(0, 6, (n_rows, n_items)).astype(np.float64)  # many ties
    scores[rng.random((n_rows, n_items)) < 0.15] = -np.inf
    relevant = sp.csr_matrix((rng.random((n_rows, n_items)) < 0.2).astype(np.float64))
    exclude = sp.csr_matrix((rng.random((n_rows, n_items)) < 0.3).astype(np.float64))
    got = auc_scores(scores, relevant, exclude)
    lowest = scores[np.isfinite(scores)].min() - 1  # -inf as a finite value below all
    checked = 0
    for row in range(n_rows):
        keep = exclude[row].toarray()[0] == 0
        positive = (relevant[row].toarray()[0] != 0)[keep]
        values = np.where(np.isinf(scores[row]), lowest, scores[row])[keep]
        if positive.all() or not positive.any():
            assert math.isnan(got[row])
            continue
        u = mannwhitneyu(values[positive], values[~positive]).statistic
        assert got[row] == pytest.approx(u / (positive.sum() * (~positive).sum()))
        checked += 1
    assert checked > n_rows // 2
    # a NaN score leaves the row's AUC undefined; +inf ranks above everything
    one = sp.csr_matrix(np.array([[0.0, 1.0, 0.0]]))
    assert math.isnan(auc_scores(np.array([[np.nan, 1.0, 2.0]]), one)[0])
    assert auc_scores(np.array([[1e300, np.inf, -np.inf]]), one)[0] == 1.0


def test_catalog_vectors_need_labels() -> None:
    assert catalog_vectors(None) is None
