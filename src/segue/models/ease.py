"""EASE (Steck 2019): a shallow item-to-item autoencoder with a closed-form solution.

With ``P = (XᵀX + λI)⁻¹`` the weights are ``B = I − P · diag(1/diag(P))``, i.e.
``B[i, j] = −P[i, j] / P[j, j]`` off the diagonal and 0 on it, and ``score = X B``: every item
predicted from the user's other items. ``λ`` is the only knob.

The Gram matrix is dense, so its size is the catch: Last.fm 2K has 17,632 artists, most of
them played by one listener. An item with fewer than ``min_item_count`` training listeners
cannot be predicted from co-listening anyway, so the Gram matrix covers only the items with at
least that many (6,953 of Last.fm's at the default 2: a ~190 MB float32 weight matrix, fitted
in 1-2 s on two cores); the others neither predict nor are predicted. **They score −inf**:
"this model cannot rank them", which ``recommend`` turns into padding (-1) rather than an
arbitrary order among zeros, and which a blend must treat as "no opinion" (the other models
still rank them).

The inverse is computed in float64 from a Cholesky factorisation (``XᵀX + λI`` is symmetric
positive definite for λ > 0), of the users×users matrix instead when there are fewer users
than items (see :func:`_inverse_gram`); the weights are stored as float32.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from segue.dataset.side import SideInfo
from segue.errors import SegueError
from segue.models.base import Reason, Recommender, take_rows, top_k


class EASERecommender(Recommender):
    """EASE over the items with at least ``min_item_count`` training listeners.

    The best ``regularization`` grows with the scale of the values: the default suits the
    registry's ``BM25(k1=1.2, b=0.75)`` weighting on Last.fm 2K (chosen on its validation
    split by benchmarks/tune_lastfm.py); on 0/1 data a few hundred is the usual range.
    """

    name = "ease"

    def __init__(self, regularization: float = 20_000.0, min_item_count: int = 2) -> None:
        if not np.isfinite(regularization) or regularization <= 0:
            raise SegueError(
                f"ease: regularization must be a finite number > 0, got {regularization!r}"
            )
        if not isinstance(min_item_count, int | np.integer) or min_item_count < 1:
            raise SegueError(
                f"ease: min_item_count must be an integer >= 1, got {min_item_count!r}"
            )
        self.regularization = float(regularization)
        self.min_item_count = int(min_item_count)
        #: Item indices covered by the Gram matrix, ascending; ``weights`` is indexed by them.
        self.kept = np.zeros(0, dtype=np.int64)
        self.weights = np.zeros((0, 0), dtype=np.float32)

    def params(self) -> dict[str, Any]:
        return {"regularization": self.regularization, "min_item_count": self.min_item_count}

    def fit(self, interactions: sp.csr_matrix, side: SideInfo | None = None) -> Self:
        if not sp.issparse(interactions):
            raise SegueError(f"ease: expected a scipy sparse matrix, got {type(interactions)}")
        train = sp.csr_matrix(interactions, dtype=np.float32, copy=True)
        if not np.isfinite(train.data).all():
            raise SegueError("ease: interaction values must be finite")
        listeners = np.bincount(train.indices[train.data != 0], minlength=train.shape[1])
        kept = np.flatnonzero(listeners >= self.min_item_count)
        x = train[:, kept].astype(np.float64)
        self.weights = _ease_weights(x, self.regularization).astype(np.float32)
        self.kept = kept.astype(np.int64)
        self._train = train
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return self._score_rows(take_rows(self._fitted(), users))

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        """Any listener's scores from their history row: EASE needs no per-user state."""
        n_items = self._fitted().shape[1]
        if not sp.issparse(history) or history.shape[1] != n_items:
            raise SegueError(
                f"ease: a history must be a sparse (n, {n_items}) matrix, got "
                f"{getattr(history, 'shape', type(history))}"
            )
        return self._score_rows(sp.csr_matrix(history, dtype=np.float32))

    def _score_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        out = np.full((rows.shape[0], rows.shape[1]), -np.inf, dtype=np.float32)
        if len(self.kept):
            out[:, self.kept] = np.asarray(rows[:, self.kept] @ self.weights)
        return out

    def explain(self, user: int, item: int) -> Reason:
        """The played item with the largest term ``x[u, j] · B[j, i]`` of the score."""
        train = self._fitted()
        position = np.searchsorted(self.kept, item)
        if position >= len(self.kept) or self.kept[position] != item:
            return Reason("matches_your_taste")
        row = train[user][:, self.kept]
        if row.nnz == 0:
            return Reason("matches_your_taste")
        contributions = row.data * self.weights[row.indices, position]
        best = int(np.argmax(contributions))
        if contributions[best] <= 0:
            return Reason("matches_your_taste")
        return Reason("because_you_played", anchor_item=int(self.kept[row.indices[best]]))

    def similar_items(self, items: np.ndarray, k: int = 10) -> np.ndarray:
        """Items that item i predicts most strongly (row i of B); -1 where none."""
        train = self._fitted()
        items = np.asarray(items, dtype=np.int64)
        dense = np.full((len(items), train.shape[1]), -np.inf, dtype=np.float32)
        position = np.minimum(np.searchsorted(self.kept, items), max(len(self.kept) - 1, 0))
        covered = (self.kept[position] == items) if len(self.kept) else np.zeros(len(items), bool)
        block = self.weights[position[covered]]
        dense[np.ix_(np.flatnonzero(covered), self.kept)] = np.where(block > 0, block, -np.inf)
        ranked, scores = top_k(dense, min(k, dense.shape[1]))
        ranked[~np.isfinite(scores)] = -1
        return ranked

    def _state(self) -> dict[str, np.ndarray]:
        return {"kept": self.kept, "weights": self.weights}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.kept = state["kept"]
        self.weights = state["weights"]


def _ease_weights(x: sp.csr_matrix, regularization: float) -> np.ndarray:
    """``B = I − P / diag(P)`` with ``P = (XᵀX + λI)⁻¹``, zero diagonal, in float64."""
    p = _inverse_gram(x, regularization)
    weights = p / -np.diag(p)  # column j divided by -P[j, j]
    np.fill_diagonal(weights, 0.0)
    return weights


def _inverse_gram(x: sp.csr_matrix, regularization: float) -> np.ndarray:
    """``(XᵀX + λI)⁻¹`` through whichever of the two Gram matrices is smaller.

    With fewer users than items (Last.fm: 1,892 users, ~6,000 items), the Woodbury identity
    ``(XᵀX + λI)⁻¹ = (I − Xᵀ (XXᵀ + λI)⁻¹ X) / λ`` needs a Cholesky factorisation of the
    users×users matrix only, and the rest is a sparse-times-dense product: seconds instead of
    a minute for the items×items inverse (both products have a sparse left factor, so they
    cost ``nnz(X) × n`` rather than a dense cube). Otherwise the items×items matrix is factorised.
    """
    n_users, n_items = x.shape
    if n_items == 0:
        return np.zeros((0, 0))
    if n_users < n_items:
        inner = (x @ x.T).toarray()
        inner[np.diag_indices_from(inner)] += regularization
        inner_inverse = _spd_inverse(inner)  # M = (XXᵀ + λI)⁻¹
        xt = x.T.tocsr()
        left = np.asarray(xt @ inner_inverse)  # XᵀM: sparse × dense, cheap
        p = -np.asarray(xt @ np.ascontiguousarray(left.T))  # XᵀMX (symmetric)
        p[np.diag_indices_from(p)] += 1.0
        p /= regularization
        return p
    gram = (x.T @ x).toarray()
    gram[np.diag_indices_from(gram)] += regularization
    return _spd_inverse(gram)


def _spd_inverse(a: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix via Cholesky (LAPACK potrf + potri).

    A third of the work of a general inverse; ``a`` is overwritten.
    """
    factor, info = scipy.linalg.lapack.dpotrf(a, lower=False, overwrite_a=True)
    if info == 0:
        factor, info = scipy.linalg.lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise SegueError(
            f"ease: cannot invert the {len(a)}×{len(a)} Gram matrix (LAPACK info {info}); "
            "raise regularization"
        )
    lower = np.tril_indices(len(factor), -1)
    factor[lower] = factor.T[lower]  # potri fills the upper triangle only
    return factor
