"""The staged recommender (``pipeline``): retrieval, ranker, persistence, new listeners, ANN.

The world is built so that two signals are needed together: listeners play inside a home
group of items, and half of their plays are items their same-group friends played. Item-kNN
knows the group but not which items friends played; the friends generator knows what friends
played, but half of each listener's friends live in other groups. Only a ranker that combines
the two puts the friend-played home items first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from segue.dataset.side import SideInfo
from segue.dataset.splits import inner_folds, inner_holdout
from segue.errors import DatasetError, SegueError
from segue.models.itemknn import ItemKNNRecommender
from segue.models.names import DEFAULT_MODELS, model_spec
from segue.models.staged.ann import VectorIndex, recall_of
from segue.models.staged.pipeline import StagedRecommender
from segue.models.staged.retrieval import FriendsRecommender, Generators, candidate_recall
from segue.ranking import hit_matrix, ndcg_per_user

GROUPS, PER_GROUP, USERS_PER_GROUP = 8, 25, 40


def _world(seed: int = 0) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """(plays, friend graph, home group per user); a quarter of listeners have no friends
    and play home items at random, the rest half play what their same-group friends do."""
    rng = np.random.default_rng(seed)
    n_users = GROUPS * USERS_PER_GROUP
    home = np.repeat(np.arange(GROUPS), USERS_PER_GROUP)
    links: set[tuple[int, int]] = set()
    lonely = rng.random(n_users) < 0.25  # a quarter of the listeners have no friends
    for u in np.flatnonzero(~lonely):
        same = np.flatnonzero((home == home[u]) & (np.arange(n_users) != u) & ~lonely)
        other = np.flatnonzero((home != home[u]) & ~lonely)
        for v in [*rng.choice(same, 2, replace=False), *rng.choice(other, 2, replace=False)]:
            links.add((min(u, int(v)), max(u, int(v))))
    a, b = np.array(sorted(links)).T
    friends = sp.csr_matrix(
        (np.ones(2 * len(a), np.float32), (np.r_[a, b], np.r_[b, a])), shape=(n_users, n_users)
    )
    friends.data[:] = 1.0
    seeds = [set(rng.choice(PER_GROUP, 4, replace=False) + home[u] * PER_GROUP)
             for u in range(n_users)]  # fmt: skip
    plays = []
    for u in range(n_users):
        pals = [v for v in friends[u].indices if home[v] == home[u]]
        pool = sorted(set().union(*(seeds[v] for v in pals)) - seeds[u])
        if not pals:  # without friends: more home items at random
            pool = sorted(set(range(home[u] * PER_GROUP, (home[u] + 1) * PER_GROUP)) - seeds[u])
        extra = rng.choice(pool, min(6, len(pool)), replace=False) if pool else []
        plays.append(seeds[u] | {int(i) for i in extra})
    rows = np.concatenate([[u] * len(p) for u, p in enumerate(plays)])
    cols = np.concatenate([sorted(p) for p in plays])
    x = sp.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, GROUPS * PER_GROUP)
    )
    return x, friends.tocsr(), home


def _ndcg(scores: np.ndarray, train: sp.csr_matrix, test: sp.csr_matrix) -> float:
    scores = np.array(scores, dtype=np.float32)
    scores[train.nonzero()] = -np.inf
    ranked = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    return float(
        ndcg_per_user(hit_matrix(ranked[users], test[users]), np.diff(test.indptr)[users]).mean()
    )


FAST = {"n_estimators": 150, "learning_rate": 0.1, "min_child_samples": 20, "holdout": 0.25}


@pytest.fixture(scope="module")
def fitted() -> tuple[StagedRecommender, sp.csr_matrix, sp.csr_matrix, SideInfo, np.ndarray]:
    x, friends, home = _world()
    train, test = inner_holdout(x, 0.2, seed=1)
    side = SideInfo(friends=friends)
    model = StagedRecommender(generators=("itemknn", "friends", "trending"), **FAST)
    return model.fit(train, side), train, test, side, home


def test_union_recall_is_at_least_each_generators_and_gains_over_the_best(fitted) -> None:
    model, train, test, _, _ = fitted
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    cands = model.gens.retrieve(users, train[users], 6)
    each = [candidate_recall(cands, test[users], g) for g in range(len(model.gens.active))]
    union = candidate_recall(cands, test[users], None)
    assert all(union >= r for r in each)
    assert union > max(each) + 0.02  # the generators do find different items
    # the fitted model reports the same on its inner split
    inner = [model.validation[f"recall_{n}"] for n in model.gens.active]
    assert model.validation["recall_union"] >= max(inner)


def test_ranker_beats_the_best_single_generator_when_two_signals_matter(fitted) -> None:
    model, train, test, side, _ = fitted
    singles = {
        "itemknn": ItemKNNRecommender().fit(train).score(np.arange(train.shape[0])),
        "friends": FriendsRecommender().fit(train, side).score(np.arange(train.shape[0])),
    }
    best_single = max(_ndcg(s, train, test) for s in singles.values())
    ranked = _ndcg(model.score(np.arange(train.shape[0])), train, test)
    assert ranked > best_single + 0.03, (ranked, best_single)
    importance = model.feature_importance()
    assert set(importance) == set(model.ranker.feature_names)
    top = list(importance)[:6]
    assert any(name.startswith("friends") for name in top), top  # the second signal is used
    assert any(name.startswith("itemknn") for name in top), top


def test_save_and_load_give_identical_scores(fitted, tmp_path: Path) -> None:
    model, train, _, _, _ = fitted
    model.save(tmp_path / "pipeline")
    assert (tmp_path / "pipeline" / "ranker.txt").is_file()
    loaded = StagedRecommender.load(tmp_path / "pipeline")
    users = np.arange(0, train.shape[0], 7)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    history = train[users[:3]]
    np.testing.assert_array_equal(loaded.score_history(history), model.score_history(history))
    assert loaded.chosen_rerank == model.chosen_rerank
    assert loaded.feature_importance() == pytest.approx(model.feature_importance())


def test_score_history_ranks_an_unseen_listeners_home_group_first(fitted) -> None:
    model, train, _, _, home = fitted
    group = 3
    picks = np.arange(group * PER_GROUP, group * PER_GROUP + 4)
    history = sp.csr_matrix(
        (np.ones(len(picks), np.float32), (np.zeros(len(picks), int), picks)),
        shape=(1, train.shape[1]),
    )
    scores = model.score_history(history)
    assert scores.shape == (1, train.shape[1])
    assert np.isneginf(scores[0, picks]).all()  # played items are never recommended
    top = np.argsort(-scores[0])[:10]
    assert (top // PER_GROUP == group).all(), top // PER_GROUP
    rec = model.recommend([0], 10)
    assert (rec.items[0] // PER_GROUP == home[0]).mean() >= 0.9
    reason = model.explain(0, int(rec.items[0, 0]))
    assert reason.code in {"because_you_played", "listeners_like_you", "trending"}


def test_the_registry_builds_the_pipeline_and_bad_settings_are_one_line_errors() -> None:
    assert isinstance(model_spec("pipeline").build(), StagedRecommender)
    assert "pipeline" not in DEFAULT_MODELS  # trained when named: its fit takes minutes
    with pytest.raises(SegueError, match="unknown generator 'nope'"):
        StagedRecommender(generators=("als", "nope"))
    with pytest.raises(SegueError, match="stage must be one of"):
        StagedRecommender(stage="everything")
    assert StagedRecommender().folds == 8  # every training pair labels the ranker once
    with pytest.raises(SegueError, match=r"folds must lie in \[1, 1/holdout = 4\]"):
        StagedRecommender(holdout=0.25, folds=5)
    with pytest.raises(SegueError, match="negatives must lie in"):
        StagedRecommender(negatives=0)


def test_flat_index_is_exact_and_hnsw_recall_is_high_on_random_vectors() -> None:
    rng = np.random.default_rng(0)
    items = rng.standard_normal((4000, 32)).astype(np.float32)
    queries = rng.standard_normal((40, 32)).astype(np.float32)
    flat = VectorIndex(items)
    assert flat.kind == "flat"  # below the catalog size where ANN pays
    truth, _ = flat.exact(queries, 50)
    ids, _ = flat.search(queries, 50)
    assert recall_of(ids, truth) == 1.0
    hnsw = VectorIndex(items, "hnsw", ef_search=200)
    found, scores = hnsw.search(queries, 50)
    assert 0.9 <= recall_of(found, truth) < 1.0 + 1e-9
    assert (np.diff(scores, axis=1) <= 1e-5).all()  # best first
    ivf = VectorIndex(items, "ivf", nlist=32, nprobe=16)
    assert recall_of(ivf.search(queries, 50)[0], truth) >= 0.75


def test_embedding_generators_retrieve_through_the_ann_index_above_the_threshold() -> None:
    x, _, _ = _world()
    exact = Generators(("als",)).fit(x, None)
    approx = Generators(("als",), exact_below=0).fit(x, None)
    users = np.arange(0, x.shape[0], 5)
    a = exact.retrieve(users, x[users], 30)
    b = approx.retrieve(users, x[users], 30)
    assert approx._indexes and not exact._indexes
    keys_a = set(zip(a.rows.tolist(), a.items.tolist(), strict=True))
    keys_b = set(zip(b.rows.tolist(), b.items.tolist(), strict=True))
    assert len(keys_a & keys_b) >= 0.95 * len(keys_a)
    assert not (set(zip(*x[users].nonzero(), strict=True)) & keys_b)  # seen items masked
    # a listener known by history rows (fresh plays) searches the index too, with the vector
    # folded in from the history: their own rows retrieve what their trained vectors do
    by_history = approx.retrieve(None, x[users], 30, history=x[users], raw=x)
    assert np.isnan(by_history.zall).all() and np.isnan(b.zall).all()  # scored as ANN hits
    keys_h = set(zip(by_history.rows.tolist(), by_history.items.tolist(), strict=True))
    assert len(keys_h & keys_b) >= 0.9 * len(keys_b)


def test_inner_folds_hold_out_disjoint_parts_of_each_listeners_items() -> None:
    x, _, _ = _world()
    x = x.tolil()
    x[0, :] = 0  # a listener with two items is never held out
    x[0, [1, 2]] = 1
    x = x.tocsr()
    folds = inner_folds(x, 0.25, 4, seed=5)
    assert len(folds) == 4
    first, _ = inner_holdout(x, 0.25, seed=5)
    assert (folds[0][0] != first).nnz == 0  # fold 0 is the single inner split
    seen = sp.csr_matrix(x.shape, dtype=np.float32)
    counts = np.diff(x.indptr)[1:]
    n_out = np.maximum(1, np.round(0.25 * counts))
    for k, (train, held) in enumerate(folds):
        assert (train + held != 0).nnz == x.nnz and (train.multiply(held)).nnz == 0
        assert held[0].nnz == 0
        assert (held.multiply(seen)).nnz == 0  # no pair held out twice
        seen = seen + held
        per_user = np.diff(held.indptr)[1:]
        np.testing.assert_array_equal(per_user, np.clip(counts - k * n_out, 0, n_out))
    assert seen.nnz == np.minimum(counts, 4 * n_out).sum()
    with pytest.raises(DatasetError, match="do not fit in one matrix"):
        inner_folds(x, 0.25, 5, seed=5)


def test_stacked_folds_give_the_ranker_more_labels_and_only_training_pairs() -> None:
    x, friends, _ = _world(2)
    train, test = inner_holdout(x, 0.2, seed=1)
    side = SideInfo(friends=friends)
    gens = ("itemknn", "friends", "trending")
    settings = {**FAST, "holdout": 0.2}
    one = StagedRecommender(generators=gens, folds=1, **settings)
    three = StagedRecommender(generators=gens, folds=3, **settings)
    parts_one = one._training_parts(train, side)
    parts_three = three._training_parts(train, side)
    positives_one = parts_one["fit"].labels.sum()
    positives_three = parts_three["fit"].labels.sum()
    assert positives_three >= 2.5 * positives_one, (positives_three, positives_one)
    assert parts_three["fit"].n_rows >= 2.5 * parts_one["fit"].n_rows
    # every positive is a training pair of its listener, never a test pair
    part = parts_three["fit"]
    users = np.flatnonzero(np.diff(train.indptr) >= 3)
    fit_users = np.setdiff1d(users, _valid_users(three, train))
    fold_of_row = np.repeat(np.arange(3), [(np.diff(h.indptr)[fit_users] > 0).sum()
                                           for _, h in inner_folds(train, 0.2, 3, 0)])  # fmt: skip
    listener = np.concatenate([fit_users[np.diff(h.indptr)[fit_users] > 0]
                               for _, h in inner_folds(train, 0.2, 3, 0)])  # fmt: skip
    assert len(listener) == part.n_rows and len(fold_of_row) == part.n_rows
    pos = part.labels > 0
    rows, items = listener[part.cands.rows[pos]], part.cands.items[pos]
    assert np.asarray(train[rows, items]).ravel().all()
    assert not np.asarray(test[rows, items]).ravel().any()
    keys = rows * train.shape[1] + items
    assert len(np.unique(keys)) == len(keys)  # the folds label different pairs, none twice
    # and a candidate is never an item its fold trained on
    folds = inner_folds(train, 0.2, 3, 0)
    fold_rows = fold_of_row[part.cands.rows]
    for k, (inner_train, _) in enumerate(folds):
        at = fold_rows == k
        pairs = inner_train[listener[part.cands.rows[at]], part.cands.items[at]]
        assert not np.asarray(pairs).any()
    three.fit(train, side)
    assert three.training_pairs["positives"] == int(positives_three)


def _valid_users(model: StagedRecommender, train: sp.csr_matrix) -> np.ndarray:
    """The listeners the pipeline keeps apart for early stopping (its own draw, replayed)."""
    users = np.flatnonzero(np.diff(inner_folds(train, model.holdout, 1, model.seed)[0][1].indptr))
    rng = np.random.default_rng(model.seed)
    return users[rng.random(len(users)) < model.valid_share]


def test_the_published_similar_table_is_the_first_factor_generators_vector_search() -> None:
    """A pipeline led by ALS publishes ALS's similar items, found the way ALS's own table is
    (one exact search over its item vectors), not by a similar_items call per block."""
    from segue.registry.similar import similar_table

    x, friends, _ = _world(2)
    model = StagedRecommender(generators=("als", "trending"), folds=1, **FAST)
    model.fit(x, SideInfo(friends=friends))
    als = model.gens.models["als"]
    assert model._item_space is not None
    np.testing.assert_array_equal(model._item_space(), als._item_space())
    ours, theirs = similar_table(model, x), similar_table(als, x)
    assert ours.ranked and np.array_equal(ours.items, theirs.items)
    led_by_knn = StagedRecommender(generators=("trending", "itemknn"), folds=1, **FAST)
    led_by_knn.fit(x, SideInfo(friends=friends))
    assert led_by_knn._item_space is None  # item-kNN has no vectors: its own similar items
    np.testing.assert_array_equal(
        led_by_knn.similar_items([0, 1], 5),
        led_by_knn.gens.models["itemknn"].similar_items([0, 1], 5),
    )


def test_unseen_stats_match_the_statistics_of_each_rows_finite_unseen_scores() -> None:
    """Lowest score, mean and std over unseen finite entries, whatever the row holds: plain
    rows, a NaN, an infinity, every item seen; the seen entries end at -inf."""
    from segue.models.staged.retrieval import _unseen_stats

    rng = np.random.default_rng(8)
    dense = rng.normal(3.0, 2.0, (5, 40)).astype(np.float32)
    dense[1, 7] = np.nan
    dense[2, 3] = np.inf
    dense[4, :] = 1.5  # constant: std 1 by convention
    mask = rng.random((5, 40)) < 0.2
    mask[3, :] = True  # everything seen
    seen = sp.csr_matrix(mask)
    expected = []
    for r in range(5):
        kept = dense[r][~mask[r] & np.isfinite(dense[r])].astype(np.float64)
        std = kept.std() if len(kept) else 0.0
        expected.append(
            (kept.min() if len(kept) else np.inf, kept.mean() if len(kept) else 0.0, std or 1.0)
        )
    rows = np.repeat(np.arange(5), np.diff(seen.indptr))
    floor, mean, std = _unseen_stats(dense, rows, seen.indices)
    np.testing.assert_allclose(floor, [e[0] for e in expected], rtol=1e-6)
    np.testing.assert_allclose(mean, [e[1] for e in expected], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, [e[2] for e in expected], rtol=1e-4)
    assert np.all(dense[mask] == -np.inf)


def test_top_above_is_the_top_k_of_the_items_scored_above_the_floor() -> None:
    """The same items, order and padding as ranking the whole row and dropping what sits at
    the floor, for rows with few items above it (a tie across the rest), many, or none."""
    from segue.models.base import top_k
    from segue.models.staged.retrieval import _top_above

    rng = np.random.default_rng(11)
    dense = np.zeros((4, 300), dtype=np.float32)
    dense[0, rng.choice(300, 7, replace=False)] = rng.random(7)  # 7 above a tie of zeros
    dense[1] = rng.integers(0, 5, 300)  # many ties above the floor
    dense[3, [5, 9]] = -np.inf  # seen items
    floor = np.array([0.0, 0.0, 0.0, 0.0], dtype=np.float32)
    n = 20
    ids, values = _top_above(dense, floor, n)
    full_ids, full_values = top_k(dense, n)
    kept = full_values > floor[:, None]
    assert np.array_equal(np.isfinite(values), kept)
    assert np.array_equal(ids[kept], full_ids[kept])
    assert np.array_equal(values[kept], full_values[kept])
    assert kept[0].sum() == 7 and kept[1].sum() == n and not kept[2:].any()
    assert np.all(ids[~kept] == 0)


def _dense_top(model, block, k, seen, filters) -> tuple[np.ndarray, np.ndarray]:
    """The whole scored rows ranked, seen and disallowed items at -inf."""
    from segue.models.base import top_k

    dense = model.score(block).astype(np.float32)
    dense[np.repeat(np.arange(len(block)), np.diff(seen.indptr)), seen.indices] = -np.inf
    if filters is not None:
        dense[:, ~filters.allowed] = -np.inf
    return top_k(dense, k)


def test_batch_lists_rank_only_the_candidates_and_equal_the_dense_ranking(fitted) -> None:
    """recommend() ranks a batch's candidates alone; the lists must be those of ranking every
    listener's whole scored row: each stage, re-ranked or not, with filters, with lists the
    candidates leave short (filled with unretrieved items by index), and with an extra
    exclusion mask."""
    from segue.models.base import _top_of
    from segue.models.filters import Filters
    from segue.models.staged.pipeline import STAGES, UNRETRIEVED

    model, train, test, _, _ = fitted
    stage, rerank = model.stage, model.chosen_rerank
    block = np.arange(40, 100)
    allowed = np.ones(train.shape[1], dtype=bool)
    allowed[::7] = False
    filtered = Filters(allowed=allowed)
    filled = 0
    try:
        for model.stage in STAGES:
            for model.chosen_rerank in (0.0, 0.2):
                for filters in (None, filtered):
                    for k, seen in ((10, train[block]), (150, train[block]), (150, test[block])):
                        blocked = None if filters is None else np.flatnonzero(~allowed)
                        scored = model._block_scores(block)
                        assert scored.sparse is not None  # the pipeline scores sparsely
                        ours = _top_of(scored, k, seen, filters, blocked, model.unstored_score)
                        dense = _dense_top(model, block, k, seen, filters)
                        assert np.array_equal(ours[0], dense[0])
                        np.testing.assert_allclose(ours[1], dense[1], rtol=1e-5, atol=1e-5)
                        filled += int((ours[1] == UNRETRIEVED).sum())
    finally:
        model.stage, model.chosen_rerank = stage, rerank
    assert filled > 0  # the short lists were exercised


def test_a_shared_score_row_retrieves_what_scoring_every_listener_densely_does() -> None:
    """Trending gives every listener the same row: ranked once, each listener's top, rank,
    score and z-scores must be the dense path's, with ties (ordered by index), a listener
    who has seen every item at the lowest score (the floor moves up to their lowest unseen
    one), one who has seen everything."""
    from segue.models.popularity import PopularityRecommender

    rng = np.random.default_rng(5)
    n_users, n_items = 30, 60
    plays = sp.random(n_users, n_items, density=0.2, random_state=3, dtype=np.float32).tocsr()
    plays.data = rng.integers(1, 4, len(plays.data)).astype(np.float32)
    plays = plays.tolil()
    plays[:, 50:] = 0
    plays[:, 40:44] = 2.0  # four items tied
    plays[0, 20:] = 1.0  # ten items (50-59) tied at the lowest score, all seen by listener 0
    plays[2, 5:58] = 1.0  # listener 2 has seen all but a few
    plays = plays.tocsr()
    plays.eliminate_zeros()
    users = np.arange(3, n_users)
    shared = Generators(["trending"]).fit(plays, None)
    assert isinstance(shared.models["trending"], PopularityRecommender)
    dense = Generators(["trending"]).fit(plays, None)
    dense._shared = {"trending": None}  # as if the model had no shared row
    for block in (np.arange(n_users), users[:1], np.array([0]), np.array([0, 2])):
        got = shared.retrieve(block, plays[block], 30)  # longer than listener 0's unseen
        want = dense.retrieve(block, plays[block], 30)
        assert np.array_equal(got.rows, want.rows) and np.array_equal(got.items, want.items)
        assert np.array_equal(got.ranks, want.ranks)
        np.testing.assert_array_equal(got.scores, want.scores)
        np.testing.assert_allclose(got.zall, want.zall, rtol=1e-5, atol=1e-6)
    one = shared.retrieve(np.array([0]), plays[[0]], 30)
    assert 0 < len(one) < 20 and not np.isin(one.items, plays[0].indices).any()
    everything = sp.csr_matrix(np.ones((1, n_items), dtype=np.float32))
    assert len(shared.retrieve(np.array([1]), everything, 8)) == 0


@pytest.mark.parametrize("density", [0.08, 0.6])
def test_sparse_scores_retrieve_what_the_filled_in_dense_rows_do(density: float) -> None:
    """Item-kNN retrieves from its stored scores (a listener's neighbours): candidates,
    ranks, scores and z-scores over every unseen item must be the dense path's, for trained
    listeners and history rows; a sparse world leaves most items unstored (floor 0: not
    retrieved), a dense one stores every unseen item (the floor is the lowest stored)."""
    from segue.dataset.splits import inner_holdout

    plays = sp.random(60, 25, density=density, random_state=7, dtype=np.float32).tocsr()
    plays.data = np.ceil(plays.data * 3)
    train, _ = inner_holdout(plays, 0.2, seed=2)
    sparse = Generators(["itemknn", "trending"]).fit(train, None)
    dense = Generators(["itemknn", "trending"]).fit(train, None)
    knn = dense.models["itemknn"]
    knn.score_sparse = lambda users: None  # as a model without sparse scores
    knn.score_history_sparse = lambda history: None
    users = np.arange(60)
    history = sp.random(5, 25, density=0.2, random_state=8, dtype=np.float32).tolil()
    history[4] = 0  # a listener with no plays: nothing stored, nothing retrieved by kNN
    history = history.tocsr()
    history.eliminate_zeros()
    assert sparse.models["itemknn"].score_history_sparse(-history) is None  # could be < 0
    lonely = np.array([4])
    assert len(sparse.retrieve(None, history[lonely], 10, history=history[lonely], raw=train,
                               only=["itemknn"])) == 0  # fmt: skip
    for got, want in (
        (sparse.retrieve(users, train[users], 10), dense.retrieve(users, train[users], 10)),
        (
            sparse.retrieve(None, history, 10, history=history, raw=train),
            dense.retrieve(None, history, 10, history=history, raw=train),
        ),
    ):
        assert np.array_equal(got.rows, want.rows) and np.array_equal(got.items, want.items)
        assert np.array_equal(got.ranks, want.ranks)
        np.testing.assert_array_equal(got.scores, want.scores)
        np.testing.assert_allclose(got.zall, want.zall, rtol=1e-5, atol=1e-6)
        retrieved = got.ranks[:, 0] < got.n
        assert retrieved.any() and (got.scores[retrieved, 0] > 0).all()
    from segue.models.staged.retrieval import _SparseRows

    held = _SparseRows.of(sparse.models["itemknn"].score_sparse(users), train[users], 0.0)
    # both floors are exercised: rows with unstored unseen items, and (dense) rows without
    if density < 0.5:
        assert (held.n_unstored > 0).any()
    else:
        assert (held.n_unstored == 0).all()


def test_the_sparse_scores_are_the_dense_scores_held_sparsely(fitted) -> None:
    """score_sparse stores the candidates and the listener's plays (-inf); filled with the
    unstored score it is score() exactly, so serving ranks the same list from it."""
    model, train, _, _, _ = fitted
    users = np.array([0, 7, 100, 301])
    sparse = model.score_sparse(users)
    dense = np.full(sparse.shape, model.unstored_score, dtype=np.float32)
    coo = sparse.tocoo()
    dense[coo.row, coo.col] = coo.data
    np.testing.assert_array_equal(dense, model.score(users))
    assert np.isneginf(dense[train[users].nonzero()]).all()
    # a listener known by a history (fresh plays): the same, from score_history
    history = train[users].tolil()
    history[0, 3] = 2.0
    history = history.tocsr()
    sparse = model.score_history_sparse(history)
    dense = np.full(sparse.shape, model.unstored_score, dtype=np.float32)
    coo = sparse.tocoo()
    dense[coo.row, coo.col] = coo.data
    np.testing.assert_array_equal(dense, model.score_history(history))
    assert np.isneginf(dense[0, 3])


def _feature_world(seed: int = 21):
    """A hand-made feature context (artists, genres, TF-IDF tags, audio, ages, friends) and a
    block's candidates from two generators, one of which cannot score some pairs (NaN)."""
    from segue.models.staged.features import FeatureContext
    from segue.models.staged.retrieval import Candidates

    rng = np.random.default_rng(seed)
    n_users, n_items, n_artists, n_genres, n_tags = 6, 30, 5, 4, 7
    plays = sp.random(n_users, n_items, density=0.25, random_state=seed, dtype=np.float32).tocsr()
    plays.data = np.ceil(plays.data * 4)
    plays.data[0] = 0.0  # a stored zero is not a play
    artist = rng.integers(-1, n_artists, n_items)  # -1: no artist
    has = artist >= 0
    artists = sp.csr_matrix(
        (np.ones(has.sum(), np.float32), (np.flatnonzero(has), artist[has])),
        shape=(n_items, n_artists),
    )
    genres = sp.csr_matrix((rng.random((n_items, n_genres)) < 0.3).astype(np.float32))
    tags = rng.random((n_items, n_tags)).astype(np.float32) * (rng.random((n_items, n_tags)) < 0.4)
    tags /= np.maximum(np.linalg.norm(tags, axis=1, keepdims=True), 1e-9)
    friends = sp.csr_matrix((rng.random((n_users, n_users)) < 0.4).astype(np.float32))
    played = (plays != 0).astype(np.float32).tocsr()
    age = np.where(rng.random(n_items) < 0.3, np.nan, rng.random(n_items) * 400)
    ctx = FeatureContext(
        item_listeners=np.asarray(played.sum(axis=0)).ravel().astype(np.float32),
        item_plays=np.asarray(plays.sum(axis=0)).ravel().astype(np.float32),
        artist_listeners=rng.integers(0, 50, n_items).astype(np.float32),
        n_tags=np.diff(sp.csr_matrix(tags).indptr).astype(np.float32),
        age_days=age.astype(np.float32),
        audio=rng.random((n_items, 2)).astype(np.float32),
        tags=sp.csr_matrix(tags),
        genres=genres,
        artists=artists,
        friends=friends,
        item_recent=np.linspace(0.0, 5.0, n_items).astype(np.float32),
    )
    block = np.array([1, 4, 5])
    rows = np.repeat(np.arange(3), 8)
    items = np.concatenate([np.sort(rng.choice(n_items, 8, replace=False)) for _ in block])
    scores = rng.normal(size=(len(rows), 2)).astype(np.float32)
    scores[::3, 1] = np.nan
    cands = Candidates(
        rows=rows,
        items=items,
        scores=scores,
        ranks=rng.integers(0, 11, (len(rows), 2)).astype(np.float32),
        n=10,
        zall=rng.normal(size=(len(rows), 2)).astype(np.float32),
    )
    return ctx, cands, plays, played, friends, block, artist, tags


def test_pair_features_match_their_definitions_computed_densely() -> None:
    """Every feature of a hand-made context against its definition in dense numpy: the
    generators' scores standardised per listener (NaN stays NaN), ranks, how many retrieved
    it, best rank, reciprocal-rank sum; activity, mainstreamness, artist diversity; item
    popularity, age, audio; artist affinity (share of the listener's items by the
    candidate's artist; 0 without an artist), genre share, tag cosine, friends who played it
    and their share."""
    from segue.models.staged.features import feature_names, pair_features

    ctx, cands, plays, played, friends, block, artist, tags = _feature_world()
    rows, items = cands.rows, cands.items
    has = artist >= 0
    got = pair_features(ctx, cands, plays[block], friends[block], played)
    names = feature_names(["a", "b"], 2)
    assert got.shape == (len(rows), len(names)) and got.dtype == np.float32
    column = {name: got[:, j] for j, name in enumerate(names)}
    for g, name in enumerate(["a", "b"]):
        score = cands.scores[:, g].astype(np.float64)
        z = np.full(len(rows), np.nan)
        for r in range(len(block)):
            mine = (rows == r) & np.isfinite(score)
            std = score[mine].std()
            z[mine] = (score[mine] - score[mine].mean()) / (std if std > 0 else 1.0)
        np.testing.assert_array_equal(column[f"{name}_score"], cands.scores[:, g])
        np.testing.assert_allclose(column[f"{name}_z"], z, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(column[f"{name}_zall"], cands.zall[:, g])
        np.testing.assert_array_equal(column[f"{name}_rank"], cands.ranks[:, g])
    assert np.isnan(column["b_z"][::3]).all() and np.isfinite(column["a_z"]).all()
    retrieved = cands.ranks < cands.n
    np.testing.assert_array_equal(column["n_generators"], retrieved.sum(axis=1))
    np.testing.assert_array_equal(column["best_rank"], cands.ranks.min(axis=1))
    rrf = np.where(retrieved, 1 / (10 + cands.ranks.astype(np.float64)), 0).sum(axis=1)
    np.testing.assert_allclose(column["rrf"], rrf, rtol=1e-6)
    p = played[block].toarray()
    n_u = np.maximum(p.sum(axis=1), 1)
    by_artist = p @ ctx.artists.toarray()  # listener × artist counts
    np.testing.assert_allclose(column["user_items"], p.sum(axis=1)[rows])
    np.testing.assert_allclose(
        column["user_plays"], np.log1p(plays[block].toarray().sum(axis=1))[rows], rtol=1e-6
    )
    mainstream = (p @ np.log1p(ctx.item_listeners.astype(np.float64))) / n_u
    np.testing.assert_allclose(column["user_mainstream"], mainstream[rows], rtol=1e-5)
    diversity = (by_artist > 0).sum(axis=1) / n_u
    np.testing.assert_allclose(column["user_artist_diversity"], diversity[rows], rtol=1e-6)
    np.testing.assert_allclose(column["item_listeners"], np.log1p(ctx.item_listeners[items]))
    np.testing.assert_allclose(column["item_plays"], np.log1p(ctx.item_plays[items]))
    np.testing.assert_allclose(
        column["artist_listeners"], np.log1p(ctx.artist_listeners[items]), rtol=1e-6
    )
    np.testing.assert_array_equal(column["item_tags"], ctx.n_tags[items])
    np.testing.assert_array_equal(column["item_age_days"], ctx.age_days[items])
    np.testing.assert_array_equal(column["audio_1"], ctx.audio[items, 1])
    affinity = np.where(has[items], by_artist[rows, np.maximum(artist[items], 0)] / n_u[rows], 0)
    genre_share = ((p @ ctx.genres.toarray()) / n_u[:, None])[rows] * ctx.genres.toarray()[items]
    profile = p @ tags
    profile /= np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-12)
    friends_played = (friends[block].toarray() @ played.toarray())[rows, items]
    n_friends = friends[block].toarray().sum(axis=1)
    np.testing.assert_allclose(column["artist_affinity"], affinity, rtol=1e-6)
    np.testing.assert_allclose(column["genre_share"], genre_share.sum(axis=1), rtol=1e-5)
    cosine = (profile[rows] * tags[items]).sum(axis=1)
    np.testing.assert_allclose(column["tag_cosine"], cosine, rtol=1e-5)
    np.testing.assert_allclose(column["friends_played"], friends_played)
    np.testing.assert_allclose(
        column["friends_share"], friends_played / np.maximum(n_friends[rows], 1), rtol=1e-6
    )
    np.testing.assert_allclose(column["user_friends"], n_friends[rows])
    assert column["artist_affinity"].max() > 0
    assert (column["artist_affinity"][~has[items]] == 0).all()
    assert column["friends_played"].max() > 0
    # a listener outside the friend graph: the friend features are 0, the rest unchanged
    alone = pair_features(ctx, cands, plays[block], None, played)
    friendly = [names.index(n) for n in ("user_friends", "friends_played", "friends_share")]
    assert (alone[:, friendly] == 0).all()
    rest = np.setdiff1d(np.arange(len(names)), friendly)
    np.testing.assert_array_equal(alone[:, rest], got[:, rest])


def test_recency_features_weigh_each_play_by_its_recency_and_are_nan_without_times() -> None:
    """The recent artist and genre shares are the shares with each played item weighted by
    its recency (a stored zero is not a play); the item's trending count is log1p of the
    context's; without recency weights the two listener features are NaN and every other
    feature is unchanged."""
    from segue.models.staged.features import feature_names, pair_features

    ctx, cands, plays, played, friends, block, artist, _ = _feature_world()
    history = plays[block]
    weights = np.random.default_rng(4).uniform(0.05, 1.0, history.nnz).astype(np.float32)
    got = pair_features(ctx, cands, history, friends[block], played, weights)
    names = feature_names(["a", "b"], 2)
    column = {name: got[:, j] for j, name in enumerate(names)}
    r = sp.csr_matrix((weights, history.indices, history.indptr), shape=history.shape)
    r = r.multiply(history != 0).toarray()  # a stored zero is not a play
    total = r.sum(axis=1)
    rows, items = cands.rows, cands.items
    by_artist = r @ ctx.artists.toarray()
    has = artist[items] >= 0
    expected_artist = np.where(has, by_artist[rows, np.maximum(artist[items], 0)], 0.0)
    np.testing.assert_allclose(
        column["recent_artist_share"], expected_artist / total[rows], rtol=1e-5
    )
    genre = ((r @ ctx.genres.toarray())[rows] * ctx.genres.toarray()[items]).sum(axis=1)
    np.testing.assert_allclose(column["recent_genre_share"], genre / total[rows], rtol=1e-5)
    np.testing.assert_allclose(column["item_recent_listeners"], np.log1p(ctx.item_recent[items]))
    # weights that favour one listener's plays change that listener's shares only
    assert not np.allclose(column["recent_genre_share"], column["genre_share"] / 1.0)
    undated = pair_features(ctx, cands, history, friends[block], played)
    recent = [names.index("recent_artist_share"), names.index("recent_genre_share")]
    assert np.isnan(undated[:, recent]).all()
    rest = np.setdiff1d(np.arange(len(names)), recent)
    np.testing.assert_array_equal(undated[:, rest], got[:, rest])
    with pytest.raises(SegueError, match="one recency weight per stored history entry"):
        pair_features(ctx, cands, history, friends[block], played, weights[:-1])
    # a context saved before the trending count existed loads with it unknown
    from segue.models.staged.features import FeatureContext

    older = {k: v for k, v in ctx.state().items() if k != "ctx_item_recent"}
    restored = FeatureContext.from_state(older)
    assert np.isnan(restored.item_recent).all() and len(restored.item_recent) == len(ctx.n_tags)
    again = FeatureContext.from_state(ctx.state())
    np.testing.assert_array_equal(again.item_recent, ctx.item_recent)


def test_listener_recency_is_the_half_life_weight_before_each_listeners_newest_play() -> None:
    from segue.models.staged.features import listener_recency

    days = sp.csr_matrix(np.array([[100.0, 0, 130.0, 70.0], [0, 0, 0, 0], [0, 5.0, 0, 0]]))
    got = listener_recency(days, half_life_days=30.0)
    np.testing.assert_allclose(got, [0.5, 1.0, 0.25, 1.0], rtol=1e-6)


def test_temporal_inner_folds_hold_out_the_newest_items_and_train_on_older_ones() -> None:
    """With pair times, fold k holds out each listener's k-th newest band of items and
    trains only on items older than all of them: no fold trains on its own future."""
    x, _, _ = _world()
    rng = np.random.default_rng(3)
    times = x.copy()
    times.data = rng.uniform(1.0, 400.0, x.nnz)
    folds = inner_folds(x, 0.25, 3, seed=5, times=times)
    counts = np.diff(x.indptr)
    n_out = np.where(counts >= 3, np.maximum(1, np.round(0.25 * counts)), 0)
    held_before = sp.csr_matrix(x.shape, dtype=np.float32)
    for k, (train, held) in enumerate(folds):
        np.testing.assert_array_equal(np.diff(held.indptr), np.clip(counts - k * n_out, 0, n_out))
        np.testing.assert_array_equal(
            np.diff(train.indptr), np.maximum(counts - (k + 1) * n_out, 0)
        )
        assert held.multiply(held_before).nnz == 0 and held.multiply(train).nnz == 0
        held_before = held_before + held
        for u in np.flatnonzero(np.diff(held.indptr)):
            when = times[u].toarray().ravel()
            newest_trained = when[train[u].indices].max(initial=-np.inf)
            assert newest_trained < when[held[u].indices].min()
            # the band is the k-th newest: everything newer was held out by earlier folds
            newer = when > when[held[u].indices].max()
            assert np.asarray(held_before[u].toarray() != 0).ravel()[newer].all()
    with pytest.raises(DatasetError, match="times: must hold exactly the stored pairs"):
        inner_folds(x, 0.25, 3, seed=5, times=times[:, :-1])


def test_a_recent_generator_learns_from_plays_weighted_by_their_recency() -> None:
    """``<name>_recent`` is ``<name>`` fitted on each entry times its recency weight; it is
    left out where no times are known, and an unknown base name is an error."""
    x, _, _ = _world()
    recency = x.copy()
    recency.data = np.random.default_rng(2).uniform(0.1, 1.0, x.nnz).astype(np.float32)
    gens = Generators(["ease", "ease_recent"])
    gens.fit(x, None, recency)
    assert gens.active == ["ease", "ease_recent"]
    spec = model_spec("ease")
    expected = spec.weighting.apply(x.multiply(recency).tocsr())
    got = gens.models["ease_recent"]._fitted()
    np.testing.assert_allclose(got.toarray(), expected.toarray(), rtol=1e-6)
    assert not np.allclose(got.toarray(), gens.models["ease"]._fitted().toarray())
    assert Generators(["ease", "ease_recent"]).fit(x, None).active == ["ease"]
    with pytest.raises(SegueError, match="unknown generator 'nope_recent'"):
        Generators(["nope_recent"])


def _drifting_world() -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix, SideInfo]:
    """(train, its pair times in days, test, side): each listener played a first group
    early and moved to a second one (fewer plays, all later); the test holds more of the
    second group. Groups are the catalog's genres."""
    from segue.data.model import Item, ItemKind
    from segue.dataset.catalog import ItemCatalog
    from segue.dataset.idmap import IdMap

    rng = np.random.default_rng(8)
    n_groups, per_group, n_users = 8, 25, 400
    rows, cols, days, test_rows, test_cols = [], [], [], [], []
    for u in range(n_users):
        first, second = rng.choice(n_groups, 2, replace=False)
        old = rng.choice(per_group, 7, replace=False) + first * per_group
        new = rng.choice(per_group, 9, replace=False) + second * per_group
        for i in old:
            rows.append(u), cols.append(i), days.append(rng.uniform(0, 120))
        for i in new[:4]:
            rows.append(u), cols.append(i), days.append(rng.uniform(160, 200))
        test_rows += [u] * 5
        test_cols += list(new[4:])
    shape = (n_users, n_groups * per_group)
    train = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
    times = sp.csr_matrix((np.asarray(days) + 20_000.0, (rows, cols)), shape=shape)
    test = sp.csr_matrix((np.ones(len(test_rows), np.float32), (test_rows, test_cols)), shape)
    ids = IdMap([f"t{i}" for i in range(shape[1])])
    records = [
        Item(id=f"t{i}", kind=ItemKind.TRACK, title=f"track {i}", genres=(f"g{i // per_group}",))
        for i in range(shape[1])
    ]
    return train, times, test, SideInfo(catalog=ItemCatalog.from_items(records, ids))


def test_knowing_when_each_play_happened_follows_a_listener_whose_taste_moved(
    tmp_path: Path,
) -> None:
    """The same pipeline with and without the pairs' times, on listeners who moved from one
    genre to another: with them the recent genre share is its top feature and the new
    genre comes first; without them it is NaN and the old genre's weight of plays wins.
    Saved and loaded, the dated model (its recency weights, its recent generator) scores
    the same."""
    train, times, test, side = _drifting_world()
    settings = {**FAST, "generators": ("itemknn", "trending", "itemknn_recent"), "n_candidates": 60}
    blind = StagedRecommender(**settings).fit(train, side)
    dated = StagedRecommender(**settings, inner_split="temporal", folds=2, recency_days=30.0)
    dated.fit(train, side, pair_times=times)
    users = np.arange(train.shape[0])
    without = _ndcg(blind.score(users), train, test)
    with_times = _ndcg(dated.score(users), train, test)
    assert with_times > without + 0.1, (with_times, without)
    assert next(iter(dated.feature_importance())) == "recent_genre_share"
    assert blind.feature_importance()["recent_genre_share"] == 0
    assert "itemknn_recent" in dated.gens.active and "itemknn_recent" not in blind.gens.active
    dated.save(tmp_path / "dated")
    loaded = StagedRecommender.load(tmp_path / "dated")
    np.testing.assert_array_equal(loaded.score(users[:50]), dated.score(users[:50]))
    with pytest.raises(SegueError, match="inner_split 'temporal' needs the pairs' times"):
        StagedRecommender(**settings, inner_split="temporal").fit(train, side)
    with pytest.raises(SegueError, match="pair_times: must hold exactly the stored pairs"):
        StagedRecommender(**settings).fit(train, side, pair_times=times[:, :-1])
    _served_histories_keep_the_trained_recency(dated, train, side)


def test_the_inner_split_follows_time_where_the_plays_are_dated() -> None:
    """The default ("auto") learns from each listener's newest plays where the pairs' times
    are given — the same model as the temporal split — and from random ones where they
    are not; the two splits give different models on a world whose taste moves."""
    train, times, _, side = _drifting_world()
    settings = {**FAST, "generators": ("itemknn", "trending"), "n_candidates": 40, "folds": 2}
    users = np.arange(60)

    def scores(split: str, dated: bool) -> np.ndarray:
        model = StagedRecommender(**settings, inner_split=split)
        model.fit(train, side, pair_times=times if dated else None)
        return model.score(users)

    auto_dated = scores("auto", True)
    np.testing.assert_array_equal(auto_dated, scores("temporal", True))
    assert not np.array_equal(auto_dated, scores("random", True))
    np.testing.assert_array_equal(scores("auto", False), scores("random", False))
    assert StagedRecommender().inner_split == "auto"
    with pytest.raises(SegueError, match="inner_split must be one of auto, random, temporal"):
        StagedRecommender(inner_split="newest")


def _served_histories_keep_the_trained_recency(
    model: StagedRecommender, train: sp.csr_matrix, side: SideInfo
) -> None:
    """A served history is the listener's training row plus fresh plays: told whose row
    it is, the pipeline keeps their trained plays' recency and counts the fresh ones as
    newest; serving tells it."""
    from segue.models.base import take_rows
    from segue.serving.session import rerank_for_session

    u = 7
    fresh_item = int(np.setdiff1d(np.arange(train.shape[1]), train[u].indices)[0])
    history = train[u] + sp.csr_matrix(([1.0], ([0], [fresh_item])), shape=(1, train.shape[1]))
    history = sp.csr_matrix(history, dtype=np.float32)
    from segue.models.staged.pipeline import _known_values

    ones = np.ones(history.nnz)
    weights = _known_values(history, np.array([u]), model._recency, ones)
    stored = take_rows(model._recency, [u])
    fresh_at = int(np.flatnonzero(history.indices == fresh_item)[0])
    np.testing.assert_array_equal(np.delete(weights, fresh_at), stored.data)
    assert weights[fresh_at] == 1.0 and stored.data.min() < 0.5
    assert (_known_values(history, None, model._recency, ones) == 1.0).all()
    told = model.score_history_sparse(history, known=np.array([u]))
    untold = model.score_history_sparse(history)
    assert (told != untold).nnz > 0
    with pytest.raises(SegueError, match="1 known listeners for 2 history rows"):
        model.score_history_sparse(sp.vstack([history, history]).tocsr(), known=np.array([u]))
    items, _ = rerank_for_session(model, u, history, side.catalog, None, 10)

    def top(scores: sp.csr_matrix) -> np.ndarray:
        dense = np.full(train.shape[1], model.unstored_score, np.float64)
        dense[scores.indices] = scores.data
        dense[history.indices] = -np.inf
        return np.lexsort((np.arange(len(dense)), -dense))[:10]

    np.testing.assert_array_equal(items, top(told))
    assert not np.array_equal(top(told), top(untold))  # so serving must say whose row it is


def test_pair_features_need_each_listeners_candidates_together() -> None:
    """The compiled pass reads each listener's candidates as one run: unsorted rows are an
    error, not silently wrong features; a listener without candidates is fine."""
    from segue.errors import SegueError
    from segue.models.staged.features import pair_features
    from segue.models.staged.retrieval import Candidates

    ctx, cands, plays, played, friends, block, _, _ = _feature_world()
    shuffled = Candidates(cands.rows[::-1].copy(), cands.items, cands.scores, cands.ranks,
                          cands.n, cands.zall)  # fmt: skip
    with pytest.raises(SegueError, match="sorted"):
        pair_features(ctx, shuffled, plays[block], friends[block], played)
    middle_out = cands.rows != 1
    fewer = Candidates(cands.rows[middle_out], cands.items[middle_out],
                       cands.scores[middle_out], cands.ranks[middle_out], cands.n,
                       cands.zall[middle_out])  # fmt: skip
    got = pair_features(ctx, fewer, plays[block], friends[block], played)
    full = pair_features(ctx, cands, plays[block], friends[block], played)
    # the z-scores are per listener, so rows 0 and 2 keep every feature
    np.testing.assert_array_equal(got, full[middle_out])


def _calibrate_reference(items, scores, target, genres, weight, k) -> np.ndarray:
    """Steck's greedy builder written plainly over numpy arrays (the definition)."""
    shares = genres.toarray() / np.maximum(genres.toarray().sum(axis=1, keepdims=True), 1)
    out = np.full((len(items), k), -1, dtype=np.int64)
    for r in range(len(items)):
        cand = items[r][items[r] >= 0]
        s = scores[r][items[r] >= 0].astype(np.float64)
        rel = (s - s.min()) / (s.max() - s.min()) if s.max() > s.min() else np.ones_like(s)
        p, g = target[r], shares[cand]
        acc, taken, gained = np.zeros_like(p), np.zeros(len(cand), bool), 0.0
        for slot in range(min(k, len(cand))):
            q = acc[None, :] + g
            q = q / np.where(q.sum(axis=1, keepdims=True) > 0, q.sum(axis=1, keepdims=True), 1)
            q = 0.99 * q + 0.01 * p[None, :]
            on = p > 0
            kl = (p[on] * np.log(p[on] / q[:, on])).sum(axis=1)
            objective = (1 - weight) * (gained + rel) - weight * kl
            objective[taken] = -np.inf
            best = int(np.argmax(objective))
            taken[best], gained, acc = True, gained + rel[best], acc + g[best]
            out[r, slot] = cand[best]
    return out


def test_calibration_follows_the_listeners_genre_mix_as_the_greedy_definition_does() -> None:
    """A listener 70 % rock, 30 % jazz whose highest-scored candidates are all rock gets jazz
    into the calibrated top 10 (and the ranker's order at weight 0); lists equal the plain
    definition of the greedy builder on random candidates, genres and weights."""
    from segue.models.staged.rerank import calibrate

    n_items = 40
    rock, jazz = np.arange(0, 20), np.arange(20, 40)
    genres = sp.csr_matrix(
        (np.ones(n_items, np.float32), (np.arange(n_items), (np.arange(n_items) >= 20))),
        shape=(n_items, 2),
    )
    items = np.concatenate([rock, jazz])[None, :]  # ranked: every rock item first
    scores = np.linspace(1.0, 0.0, n_items)[None, :]
    target = np.array([[0.7, 0.3]])
    plain = calibrate(items, scores, target, genres, 0.0, 10)
    assert plain[0].tolist() == rock[:10].tolist()
    mixed = calibrate(items, scores, target, genres, 0.9, 10)[0]
    assert 2 <= np.isin(mixed, jazz).sum() <= 4  # about 30 % of ten
    rng = np.random.default_rng(3)
    many = sp.csr_matrix((rng.random((60, 5)) < 0.35).astype(np.float32))
    for weight in (0.05, 0.3, 0.8):
        cands = np.stack([rng.choice(60, 25, replace=False) for _ in range(6)])
        cands[1, 20:] = -1  # a short list
        scores = rng.normal(size=cands.shape)
        target = rng.dirichlet(np.ones(5), size=6) * (rng.random((6, 5)) < 0.7)
        target /= np.maximum(target.sum(axis=1, keepdims=True), 1e-12)
        got = calibrate(cands, scores, target, many, weight, 10)
        assert np.array_equal(got, _calibrate_reference(cands, scores, target, many, weight, 10))


def test_the_feature_context_keeps_release_ages_apart_from_the_plays_times() -> None:
    """With the pairs' times known, items keep their age since release (one per item), and
    the trending count weighs each listener by the half-life before the newest play."""
    import datetime as dt

    from segue.data.model import Item, ItemKind
    from segue.dataset.catalog import ItemCatalog
    from segue.dataset.idmap import IdMap
    from segue.models.staged.features import TRENDING_HALF_LIFE_DAYS, FeatureContext

    train, times, _, _ = _drifting_world()
    n_items = train.shape[1]
    released = [dt.date(2020, 1, 1) + dt.timedelta(days=3 * i) for i in range(n_items)]
    records = [
        Item(id=f"t{i}", kind=ItemKind.TRACK, title=f"track {i}", release_date=released[i])
        for i in range(n_items)
    ]
    side = SideInfo(catalog=ItemCatalog.from_items(records, IdMap([r.id for r in records])))
    undated = FeatureContext.build(train, side)
    dated = FeatureContext.build(train, side, times.data)
    expected_age = 3.0 * (n_items - 1 - np.arange(n_items))
    np.testing.assert_allclose(undated.age_days, expected_age)
    np.testing.assert_allclose(dated.age_days, expected_age)
    since = times.data.max() - times.data
    trending = np.bincount(times.indices, np.exp2(-since / TRENDING_HALF_LIFE_DAYS), n_items)
    np.testing.assert_allclose(dated.item_recent, trending, rtol=1e-5)
    assert np.isnan(undated.item_recent).all()


def test_context_features_read_the_requests_daypart_and_are_nan_without_one() -> None:
    """Given each row's request daypart and each played item's: the genre's and the item's
    lift in that daypart (the genre lift averaged over the candidate's genres), the
    listener's share of plays in it and their genre share over those plays, shrunk towards
    their overall genre share, and their genre share with each genre moved by its lift;
    NaN for a row whose daypart is unknown, and every other
    feature as without context. The lifts are the log of each daypart's share of a genre's
    (an item's, shrunk) plays over its share of all plays."""
    from segue.models.staged.features import (
        ITEM_DAYPART_PRIOR,
        USER_DAYPART_PRIOR,
        daypart_lifts,
        feature_names,
        pair_features,
    )

    ctx, cands, plays, played, friends, block, _, _ = _feature_world()
    rng = np.random.default_rng(5)
    all_parts = rng.integers(0, 4, plays.nnz)
    genre_lift, item_lift = daypart_lifts(plays, ctx.genres, all_parts)
    by_item = np.zeros((plays.shape[1], 4))
    np.add.at(by_item, (plays.indices, all_parts), 1.0)
    share = (by_item.sum(axis=0) + 1) / (by_item.sum() + 4)
    by_genre = ctx.genres.toarray().T @ by_item
    np.testing.assert_allclose(
        genre_lift,
        np.log((by_genre + share) / (by_genre.sum(1, keepdims=True) + 1)) - np.log(share),
        rtol=1e-5,
    )
    shrunk = by_item + ITEM_DAYPART_PRIOR * share
    expected_items = np.log(shrunk / shrunk.sum(1, keepdims=True)) - np.log(share)
    np.testing.assert_allclose(item_lift, expected_items, rtol=1e-5, atol=1e-6)
    assert daypart_lifts(plays, ctx.genres, None)[1].shape == (plays.shape[1], 0)
    ctx.genre_daypart, ctx.item_daypart = genre_lift, item_lift

    history = plays[block]
    entry = rng.integers(0, 4, history.nnz)
    request = np.array([2, -1, 0])
    got = pair_features(ctx, cands, history, friends[block], played, None, request, entry)
    names = feature_names(["a", "b"], 2)
    column = {name: got[:, j] for j, name in enumerate(names)}
    rows, items = cands.rows, cands.items
    d = request[rows]
    known = d >= 0
    genres = ctx.genres.toarray()
    played_rows = (history != 0).toarray()
    in_part = np.zeros(history.shape)
    coo = history.tocoo()
    mine = entry == request[coo.row]
    in_part[coo.row[mine], coo.col[mine]] = 1.0
    in_part *= played_rows
    n_played = played_rows.sum(axis=1)
    n_part = in_part.sum(axis=1)
    weight = genres[items].sum(axis=1)
    lift = (genres[items] * genre_lift[:, np.maximum(d, 0)].T).sum(axis=1)
    expected = np.where(weight > 0, lift / np.maximum(weight, 1e-9), 0.0)
    np.testing.assert_allclose(column["daypart_genre_lift"][known], expected[known], rtol=1e-5)
    np.testing.assert_allclose(
        column["item_daypart_lift"][known], item_lift[items, d][known], rtol=1e-6
    )
    np.testing.assert_allclose(
        column["user_daypart_share"][known], (n_part / n_played)[rows][known], rtol=1e-6
    )
    overall = ((played_rows @ genres)[rows] * genres[items]).sum(axis=1) / n_played[rows]
    in_daypart = ((in_part @ genres)[rows] * genres[items]).sum(axis=1)
    shrunk_share = (in_daypart + USER_DAYPART_PRIOR * overall) / (n_part[rows] + USER_DAYPART_PRIOR)
    np.testing.assert_allclose(
        column["user_daypart_genre_share"][known], shrunk_share[known], rtol=1e-5
    )
    profile = played_rows @ genres  # the listener's plays per genre
    moved = profile[rows] * np.exp(genre_lift[:, np.maximum(d, 0)].T)  # per candidate
    tilted = (moved * genres[items]).sum(axis=1) / moved.sum(axis=1)
    np.testing.assert_allclose(column["daypart_genre_share"][known], tilted[known], rtol=1e-5)
    context = [names.index(n) for n in names[-5:]]
    assert names[-5] == "daypart_genre_lift"
    assert np.isnan(got[~known][:, context]).all() and known.any() and (~known).any()
    plain = pair_features(ctx, cands, history, friends[block], played)
    assert np.isnan(plain[:, context]).all()
    rest = np.setdiff1d(np.arange(len(names)), context)
    np.testing.assert_array_equal(plain[:, rest], got[:, rest])
    with pytest.raises(SegueError, match="one request daypart per history row"):
        pair_features(ctx, cands, history, friends[block], played, None, request[:2], entry)
    with pytest.raises(SegueError, match="one daypart per stored history entry"):
        pair_features(ctx, cands, history, friends[block], played, None, request, entry[:-1])
    restored = type(ctx).from_state(ctx.state())
    np.testing.assert_array_equal(restored.item_daypart, item_lift)
    older = {k: v for k, v in ctx.state().items() if "daypart" not in k}
    assert type(ctx).from_state(older).daypart_arrays[1].shape == (plays.shape[1], 0)


def _daypart_world() -> tuple[sp.csr_matrix, sp.csr_matrix, SideInfo, dict[int, sp.csr_matrix]]:
    """(train, pair times, side, test per daypart): each listener (in Berlin) plays one
    genre in the morning and another in the evening, as many plays of each; the test holds
    more of each genre, asked for in its daypart. Nothing but the time of day tells which
    genre a request wants."""
    import datetime as dt

    from segue.data.model import Item, ItemKind, User
    from segue.dataset.catalog import ItemCatalog
    from segue.dataset.idmap import IdMap
    from segue.dataset.side import UserTable

    rng = np.random.default_rng(12)
    n_groups, per_group, n_users = 8, 25, 360
    morning = _days_at(dt.datetime(2024, 3, 4, 6, 0, tzinfo=dt.UTC))  # 07:00 in Berlin
    evening = morning + 13 / 24  # 20:00
    rows, cols, days = [], [], []
    tests: dict[int, tuple[list[int], list[int]]] = {1: ([], []), 3: ([], [])}
    for u in range(n_users):
        groups = rng.choice(n_groups, 2, replace=False)
        for group, at, part in zip(groups, (morning, evening), (1, 3), strict=True):
            items = rng.choice(per_group, 11, replace=False) + group * per_group
            for i in items[:7]:
                rows.append(u), cols.append(i), days.append(at + rng.integers(0, 60))
            tests[part][0].extend([u] * 4)
            tests[part][1].extend(items[7:])
    shape = (n_users, n_groups * per_group)
    train = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
    times = sp.csr_matrix((np.asarray(days, np.float64), (rows, cols)), shape=shape)
    test = {
        part: sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=shape)
        for part, (r, c) in tests.items()
    }
    items = IdMap([f"t{i}" for i in range(shape[1])])
    records = [
        Item(id=f"t{i}", kind=ItemKind.TRACK, title=f"track {i}", genres=(f"g{i // per_group}",))
        for i in range(shape[1])
    ]
    users = IdMap([f"u{u}" for u in range(n_users)])
    joined = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    people = [User(id=f"u{u}", signup_at=joined, timezone="Europe/Berlin") for u in range(n_users)]
    side = SideInfo(
        catalog=ItemCatalog.from_items(records, items), users=UserTable.from_users(people, users)
    )
    return train, times, side, test


def _days_at(when) -> float:
    return when.timestamp() / 86_400


def test_the_request_daypart_picks_the_genre_a_listener_plays_at_that_time(tmp_path: Path) -> None:
    """Fitted with the pairs' times and the listeners' zones, the pipeline learns per
    listener and daypart and reads the request's daypart: each listener's morning genre
    comes first in the morning and their evening genre in the evening, where a request
    without a daypart cannot tell them apart. ``recommend`` passes the dayparts on (a model
    that reads none ranks the same with them); saved and loaded, it scores the same; a bad
    daypart is a one-line error; a served history's trained plays keep their dayparts."""
    from segue.models.base import take_rows
    from segue.models.staged.pipeline import _known_values

    train, times, side, test = _daypart_world()
    model = StagedRecommender(**{**FAST, "generators": ("itemknn", "popularity")}, n_candidates=80)
    model.fit(train, side, pair_times=times)
    users = np.arange(train.shape[0])
    by_part, blind = {}, {}
    for part, relevant in test.items():
        dayparts = np.full(len(users), part, np.int8)
        by_part[part] = _ndcg(model.score(users, dayparts=dayparts), train, relevant)
        blind[part] = _ndcg(model.score(users), train, relevant)
        listed = model.recommend(users[:40], 10, dayparts=dayparts[:40]).items
        held = model.score_sparse(users[:40], dayparts=dayparts[:40])
        dense = np.full((40, train.shape[1]), model.unstored_score, np.float32)
        coo = held.tocoo()
        dense[coo.row, coo.col] = coo.data
        dense[train[:40].toarray() > 0] = -np.inf
        expected = np.argsort(-dense, axis=1, kind="stable")[:, :10]
        np.testing.assert_array_equal(listed, expected)
    assert min(by_part.values()) > 1.5 * max(blind.values()), (by_part, blind)
    top = list(model.feature_importance())[:3]
    assert {"user_daypart_genre_share", "user_daypart_share"} & set(top), top
    model.save(tmp_path / "dayparts")
    loaded = StagedRecommender.load(tmp_path / "dayparts")
    morning = np.full(50, 1, np.int8)
    np.testing.assert_array_equal(
        loaded.score(users[:50], dayparts=morning), model.score(users[:50], dayparts=morning)
    )
    with pytest.raises(SegueError, match="a request daypart must be -1"):
        model.score(users[:2], dayparts=np.array([1, 4]))
    with pytest.raises(SegueError, match="1 request dayparts for 2 rows"):
        model.score(users[:2], dayparts=np.array([1]))
    hybrid = model_spec("hybrid").build().fit(train)
    np.testing.assert_array_equal(
        hybrid.recommend(users[:20], 5, dayparts=morning[:20]).items,
        hybrid.recommend(users[:20], 5).items,
    )
    # serving: the request's daypart reaches the model, from the local time or the zone
    import datetime as dt

    from segue.data.model import User
    from segue.serving.live import LiveRequest, _request_daypart
    from segue.serving.session import rerank_for_session

    def served(daypart: int) -> np.ndarray:
        return rerank_for_session(model, 5, None, side.catalog, None, 10, daypart=daypart)[0]

    def top(row: int, daypart: int) -> np.ndarray:
        sparse = model.score_sparse(np.array([row]), dayparts=np.array([daypart]))
        held = np.full(train.shape[1], model.unstored_score, np.float64)
        held[sparse.indices] = sparse.data
        held[train[row].indices] = -np.inf
        return np.lexsort((np.arange(len(held)), -held))[:10]

    np.testing.assert_array_equal(served(1), top(5, 1))
    np.testing.assert_array_equal(served(3), top(5, 3))
    assert not np.array_equal(served(1), served(3))
    joined = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    berlin = User(id="u5", signup_at=joined, timezone="Europe/Berlin")
    evening_utc = int(dt.datetime(2024, 7, 1, 18, 0, tzinfo=dt.UTC).timestamp() * 1000)
    assert _request_daypart(LiveRequest(user_id="u5", now_ms=evening_utc), berlin) == 3
    asked = LiveRequest(user_id="u5", now_ms=evening_utc, local_time=dt.datetime(2024, 7, 1, 8))
    assert _request_daypart(asked, berlin) == 1  # the client's local time comes first
    assert _request_daypart(LiveRequest(user_id="u5", now_ms=evening_utc), None) == -1
    # a served history: the training row keeps its dayparts, a fresh play is played now
    u = 3
    fresh_item = int(np.setdiff1d(np.arange(train.shape[1]), train[u].indices)[0])
    history = train[u] + sp.csr_matrix(([1.0], ([0], [fresh_item])), shape=(1, train.shape[1]))
    history = sp.csr_matrix(history, dtype=np.float32)
    now = np.full(history.nnz, 2, np.int8)
    parts = _known_values(history, np.array([u]), model._dayparts, now)
    fresh_at = int(np.flatnonzero(history.indices == fresh_item)[0])
    np.testing.assert_array_equal(np.delete(parts, fresh_at), take_rows(model._dayparts, [u]).data)
    assert parts[fresh_at] == 2 and set(np.delete(parts, fresh_at)) == {1, 3}


def test_a_ranker_saved_by_an_earlier_version_reads_its_own_columns(fitted, tmp_path: Path) -> None:
    """A pipeline saved before the context features existed has a ranker that knows fewer
    features than this version computes: loaded, it is given its own columns by name (and
    a ranker that reads a feature no longer computed is a one-line error)."""
    from segue.models.base import take_rows
    from segue.models.staged.ranker import Ranker

    model, train, _, _, _ = fitted
    users = np.arange(80)
    cands, features = model._features(users)
    names = model.ranker.feature_names
    older_names = [n for n in names if "daypart" not in n]
    assert len(older_names) == len(names) - 5
    columns = [names.index(n) for n in older_names]
    labels = (np.random.default_rng(3).random(len(cands.rows)) < 0.2).astype(np.float32)
    older = Ranker(older_names, n_estimators=10, min_child_samples=5)
    older.fit(features[:, columns], labels, np.bincount(cands.rows))
    model.save(tmp_path / "now")
    copy = StagedRecommender.load(tmp_path / "now")
    copy.ranker = older
    copy.save(tmp_path / "older")
    loaded = StagedRecommender.load(tmp_path / "older")
    loaded.stage = "ranker"
    _, _, scores = loaded._candidate_scores(cands, features, take_rows(train, users))
    np.testing.assert_allclose(scores, older.predict(features[:, columns]), rtol=1e-6)
    assert loaded.score_sparse(users[:5]).nnz > 0
    loaded.ranker = Ranker([*older_names, "a_feature_from_elsewhere"])
    with pytest.raises(SegueError, match="reads features this version does not compute"):
        loaded._ranker_input(features)


def test_a_folds_daypart_profile_leaves_out_the_days_of_its_held_out_plays() -> None:
    """In an inner fold, a listener's plays on a day on which they have a held-out play
    lose their daypart (their session-mates would tell the ranker what no future request
    knows); other listeners' plays on that day, and the listener's other days, keep it."""
    from segue.models.staged.pipeline import _apart_from_held_days

    shape = (3, 6)
    # listener 0 plays on days 100 and 101, listener 1 on day 100, listener 2 on 102
    rows = [0, 0, 0, 0, 1, 1, 2]
    cols = [0, 1, 2, 3, 0, 4, 5]
    days = [100.2, 100.7, 101.1, 101.3, 100.5, 103.0, 102.4]
    times = sp.csr_matrix((np.array(days), (rows, cols)), shape=shape)
    train_at = [0, 2, 3, 5, 6]  # entries of times kept in the fold's training part
    train = sp.csr_matrix(
        (np.ones(5, np.float32), ([rows[i] for i in train_at], [cols[i] for i in train_at])),
        shape=shape,
    )
    parts = sp.csr_matrix((np.array([1, 2, 2, 3, 0], np.int8), train.indices, train.indptr), shape)
    held = sp.csr_matrix((np.ones(2, np.float32), ([0, 1], [1, 0])), shape=shape)  # day 100
    apart = _apart_from_held_days(parts, times, held)
    np.testing.assert_array_equal(apart.indices, parts.indices)
    # listener 0's day-100 play (item 0) loses it; their day-101 plays keep theirs;
    # listener 1's held-out play is on day 100 but their training play is on day 103
    np.testing.assert_array_equal(apart.data, [-1, 2, 2, 3, 0])
