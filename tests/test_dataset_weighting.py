"""Weightings against hand-computed values on a 4-user x 3-item matrix.

X = [[1, 4, 0],     row sums 5, 2, 8, 0 (mean 15/4 = 3.75)
     [0, 2, 0],     users holding each item: 2, 2, 1 of N = 4
     [3, 0, 5],     idf = ln 4 - ln(1 + df) = ln(4/3), ln(4/3), ln 2
     [0, 0, 0]]
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from segue.dataset import (
    BM25,
    WEIGHTINGS,
    Binary,
    Confidence,
    Counts,
    LogScale,
    TfIdf,
    TimeDecay,
    make_weighting,
)
from segue.dataset.weighting import MS_PER_DAY
from segue.errors import DatasetError

DENSE = np.array([[1, 4, 0], [0, 2, 0], [3, 0, 5], [0, 0, 0]], dtype=np.float64)
IDF = [math.log(4 / 3), math.log(4 / 3), math.log(2)]


def x() -> sp.csr_matrix:
    return sp.csr_matrix(DENSE.astype(np.float32))


def weighted(weighting: object) -> np.ndarray:
    source = x()
    before = source.toarray().copy()
    out = weighting.apply(source)  # type: ignore[attr-defined]
    assert isinstance(out, sp.csr_matrix) and out.dtype == np.float32
    assert out.shape == source.shape
    np.testing.assert_array_equal(out.indices, source.indices)  # same pattern, nothing dropped
    np.testing.assert_array_equal(out.indptr, source.indptr)
    np.testing.assert_array_equal(source.toarray(), before)  # input untouched
    return out.toarray()


def test_binary_and_counts() -> None:
    np.testing.assert_array_equal(weighted(Binary()), (DENSE > 0).astype(float))
    np.testing.assert_array_equal(weighted(Counts()), DENSE)


def test_log_scale() -> None:
    got = weighted(LogScale())
    assert got[0, 1] == pytest.approx(math.log(5), rel=1e-6)  # log1p(4)
    assert got[2, 0] == pytest.approx(math.log(4), rel=1e-6)  # log1p(3)
    assert got[0, 0] == pytest.approx(math.log(2), rel=1e-6)
    assert weighted(LogScale(eps=2.0))[0, 1] == pytest.approx(math.log(3), rel=1e-6)  # 1 + 4/2


def test_confidence() -> None:
    got = weighted(Confidence(alpha=40))
    assert got[0, 1] == pytest.approx(161.0)  # 1 + 40 * 4
    assert got[2, 2] == pytest.approx(201.0)
    assert got[3].tolist() == [0, 0, 0]  # unobserved stays implicit (0), not 1
    assert weighted(Confidence(alpha=0.5))[0, 0] == pytest.approx(1.5)


def test_tfidf() -> None:
    got = weighted(TfIdf())
    assert got[0, 1] == pytest.approx(2 * math.log(4 / 3), rel=1e-6)  # sqrt(4) * ln(4/3)
    assert got[2, 2] == pytest.approx(math.sqrt(5) * math.log(2), rel=1e-6)
    assert got[2, 2] == pytest.approx(1.549923, rel=1e-5)


def test_bm25_by_hand() -> None:
    got = weighted(BM25())  # K1 = 100, B = 0.8 as in implicit
    k1, b = 100.0, 0.8
    norm = [(1 - b) + b * s / 3.75 for s in (5, 2, 8)]  # 1.26667, 0.62667, 1.90667
    for (row, col), value in {(0, 0): 1, (0, 1): 4, (1, 1): 2, (2, 0): 3, (2, 2): 5}.items():
        expected = value * (k1 + 1) / (k1 * norm[row] + value) * IDF[col]
        assert got[row, col] == pytest.approx(expected, rel=1e-6)
    assert got[0, 0] == pytest.approx(0.227592, rel=1e-5)  # 101 / 127.667 * 0.287682
    # K1 = 1.2, B = 0.75: (0, 1): 4 * 2.2 / (1.2 * (0.25 + 0.75 * 5 / 3.75) + 4) * ln(4/3)
    expected = 4 * 2.2 / (1.2 * (0.25 + 0.75 * 5 / 3.75) + 4) * math.log(4 / 3)
    assert weighted(BM25(k1=1.2, b=0.75))[0, 1] == pytest.approx(expected, rel=1e-6)


def test_bm25_matches_implicit_when_installed() -> None:
    nearest = pytest.importorskip("implicit.nearest_neighbours")
    rng = np.random.default_rng(3)
    dense = rng.integers(0, 20, size=(30, 25)) * (rng.random((30, 25)) < 0.3)
    matrix = sp.csr_matrix(dense.astype(np.float32))
    ours = BM25(k1=50, b=0.6).apply(matrix).toarray()
    theirs = sp.csr_matrix(nearest.bm25_weight(matrix, K1=50, B=0.6)).toarray()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    np.testing.assert_allclose(
        TfIdf().apply(matrix).toarray(),
        sp.csr_matrix(nearest.tfidf_weight(matrix)).toarray(),
        rtol=1e-5,
    )


def test_weightings_of_an_empty_matrix() -> None:
    empty = sp.csr_matrix((3, 2), dtype=np.float32)
    for cls in WEIGHTINGS.values():
        out = cls().apply(empty)
        assert out.shape == (3, 2) and out.nnz == 0


def test_time_decay_event_weights() -> None:
    reference = 1_700_000_000_000
    ts = np.array([reference, reference - 10 * MS_PER_DAY, reference - 20 * MS_PER_DAY])
    decay = TimeDecay(half_life_days=10, reference_ms=reference)
    np.testing.assert_allclose(decay.event_weights(ts, np.array([1, 4, 8])), [1.0, 2.0, 2.0])
    # Events after the reference count fully, not more.
    future = np.array([reference + 5 * MS_PER_DAY])
    np.testing.assert_allclose(decay.event_weights(future, np.array([3])), [3.0])
    # No reference: the newest event weighed is the reference.
    np.testing.assert_allclose(
        TimeDecay(half_life_days=5).event_weights(ts, np.ones(3)), [1.0, 0.25, 0.0625]
    )
    assert TimeDecay(half_life_days=1).event_weights(np.array([], np.int64), []).shape == (0,)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: BM25(b=1.5), r"BM25 b must lie in \[0, 1\]"),
        (lambda: BM25(k1=-1), "BM25 k1 must be a finite number >= 0"),
        (lambda: Confidence(alpha=0), "Confidence alpha must be a finite number > 0"),
        (lambda: LogScale(eps=float("nan")), "LogScale eps must be a finite number > 0"),
        (lambda: TimeDecay(half_life_days=0), "half_life_days must be a finite number > 0"),
        (lambda: TimeDecay(half_life_days="7"), "half_life_days must be a finite number > 0"),
    ],
)
def test_bad_parameters(build, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        build()


def test_make_weighting_by_name() -> None:
    assert make_weighting("bm25", k1=1.2, b=0.75) == BM25(k1=1.2, b=0.75)
    assert make_weighting("binary") == Binary()
    assert sorted(WEIGHTINGS) == ["binary", "bm25", "confidence", "counts", "log", "tfidf"]
    with pytest.raises(DatasetError, match=r"unknown weighting 'okapi'; choose one of \["):
        make_weighting("okapi")
    with pytest.raises(DatasetError, match=r"weighting 'binary' does not take \['alpha'\]"):
        make_weighting("binary", alpha=2)


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_rows_weighed_beside_a_matrix_equal_the_stacked_matrixs_last_rows(name: str) -> None:
    """A new listener's rows weighed with the training matrix's column statistics must be
    the rows the stacked matrix's weighting gives: BM25's idf and length norm, TF-IDF's idf,
    from everyone (the rows included); new columns, repeated columns and an empty row."""
    from segue.dataset.weighting import ColumnStats, weigh_beside

    reference = sp.random(50, 12, density=0.3, random_state=4, dtype=np.float32).tocsr()
    reference.data = np.ceil(reference.data * 6)
    reference = sp.vstack([reference, sp.csr_matrix((1, 12), dtype=np.float32)]).tocsr()
    dense = np.zeros((3, 12), dtype=np.float32)
    dense[0, [1, 11]] = [3, 9]
    dense[1, [0, 1, 10]] = [2, 3, 1]  # row 2 stays empty
    rows = sp.csr_matrix(dense)
    weighting = WEIGHTINGS[name]()
    want = weighting.apply(sp.vstack([reference, rows]).tocsr())[reference.shape[0] :]
    got = weigh_beside(weighting, rows, reference, ColumnStats.of(reference))
    assert np.array_equal(got.indices, rows.indices) and np.array_equal(got.indptr, rows.indptr)
    np.testing.assert_allclose(got.toarray(), want.toarray(), rtol=1e-6)
    # the rows alone weigh differently for the matrix-wide weightings: the check can fail
    if name in ("bm25", "tfidf"):
        assert not np.allclose(weighting.apply(rows).toarray(), want.toarray())
