"""Offline top-k ranking metrics, computed for many users at once.

Conventions follow RecBole (so our Last.fm numbers compare with published ones): a user counts
only if they have at least one relevant item; precision@k divides by k; recall@k by the number of
relevant items; NDCG@k uses binary gains and an ideal DCG over min(k, #relevant) items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from segue.ranking import hit_matrix, ndcg_per_user


@dataclass(frozen=True)
class RankingScores:
    """Per-user metric values; averaging is left to the caller (e.g. by activity bucket)."""

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    ndcg: np.ndarray
    hit_rate: np.ndarray
    mrr: np.ndarray
    map: np.ndarray
    users: np.ndarray

    def mean(self) -> dict[str, float]:
        return {
            name: float(getattr(self, name).mean()) if len(self.users) else float("nan")
            for name in ("precision", "recall", "f1", "ndcg", "hit_rate", "mrr", "map")
        }


def ranking_scores(ranked: np.ndarray, relevant: sp.csr_matrix, k: int) -> RankingScores:
    """Metrics at ``k`` for every user with at least one relevant item."""
    if k < 1:
        raise ValueError("k must be at least 1")
    ranked = np.asarray(ranked)[:, :k]
    if ranked.shape[1] < k:
        pad = np.full((ranked.shape[0], k - ranked.shape[1]), -1, dtype=np.int64)
        ranked = np.hstack([ranked, pad])
    n_relevant = np.diff(relevant.tocsr().indptr)
    users = np.flatnonzero(n_relevant > 0)
    hits = hit_matrix(ranked, relevant)[users].astype(np.float64)
    n_rel = n_relevant[users].astype(np.float64)
    n_hits = hits.sum(axis=1)
    precision = n_hits / k
    recall = n_hits / n_rel
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(n_hits > 0, 2 * precision * recall / (precision + recall), 0.0)
    ndcg = ndcg_per_user(hits, n_rel)
    first = np.where(n_hits > 0, hits.argmax(axis=1), -1)
    mrr = np.divide(1.0, first + 1.0, out=np.zeros(len(first)), where=first >= 0)
    precision_at_hits = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    ap = (precision_at_hits * hits).sum(axis=1) / np.minimum(n_rel, k)
    return RankingScores(
        precision=precision,
        recall=recall,
        f1=f1,
        ndcg=ndcg,
        hit_rate=(n_hits > 0).astype(np.float64),
        mrr=mrr,
        map=ap,
        users=users,
    )


def catalog_coverage(ranked: np.ndarray, n_items: int) -> float:
    """Share of the catalog that appears in at least one list."""
    shown = np.unique(ranked[ranked >= 0])
    return len(shown) / n_items if n_items else 0.0


def novelty(ranked: np.ndarray, item_popularity: np.ndarray, n_users: int) -> float:
    """Mean self-information −log2(p(i)) of recommended items, p = share of users with i."""
    items = ranked[ranked >= 0]
    if len(items) == 0:
        return float("nan")
    p = np.clip(item_popularity[items] / max(n_users, 1), 1e-12, 1.0)
    return float(np.mean(-np.log2(p)))


# -- rating-like data and full-ranking AUC -------------------------------------------------
def _paired(predicted: np.ndarray, true: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(predicted, dtype=np.float64).ravel()
    t = np.asarray(true, dtype=np.float64).ravel()
    if np.shape(predicted) != np.shape(true):
        raise ValueError(
            f"{where}: predicted has shape {np.shape(predicted)} but true has {np.shape(true)}"
        )
    if len(p) == 0:
        raise ValueError(f"{where}: no values to compare")
    if not (np.isfinite(p).all() and np.isfinite(t).all()):
        raise ValueError(f"{where}: predicted and true must be finite (found NaN or inf)")
    return p, t


def rmse(predicted: np.ndarray, true: np.ndarray) -> float:
    """Root mean squared error, for rating-like data (explicit stars, predicted play shares)."""
    p, t = _paired(predicted, true, "rmse")
    return float(np.sqrt(np.mean((p - t) ** 2)))


def mae(predicted: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute error; less dominated than RMSE by a few large misses."""
    p, t = _paired(predicted, true, "mae")
    return float(np.mean(np.abs(p - t)))


def auc_scores(
    scores: np.ndarray, relevant: sp.csr_matrix, exclude: sp.csr_matrix | None = None
) -> np.ndarray:
    """Per-row AUC: the chance that a relevant item outscores a non-relevant one (ties ½),
    scikit-learn's ``roc_auc_score`` of each row's candidates.

    Unlike the top-k metrics this looks at the whole ranking. Items masked by ``exclude``
    (train and validation items) are neither positives nor negatives. Rows align with
    ``scores``; NaN where a row has no relevant or no non-relevant candidate, or a NaN score.
    Unscorable items at -inf rank below every other, tied among themselves (+inf above).
    """
    from sklearn.metrics import roc_auc_score

    scores = np.asarray(scores, dtype=np.float64)
    relevant = relevant.tocsr()
    if scores.shape != relevant.shape:
        raise ValueError(f"scores {scores.shape} and relevant {relevant.shape} must align")
    if exclude is not None and exclude.shape != relevant.shape:
        raise ValueError(f"exclude {exclude.shape} and relevant {relevant.shape} must align")
    excluded = None if exclude is None else exclude.tocsr()
    out = np.full(scores.shape[0], np.nan)
    for row in range(scores.shape[0]):
        candidate = np.ones(scores.shape[1], dtype=bool)
        if excluded is not None:
            start, end = excluded.indptr[row], excluded.indptr[row + 1]
            candidate[excluded.indices[start:end][excluded.data[start:end] != 0]] = False
        positive = np.zeros(scores.shape[1], dtype=bool)
        start, end = relevant.indptr[row], relevant.indptr[row + 1]
        positive[relevant.indices[start:end][relevant.data[start:end] != 0]] = True
        positive &= candidate
        n_pos = int(positive.sum())
        n_neg = int(candidate.sum()) - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        row_scores = _finite_order(scores[row, candidate])
        if row_scores is not None:
            out[row] = roc_auc_score(positive[candidate], row_scores)
    return out


def _finite_order(values: np.ndarray) -> np.ndarray | None:
    """``values`` with -inf / +inf replaced by finite values just below / above the finite
    ones, which keeps every comparison (an AUC depends on nothing else); None if any is NaN."""
    if np.isfinite(values).all():
        return values
    if np.isnan(values).any():
        return None
    finite = values[np.isfinite(values)]
    low, high = (finite.min(), finite.max()) if len(finite) else (0.0, 0.0)
    below, above = np.nextafter(low, -np.inf), np.nextafter(high, np.inf)
    return np.where(values == -np.inf, below, np.where(values == np.inf, above, values))
