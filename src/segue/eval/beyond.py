"""Beyond-accuracy metrics of top-k lists: diversity, popularity bias, exposure inequality.

Accuracy alone rewards a model that recommends the same hits to everyone; these say how varied
each list is, how far it leans on what is already popular, and how evenly the catalog gets shown.
All take ``ranked`` as (n_lists, k) item indices with -1 for padding, like the ranking metrics.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from segue.dataset.catalog import ItemCatalog


def _unit_rows(item_vectors: sp.spmatrix | np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """Rows scaled to unit length, and which rows are known (non-zero, no NaN)."""
    if sp.issparse(item_vectors):
        matrix = sp.csr_matrix(item_vectors, dtype=np.float64)
        if matrix.nnz and not np.isfinite(matrix.data).all():
            raise ValueError("item_vectors hold NaN or inf")
    else:
        dense = np.asarray(item_vectors, dtype=np.float64)
        if dense.ndim != 2:
            raise ValueError(f"item_vectors must be 2-D (items x features), got {dense.shape}")
        dense = np.where(np.isnan(dense).any(axis=1, keepdims=True), 0.0, dense)
        if not np.isfinite(dense).all():
            raise ValueError("item_vectors hold inf")
        matrix = sp.csr_matrix(dense)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    known = norms > 0
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=known)
    return (sp.diags(scale) @ matrix).tocsr(), known


def intra_list_diversity(ranked: np.ndarray, item_vectors: sp.spmatrix | np.ndarray) -> np.ndarray:
    """Per list, the mean over item pairs of ``1 - cosine(v_i, v_j)`` (Ziegler et al. 2005).

    ``item_vectors`` is (n_items, n_features): genre/tag indicators, audio features, or the
    training matrix's columns (items as vectors of their listeners). An item whose vector is
    all zero or has a NaN is unknown and its pairs are left out, rather than counted as
    maximally different; a list with fewer than two known items gets NaN.
    """
    ranked = np.asarray(ranked, dtype=np.int64)
    if ranked.ndim != 2:
        raise ValueError(f"ranked must be 2-D (lists x k), got shape {ranked.shape}")
    unit, known = _unit_rows(item_vectors)
    if ranked.size and ranked.max() >= unit.shape[0]:
        raise ValueError(
            f"ranked holds item {int(ranked.max())} but item_vectors has {unit.shape[0]} rows"
        )
    valid = (ranked >= 0) & known[np.maximum(ranked, 0)]
    total = np.zeros(ranked.shape[0])
    pairs = np.zeros(ranked.shape[0])
    for a in range(ranked.shape[1]):
        for b in range(a + 1, ranked.shape[1]):
            both = np.flatnonzero(valid[:, a] & valid[:, b])
            if len(both) == 0:
                continue
            left = unit[ranked[both, a]]
            right = unit[ranked[both, b]]
            cosine = np.asarray(left.multiply(right).sum(axis=1)).ravel()
            total[both] += 1.0 - cosine
            pairs[both] += 1
    return np.divide(total, pairs, out=np.full(len(total), np.nan), where=pairs > 0)


def catalog_vectors(catalog: ItemCatalog | None) -> sp.csr_matrix | None:
    """Genre and tag indicators side by side, or None when the catalog labels no item."""
    if catalog is None:
        return None
    vectors = sp.hstack([catalog.genres, catalog.tags], format="csr")
    return vectors if vectors.nnz else None


def average_recommendation_popularity(ranked: np.ndarray, item_popularity: np.ndarray) -> float:
    """ARP (Abdollahpouri et al. 2019): per list the mean popularity of its items, averaged
    over lists; popularity is what the caller counts (training listeners per item)."""
    ranked = np.asarray(ranked, dtype=np.int64)
    popularity = np.asarray(item_popularity, dtype=np.float64)
    return _mean_over_lists(ranked, popularity)


def popularity_percentile(ranked: np.ndarray, item_popularity: np.ndarray) -> float:
    """Mean popularity percentile of recommended items, per list then over lists.

    An item's percentile is the share of the catalog less popular than it, counting ties as
    half (``(n_less + n_equal / 2) / n_items``): 0.5 is what random picks from the catalog
    average, near 1 is a list of the biggest hits. Unlike ARP it compares across datasets.
    """
    ranked = np.asarray(ranked, dtype=np.int64)
    popularity = np.asarray(item_popularity, dtype=np.float64)
    ordered = np.sort(popularity)
    less = np.searchsorted(ordered, popularity, side="left")
    equal = np.searchsorted(ordered, popularity, side="right") - less
    percentile = (less + equal / 2) / max(len(popularity), 1)
    return _mean_over_lists(ranked, percentile)


def exposure_gini(ranked: np.ndarray, n_items: int) -> float:
    """Gini coefficient of how often each catalog item is shown across all lists.

    0 when every item is shown equally often; (n-1)/n when one item takes every slot. Items
    never shown count as zero exposure, so a narrow catalog scores high. NaN for no lists.
    """
    ranked = np.asarray(ranked, dtype=np.int64)
    if n_items < 1:
        raise ValueError("n_items must be at least 1")
    shown = ranked[ranked >= 0]
    if len(shown) == 0:
        return float("nan")
    exposure = np.sort(np.bincount(shown, minlength=n_items)).astype(np.float64)
    index = np.arange(1, n_items + 1)
    return float(((2 * index - n_items - 1) * exposure).sum() / (n_items * exposure.sum()))


def _mean_over_lists(ranked: np.ndarray, per_item: np.ndarray) -> float:
    valid = ranked >= 0
    if ranked.size and ranked.max() >= len(per_item):
        raise ValueError(f"ranked holds item {int(ranked.max())} beyond {len(per_item)} items")
    counts = valid.sum(axis=1)
    values = np.where(valid, per_item[np.maximum(ranked, 0)], 0.0).sum(axis=1)
    lists = counts > 0
    if not lists.any():
        return float("nan")
    return float(np.mean(values[lists] / counts[lists]))
