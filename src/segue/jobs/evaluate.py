"""Offline evaluation: the same split for every model, top-k metrics in one table."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from segue.dataset import Interactions, SideInfo, random_split
from segue.eval.metrics import catalog_coverage, novelty, ranking_scores
from segue.jobs.progress import Progress, no_progress
from segue.models import model_spec


@dataclass(frozen=True)
class ModelResult:
    """One model's test-split figures (means over users with test items)."""

    model: str
    metrics: dict[str, float]
    fit_seconds: float
    recommend_seconds: float


def evaluate_models(
    data: Interactions,
    names: list[str],
    *,
    k: int = 10,
    seed: int = 0,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    progress: Progress = no_progress,
    side: SideInfo | None = None,
) -> list[ModelResult]:
    """Random per-user split; fit on train, rank all items with train and valid masked."""
    split = random_split(data, ratios, seed=seed)
    relevant = split.test.binary_matrix()
    masked = (split.train.binary_matrix() + split.valid.binary_matrix()).tocsr()
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    popularity = split.train.item_counts()
    results = []
    for done, name in enumerate(names):
        progress("evaluating", done, len(names))
        spec = model_spec(name)
        started = time.perf_counter()
        model = spec.factory().fit(split.train.matrix(spec.weighting), side)
        fitted = time.perf_counter()
        recs = model.recommend(users, k, exclude=masked)
        ranked_all = np.full((data.n_users, k), -1, dtype=np.int64)
        ranked_all[users] = recs.items
        recommended = time.perf_counter()
        metrics = ranking_scores(ranked_all, relevant, k).mean()
        metrics["coverage"] = catalog_coverage(recs.items, data.n_items)
        metrics["novelty"] = novelty(recs.items, popularity, data.n_users)
        results.append(ModelResult(name, metrics, fitted - started, recommended - fitted))
    progress("evaluating", len(names), len(names))
    return results
