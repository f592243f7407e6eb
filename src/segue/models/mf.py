"""Matrix factorisation with ``implicit``: ALS (Hu, Koren, Volinsky 2008) and BPR (Rendle 2009).

Both learn a vector per user and per item and score ``user · item``. They run on the CPU
(``implicit.cpu``) with OpenBLAS held to one thread while ``implicit`` works: its own OpenMP
threads already use the cores, and two thread pools fighting over them is much slower.

ALS reads the matrix values as confidences: ``implicit`` uses ``c = alpha * value`` for every
stored pair and ``c = 1`` for the rest, so the weighting of the spec (BM25 by default) decides
how much a play counts. Its updates solve each user (and item) independently, so the result
does not depend on the number of threads. BPR samples (user, played, unplayed) triples; it
ignores values and, because parallel SGD updates race, trains on one thread to stay
reproducible.

ALS can also *fold in* a user it never saw: with the item vectors fixed, the user's vector is
the exact least-squares solution of one ALS half-step (:meth:`ALSRecommender.fold_in`). That is
how a new listener gets personal scores from their first plays without retraining.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from threadpoolctl import threadpool_limits

from segue.dataset.side import SideInfo
from segue.errors import SegueError
from segue.models.base import Reason, Recommender, checked_matrix, top_k

#: Fold-ins of this many rows or more run under a one-thread BLAS limit (as training does).
FOLD_IN_LIMIT_ROWS = 64


class FactorRecommender(Recommender):
    """Scores from user and item vectors; shared by ALS and BPR."""

    user_factors: np.ndarray
    item_factors: np.ndarray

    def score(self, users: np.ndarray) -> np.ndarray:
        self._fitted()
        return self.user_factors[np.asarray(users)] @ self._items_by_factor()

    def _items_by_factor(self) -> np.ndarray:
        """The item vectors as a contiguous (factors, items) array, kept per fitted model.

        Scoring one user reads every item vector: with this layout the product streams
        memory in order, about twice as fast as through the transposed view (2.1 ms vs 4.9 ms
        for 133k items x 64 factors, measured) at the cost of a second copy of the vectors.
        """
        cached = getattr(self, "_by_factor", None)
        if cached is None or cached[0] is not self.item_factors:
            cached = (self.item_factors, np.ascontiguousarray(self.item_factors.T))
            self._by_factor = cached
        return cached[1]

    def _dot_factors(self) -> tuple[np.ndarray, np.ndarray]:
        self._fitted()
        return self.user_factors, self.item_factors

    def score_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Dense (len(vectors), n_items) scores of user vectors the model did not train."""
        self._fitted()
        vectors = np.atleast_2d(np.asarray(vectors, dtype=self.item_factors.dtype))
        if vectors.shape[1] != self.item_factors.shape[1]:
            raise SegueError(
                f"{self.name}: user vectors have {vectors.shape[1]} components, "
                f"the model's have {self.item_factors.shape[1]}"
            )
        return vectors @ self._items_by_factor()

    def similar_items(self, items: np.ndarray, k: int = 10) -> np.ndarray:
        """Nearest items by cosine of their vectors (an item is not its own neighbour)."""
        self._fitted()
        items = np.asarray(items, dtype=np.int64)
        unit = _unit_rows(self._item_space())
        dense = unit[items] @ unit.T
        dense[np.arange(len(items)), items] = -np.inf
        ranked, scores = top_k(dense, min(k, dense.shape[1]))
        ranked[~np.isfinite(scores)] = -1
        return ranked

    def _item_space(self) -> np.ndarray:
        """The part of the item vectors that places items relative to each other."""
        return self.item_factors

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.user_factors = state["user_factors"]
        self.item_factors = state["item_factors"]


class ALSRecommender(FactorRecommender):
    """Implicit-feedback ALS; ``alpha`` scales the (weighted) matrix into confidences.

    The defaults were chosen on Last.fm 2K's validation split for the registry's weighting,
    ``BM25(k1=1.2, b=0.75)`` (benchmarks/tune_lastfm.py); another weighting changes the scale
    of the values and so the best ``alpha``.
    """

    name = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 15.0,
        alpha: float = 0.3,
        iterations: int = 30,
        random_state: int = 0,
        num_threads: int = 0,
    ) -> None:
        _check_factor_params(factors, iterations, regularization)
        if not np.isfinite(alpha) or alpha <= 0:
            raise SegueError(f"als: alpha must be a finite number > 0, got {alpha!r}")
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state
        self.num_threads = num_threads  # not saved: it never changes the result
        self.user_factors = np.zeros((0, factors), dtype=np.float32)
        self.item_factors = np.zeros((0, factors), dtype=np.float32)

    def params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "random_state": self.random_state,
        }

    def fit(self, interactions: sp.csr_matrix, side: SideInfo | None = None) -> Self:
        train = checked_matrix(interactions, self.name)
        with threadpool_limits(1, "blas"):
            model = self._implicit()
            model.fit(_observed(train), show_progress=False)
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self._train = train
        return self

    def fold_in(self, user_items: sp.csr_matrix) -> np.ndarray:
        """User vectors for rows of plays, with the item vectors held fixed.

        ``user_items`` is (n_rows, n_items), weighted as the training matrix was (the spec's
        weighting, with the training matrix's statistics: BM25 applied to one row alone
        would compute its idf from that row). A 0/1 row also works, a little less well: on
        Last.fm it keeps 88% of a user's top 20. Each row gets the exact least-squares ALS
        update; a trained user's own row gives back (nearly) their trained vector, which only
        differs because training stops after finitely many conjugate-gradient steps.
        """
        self._fitted()
        rows = checked_matrix(user_items, f"{self.name}.fold_in")
        if rows.shape[1] != self.item_factors.shape[0]:
            raise SegueError(
                f"{self.name}.fold_in: rows have {rows.shape[1]} items, "
                f"the model was trained on {self.item_factors.shape[0]}"
            )
        model = self._fold_model()
        observed = _observed(rows)
        if rows.shape[0] >= FOLD_IN_LIMIT_ROWS:
            with threadpool_limits(1, "blas"):
                vectors = model.recalculate_user(np.arange(rows.shape[0]), observed)
        else:  # one request's user: the ~2 ms of threadpool_limits would dominate
            vectors = model.recalculate_user(np.arange(rows.shape[0]), observed)
        return np.asarray(vectors, dtype=np.float32).reshape(rows.shape[0], self.factors)

    def _fold_model(self) -> AlternatingLeastSquares:
        """An ``implicit`` model holding our item vectors, kept so that its cached ``YᵀY``
        (items × factors², 20+ ms at 100k items) is computed once per fitted model, not per
        fold-in. Rebuilt whenever the item vectors object changes (fit, load)."""
        cached = getattr(self, "_folder", None)
        if cached is None or cached[0] is not self.item_factors:
            model = self._implicit()
            model.item_factors = self.item_factors
            cached = self._folder = (self.item_factors, model)
        return cached[1]

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        """Scores of listeners known by their plays only: fold in, then score the vectors."""
        return self.score_vectors(self.fold_in(history))

    def explain(self, user: int, item: int) -> Reason:
        """The played item contributing most to the score (Hu et al. 2008, section 5).

        ALS's user vector is ``W⁻¹ Σ_j c_j y_j`` with ``W = YᵀCY + λI``, so the score of item i
        splits exactly into ``Σ_j c_j · yᵢᵀ W⁻¹ y_j``: one term per played item j.
        """
        row = _observed(self._fitted()[user])
        if row.nnz == 0:
            return Reason("matches_your_taste")
        y = self.item_factors.astype(np.float64)
        played = y[row.indices]
        confidence = self.alpha * row.data.astype(np.float64)
        w = y.T @ y + self.regularization * np.eye(self.factors)
        w += played.T @ ((confidence - 1.0)[:, None] * played)
        contributions = confidence * (played @ np.linalg.solve(w, y[item]))
        best = int(np.argmax(contributions))
        if contributions[best] <= 0:
            return Reason("matches_your_taste")
        return Reason("because_you_played", anchor_item=int(row.indices[best]))

    def explain_items(self, user: int, items: Sequence[int]) -> list[Reason]:
        """:meth:`explain` for many items at once: ``W`` is the user's, so it is built and
        solved once for all of them (one gram product instead of one per item)."""
        row = _observed(self._fitted()[user])
        items = [int(i) for i in items]
        if row.nnz == 0 or not items:
            return [Reason("matches_your_taste") for _ in items]
        y = self.item_factors.astype(np.float64)
        played = y[row.indices]
        confidence = self.alpha * row.data.astype(np.float64)
        w = y.T @ y + self.regularization * np.eye(self.factors)
        w += played.T @ ((confidence - 1.0)[:, None] * played)
        contributions = confidence[:, None] * (played @ np.linalg.solve(w, y[items].T))
        best = np.argmax(contributions, axis=0)
        return [
            Reason("because_you_played", anchor_item=int(row.indices[b]))
            if contributions[b, n] > 0
            else Reason("matches_your_taste")
            for n, b in enumerate(best)
        ]

    def _implicit(self) -> AlternatingLeastSquares:
        return AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.random_state,
            num_threads=self.num_threads,
        )


class BPRRecommender(FactorRecommender):
    """Bayesian Personalised Ranking by SGD on sampled (played, unplayed) pairs.

    ``implicit`` appends a bias to every item vector (and a constant 1 to every user vector),
    so scores include an item popularity term; similarity and reasons leave the bias out.
    BPR has no closed-form user update, so it does not score histories (``score_history``
    raises); ALS does.
    """

    name = "bpr"

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        random_state: int = 0,
    ) -> None:
        _check_factor_params(factors, iterations, regularization)
        if not np.isfinite(learning_rate) or learning_rate <= 0:
            raise SegueError(
                f"bpr: learning_rate must be a finite number > 0, got {learning_rate!r}"
            )
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.random_state = random_state
        self.user_factors = np.zeros((0, factors + 1), dtype=np.float32)
        self.item_factors = np.zeros((0, factors + 1), dtype=np.float32)

    def params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "learning_rate": self.learning_rate,
            "regularization": self.regularization,
            "iterations": self.iterations,
            "random_state": self.random_state,
        }

    def fit(self, interactions: sp.csr_matrix, side: SideInfo | None = None) -> Self:
        train = checked_matrix(interactions, self.name)
        with threadpool_limits(1, "blas"):
            model = BayesianPersonalizedRanking(
                factors=self.factors,
                learning_rate=self.learning_rate,
                regularization=self.regularization,
                iterations=self.iterations,
                random_state=self.random_state,
                num_threads=1,  # Hogwild updates race on more threads: not reproducible
            )
            binary = _observed(train)
            binary.data[:] = 1.0
            model.fit(binary, show_progress=False)
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self._train = train
        return self

    def explain(self, user: int, item: int) -> Reason:
        """The played item whose vector is closest (cosine) to the recommended one.

        BPR's user vector is not a sum over played items, so no exact split exists; the nearest
        played item is the one the listener would recognise as "like this".
        """
        row = self._fitted()[user]
        if row.nnz == 0:
            return Reason("matches_your_taste")
        unit = _unit_rows(self._item_space()[np.append(row.indices, item)])
        closeness = unit[:-1] @ unit[-1]
        best = int(np.argmax(closeness))
        if closeness[best] <= 0:
            return Reason("matches_your_taste")
        return Reason("because_you_played", anchor_item=int(row.indices[best]))

    def _item_space(self) -> np.ndarray:
        return self.item_factors[:, :-1]


def _check_factor_params(factors: int, iterations: int, regularization: float) -> None:
    if not isinstance(factors, int | np.integer) or factors < 1:
        raise SegueError(f"factors must be an integer >= 1, got {factors!r}")
    if not isinstance(iterations, int | np.integer) or iterations < 1:
        raise SegueError(f"iterations must be an integer >= 1, got {iterations!r}")
    if not np.isfinite(regularization) or regularization < 0:
        raise SegueError(f"regularization must be a finite number >= 0, got {regularization!r}")


def _observed(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """The pairs with positive weight, as ``implicit`` must see them.

    A weighting may give a pair no weight (BM25's idf is below zero for an item nearly every
    user played); ``implicit`` would read a stored zero or negative value as a dislike, so such
    pairs are left out of training and count as unobserved. The model's own copy keeps them, so
    they are still excluded from the user's recommendations.
    """
    kept = matrix.copy()
    kept.data[kept.data < 0] = 0.0
    kept.eliminate_zeros()
    return kept


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)
