"""How strongly an interaction counts: per-event decay and per-matrix weightings.

Two stages, because they act on different things. :class:`TimeDecay` weighs each *event* by its
age before events are summed into (user, item) pairs, so that last year's binge counts less than
this week's plays. A :class:`Weighting` then turns the summed pair values into the numbers a
model trains on; several of them (BM25, TF-IDF) need column statistics of the whole matrix,
which is why they act on a CSR matrix and are re-applied to each split's own matrix.

Every weighting is a small frozen dataclass with one job, and every one returns a new float32
CSR matrix with the same sparsity pattern (pairs are never dropped: a zero weight stays stored).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from segue.errors import DatasetError

MS_PER_DAY = 86_400_000


@runtime_checkable
class Weighting(Protocol):
    """Maps a user×item matrix of summed pair values to training weights."""

    name: ClassVar[str]

    def apply(self, matrix: sp.csr_matrix) -> sp.csr_matrix: ...


def _with_data(matrix: sp.csr_matrix, data: np.ndarray) -> sp.csr_matrix:
    """Same pattern, new values, float32; never shares ``data`` with the input."""
    return sp.csr_matrix(
        (np.asarray(data, dtype=np.float32), matrix.indices.copy(), matrix.indptr.copy()),
        shape=matrix.shape,
    )


def _row_of_entries(matrix: sp.csr_matrix) -> np.ndarray:
    return np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))


def _item_idf(matrix: sp.csr_matrix) -> np.ndarray:
    """``log(N) - log1p(df)`` per item column, N = rows (users), as ``implicit`` computes it."""
    n_rows = float(matrix.shape[0])
    document_frequency = np.bincount(matrix.indices, minlength=matrix.shape[1])
    return np.log(n_rows) - np.log1p(document_frequency)


@dataclass(frozen=True)
class Binary:
    """1 for every observed pair: "did the user ever play it" (the usual published protocol)."""

    name: ClassVar[str] = "binary"

    def apply(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        return _with_data(matrix, np.ones(matrix.nnz))


@dataclass(frozen=True)
class Counts:
    """The summed values themselves: play counts, or decayed play counts with :class:`TimeDecay`."""

    name: ClassVar[str] = "counts"

    def apply(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        return _with_data(matrix, matrix.data.astype(np.float64))


@dataclass(frozen=True)
class LogScale:
    """``log1p(value / eps)``: tames heavy listeners whose counts run into the thousands.

    ``eps`` sets where the curve bends (Johnson 2014 uses it as the count unit). ``log1p`` rather
    than ``1 + log`` keeps decayed values below 1 non-negative.
    """

    eps: float = 1.0
    name: ClassVar[str] = "log"

    def __post_init__(self) -> None:
        _positive("LogScale eps", self.eps)

    def apply(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        return _with_data(matrix, np.log1p(matrix.data.astype(np.float64) / self.eps))


@dataclass(frozen=True)
class BM25:
    """Okapi BM25 as ``implicit.nearest_neighbours.bm25_weight`` computes it on a user×item matrix.

    ``idf = log(N) - log1p(df_item)`` with N the number of rows (users, including users without
    pairs, exactly as ``implicit`` counts ``X.shape[0]``); each row is length-normalised by its
    sum relative to the mean row sum: ``w = x (K1 + 1) / (K1 ((1 - B) + B rowsum/avg) + x) idf``.
    """

    k1: float = 100.0
    b: float = 0.8
    name: ClassVar[str] = "bm25"

    def __post_init__(self) -> None:
        if not np.isfinite(self.k1) or self.k1 < 0:
            raise DatasetError(f"BM25 k1 must be a finite number >= 0, got {self.k1!r}")
        if not 0.0 <= self.b <= 1.0:
            raise DatasetError(f"BM25 b must lie in [0, 1], got {self.b!r}")

    def apply(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        data = matrix.data.astype(np.float64)
        rows = _row_of_entries(matrix)
        row_sums = np.bincount(rows, weights=data, minlength=matrix.shape[0])
        average = row_sums.mean() if matrix.shape[0] else 0.0
        if average <= 0:
            return _with_data(matrix, np.zeros(matrix.nnz))
        length_norm = (1.0 - self.b) + self.b * row_sums / average
        idf = _item_idf(matrix)
        weights = (
            data * (self.k1 + 1.0) / (self.k1 * length_norm[rows] + data) * idf[matrix.indices]
        )
        return _with_data(matrix, weights)


@dataclass(frozen=True)
class TfIdf:
    """``sqrt(value) * idf_item``, as ``implicit``'s ``tfidf_weight`` (N = number of users)."""

    name: ClassVar[str] = "tfidf"

    def apply(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        idf = _item_idf(matrix)
        return _with_data(matrix, np.sqrt(matrix.data.astype(np.float64)) * idf[matrix.indices])


@dataclass(frozen=True)
class Confidence:
    """``1 + alpha * value``: the confidence of implicit-feedback ALS (Hu, Koren, Volinsky 2008).

    The paper found alpha = 40 good on TV-watching data; it is a per-dataset knob.
    """

    alpha: float = 40.0
    name: ClassVar[str] = "confidence"

    def __post_init__(self) -> None:
        _positive("Confidence alpha", self.alpha)

    def apply(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        return _with_data(matrix, 1.0 + self.alpha * matrix.data.astype(np.float64))


@dataclass(frozen=True)
class TimeDecay:
    """Per-event weight ``count * 0.5 ** (age_days / half_life_days)``, applied before summing.

    Age is measured back from ``reference_ms`` (epoch milliseconds); ``None`` means the newest
    event being weighed, so the freshest play counts fully. Events newer than the reference
    count fully too (age is clipped at zero) rather than more than fully.
    """

    half_life_days: float
    reference_ms: int | None = None

    def __post_init__(self) -> None:
        _positive("TimeDecay half_life_days", self.half_life_days)

    def event_weights(self, ts_ms: np.ndarray, count: np.ndarray) -> np.ndarray:
        ts = np.asarray(ts_ms, dtype=np.int64)
        if len(ts) == 0:
            return np.zeros(0, dtype=np.float64)
        reference = int(ts.max()) if self.reference_ms is None else int(self.reference_ms)
        age_days = np.maximum(reference - ts, 0).astype(np.float64) / MS_PER_DAY
        return np.asarray(count, dtype=np.float64) * np.exp2(-age_days / self.half_life_days)


@dataclass(frozen=True)
class Recency:
    """Per-pair weight ``0.5 ** (age_days / half_life_days)`` of the pair's newest event.

    What "trending" means: an item counts by how recently its listeners played it. Age is
    measured back from the newest pair of the matrix being built (a training split's own
    newest event, so evaluation never peeks ahead). It needs pair timestamps, so it works
    through :meth:`Interactions.matrix`, not on a bare matrix.
    """

    half_life_days: float = 14.0
    name: ClassVar[str] = "recency"

    def __post_init__(self) -> None:
        _positive("Recency half_life_days", self.half_life_days)

    def pair_values(self, last_ts: np.ndarray) -> np.ndarray:
        ts = np.asarray(last_ts, dtype=np.int64)
        if len(ts) == 0:
            return np.zeros(0, dtype=np.float64)
        age_days = (int(ts.max()) - ts).astype(np.float64) / MS_PER_DAY
        return np.exp2(-age_days / self.half_life_days)

    def apply(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        raise DatasetError(
            "Recency weighting needs the time of each pair; build the matrix with "
            "Interactions.matrix(Recency(...)) rather than applying it to a bare matrix"
        )


WEIGHTINGS: dict[str, type] = {
    cls.name: cls for cls in (Binary, Counts, LogScale, BM25, TfIdf, Confidence)
}


def make_weighting(name: str, **params: float) -> Weighting:
    """A weighting from its name and parameters, e.g. from a config file or CLI option."""
    cls = WEIGHTINGS.get(name)
    if cls is None:
        raise DatasetError(f"unknown weighting {name!r}; choose one of {sorted(WEIGHTINGS)}")
    try:
        return cls(**params)
    except TypeError as exc:
        raise DatasetError(f"weighting {name!r} does not take {sorted(params)}: {exc}") from exc


def _positive(what: str, value: float) -> None:
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (number and np.isfinite(value) and value > 0):
        raise DatasetError(f"{what} must be a finite number > 0, got {value!r}")
