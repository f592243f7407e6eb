"""Rating prediction: the bias baseline against hand computations and the global mean."""

from __future__ import annotations

import numpy as np
import pytest

from segue.data.log import InteractionLog
from segue.errors import DatasetError
from segue.eval.ratings import BiasBaseline, evaluate_ratings


def _log(users, items, ratings, focus=None) -> InteractionLog:
    n = len(users)
    return InteractionLog(
        user_ids=[f"u{i}" for i in range(max(users) + 1)],
        item_ids=[f"i{i}" for i in range(max(items) + 1)],
        user=users,
        item=items,
        type=np.zeros(n),
        ts_ms=np.arange(n),
        ms_played=np.full(n, -1),
        count=np.ones(n),
        focus=np.zeros(n, dtype=bool) if focus is None else focus,
        rating=ratings,
    )


def test_one_sweep_without_shrinkage_by_hand() -> None:
    users = np.array([0, 0, 1, 1])
    items = np.array([0, 1, 0, 1])
    ratings = np.array([5.0, 3.0, 3.0, 1.0])
    fitted = BiasBaseline(reg_user=0, reg_item=0, sweeps=1).fit(users, items, ratings, 2, 2)
    assert fitted.mu == pytest.approx(3.0)
    # items first: b_i = mean(r - mu) per item = (+1, -1); then users on what remains
    np.testing.assert_allclose(fitted.b_item, [1.0, -1.0])
    np.testing.assert_allclose(fitted.b_user, [1.0, -1.0])
    np.testing.assert_allclose(fitted.predict(users, items), ratings)


def test_baseline_beats_the_global_mean_when_users_differ() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items, n = 200, 100, 8000
    user_bias = rng.normal(0, 1.0, n_users)
    item_bias = rng.normal(0, 0.5, n_items)
    users = rng.integers(0, n_users, n)
    items = rng.integers(0, n_items, n)
    ratings = 3.5 + user_bias[users] + item_bias[items] + rng.normal(0, 0.3, n)
    report = evaluate_ratings(_log(users, items, ratings), seed=1)
    assert report.n_train + report.n_test == n
    assert report.rmse < 0.6 * report.rmse_global_mean
    assert report.mae < report.mae_global_mean
    assert evaluate_ratings(_log(users, items, ratings), seed=1) == report  # deterministic


def test_unrated_and_focus_events_are_left_out() -> None:
    users = np.arange(12) % 3
    items = np.arange(12) % 4
    ratings = np.where(np.arange(12) < 11, 4.0, np.nan)
    focus = np.zeros(12, dtype=bool)
    focus[0] = True
    report = evaluate_ratings(_log(users, items, ratings, focus), test_fraction=0.3, seed=2)
    assert report.n_train + report.n_test == 10
    assert report.rmse == pytest.approx(0.0)  # every kept rating is 4.0


def test_logs_without_ratings_are_refused() -> None:
    with pytest.raises(DatasetError, match="rated events"):
        evaluate_ratings(_log([0, 1], [0, 1], np.array([np.nan, np.nan])))
