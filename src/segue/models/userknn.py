"""User-to-user collaborative filtering: "listeners like you also play...".

Similarity is cosine between the users' (weighted) rows, shrunk by
``n_common / (n_common + shrink)`` so that two users who share one artist are not called
twins. Each user keeps their ``neighbours`` most similar users, and an item scores
``Σ_v sim(u, v) · r(v, i)`` over them: one sparse product of the user×user neighbourhood
with the training matrix, for a whole batch of users at once.

**Friends.** When ``side.friends`` is given and ``friends_weight`` w > 0, the similarity
becomes ``(1 − w) · shrunk cosine + w · friend_link`` (``friend_link`` is 1 for a friend, 0
otherwise) *before* the neighbours are chosen, so friends enter the neighbourhood unless the
blend keeps them out, and a friend with no artist in common still lends a weight of w. At
w = 0, or without a friend graph, the model is plain user-kNN.

Neighbourhoods are computed in blocks of users, so memory grows with ``block × n_users`` and
not with ``n_users²``.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from segue.dataset.side import SideInfo
from segue.errors import SegueError
from segue.models.base import Reason, Recommender, sparse_from_state, sparse_state

_BLOCK = 1024


class UserKNNRecommender(Recommender):
    """Defaults chosen on Last.fm 2K's validation split with the registry's ``BM25()``
    weighting (benchmarks/tune_lastfm.py); there shrinkage made no measurable difference and a
    small friend weight helped a little."""

    name = "userknn"

    def __init__(
        self, neighbours: int = 100, shrink: float = 0.0, friends_weight: float = 0.05
    ) -> None:
        if not isinstance(neighbours, int | np.integer) or neighbours < 1:
            raise SegueError(f"userknn: neighbours must be an integer >= 1, got {neighbours!r}")
        if not np.isfinite(shrink) or shrink < 0:
            raise SegueError(f"userknn: shrink must be a finite number >= 0, got {shrink!r}")
        if not 0.0 <= friends_weight <= 1.0:
            raise SegueError(f"userknn: friends_weight must lie in [0, 1], got {friends_weight!r}")
        self.neighbours = int(neighbours)
        self.shrink = float(shrink)
        self.friends_weight = float(friends_weight)
        #: user×user: row u holds u's neighbours and their similarities.
        self.similarity = sp.csr_matrix((0, 0), dtype=np.float32)

    def params(self) -> dict[str, Any]:
        return {
            "neighbours": self.neighbours,
            "shrink": self.shrink,
            "friends_weight": self.friends_weight,
        }

    def fit(self, interactions: sp.csr_matrix, side: SideInfo | None = None) -> Self:
        if not sp.issparse(interactions):
            raise SegueError(f"userknn: expected a scipy sparse matrix, got {type(interactions)}")
        train = sp.csr_matrix(interactions, dtype=np.float32, copy=True)
        if not np.isfinite(train.data).all():
            raise SegueError("userknn: interaction values must be finite")
        friends = self._friends(side, train.shape[0])
        self.similarity = self._neighbourhoods(train, train, friends, own_rows=True)
        self._train = train
        return self

    def _friends(self, side: SideInfo | None, n_users: int) -> sp.csr_matrix | None:
        if side is None or side.friends is None or self.friends_weight == 0:
            return None
        if side.friends.shape != (n_users, n_users):
            raise SegueError(
                f"userknn: the friend graph is {side.friends.shape[0]}×{side.friends.shape[1]} "
                f"but the matrix has {n_users} users; build both from the same user map"
            )
        return (sp.csr_matrix(side.friends) != 0).astype(np.float32)

    def _neighbourhoods(
        self,
        query: sp.csr_matrix,
        train: sp.csr_matrix,
        friends: sp.csr_matrix | None,
        own_rows: bool,
    ) -> sp.csr_matrix:
        """(len(query), n_users) CSR: each query row's top neighbours among training users.

        ``own_rows``: query row r *is* training user r, who is not their own neighbour.
        """
        unit_query, binary_query = _unit_and_binary(query)
        unit, binary = _unit_and_binary(train)
        unit_t, binary_t = unit.T.tocsr(), binary.T.tocsr()
        blocks = []
        for start in range(0, query.shape[0], _BLOCK):
            stop = min(start + _BLOCK, query.shape[0])
            similarity = (unit_query[start:stop] @ unit_t).toarray()
            if self.shrink > 0:
                common = (binary_query[start:stop] @ binary_t).toarray()
                similarity *= common / (common + self.shrink)
            if friends is not None:
                similarity *= 1.0 - self.friends_weight
                similarity += self.friends_weight * friends[start:stop].toarray()
            if own_rows:
                similarity[np.arange(stop - start), np.arange(start, stop)] = 0.0
            blocks.append(_top_per_row(similarity, self.neighbours))
        if not blocks:
            return sp.csr_matrix((0, train.shape[0]), dtype=np.float32)
        return sp.vstack(blocks, format="csr").astype(np.float32)

    def score(self, users: np.ndarray) -> np.ndarray:
        train = self._fitted()
        return np.asarray((self.similarity[np.asarray(users)] @ train).toarray())

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        """Scores of listeners known by a history row, from their nearest training users.

        A newcomer has no friend links in the model, so only taste picks the neighbours.
        """
        train = self._fitted()
        if not sp.issparse(history) or history.shape[1] != train.shape[1]:
            raise SegueError(
                f"userknn: a history must be a sparse (n, {train.shape[1]}) matrix, got "
                f"{getattr(history, 'shape', type(history))}"
            )
        rows = sp.csr_matrix(history, dtype=np.float32)
        neighbours = self._neighbourhoods(rows, train, None, own_rows=False)
        return np.asarray((neighbours @ train).toarray())

    def explain(self, user: int, item: int) -> Reason:
        """``listeners_like_you``; ``value`` = how many of the user's neighbours played it."""
        train = self._fitted()
        neighbours = self.similarity[user].indices
        played = int((train[neighbours, item] != 0).sum()) if len(neighbours) else 0
        return Reason("listeners_like_you", value=float(played))

    def _state(self) -> dict[str, np.ndarray]:
        return sparse_state(self.similarity)

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.similarity = sparse_from_state(state)


def _unit_and_binary(matrix: sp.csr_matrix) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Rows scaled to unit length, and the 0/1 pattern of the stored non-zeros."""
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    unit = sp.diags(1.0 / np.where(norms > 0, norms, 1.0)).astype(np.float32) @ matrix
    return unit.tocsr(), (matrix != 0).astype(np.float32).tocsr()


def _top_per_row(dense: np.ndarray, n: int) -> sp.csr_matrix:
    """The n largest positive entries of each row, as CSR (ties by argpartition)."""
    n = min(n, dense.shape[1])
    if n < dense.shape[1]:
        columns = np.argpartition(-dense, n - 1, axis=1)[:, :n]
    else:
        columns = np.broadcast_to(np.arange(dense.shape[1]), dense.shape)
    values = np.take_along_axis(dense, columns, axis=1)
    rows = np.broadcast_to(np.arange(dense.shape[0])[:, None], columns.shape)
    keep = values > 0
    return sp.csr_matrix(
        (values[keep], (rows[keep], columns[keep])), shape=dense.shape, dtype=np.float32
    )
