"""Ranking metrics against cases computed by hand."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from segue.eval.metrics import catalog_coverage, hit_matrix, novelty, ranking_scores


def _relevant(rows: list[set[int]], n_items: int) -> sp.csr_matrix:
    data = [(u, i) for u, items in enumerate(rows) for i in items]
    r = [u for u, _ in data]
    c = [i for _, i in data]
    return sp.csr_matrix((np.ones(len(data)), (r, c)), shape=(len(rows), n_items))


def test_hand_computed_case() -> None:
    ranked = np.array([[1, 2, 3], [4, -1, -1], [0, 1, 2]])
    relevant = _relevant([{2, 5}, {4}, set()], n_items=6)
    scores = ranking_scores(ranked, relevant, k=3)

    assert list(scores.users) == [0, 1]  # user 2 has nothing relevant and does not count
    assert scores.precision == pytest.approx([1 / 3, 1 / 3])
    assert scores.recall == pytest.approx([1 / 2, 1.0])
    assert scores.f1 == pytest.approx([0.4, 0.5])
    idcg0 = 1 + 1 / math.log2(3)
    assert scores.ndcg == pytest.approx([(1 / math.log2(3)) / idcg0, 1.0])
    assert scores.mrr == pytest.approx([0.5, 1.0])
    assert scores.map == pytest.approx([0.25, 1.0])
    assert scores.hit_rate == pytest.approx([1.0, 1.0])
    assert scores.mean()["ndcg"] == pytest.approx(((1 / math.log2(3)) / idcg0 + 1) / 2)


def test_ideal_dcg_is_capped_at_k() -> None:
    # 5 relevant items, k = 2, both slots hit: a perfect list at k scores 1.0
    ranked = np.array([[0, 1]])
    scores = ranking_scores(ranked, _relevant([{0, 1, 2, 3, 4}], 5), k=2)
    assert scores.ndcg[0] == pytest.approx(1.0)
    assert scores.recall[0] == pytest.approx(2 / 5)
    assert scores.map[0] == pytest.approx(1.0)


def test_padding_never_counts_as_a_hit() -> None:
    ranked = np.array([[-1, -1]])
    hits = hit_matrix(ranked, _relevant([{0}], 3))
    assert not hits.any()


def test_short_lists_are_padded_to_k() -> None:
    scores = ranking_scores(np.array([[2]]), _relevant([{2}], 3), k=4)
    assert scores.precision[0] == pytest.approx(1 / 4)


def test_misaligned_rows_are_rejected() -> None:
    with pytest.raises(ValueError, match="aligned"):
        hit_matrix(np.array([[0]]), _relevant([{0}, {1}], 2))


def test_coverage_and_novelty() -> None:
    ranked = np.array([[0, 1], [1, -1]])
    assert catalog_coverage(ranked, n_items=4) == pytest.approx(0.5)
    popularity = np.array([8, 2, 0, 0])  # users having each item, out of 8
    expected = np.mean([-math.log2(8 / 8), -math.log2(2 / 8), -math.log2(2 / 8)])
    assert novelty(ranked, popularity, n_users=8) == pytest.approx(expected)
