"""The ranking arithmetic that both models (internal validation) and evaluation need.

Kept below every layer so that a model can tune itself on a held-out part of its training data
(the hybrid's blend weights) without importing the evaluation layer above it.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp


def hit_matrix(ranked: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """``hits[u, j]`` is true when ``ranked[u, j]`` is relevant for user ``u``.

    ``ranked`` is (n_users, k) of item indices, -1 for padding; ``relevant`` is a user×item CSR
    matrix whose rows align with ``ranked``'s rows (non-zero = relevant).
    """
    ranked = np.asarray(ranked, dtype=np.int64)
    if ranked.ndim != 2 or ranked.shape[0] != relevant.shape[0]:
        raise ValueError(
            f"ranked has shape {ranked.shape}; expected ({relevant.shape[0]}, k) rows aligned "
            "with the relevance matrix"
        )
    rel = relevant.tocsr().copy()
    rel.eliminate_zeros()
    rel.sort_indices()
    n_items = rel.shape[1]
    rows = np.repeat(np.arange(rel.shape[0], dtype=np.int64), np.diff(rel.indptr))
    truth_keys = rows * n_items + rel.indices.astype(np.int64)
    query = np.arange(ranked.shape[0], dtype=np.int64)[:, None] * n_items + ranked
    pos = np.searchsorted(truth_keys, query)
    pos = np.minimum(pos, max(len(truth_keys) - 1, 0))
    found = truth_keys[pos] == query if len(truth_keys) else np.zeros(query.shape, dtype=bool)
    return found & (ranked >= 0)


def ndcg_per_user(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Binary-gain NDCG of each row of ``hits`` (n, k), ideal DCG over min(k, #relevant)."""
    k = hits.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits.astype(np.float64) @ discounts
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(n_relevant, k).astype(int)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ideal > 0, dcg / ideal, 0.0)


def standardise(scores: np.ndarray) -> np.ndarray:
    """Per-row z-scores over finite entries; unscorable items (-inf/NaN) become the row minimum.

    What makes scores of different models addable (the hybrid, the cold-start blend).
    """
    finite = np.isfinite(scores)
    if finite.all():  # the common case, without NaN-aware reductions
        mean = scores.mean(axis=1, keepdims=True)
        std = scores.std(axis=1, keepdims=True)
        std[std == 0] = 1.0
        return ((scores - mean) / std).astype(np.float32, copy=False)
    safe = np.where(finite, scores, np.nan)
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(safe, axis=1, keepdims=True)
        std = np.nanstd(safe, axis=1, keepdims=True)
        low = np.nanmin(safe, axis=1, keepdims=True)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    low = np.where(np.isfinite(low), low, 0.0)
    return ((np.where(finite, scores, low) - mean) / std).astype(np.float32)


#: Below this length a plain partition is as fast as sampling first.
_SAMPLE_FROM = 8192
#: Every ``_SAMPLE_STRIDE``-th entry is looked at to guess a threshold.
_SAMPLE_STRIDE = 32


def kth_largest(values: np.ndarray, k: int) -> float:
    """The ``k``-th largest entry of a 1-D array (``k`` ≥ 1, at most ``len(values)``).

    Exactly ``np.partition(values, n - k)[n - k]``, about ten times faster on a catalog-sized
    array, which is what a request pays for per list: a strided sample proposes a threshold
    that a few hundred entries pass, and only those are partitioned. When too few pass (an
    unlucky sample, or many equal or -inf entries) the whole array is partitioned instead.
    """
    n = len(values)
    if not 1 <= k <= n:
        raise ValueError(f"kth_largest: k must be in 1..{n}, got {k}")
    if n >= _SAMPLE_FROM:
        sample = values[::_SAMPLE_STRIDE]
        j = 2 + (2 * k) // _SAMPLE_STRIDE  # about j·stride entries pass, comfortably above k
        threshold = np.partition(sample, len(sample) - j)[len(sample) - j]
        if np.isfinite(threshold):
            passed = values[values >= threshold]
            if len(passed) >= k:
                return np.partition(passed, len(passed) - k)[len(passed) - k]
    return np.partition(values, n - k)[n - k]


def rank_pairs(
    rows: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    n_rows: int,
    depth: int,
    pad: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    """(n_rows, depth) items of (row, item, value) pairs per row, best value first (ties by
    item), and their values as float32; rows with fewer pairs padded with ``pad`` at -inf.

    Pairs grouped by row (a CSR matrix's order, as every caller has them) with finite values
    are ranked row by row by a compiled top-``depth`` selection: a global three-key sort of a
    block's pairs was a fifth of a staged model's batch scoring on the 1M world. Anything
    else takes that sort; both give the same lists.
    """
    ids = np.full((n_rows, depth), pad, dtype=np.int64)
    top = np.full((n_rows, depth), -np.inf, dtype=np.float32)
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0 or depth == 0:
        return ids, top
    grouped = bool(np.all(rows[1:] >= rows[:-1]))
    if grouped and np.isfinite(values).all():
        bounds = np.flatnonzero(np.diff(rows)) + 1
        starts = np.concatenate(([0], bounds, [len(rows)])).astype(np.int64)
        _rank_grouped(starts, rows, np.asarray(items, dtype=np.int64),
                      np.asarray(values), ids, top)  # fmt: skip
        return ids, top
    order = np.lexsort((items, -values, rows))
    rows, items, values = rows[order], items[order], values[order]
    position = np.arange(len(rows)) - np.searchsorted(rows, rows)
    keep = position < depth
    ids[rows[keep], position[keep]] = items[keep]
    top[rows[keep], position[keep]] = values[keep]
    return ids, top


@numba.njit(cache=True, nogil=True)
def _rank_grouped(
    starts: np.ndarray,
    rows: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    ids: np.ndarray,
    top: np.ndarray,
) -> None:
    """Each group ``starts[g]:starts[g + 1]`` (one row's pairs) into ``ids``/``top``: the
    ``depth`` best by value, ties by item. Only the pairs at or above the group's
    ``depth``-th value are sorted, the ones tied with it cut by item."""
    depth = ids.shape[1]
    for g in range(len(starts) - 1):
        lo, hi = starts[g], starts[g + 1]
        row = rows[lo]
        seg_values = values[lo:hi]
        seg_items = items[lo:hi]
        m = hi - lo
        if m > depth:
            cut = np.partition(seg_values.copy(), m - depth)[m - depth]
            above = np.flatnonzero(seg_values > cut)
            tied = np.flatnonzero(seg_values == cut)
            tied = tied[np.argsort(seg_items[tied], kind="mergesort")][: depth - len(above)]
            chosen = np.concatenate((above, tied))
        else:
            chosen = np.arange(m)
        chosen = chosen[np.argsort(seg_items[chosen], kind="mergesort")]
        chosen = chosen[np.argsort(-seg_values[chosen], kind="mergesort")]
        for j in range(len(chosen)):
            ids[row, j] = seg_items[chosen[j]]
            top[row, j] = seg_values[chosen[j]]
