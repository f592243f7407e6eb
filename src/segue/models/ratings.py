"""Rating predictors: a star rating for a (user, item) pair, for stores that hold ratings.

The recommenders in this package rank; these predict the value itself, the task explicit
feedback datasets are measured on (RMSE, MAE). Besides the global mean (the floor):

* :class:`BiasBaseline` — ``μ + b_u + b_i``, biases shrunk towards zero (Koren 2008).
* :class:`SVD` — Funk's biased matrix factorisation as Surprise's ``SVD``:
  ``μ + b_u + b_i + q_iᵀp_u``, all of it learnt by SGD with L2 regularisation.
* :class:`SVDpp` — Koren's SVD++: the user vector gains ``|N(u)|^-½ Σ_{j∈N(u)} y_j``, where
  ``N(u)`` is every item the user rated in training. *Which* items someone chose to rate says
  something about their taste beyond the values, most of all for users with few ratings.
* :class:`ItemKNNBaseline` — item-based kNN on the residuals of the biases (Surprise's
  ``KNNBaseline``): local, neighbourhood errors where the factor models' are global.
* :class:`Blend` — the four above combined by ridge regression fitted on a held-out share of
  the training ratings, then each refitted on all of them: the errors of a bias model, two
  factor models and a neighbourhood model are not the same errors, so a weighted sum beats
  each one (the lesson of the Netflix Prize).

SGD loops and the neighbour sums are compiled with numba (an epoch over 100k ratings is
milliseconds), and the epoch order comes from a seeded numpy permutation, so a fit is
reproducible. Indices are
matrix positions; users or items without a training rating predict from what is known
(their bias and factors stay zero).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numba
import numpy as np

from segue.errors import SegueError


class FittedRatings(Protocol):
    """A fitted rating predictor."""

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray: ...


class RatingModel(Protocol):
    """An unfitted rating predictor: its settings, and ``fit`` returning the fitted one."""

    def fit(
        self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int
    ) -> FittedRatings: ...


def _check(users: np.ndarray, items: np.ndarray, ratings: np.ndarray) -> None:
    if not len(users) == len(items) == len(ratings):
        raise SegueError("users, items and ratings must have the same length")
    if len(ratings) == 0:
        raise SegueError("a rating model needs at least one rating to fit")


@dataclass(frozen=True)
class BiasBaseline:
    """``μ + b_u + b_i`` fitted by alternating shrunk means (a few sweeps converge)."""

    reg_user: float = 10.0
    reg_item: float = 10.0
    sweeps: int = 5

    def fit(
        self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int
    ) -> FittedBaseline:
        _check(users, items, ratings)
        mu = float(ratings.mean())
        b_user = np.zeros(n_users)
        b_item = np.zeros(n_items)
        user_n = np.bincount(users, minlength=n_users)
        item_n = np.bincount(items, minlength=n_items)
        for _ in range(self.sweeps):
            residual = ratings - mu - b_user[users]
            b_item = np.bincount(items, residual, n_items) / (item_n + self.reg_item)
            residual = ratings - mu - b_item[items]
            b_user = np.bincount(users, residual, n_users) / (user_n + self.reg_user)
        return FittedBaseline(mu, b_user, b_item)


@dataclass(frozen=True)
class FittedBaseline:
    mu: float
    b_user: np.ndarray
    b_item: np.ndarray

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.mu + self.b_user[users] + self.b_item[items]


@dataclass(frozen=True)
class GlobalMean:
    """Every pair gets the training mean: the floor any model must beat."""

    def fit(
        self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int
    ) -> FittedBaseline:
        _check(users, items, ratings)
        return FittedBaseline(float(ratings.mean()), np.zeros(n_users), np.zeros(n_items))


@numba.njit(cache=True, nogil=True)
def _svd_epoch(users, items, ratings, order, mu, bu, bi, p, q, lr, reg, lr_bias, reg_bias):
    """One SGD pass in ``order``; updates as Surprise's SVD (biases, then both factor rows)."""
    k = p.shape[1]
    for t in range(order.shape[0]):
        n = order[t]
        u = users[n]
        i = items[n]
        dot = 0.0
        for f in range(k):
            dot += p[u, f] * q[i, f]
        err = ratings[n] - (mu + bu[u] + bi[i] + dot)
        bu[u] += lr_bias * (err - reg_bias * bu[u])
        bi[i] += lr_bias * (err - reg_bias * bi[i])
        for f in range(k):
            pu = p[u, f]
            qi = q[i, f]
            p[u, f] += lr * (err * qi - reg * pu)
            q[i, f] += lr * (err * pu - reg * qi)


@numba.njit(cache=True, nogil=True)
def _predict_factors(users, items, mu, bu, bi, p, q, low, high):
    out = np.empty(users.shape[0])
    k = p.shape[1]
    for n in range(users.shape[0]):
        u = users[n]
        i = items[n]
        value = mu + bu[u] + bi[i]
        for f in range(k):
            value += p[u, f] * q[i, f]
        out[n] = min(max(value, low), high)
    return out


@dataclass(frozen=True)
class FittedFactors:
    """``μ + b_u + b_i + q_iᵀ p_u`` clipped to the training ratings' range.

    For SVD++ ``p_u`` already holds the user's implicit part, so one predictor serves both.
    """

    mu: float
    b_user: np.ndarray
    b_item: np.ndarray
    p: np.ndarray
    q: np.ndarray
    low: float
    high: float

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return _predict_factors(
            np.asarray(users, dtype=np.int64),
            np.asarray(items, dtype=np.int64),
            self.mu,
            self.b_user,
            self.b_item,
            self.p,
            self.q,
            self.low,
            self.high,
        )


def _unseen_zeroed(users: np.ndarray, n: int, *arrays: np.ndarray) -> None:
    """Rows with no training rating keep their random start otherwise: noise, not knowledge."""
    unseen = np.bincount(users, minlength=n) == 0
    for array in arrays:
        array[unseen] = 0.0


@dataclass(frozen=True)
class SVD:
    """Funk's biased MF by SGD; the defaults are Surprise's but for the factor count.

    50 factors instead of 100: on MovieLens-100K-sized data the extra factors are regularised
    away and only cost time.
    """

    factors: int = 50
    epochs: int = 20
    lr: float = 0.005
    reg: float = 0.02
    lr_bias: float = 0.005
    reg_bias: float = 0.02
    init_std: float = 0.1
    seed: int = 0

    def fit(
        self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int
    ) -> FittedFactors:
        _check(users, items, ratings)
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        ratings = np.asarray(ratings, dtype=np.float64)
        rng = np.random.default_rng(self.seed)
        mu = float(ratings.mean())
        bu, bi = np.zeros(n_users), np.zeros(n_items)
        p = rng.normal(0, self.init_std, (n_users, self.factors))
        q = rng.normal(0, self.init_std, (n_items, self.factors))
        for _ in range(self.epochs):
            order = rng.permutation(len(ratings))
            _svd_epoch(users, items, ratings, order, mu, bu, bi, p, q,
                       self.lr, self.reg, self.lr_bias, self.reg_bias)  # fmt: skip
        _unseen_zeroed(users, n_users, p)
        _unseen_zeroed(items, n_items, q)
        return FittedFactors(mu, bu, bi, p, q, float(ratings.min()), float(ratings.max()))


@numba.njit(cache=True, nogil=True)
def _svdpp_epoch(indptr, rated, ratings, user_order, mu, bu, bi, p, q, y, lr, reg, lr_bias,
                 reg_bias):  # fmt: skip
    """One SGD pass, user by user (Koren's batched SVD++ update).

    The implicit sum ``|N(u)|^-½ Σ y_j`` is computed once per user, and the ``y_j`` gradients
    are summed over the user's ratings and applied once at the end: per-rating updates of
    every ``y_j`` cost ``|N(u)|·k`` each, so this is what makes SVD++ cost about what SVD
    costs. The sum of the per-rating updates is the same step, taken at once.
    """
    k = p.shape[1]
    implicit = np.zeros(k)
    grad = np.zeros(k)
    for t in range(user_order.shape[0]):
        u = user_order[t]
        start, end = indptr[u], indptr[u + 1]
        count = end - start
        if count == 0:
            continue
        norm = 1.0 / np.sqrt(count)
        implicit[:] = 0.0
        for n in range(start, end):
            implicit += y[rated[n]]
        implicit *= norm
        grad[:] = 0.0
        for n in range(start, end):
            i = rated[n]
            dot = 0.0
            for f in range(k):
                dot += q[i, f] * (p[u, f] + implicit[f])
            err = ratings[n] - (mu + bu[u] + bi[i] + dot)
            bu[u] += lr_bias * (err - reg_bias * bu[u])
            bi[i] += lr_bias * (err - reg_bias * bi[i])
            for f in range(k):
                pu = p[u, f]
                qi = q[i, f]
                p[u, f] += lr * (err * qi - reg * pu)
                q[i, f] += lr * (err * (pu + implicit[f]) - reg * qi)
                grad[f] += err * norm * qi
        for n in range(start, end):
            j = rated[n]
            for f in range(k):
                y[j, f] += lr * (grad[f] - count * reg * y[j, f])


@dataclass(frozen=True)
class SVDpp:
    """SVD++ (Koren 2008) by SGD; Surprise's defaults (20 factors, lr 0.007, reg 0.02)."""

    factors: int = 20
    epochs: int = 20
    lr: float = 0.007
    reg: float = 0.02
    lr_bias: float = 0.007
    reg_bias: float = 0.005
    init_std: float = 0.1
    seed: int = 0

    def fit(
        self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int
    ) -> FittedFactors:
        _check(users, items, ratings)
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        ratings = np.asarray(ratings, dtype=np.float64)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(users, minlength=n_users))])
        indptr = indptr.astype(np.int64)
        rng = np.random.default_rng(self.seed)
        mu = float(ratings.mean())
        bu, bi = np.zeros(n_users), np.zeros(n_items)
        p = rng.normal(0, self.init_std, (n_users, self.factors))
        q = rng.normal(0, self.init_std, (n_items, self.factors))
        y = rng.normal(0, self.init_std, (n_items, self.factors))
        for _ in range(self.epochs):
            # grouped by user (the batched update needs it), in a new order within each user
            by_user = np.lexsort((rng.random(len(ratings)), users))
            order = rng.permutation(n_users).astype(np.int64)
            _svdpp_epoch(indptr, items[by_user], ratings[by_user], order, mu, bu, bi, p, q, y,
                         self.lr, self.reg, self.lr_bias, self.reg_bias)  # fmt: skip
        rated = items[np.argsort(users, kind="stable")]
        _unseen_zeroed(users, n_users, p)
        _unseen_zeroed(rated, n_items, q, y)
        # fold the implicit part into the user vector: prediction is then plain MF
        counts = np.diff(indptr)
        implicit = np.zeros_like(p)
        np.add.at(implicit, np.repeat(np.arange(n_users), counts), y[rated])
        implicit /= np.sqrt(np.maximum(counts, 1))[:, None]
        return FittedFactors(
            mu, bu, bi, p + implicit, q, float(ratings.min()), float(ratings.max())
        )


@numba.njit(cache=True, nogil=True)
def _knn_predict(users, items, indptr, rated, residual, sim, k, baseline):
    """Baseline plus the shrunk-similarity-weighted mean residual of the k nearest rated items."""
    out = baseline.copy()
    for n in range(users.shape[0]):
        u = users[n]
        i = items[n]
        start, end = indptr[u], indptr[u + 1]
        if end == start:
            continue
        s = np.empty(end - start)
        z = np.empty(end - start)
        m = 0
        for t in range(start, end):
            value = sim[i, rated[t]]
            if value > 0.0 and rated[t] != i:
                s[m] = value
                z[m] = residual[t]
                m += 1
        if m == 0:
            continue
        order = np.argsort(-s[:m])[:k]
        num = 0.0
        den = 0.0
        for t in order:
            num += s[t] * z[t]
            den += s[t]
        out[n] += num / den
    return out


@dataclass(frozen=True)
class FittedKNN:
    baseline: FittedBaseline
    indptr: np.ndarray
    rated: np.ndarray
    residual: np.ndarray
    sim: np.ndarray
    k: int
    low: float
    high: float

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        value = _knn_predict(users, items, self.indptr, self.rated, self.residual, self.sim,
                             self.k, self.baseline.predict(users, items))  # fmt: skip
        return np.clip(value, self.low, self.high)


@dataclass(frozen=True)
class ItemKNNBaseline:
    """Item-based kNN on what the biases leave (Koren 2010; Surprise's ``KNNBaseline``).

    ``r̂ = b_ui + Σ s_ij (r_uj − b_uj) / Σ s_ij`` over the ``k`` items the user rated that are
    most similar to ``i``; ``s_ij`` is the Pearson correlation of the residuals over common
    raters, shrunk by ``(n_ij − 1) / (n_ij − 1 + shrinkage)`` so that two items sharing three
    raters do not look alike by chance. Its errors are local where the factor models' are
    global, which is what a blend gains from. The similarity matrix is dense (items²), so
    catalogs above ``max_items`` are refused.
    """

    k: int = 40
    shrinkage: float = 100.0
    baseline: BiasBaseline = field(default_factory=lambda: BiasBaseline(15.0, 10.0, 10))
    max_items: int = 8000

    def fit(
        self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int
    ) -> FittedKNN:
        import scipy.sparse as sp

        _check(users, items, ratings)
        if n_items > self.max_items:
            raise SegueError(
                f"the knn rating model keeps a dense item × item matrix; {n_items:,} items is "
                f"more than its {self.max_items:,}"
            )
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        ratings = np.asarray(ratings, dtype=np.float64)
        base = self.baseline.fit(users, items, ratings, n_users, n_items)
        z = ratings - base.predict(users, items)
        shape = (n_users, n_items)
        resid = sp.csr_matrix((z, (users, items)), shape=shape)
        ones = sp.csr_matrix((np.ones_like(z), (users, items)), shape=shape)
        squares = sp.csr_matrix((z * z, (users, items)), shape=shape)
        num = (resid.T @ resid).toarray()
        common = (ones.T @ ones).toarray()
        sq = (squares.T @ ones).toarray()  # Σ z_ui² over users who rated j too
        with np.errstate(divide="ignore", invalid="ignore"):
            sim = num / np.sqrt(sq * sq.T)
        sim[~np.isfinite(sim)] = 0.0
        sim *= np.maximum(common - 1, 0) / (np.maximum(common - 1, 0) + self.shrinkage)
        order = np.argsort(users, kind="stable")
        indptr = np.concatenate([[0], np.cumsum(np.bincount(users, minlength=n_users))])
        return FittedKNN(base, indptr.astype(np.int64), items[order], z[order],
                         sim.astype(np.float32), self.k, float(ratings.min()),
                         float(ratings.max()))  # fmt: skip


@dataclass(frozen=True)
class FittedBlend:
    """A ridge-weighted sum of fitted components' predictions, clipped to the rating range."""

    components: tuple[FittedRatings, ...]
    weights: np.ndarray  # intercept first
    low: float
    high: float

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        columns = [c.predict(users, items) for c in self.components]
        value = self.weights[0] + np.column_stack(columns) @ self.weights[1:]
        return np.clip(value, self.low, self.high)


@dataclass(frozen=True)
class Blend:
    """Components fitted on ``1 - holdout`` of the ratings, weighted by ridge on the rest.

    The weights are learnt where the components did not see the ratings (otherwise the
    component that overfits most would win them); then every component is refitted on all the
    ratings, which moves its predictions a little but keeps their relation to each other.
    """

    components: tuple[RatingModel, ...] = field(
        default_factory=lambda: (BiasBaseline(), SVD(), SVDpp(), ItemKNNBaseline())
    )
    holdout: float = 0.1
    ridge: float = 1.0
    seed: int = 0

    def fit(
        self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int
    ) -> FittedBlend:
        _check(users, items, ratings)
        if not 0 < self.holdout < 1:
            raise SegueError(f"Blend.holdout must lie strictly between 0 and 1, got {self.holdout}")
        users, items = np.asarray(users), np.asarray(items)
        ratings = np.asarray(ratings, dtype=np.float64)
        held = np.random.default_rng(self.seed).random(len(ratings)) < self.holdout
        if held.all() or not held.any():
            raise SegueError("the blend's held-out share left one side empty; add ratings")
        # a neighbourhood model over a catalog too large for its matrix is left out, not fatal
        usable = [m for m in self.components
                  if not (isinstance(m, ItemKNNBaseline) and n_items > m.max_items)]  # fmt: skip
        fit_part = [m.fit(users[~held], items[~held], ratings[~held], n_users, n_items)
                    for m in usable]  # fmt: skip
        x = np.column_stack([np.ones(int(held.sum()))]
                            + [f.predict(users[held], items[held]) for f in fit_part])  # fmt: skip
        penalty = self.ridge * np.eye(x.shape[1])
        penalty[0, 0] = 0.0  # the intercept is not shrunk
        weights = np.linalg.solve(x.T @ x + penalty, x.T @ ratings[held])
        full = tuple(m.fit(users, items, ratings, n_users, n_items) for m in usable)
        return FittedBlend(full, weights, float(ratings.min()), float(ratings.max()))


#: Rating models by name (``segue evaluate --protocol ratings --models ...``).
RATING_MODELS: dict[str, RatingModel] = {
    "mean": GlobalMean(),
    "bias": BiasBaseline(),
    "svd": SVD(),
    "svdpp": SVDpp(),
    "knn": ItemKNNBaseline(),
    "blend": Blend(),
}
