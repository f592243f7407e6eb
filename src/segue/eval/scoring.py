"""Fitting one model on a holdout, ranking its users, and turning the lists into numbers.

Shared by the runner (test part) and the tuner (validation part), so that a tuned score and a
reported score are computed by the same code.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from segue.dataset import SideInfo, Weighting
from segue.errors import SegueError
from segue.eval.beyond import (
    average_recommendation_popularity,
    exposure_gini,
    intra_list_diversity,
    popularity_percentile,
)
from segue.eval.metrics import auc_scores, catalog_coverage, novelty, ranking_scores
from segue.eval.protocols import Holdout
from segue.models import Recommender
from segue.models.base import fit_on

#: Builds an unfitted model; called with the (tuned) parameters as keyword arguments.
Factory = Callable[..., Recommender]

#: Training pairs per user that bound the activity buckets: 1-5, 6-20, 21-50, >50.
DEFAULT_BUCKETS: tuple[int, ...] = (5, 20, 50)
BUCKET_METRICS: tuple[str, ...] = ("precision", "recall", "ndcg", "hit_rate")


@dataclass(frozen=True, eq=False)
class Ranked:
    """A fitted model's top lists for a holdout's users (rows align with ``holdout.users``)."""

    model: Recommender
    items: np.ndarray
    fit_seconds: float
    recommend_seconds: float


def build(factory: Factory, params: Mapping[str, Any]) -> Recommender:
    """An unfitted model; a parameter the factory rejects is the caller's (grid's) mistake."""
    try:
        return factory(**params)
    except (TypeError, ValueError) as exc:
        raise SegueError(
            f"the model factory {getattr(factory, '__name__', factory)!r} rejected parameters "
            f"{dict(params)}: {exc}"
        ) from exc


def fit_and_rank(
    factory: Factory,
    params: Mapping[str, Any],
    weighting: Weighting,
    holdout: Holdout,
    k: int,
    side: SideInfo | None = None,
) -> Ranked:
    """Fit on the holdout's train matrix under ``weighting``; top ``k`` over all items."""
    model = build(factory, params)
    started = time.perf_counter()
    fit_on(model, holdout.train, weighting, side)
    fitted = time.perf_counter()
    recs = model.recommend(holdout.users, k, exclude=holdout.exclude)
    done = time.perf_counter()
    items = np.full((len(holdout.users), k), -1, dtype=np.int64)
    items[:, : recs.items.shape[1]] = recs.items
    return Ranked(model, items, fitted - started, done - fitted)


def bucket_labels(edges: Sequence[int]) -> list[str]:
    """``(5, 20, 50)`` → ``["0", "1-5", "6-20", "21-50", ">50"]``."""
    edges = list(edges)
    if not edges or edges[0] < 1 or any(b <= a for a, b in itertools.pairwise(edges)):
        raise SegueError(f"bucket edges must be increasing integers >= 1, got {edges}")
    labels = ["0"]
    low = 1
    for edge in edges:
        labels.append(f"{low}-{edge}" if edge > low else str(edge))
        low = edge + 1
    labels.append(f">{edges[-1]}")
    return labels


def bucket_index(train_counts: np.ndarray, edges: Sequence[int]) -> np.ndarray:
    """Index into :func:`bucket_labels` for each count: 0 for no pairs, then by edge."""
    counts = np.asarray(train_counts)
    return np.where(counts == 0, 0, 1 + np.searchsorted(np.asarray(edges), counts, side="left"))


def list_metrics(
    ranked: np.ndarray,
    holdout: Holdout,
    k: int,
    ks: Sequence[int],
    *,
    popularity: np.ndarray,
    n_users: int,
    item_vectors: sp.csr_matrix | None = None,
    buckets: Sequence[int] = DEFAULT_BUCKETS,
) -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, dict[int, float]]]:
    """Means at ``k``, per-bucket means at ``k``, and NDCG/recall at each of ``ks``.

    ``ranked`` holds at least ``max(k, *ks)`` columns; ``popularity`` is training listeners per
    item (novelty, ARP, percentile); ``n_users`` the users novelty's shares are taken of.
    """
    relevant = holdout.relevant[holdout.users]
    top = ranked[:, :k]
    scores = ranking_scores(top, relevant, k)
    metrics = scores.mean()
    metrics["coverage"] = catalog_coverage(top, holdout.relevant.shape[1])
    metrics["novelty"] = novelty(top, popularity, n_users)
    metrics["arp"] = average_recommendation_popularity(top, popularity)
    metrics["pop_percentile"] = popularity_percentile(top, popularity)
    metrics["gini"] = exposure_gini(top, holdout.relevant.shape[1])
    if item_vectors is not None:
        diversity = intra_list_diversity(top, item_vectors)
        known = ~np.isnan(diversity)
        metrics["diversity"] = float(diversity[known].mean()) if known.any() else float("nan")
    metrics["users"] = float(len(scores.users))

    labels = bucket_labels(buckets)
    which = bucket_index(holdout.train.user_counts()[holdout.users[scores.users]], buckets)
    by_bucket: dict[str, dict[str, float]] = {}
    for index, label in enumerate(labels):
        members = which == index
        row = {"users": float(members.sum())}
        for name in BUCKET_METRICS:
            values = getattr(scores, name)[members]
            row[name] = float(values.mean()) if len(values) else float("nan")
        by_bucket[label] = row

    curves: dict[str, dict[int, float]] = {"ndcg": {}, "recall": {}}
    for cut in ks:
        at = ranking_scores(ranked[:, :cut], relevant, cut).mean()
        curves["ndcg"][cut] = at["ndcg"]
        curves["recall"][cut] = at["recall"]
    return metrics, by_bucket, curves


def holdout_auc(model: Recommender, holdout: Holdout, batch_size: int = 256) -> float:
    """Mean per-user AUC over the whole ranking (see :func:`auc_scores`)."""
    values = []
    for start in range(0, len(holdout.users), batch_size):
        block = holdout.users[start : start + batch_size]
        dense = model.score(block)
        values.append(auc_scores(dense, holdout.relevant[block], holdout.exclude[block]))
    merged = np.concatenate(values) if values else np.zeros(0)
    known = ~np.isnan(merged)
    return float(merged[known].mean()) if known.any() else float("nan")
