"""Rating prediction, for data that carries explicit ratings (``Event.rating``).

segue's recommenders rank; none predicts a star rating. When a store holds rated events
(imported from a ratings file), the useful question is still "how well can ratings be
predicted", so this module answers it with the classic regularised baseline predictor
(Koren 2008: ``r̂ = μ + b_u + b_i``, biases shrunk towards zero) against the global mean,
on a seeded random split of the rated events, and reports RMSE and MAE for both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segue.data.log import InteractionLog
from segue.errors import DatasetError
from segue.eval.metrics import mae, rmse


@dataclass(frozen=True)
class BiasBaseline:
    """``μ + b_u + b_i`` fitted by alternating shrunk means (a few sweeps converge)."""

    reg_user: float = 10.0
    reg_item: float = 10.0
    sweeps: int = 5

    def fit(
        self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int
    ) -> FittedBaseline:
        mu = float(ratings.mean())
        b_user = np.zeros(n_users)
        b_item = np.zeros(n_items)
        user_n = np.bincount(users, minlength=n_users)
        item_n = np.bincount(items, minlength=n_items)
        for _ in range(self.sweeps):
            residual = ratings - mu - b_user[users]
            b_item = np.bincount(items, residual, n_items) / (item_n + self.reg_item)
            residual = ratings - mu - b_item[items]
            b_user = np.bincount(users, residual, n_users) / (user_n + self.reg_user)
        return FittedBaseline(mu, b_user, b_item)


@dataclass(frozen=True)
class FittedBaseline:
    mu: float
    b_user: np.ndarray
    b_item: np.ndarray

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.mu + self.b_user[users] + self.b_item[items]


@dataclass(frozen=True)
class RatingReport:
    n_train: int
    n_test: int
    rmse: float
    mae: float
    rmse_global_mean: float
    mae_global_mean: float


def evaluate_ratings(
    log: InteractionLog,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    model: BiasBaseline | None = None,
) -> RatingReport:
    """Hold out a seeded share of rated events and score the baseline and the global mean.

    Focus-Mode events are left out, as everywhere personalisation is concerned.
    """
    rated = np.isfinite(log.rating) & ~log.focus
    if rated.sum() < 10:
        raise DatasetError(
            f"rating evaluation needs rated events; the log has {int(rated.sum())} (at least 10)"
        )
    if not 0 < test_fraction < 1:
        raise DatasetError("test_fraction must lie strictly between 0 and 1")
    users, items, ratings = log.user[rated], log.item[rated], log.rating[rated]
    rng = np.random.default_rng(seed)
    test = rng.random(len(ratings)) < test_fraction
    if test.all() or not test.any():
        raise DatasetError("the rating split left one side empty; use more rated events")
    fitted = (model or BiasBaseline()).fit(
        users[~test], items[~test], ratings[~test], len(log.user_ids), len(log.item_ids)
    )
    predicted = fitted.predict(users[test], items[test])
    mean = np.full(int(test.sum()), fitted.mu)
    return RatingReport(
        n_train=int((~test).sum()),
        n_test=int(test.sum()),
        rmse=rmse(predicted, ratings[test]),
        mae=mae(predicted, ratings[test]),
        rmse_global_mean=rmse(mean, ratings[test]),
        mae_global_mean=mae(mean, ratings[test]),
    )
