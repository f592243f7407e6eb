"""Item-to-item collaborative filtering: "listeners who played this also played...".

Similarity is cosine between item columns with Bellogín-style shrinkage
(``sim * n_common / (n_common + shrink)``), which damps similarities resting on few common
listeners; only each item's ``neighbours`` strongest neighbours are kept, which both speeds up
scoring and removes the long tail of noisy co-occurrences.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Self

import numpy as np
import scipy.sparse as sp

from segue.dataset.side import SideInfo
from segue.models.base import (
    Reason,
    Recommender,
    sparse_from_state,
    sparse_state,
    take_rows,
    top_k,
)

#: Upper bound on the stored entries of one block of similarity rows before the top-N cut
#: (cosine and co-counts together take ~24 bytes an entry while a block is worked on).
_BLOCK_ENTRIES = 20_000_000
_THREADS = 2


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
        self._nonnegative: bool | None = None

    def params(self) -> dict[str, object]:
        return {"neighbours": self.neighbours, "shrink": self.shrink}

    def fit(self, interactions: sp.csr_matrix, side: SideInfo | None = None) -> Self:
        x = interactions.tocsc().astype(np.float32)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        norms[norms == 0] = 1.0
        normalised = x @ sp.diags(1.0 / norms)
        # items x users on the left, users x items on the right: row i of their product is
        # item i's similarity row, so rows can be computed in blocks and cut to the top N at
        # once; XᵀX is never whole in memory (at 1M users it would not fit)
        left = normalised.T.tocsr()
        right = normalised.tocsr()
        binary = (x > 0).astype(np.float32)
        left_binary = binary.T.tocsr()
        right_binary = binary.tocsr()
        blocks = _row_blocks(left_binary, right_binary, _BLOCK_ENTRIES)

        def similarity_rows(bounds: tuple[int, int]) -> sp.csr_matrix:
            start, end = bounds
            return self._block_similarity(
                start,
                (left[start:end] @ right).tocsr(),
                (left_binary[start:end] @ right_binary).tocsr(),
            )

        # scipy's sparse products release the GIL: two blocks at a time use both cores, and
        # the blocks come back in order, so the result does not depend on the threads
        with ThreadPoolExecutor(max_workers=_THREADS) as pool:
            parts = list(pool.map(similarity_rows, blocks))
        n = x.shape[1]
        self.similarity = (
            sp.vstack(parts, format="csr") if parts else sp.csr_matrix((n, n), dtype=np.float32)
        )
        self._train = interactions.tocsr().astype(np.float32)
        self._nonnegative = None
        return self

    def _block_similarity(
        self, start: int, cosine: sp.csr_matrix, common: sp.csr_matrix
    ) -> sp.csr_matrix:
        """Shrunk cosine rows ``start..`` of one block, without self-similarity, top N kept."""
        cosine.sort_indices()
        common.sort_indices()
        # positive weights never cancel, so both products share one sparsity pattern
        assert np.array_equal(cosine.indices, common.indices)
        shrunk = cosine.copy()
        shrunk.data = cosine.data * common.data / (common.data + self.shrink)
        rows = start + np.repeat(np.arange(shrunk.shape[0]), np.diff(shrunk.indptr))
        shrunk.data[rows == shrunk.indices] = 0.0
        shrunk.eliminate_zeros()
        return _keep_top_per_row(shrunk, self.neighbours)

    def _scores_nonnegative(self) -> bool:
        """Whether no score can be < 0: then an unstored sparse score (0) is never above one."""
        if self._nonnegative is None:
            train = self._fitted()
            sim = self.similarity
            self._nonnegative = bool(
                (sim.nnz == 0 or sim.data.min() >= 0) and (train.nnz == 0 or train.data.min() >= 0)
            )
        return self._nonnegative

    def score(self, users: np.ndarray) -> np.ndarray:
        # score(u, i) = sum_j r(u, j) * sim(j, i)
        return np.asarray((take_rows(self._fitted(), users) @ self.similarity).todense())

    def score_sparse(self, users: np.ndarray) -> sp.csr_matrix | None:
        """Sparse scores: a user's candidates are the neighbours of their items, few of all."""
        if not self._scores_nonnegative():
            return None
        return (take_rows(self._fitted(), users) @ self.similarity).tocsr()

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray((history.tocsr().astype(np.float32) @ self.similarity).todense())

    def score_history_sparse(self, history: sp.csr_matrix) -> sp.csr_matrix | None:
        """:meth:`score_history` held sparsely, as :meth:`score_sparse` holds :meth:`score`."""
        history = history.tocsr().astype(np.float32)
        if not self._scores_nonnegative() or (history.nnz and history.data.min() < 0):
            return None
        return (history @ self.similarity).tocsr()

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
        return sparse_state(self.similarity)

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.similarity = sparse_from_state(state)
        self._nonnegative = None


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


def _row_blocks(
    left_binary: sp.csr_matrix, right_binary: sp.csr_matrix, budget: int
) -> list[tuple[int, int]]:
    """Consecutive item rows whose products stay under ``budget`` stored entries each.

    Item i's row has at most min(n_items, Σ over its listeners of their item counts) entries.
    """
    n_items = left_binary.shape[0]
    per_user = np.diff(right_binary.indptr).astype(np.float64)
    bound = np.minimum(left_binary @ per_user, right_binary.shape[1])
    blocks = []
    start = 0
    total = 0.0
    for i in range(n_items):
        if total + bound[i] > budget and i > start:
            blocks.append((start, i))
            start, total = i, 0.0
        total += bound[i]
    if start < n_items:
        blocks.append((start, n_items))
    return blocks
