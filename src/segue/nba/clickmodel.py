"""The click model: logistic regression (binary cross-entropy) on one (user, action, channel,
moment) row, with a calibration step chosen on validation data.

Logistic regression is calibrated by construction when its features describe the click odds;
a Platt step (a one-dimensional logistic regression on the model's logit) repairs what the
regularisation shrinks. Both the strength ``C`` and whether to keep the Platt step are chosen
on the validation rows only, never on the rows the metrics are reported for. Scoring is one
sparse matrix-vector product and an ``expit``, without scikit-learn's per-call overhead, which
is what lets a campaign score millions of candidates.
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

from segue.errors import SegueError
from segue.nba.features import CTRTable, FeatureSpace

#: Regularisation strengths tried on validation data.
C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
_FORMAT = 1


@dataclass
class ClickModel:
    """Coefficients, calibration and the feature layout they belong to."""

    space: FeatureSpace
    ctr: CTRTable
    coef: np.ndarray
    intercept: float
    platt: tuple[float, float] = (1.0, 0.0)
    C: float = 1.0
    threshold: float = 0.5
    history: dict[str, float] = field(default_factory=dict)

    def logit(self, X: sp.csr_matrix) -> np.ndarray:
        raw = X @ self.coef + self.intercept
        a, b = self.platt
        return a * raw + b

    def predict(self, X: sp.csr_matrix) -> np.ndarray:
        """Calibrated click probabilities."""
        return expit(self.logit(X))

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("wb") as fh:
            pickle.dump({"format": _FORMAT, "model": self}, fh)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> ClickModel:
        path = Path(path)
        if not path.is_file():
            raise SegueError(f"no click model at {path}; run `segue nba train` first")
        with path.open("rb") as fh:
            data = pickle.load(fh)  # our own file in the data directory
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise SegueError(f"{path} is not a click model of this segue version; retrain it")
        model = data["model"]
        assert isinstance(model, cls)
        return model


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """scikit-learn's log loss of click probabilities ``p`` (both labels declared, so a part
    without clicks still scores)."""
    from sklearn.metrics import log_loss

    return float(log_loss(y, p, labels=[0, 1]))


def fit_click_model(
    space: FeatureSpace,
    ctr: CTRTable,
    X_train: sp.csr_matrix,
    y_train: np.ndarray,
    X_val: sp.csr_matrix,
    y_val: np.ndarray,
    C_grid: tuple[float, ...] = C_GRID,
) -> ClickModel:
    """Fit on train, pick C and the calibration on validation (two halves: fit, then judge)."""
    from sklearn.linear_model import LogisticRegression

    y_train = np.asarray(y_train, dtype=np.int64)
    y_val = np.asarray(y_val, dtype=np.float64)
    if len(np.unique(y_train)) < 2:
        raise SegueError("the training impressions need both clicks and non-clicks")
    best: tuple[float, float, LogisticRegression] | None = None
    history: dict[str, float] = {}
    for C in C_grid:
        lr = LogisticRegression(C=C, max_iter=500)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lr.fit(X_train, y_train)
        loss = _log_loss(y_val, lr.predict_proba(X_val)[:, 1])
        history[f"val_log_loss_C={C}"] = loss
        if best is None or loss < best[0]:
            best = (loss, C, lr)
    assert best is not None
    _, C, lr = best
    model = ClickModel(space, ctr, lr.coef_.ravel().copy(), float(lr.intercept_[0]), C=C)
    raw = X_val @ model.coef + model.intercept
    half = np.arange(len(y_val)) % 2 == 0
    model.platt = _choose_platt(raw, y_val, half)
    history["platt_a"], history["platt_b"] = model.platt
    model.threshold = best_f1_threshold(y_val, model.predict(X_val))
    model.history = history
    return model


def _choose_platt(raw: np.ndarray, y: np.ndarray, fit_half: np.ndarray) -> tuple[float, float]:
    """Platt scaling if it lowers the log loss on the half it was not fitted on; else none."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y[fit_half])) < 2:
        return (1.0, 0.0)
    platt = LogisticRegression(C=1e6, max_iter=200).fit(raw[fit_half, None], y[fit_half])
    a, b = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    judge = ~fit_half
    if _log_loss(y[judge], expit(a * raw[judge] + b)) < _log_loss(y[judge], expit(raw[judge])):
        return (a, b)
    return (1.0, 0.0)


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability threshold with the highest F1 (validation data only)."""
    order = np.argsort(-p, kind="stable")
    y_sorted = np.asarray(y, dtype=np.float64)[order]
    tp = np.cumsum(y_sorted)
    k = np.arange(1, len(y_sorted) + 1)
    positives = max(y_sorted.sum(), 1.0)
    f1 = 2 * tp / (k + positives)
    best = int(np.argmax(f1))
    return float(p[order][best])
