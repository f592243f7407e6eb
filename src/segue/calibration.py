"""How well predicted probabilities match outcomes: the binned reliability curve and the
expected calibration error (ECE), the one implementation every layer uses (the click model's
report in :mod:`segue.nba.metrics`, the NLU's temperature calibration in ``segue.nlu``).

Arguments follow scikit-learn: ``(y_true, y_prob)``, outcomes 0/1 (or booleans) first. The
bins are those of :func:`sklearn.calibration.calibration_curve`, which computes the curve:

* ``strategy="uniform"``: ``n_bins`` equal-width bins of [0, 1], closed on the right —
  ``[0, 1/n]``, ``(1/n, 2/n]``, …, ``((n-1)/n, 1]``;
* ``strategy="quantile"``: equal-frequency bins whose edges are the ``n_bins + 1`` quantiles
  of ``y_prob`` (``np.percentile``), closed on the right likewise, so tied predictions always
  share a bin and ties at an edge can make bins unequal or merge them;

empty bins are left out. The ECE is ``Σ_b (n_b / n) · |observed_b − predicted_b|`` over those
bins: the share of rows in the bin times the gap between its outcome rate and its mean
prediction. Pure arithmetic below every layer (scikit-learn is imported when called).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from segue.errors import SegueError

Strategy = Literal["uniform", "quantile"]


@dataclass(frozen=True)
class CalibrationCurve:
    """One entry per non-empty bin, in increasing order of prediction."""

    predicted: np.ndarray  # mean prediction in the bin
    observed: np.ndarray  # outcome rate in the bin
    count: np.ndarray  # rows in the bin


def checked_probabilities(y_true: object, y_prob: object) -> tuple[np.ndarray, np.ndarray]:
    """``(y_true, y_prob)`` as flat float arrays, or a :class:`SegueError` saying what is wrong:
    lengths differ, no rows, outcomes other than 0/1, predictions outside [0, 1] or not finite."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_prob, dtype=np.float64).ravel()
    if len(y) != len(p):
        raise SegueError(f"{len(y)} outcomes but {len(p)} predictions")
    if len(y) == 0:
        raise SegueError("no rows to evaluate")
    if not np.isin(y, (0.0, 1.0)).all():
        raise SegueError("outcomes must be 0 or 1")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise SegueError("predictions must be probabilities in [0, 1]")
    return y, p


def calibration_curve(
    y_true: object, y_prob: object, *, n_bins: int, strategy: Strategy
) -> CalibrationCurve:
    """The reliability curve of :func:`sklearn.calibration.calibration_curve`, with the number
    of rows in each bin (the ECE's weights), counted on the same edges."""
    from sklearn.calibration import calibration_curve as sk_calibration_curve

    if n_bins < 1:
        raise SegueError(f"n_bins must be at least 1, got {n_bins}")
    y, p = checked_probabilities(y_true, y_prob)
    observed, predicted = sk_calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
    if strategy == "quantile":
        edges = np.percentile(p, np.linspace(0.0, 100.0, n_bins + 1))
    else:
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    count = np.bincount(np.searchsorted(edges[1:-1], p), minlength=n_bins)
    count = count[count > 0]
    if len(count) != len(observed):  # scikit-learn changed how it bins: fail loudly
        raise AssertionError("bin counts do not match scikit-learn's calibration curve")
    return CalibrationCurve(predicted=predicted, observed=observed, count=count)


def expected_calibration_error(
    y_true: object, y_prob: object, *, n_bins: int, strategy: Strategy
) -> float:
    """``Σ_b (n_b / n) · |observed_b − predicted_b|`` over the bins of :func:`calibration_curve`
    (see the module docstring for how ``strategy`` bins)."""
    curve = calibration_curve(y_true, y_prob, n_bins=n_bins, strategy=strategy)
    weights = curve.count / curve.count.sum()
    return float(np.sum(weights * np.abs(curve.observed - curve.predicted)))
