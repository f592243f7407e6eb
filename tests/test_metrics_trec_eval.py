"""The top-k metrics (segue.eval.metrics over segue.ranking) against trec_eval, through
pytrec_eval, on random lists: short lists, padding, users with many or few relevant items.

trec_eval's measures are defined like ours (binary gains, ideal DCG over min(k, #relevant),
P@k divided by k, recall by #relevant, reciprocal rank of the first hit, success@k), except
MAP: trec_eval divides the summed precisions by #relevant, RecBole (and we) by
min(k, #relevant), so its value is rescaled before comparing.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from segue.eval.metrics import ranking_scores

pytrec_eval = pytest.importorskip("pytrec_eval")


def _random_case(seed: int, n_users: int, n_items: int, length: int):
    rng = np.random.default_rng(seed)
    ranked = np.stack([rng.permutation(n_items)[:length] for _ in range(n_users)])
    for u in range(n_users):  # lists shorter than the cut-off, padded with -1
        ranked[u, rng.integers(0, length + 1) :] = -1
    density = rng.random((n_users, 1)) * 0.4
    relevant = rng.random((n_users, n_items)) < density
    return ranked, relevant


def _trec_eval(ranked: np.ndarray, relevant: np.ndarray, k: int) -> dict[str, dict]:
    qrels = {f"u{u}": {f"d{i}": 1 for i in np.flatnonzero(row)} for u, row in enumerate(relevant)}
    run = {  # distinct scores, falling down the list: trec_eval ranks by score
        f"u{u}": {f"d{i}": float(k - j) for j, i in enumerate(row[:k]) if i >= 0}
        for u, row in enumerate(ranked)
    }
    measures = {f"ndcg_cut.{k}", f"P.{k}", f"recall.{k}", f"map_cut.{k}", f"success.{k}"}
    return pytrec_eval.RelevanceEvaluator(qrels, measures | {"recip_rank"}).evaluate(run)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_top_k_metrics_agree_with_trec_eval(k: int) -> None:
    for seed in range(4):
        ranked, relevant = _random_case(seed, n_users=200, n_items=30, length=12)
        ours = ranking_scores(ranked, sp.csr_matrix(relevant.astype(np.float64)), k)
        theirs = _trec_eval(ranked, relevant, k)
        with_relevant = np.flatnonzero(relevant.any(axis=1))
        assert list(ours.users) == list(with_relevant)  # users without relevant items skipped
        for row, user in enumerate(ours.users):
            t = theirs.get(f"u{user}", {})  # a user with an empty list may be left out
            n_rel = int(relevant[user].sum())
            expected = {
                "ndcg": t.get(f"ndcg_cut_{k}", 0.0),
                "precision": t.get(f"P_{k}", 0.0),
                "recall": t.get(f"recall_{k}", 0.0),
                "mrr": t.get("recip_rank", 0.0),
                "hit_rate": t.get(f"success_{k}", 0.0),
                "map": t.get(f"map_cut_{k}", 0.0) * n_rel / min(n_rel, k),
            }
            p, r = expected["precision"], expected["recall"]
            expected["f1"] = 2 * p * r / (p + r) if p + r else 0.0
            got = {name: float(getattr(ours, name)[row]) for name in expected}
            assert got == pytest.approx(expected, abs=1e-9), f"user {user}, seed {seed}"
