"""The one reliability curve and ECE (segue.calibration): scikit-learn's bins, (y_true, y_prob)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve as sk_calibration_curve

from segue.calibration import calibration_curve, expected_calibration_error
from segue.errors import SegueError


def _draws(seed: int, n: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.beta(0.7, 3.0, n)
    if ties:  # a model with few distinct outputs: many predictions tie, some at 0 and 1
        p = np.round(p * 8) / 8
    y = (rng.random(n) < p).astype(np.float64)
    return y, p


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("ties", [False, True])
def test_the_curve_is_scikit_learns_with_counts_on_the_same_bins(strategy, ties) -> None:
    for seed in range(5):
        y, p = _draws(seed, 3_000, ties)
        for n_bins in (1, 7, 20):
            curve = calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
            observed, predicted = sk_calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
            assert curve.observed == pytest.approx(observed)
            assert curve.predicted == pytest.approx(predicted)
            # counts that weight each bin back to the totals are the bins' own counts
            assert curve.count.sum() == len(y) and (curve.count > 0).all()
            assert np.sum(curve.count * curve.predicted) == pytest.approx(p.sum())
            assert np.sum(curve.count * curve.observed) == pytest.approx(y.sum())


def _ece_by_hand(y: np.ndarray, p: np.ndarray, edges: np.ndarray) -> float:
    """Bins closed on the right: each prediction goes to the first bin whose upper edge it
    does not exceed; one loop per prediction, one per bin."""
    last = len(edges) - 2
    which = np.array([next((b for b in range(last) if x <= edges[b + 1]), last) for x in p])
    total = 0.0
    for b in np.unique(which):
        inside = which == b
        total += inside.mean() * abs(y[inside].mean() - p[inside].mean())
    return total


@pytest.mark.parametrize("n_bins", [1, 5, 10, 20])
def test_ece_against_a_loop_over_bins(n_bins: int) -> None:
    for seed, ties in zip(range(6), [False, True] * 3, strict=True):
        y, p = _draws(seed, 2_000, ties=ties)
        uniform = _ece_by_hand(y, p, np.linspace(0.0, 1.0, n_bins + 1))
        quantile = _ece_by_hand(y, p, np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1)))
        got_uniform = expected_calibration_error(y, p, n_bins=n_bins, strategy="uniform")
        got_quantile = expected_calibration_error(y, p, n_bins=n_bins, strategy="quantile")
        assert got_uniform == pytest.approx(uniform)
        assert got_quantile == pytest.approx(quantile)


def test_bins_by_hand() -> None:
    # uniform bins are closed on the right: 0.5 belongs to [0, 0.5], 0.75 to (0.5, 1]
    y, p = np.array([1, 0]), np.array([0.5, 0.75])
    assert expected_calibration_error(y, p, n_bins=2, strategy="uniform") == pytest.approx(
        0.5 * 0.5 + 0.5 * 0.75
    )
    # quantile edges of six 0.1s and two 0.9s are 0.1, 0.1, 0.1, 0.3, 0.9: ties share a bin
    p = np.array([0.1] * 6 + [0.9] * 2)
    y = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    curve = calibration_curve(y, p, n_bins=4, strategy="quantile")
    assert list(curve.count) == [6, 2]
    assert curve.observed == pytest.approx([0.5, 0.5])
    ece = expected_calibration_error(y, p, n_bins=4, strategy="quantile")
    assert ece == pytest.approx(6 / 8 * 0.4 + 2 / 8 * 0.4)
    # a perfectly calibrated bin has no error; one bin is the overall gap
    assert expected_calibration_error([0, 1], [0.5, 0.5], n_bins=3, strategy="uniform") == 0.0
    assert expected_calibration_error(y, p, n_bins=1, strategy="uniform") == pytest.approx(
        abs(y.mean() - p.mean())
    )


def test_outcomes_come_first_and_bad_input_is_refused() -> None:
    y, p = np.array([1, 0, 1, 1]), np.array([0.9, 0.2, 0.6, 0.7])
    assert expected_calibration_error(y, p, n_bins=5, strategy="uniform") > 0
    with pytest.raises(SegueError, match="outcomes must be 0 or 1"):
        expected_calibration_error(p, y, n_bins=5, strategy="uniform")  # swapped
    with pytest.raises(SegueError, match="probabilities"):
        expected_calibration_error(y, p + 0.5, n_bins=5, strategy="uniform")
    with pytest.raises(SegueError, match="4 outcomes but 3 predictions"):
        calibration_curve(y, p[:3], n_bins=5, strategy="quantile")
    with pytest.raises(SegueError, match="no rows"):
        calibration_curve([], [], n_bins=5, strategy="quantile")
    with pytest.raises(SegueError, match="n_bins"):
        calibration_curve(y, p, n_bins=0, strategy="quantile")
