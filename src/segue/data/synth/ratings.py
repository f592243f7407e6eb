"""Explicit ratings drawn from a known low-rank model: the ground truth rating models need.

``r = μ + b_u + b_i + x_uᵀv_i + ε`` with ``ε ~ N(0, noise²)``: the best any predictor can do
is an RMSE of ``noise`` (the noise floor), a bias-only model cannot see the ``x_uᵀv_i`` part,
and because users rate items they like (each user's items are drawn by a softmax of their
taste, ``selection · x_uᵀv_i``) *which* items a user rated tells their taste too — the signal
SVD++ adds. Activity is heavy-tailed (Pareto), as in real rating logs, so many users have
few ratings and their taste must be read from that choice. With ``stars`` the values are
rounded to whole stars within 1…5, as MovieLens ships them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class LowRankRatings:
    """The generated triples and the truth behind them."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    n_users: int
    n_items: int
    noise: float
    timestamps: np.ndarray
    truth: np.ndarray  # the noiseless value of each pair: predicting it scores the noise floor


def low_rank_ratings(
    n_users: int = 1000,
    n_items: int = 1700,
    n_ratings: int = 100_000,
    *,
    rank: int = 5,
    noise: float = 0.5,
    selection: float = 1.5,
    stars: bool = False,
    seed: int = 0,
) -> LowRankRatings:
    """Ratings from the model above; each (user, item) pair at most once."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (n_users, rank))
    v = rng.normal(0.0, 1.0, (n_items, rank)) / np.sqrt(rank)
    b_user = rng.normal(0.0, 0.4, n_users)
    b_item = rng.normal(0.0, 0.4, n_items)
    activity = rng.pareto(1.2, n_users) + 1.0
    cap = max(1, n_items // 2)
    share = activity / activity.sum()
    per_user = np.zeros(n_users, dtype=np.int64)
    for _ in range(20):  # what capped users cannot take goes to the others, by their share
        open_ = per_user < cap
        missing = n_ratings - int(per_user.sum())
        if missing <= 0 or not open_.any():
            break
        extra = np.ceil(share * open_ / share[open_].sum() * missing).astype(np.int64)
        per_user = np.minimum(per_user + extra, cap)
    per_user = np.maximum(per_user, 1)
    users, items = [], []
    for u in range(n_users):
        logits = selection * (v @ x[u])
        # Gumbel top-k: a draw without replacement, proportional to exp(logits)
        keys = logits + rng.gumbel(size=n_items)
        chosen = np.argpartition(-keys, per_user[u] - 1)[: per_user[u]]
        users.append(np.full(len(chosen), u, dtype=np.int64))
        items.append(chosen.astype(np.int64))
    user = np.concatenate(users)
    item = np.concatenate(items)
    truth = 3.5 + b_user[user] + b_item[item] + np.einsum("nk,nk->n", x[user], v[item])
    rating = truth + rng.normal(0.0, noise, len(user))
    if stars:
        rating = np.clip(np.round(rating), 1, 5)
    ts = 880_000_000 + rng.integers(0, 86_400 * 200, len(user))
    return LowRankRatings(user, item, rating, n_users, n_items, noise, ts, truth)


def write_folds(data: LowRankRatings, folder: Path, folds: int = 5, seed: int = 0) -> list[Path]:
    """``u1.base``/``u1.test`` … as MovieLens ships them: tab-separated user, item, rating, ts.

    Ids are 1-based integers as there; every rating is in exactly one test file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    which = np.random.default_rng(seed).permutation(len(data.ratings)) % folds
    fmt = "%d" if np.all(data.ratings == np.round(data.ratings)) else "%.3f"
    written = []
    for f in range(folds):
        for suffix, mask in (("base", which != f), ("test", which == f)):
            path = folder / f"u{f + 1}.{suffix}"
            rows = np.column_stack(
                [data.users[mask] + 1, data.items[mask] + 1, data.ratings[mask],
                 data.timestamps[mask]]
            )  # fmt: skip
            np.savetxt(path, rows, fmt=["%d", "%d", fmt, "%d"], delimiter="\t")
            written.append(path)
    return written
