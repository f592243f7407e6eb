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


@dataclass(frozen=True)
class ColumnStats:
    """What the matrix-wide weightings read of a matrix: its rows, each column's pairs (the
    document frequency) and the sum of its values.

    Why apart: a listener scored from a history row is weighed as if stacked under the
    training matrix (BM25's idf and length norm from all listeners). Stacking a row under a
    1M-listener matrix copied it whole per request (~100 ms per generator); these statistics,
    computed once per training matrix, give the same weights (:func:`weigh_beside`).
    """

    n_rows: int
    df: np.ndarray
    total: float

    @classmethod
    def of(cls, matrix: sp.csr_matrix) -> ColumnStats:
        matrix = matrix.tocsr()
        return cls(
            n_rows=int(matrix.shape[0]),
            df=np.bincount(matrix.indices, minlength=matrix.shape[1]),
            total=float(matrix.data.sum(dtype=np.float64)),
        )

    def idf(self) -> np.ndarray:
        """``log(N) - log1p(df)`` per item column, N = rows (users), as ``implicit`` has it."""
        return np.log(float(self.n_rows)) - np.log1p(self.df)

    def _entries(self, matrix: sp.csr_matrix) -> tuple[int, float, np.ndarray]:
        """(rows, sum of values, idf of each stored entry's column) of ``matrix``."""
        return self.n_rows, self.total, self.idf()[matrix.indices]

    def _entries_beside(self, rows: sp.csr_matrix) -> tuple[int, float, np.ndarray]:
        """The same for ``rows`` stacked under this matrix, computed at their columns only
        (a whole column pass is a third of a millisecond on 132,660 items)."""
        n_rows = self.n_rows + rows.shape[0]
        columns, at, count = np.unique(rows.indices, return_inverse=True, return_counts=True)
        df = self.df[columns] + count
        idf = np.log(float(n_rows)) - np.log1p(df)
        return n_rows, self.total + float(rows.data.sum(dtype=np.float64)), idf[at]


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


class _ColumnWeighting:
    """A weighting that reads the whole matrix's column statistics (idf, mean row sum):
    ``_weigh`` gets them, from the matrix itself or from the one new rows join."""

    def apply(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        return self._weigh(matrix, *ColumnStats.of(matrix)._entries(matrix))

    def apply_beside(self, rows: sp.csr_matrix, reference: ColumnStats) -> sp.csr_matrix:
        """``rows`` weighed as the last rows of the matrix ``reference`` describes with them
        stacked under it: see :func:`weigh_beside`."""
        return self._weigh(rows, *reference._entries_beside(rows))

    def _weigh(
        self, matrix: sp.csr_matrix, n_rows: int, total: float, idf: np.ndarray
    ) -> sp.csr_matrix:
        raise NotImplementedError


@dataclass(frozen=True)
class BM25(_ColumnWeighting):
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

    def _weigh(
        self, matrix: sp.csr_matrix, n_rows: int, total: float, idf: np.ndarray
    ) -> sp.csr_matrix:
        """``n_rows``, ``total``: of the whole matrix; ``idf``: per stored entry."""
        data = matrix.data.astype(np.float64)
        rows = _row_of_entries(matrix)
        row_sums = np.bincount(rows, weights=data, minlength=matrix.shape[0])
        average = total / n_rows if n_rows else 0.0
        if average <= 0:
            return _with_data(matrix, np.zeros(matrix.nnz))
        length_norm = (1.0 - self.b) + self.b * row_sums / average
        weights = data * (self.k1 + 1.0) / (self.k1 * length_norm[rows] + data) * idf
        return _with_data(matrix, weights)


@dataclass(frozen=True)
class TfIdf(_ColumnWeighting):
    """``sqrt(value) * idf_item``, as ``implicit``'s ``tfidf_weight`` (N = number of users)."""

    name: ClassVar[str] = "tfidf"

    def _weigh(
        self, matrix: sp.csr_matrix, n_rows: int, total: float, idf: np.ndarray
    ) -> sp.csr_matrix:
        """``idf``: per stored entry (the matrix's rows and total are not read)."""
        return _with_data(matrix, np.sqrt(matrix.data.astype(np.float64)) * idf)


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


#: Weightings of each pair's value alone: a row weighs the same on its own as in any matrix.
PER_PAIR: tuple[type, ...] = (Binary, Counts, LogScale, Confidence)


def weigh_beside(
    weighting: Weighting, rows: sp.csr_matrix, reference: sp.csr_matrix, stats: ColumnStats
) -> sp.csr_matrix:
    """``weighting.apply(vstack([reference, rows]))[-len(rows):]``: new listeners' rows
    weighed with the statistics of the matrix they join (``stats``, from
    ``ColumnStats.of(reference)``), without copying that matrix. A weighting this module
    does not know is applied to the stacked matrix, as it was before."""
    if isinstance(weighting, PER_PAIR):
        return weighting.apply(rows)
    beside = getattr(weighting, "apply_beside", None)
    if beside is not None:
        return beside(rows, stats)
    stacked = sp.vstack([reference, rows], format="csr")
    return weighting.apply(stacked)[reference.shape[0] :]


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
