"""Item-to-item collaborative filtering: "listeners who played this also played...".

Similarity is cosine between item columns with Bellogín-style shrinkage
(``sim * n_common / (n_common + shrink)``), which damps similarities resting on few common
listeners; only each item's ``neighbours`` strongest neighbours are kept, which both speeds up
scoring and removes the long tail of noisy co-occurrences.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from segue.dataset.side import SideInfo
from segue.models.base import Reason, Recommender, top_k


class ItemKNNRecommender(Recommender):
    name = "itemknn"

    def __init__(self, neighbours: int = 100, shrink: float = 10.0) -> None:
        if neighbours < 1:
            raise ValueError("neighbours must be at least 1")
        if shrink < 0:
            raise ValueError("shrink must be non-negative")
        self.neighbours = neighbours
        self.shrink = shrink
        self.similarity: sp.csr_matrix = sp.csr_matrix((0, 0))

    def params(self) -> dict[str, object]:
        return {"neighbours": self.neighbours, "shrink": self.shrink}

    def fit(self, interactions: sp.csr_matrix, side: SideInfo | None = None) -> Self:
        x = interactions.tocsc().astype(np.float32)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        norms[norms == 0] = 1.0
        normalised = x @ sp.diags(1.0 / norms)
        cosine = (normalised.T @ normalised).tocsr()
        binary = (x > 0).astype(np.float32)
        common = (binary.T @ binary).tocsr()
        cosine.sort_indices()
        common.sort_indices()
        # positive weights never cancel, so both products share one sparsity pattern
        assert np.array_equal(cosine.indices, common.indices)
        shrunk = cosine.copy()
        shrunk.data = cosine.data * common.data / (common.data + self.shrink)
        rows = np.repeat(np.arange(shrunk.shape[0]), np.diff(shrunk.indptr))
        shrunk.data[rows == shrunk.indices] = 0.0
        shrunk.eliminate_zeros()
        self.similarity = _keep_top_per_row(shrunk, self.neighbours)
        self._train = interactions.tocsr().astype(np.float32)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        # score(u, i) = sum_j r(u, j) * sim(j, i)
        return np.asarray((self._fitted()[users] @ self.similarity).todense())

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray((history.tocsr().astype(np.float32) @ self.similarity).todense())

    def explain(self, user: int, item: int) -> Reason:
        row = self._fitted()[user]
        contributions = row.data * np.asarray(self.similarity[row.indices, item].todense()).ravel()
        if len(contributions) == 0 or contributions.max() <= 0:
            return Reason("popular")
        best = int(np.argmax(contributions))
        return Reason("because_you_played", anchor_item=int(row.indices[best]))

    def similar_items(self, items: np.ndarray, k: int = 10) -> np.ndarray:
        dense = np.asarray(self.similarity[np.asarray(items)].todense())
        dense[dense <= 0] = -np.inf
        ranked, scores = top_k(dense, min(k, dense.shape[1]))
        ranked[~np.isfinite(scores)] = -1
        return ranked

    def _state(self) -> dict[str, np.ndarray]:
        s = self.similarity
        return {"data": s.data, "indices": s.indices, "indptr": s.indptr, "shape": s.shape}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.similarity = sp.csr_matrix(
            (state["data"], state["indices"], state["indptr"]), shape=tuple(state["shape"])
        )


def _keep_top_per_row(matrix: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keep the n largest entries of every row (the item's nearest neighbours)."""
    matrix = matrix.tocsr()
    counts = np.diff(matrix.indptr)
    if counts.max(initial=0) <= n:
        return matrix
    keep = np.zeros(len(matrix.data), dtype=bool)
    for row in np.flatnonzero(counts):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        if end - start <= n:
            keep[start:end] = True
        else:
            best = np.argpartition(-matrix.data[start:end], n - 1)[:n]
            keep[start + best] = True
    rows = np.repeat(np.arange(matrix.shape[0]), counts)[keep]
    return sp.csr_matrix((matrix.data[keep], (rows, matrix.indices[keep])), shape=matrix.shape)
