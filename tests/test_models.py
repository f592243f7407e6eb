"""Popularity and item-kNN against hand-computed cases, and their save/load round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from segue.errors import SegueError
from segue.models.base import take_rows, top_k
from segue.models.itemknn import ItemKNNRecommender
from segue.models.popularity import PopularityRecommender

# 4 users x 4 items; items 0 and 1 always co-occur, item 3 is only user 3's
R = sp.csr_matrix(
    np.array(
        [
            [1, 1, 0, 0],
            [1, 1, 1, 0],
            [1, 0, 1, 0],
            [0, 0, 0, 1],
        ],
        dtype=np.float32,
    )
)


def test_popularity_counts_listeners_and_excludes_seen() -> None:
    model = PopularityRecommender().fit(R)
    assert model.listeners.tolist() == [3, 2, 2, 1]
    recs = model.recommend([3], k=3)
    # user 3 has item 3; the rest by listeners, ties (items 1, 2) by index
    assert recs.items[0].tolist() == [0, 1, 2]
    assert recs.reasons(0)[0].code == "popular"
    assert recs.reasons(0)[0].value == 3


def test_itemknn_cosine_with_shrinkage_by_hand() -> None:
    model = ItemKNNRecommender(neighbours=10, shrink=1.0).fit(R)
    # cos(0,1) = 2 / (sqrt(3) sqrt(2)); 2 common listeners → × 2/(2+1)
    expected01 = 2 / (np.sqrt(3) * np.sqrt(2)) * 2 / 3
    assert model.similarity[0, 1] == pytest.approx(expected01, rel=1e-5)
    assert model.similarity[1, 0] == pytest.approx(expected01, rel=1e-5)
    # cos(1,2) = 1 / 2, 1 common listener → × 1/2
    assert model.similarity[1, 2] == pytest.approx(0.25, rel=1e-5)
    assert model.similarity[0, 0] == 0  # an item is not its own neighbour
    assert model.similarity[0, 3] == 0  # never co-listened


def test_itemknn_recommends_co_listened_items_with_a_reason() -> None:
    model = ItemKNNRecommender(neighbours=10, shrink=0.0).fit(R)
    recs = model.recommend([2], k=1)  # user 2 has items 0 and 2
    assert recs.items[0].tolist() == [1]
    reason = recs.reasons(0)[0]
    assert reason.code == "because_you_played"
    # item 1 is closer to item 0 (cos 0.816) than to item 2 (cos 0.5)
    assert reason.anchor_item == 0


def test_itemknn_neighbourhood_is_pruned() -> None:
    model = ItemKNNRecommender(neighbours=1, shrink=0.0).fit(R)
    assert np.diff(model.similarity.indptr).max() == 1
    assert model.similar_items(np.array([1]), k=2)[0].tolist() == [0, -1]


def test_save_and_load_give_identical_recommendations(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = sp.csr_matrix((rng.random((60, 40)) < 0.15).astype(np.float32))
    for model in (ItemKNNRecommender(neighbours=5, shrink=2.0), PopularityRecommender()):
        model.fit(x)
        model.save(tmp_path / model.name)
        loaded = type(model).load(tmp_path / model.name)
        before = model.recommend(np.arange(60), k=7)
        after = loaded.recommend(np.arange(60), k=7)
        np.testing.assert_array_equal(before.items, after.items)
        np.testing.assert_allclose(before.scores, after.scores)


def test_load_refuses_another_models_folder(tmp_path: Path) -> None:
    PopularityRecommender().fit(R).save(tmp_path / "m")
    with pytest.raises(SegueError, match="popularity"):
        ItemKNNRecommender.load(tmp_path / "m")


def test_unfitted_model_says_so() -> None:
    with pytest.raises(SegueError, match="not fitted"):
        PopularityRecommender().recommend([0])


def test_ties_at_the_kth_place_go_by_index_for_one_row_and_for_many() -> None:
    # a listener scored alone at request time must get the list a batch of listeners gets
    rng = np.random.default_rng(5)
    scores = np.round(rng.standard_normal((6, 20_000)), 1).astype(np.float32)
    together, _ = top_k(scores, 25)
    for row in range(6):
        alone, _ = top_k(scores[row : row + 1], 25)
        assert alone[0].tolist() == together[row].tolist()
        assert together[row].tolist() == np.argsort(-scores[row], kind="stable")[:25].tolist()


def test_top_k_orders_by_score_then_index() -> None:
    scores = np.array([[0.5, 0.9, 0.7, 0.1, 0.9], [0.0, 0.1, 0.2, 0.3, 0.4]])
    items, values = top_k(scores, 3)
    assert items.tolist() == [[1, 4, 2], [4, 3, 2]]
    assert values[0].tolist() == [0.9, 0.9, 0.7]
    full, _ = top_k(scores, 5)
    assert full[0].tolist() == [1, 4, 2, 0, 3]


@pytest.mark.parametrize("order", ["grouped", "shuffled"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ranked_pairs_are_each_rows_best_values_ties_by_item(order: str, dtype: type) -> None:
    # grouped rows take the compiled per-row selection, shuffled ones the global sort: both
    # must be each row's pairs sorted by (-value, item), cut at depth, padded
    from segue.ranking import rank_pairs

    rng = np.random.default_rng(5)
    for trial in range(40):
        n_rows, n_items = int(rng.integers(1, 30)), int(rng.integers(1, 400))
        n = int(rng.integers(0, 3_000))
        rows = np.sort(rng.integers(0, n_rows, n))
        items = rng.integers(0, n_items, n)
        values = rng.standard_normal(n).astype(dtype)
        if trial % 2:  # many ties, some across the cut
            values = np.round(values, 0).astype(dtype)
        if trial % 5 == 0:
            values[rng.random(n) < 0.2] = -np.inf  # finite values only take the fast path
        if order == "shuffled":
            shuffle = rng.permutation(n)
            rows, items, values = rows[shuffle], items[shuffle], values[shuffle]
        depth = int(rng.integers(1, 60))
        ids, top = rank_pairs(rows, items, values, n_rows, depth, pad=-7)
        assert ids.shape == top.shape == (n_rows, depth) and top.dtype == np.float32
        for r in range(n_rows):
            pairs = sorted(zip(-values[rows == r], items[rows == r], strict=True))[:depth]
            want = [int(i) for _, i in pairs]
            assert ids[r].tolist() == want + [-7] * (depth - len(want))
            got = top[r, : len(want)]
            assert got.tolist() == [float(np.float32(-v)) for v, _ in pairs]
            assert np.isneginf(top[r, len(want) :]).all()


@pytest.mark.parametrize("shape", ["plain", "ties", "mostly_masked"])
def test_one_listener_top_k_and_kth_largest_match_a_full_sort(shape: str) -> None:
    # the request-time shortcut (a sampled threshold) must give exactly what sorting gives
    from segue.ranking import kth_largest

    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(9_000, 40_000))
        row = rng.standard_normal(n).astype(np.float32)
        if shape == "ties":
            row = np.round(row, 1)
        if shape == "mostly_masked":
            row[rng.random(n) < 0.995] = -np.inf
        for k in (1, 10, 40):
            assert kth_largest(row, k) == np.sort(row)[n - k]
            items, values = top_k(row[None, :], k)
            expected = np.argsort(-row, kind="stable")[:k]
            assert items[0].tolist() == expected.tolist()
            assert values[0].tolist() == row[expected].tolist()


def test_trending_weighs_recent_listening_more() -> None:
    import datetime as dt

    from segue.data.log import InteractionLog
    from segue.dataset import Interactions, Recency

    day = 86_400_000
    now = int(dt.datetime(2024, 6, 1, tzinfo=dt.UTC).timestamp() * 1000)
    # item "old" had 3 listeners 60 days ago; item "new" 2 listeners today
    log = InteractionLog(
        user_ids=["a", "b", "c", "d", "e"],
        item_ids=["old", "new"],
        user=[0, 1, 2, 3, 4],
        item=[0, 0, 0, 1, 1],
        type=[0] * 5,
        ts_ms=[now - 60 * day] * 3 + [now] * 2,
        ms_played=[-1] * 5,
        count=[1] * 5,
        focus=[False] * 5,
        rating=[np.nan] * 5,
    )
    data = Interactions.from_log(log)
    global_ = PopularityRecommender().fit(data.matrix())
    trending = PopularityRecommender(measure="weight").fit(data.matrix(Recency(14.0)))
    assert global_.listeners.tolist() == [3, 2]
    assert trending.listeners[0] == pytest.approx(3 * 0.5 ** (60 / 14))
    assert trending.listeners[1] == pytest.approx(2.0)
    assert trending.recommend([0], k=1, exclude_seen=False).items[0].tolist() == [1]
    assert trending.explain(0, 1).code == "trending"


def test_per_country_popularity_follows_the_listeners_country() -> None:
    import datetime as dt

    from segue.data.model import User
    from segue.dataset import IdMap, SideInfo, UserTable

    # users 0-2 in DE play item 0, users 3-4 in FR play item 1, user 5 in FR has no history
    x = sp.csr_matrix(([1.0] * 5, ([0, 1, 2, 3, 4], [0, 0, 0, 1, 1])), shape=(6, 3))
    countries = ["DE", "DE", "DE", "FR", "FR", "FR"]
    users = [User(id=f"u{i}", signup_at=dt.datetime(2024, 1, 1), country=c)
             for i, c in enumerate(countries)]  # fmt: skip
    side = SideInfo(users=UserTable.from_users(users, IdMap([u.id for u in users])))
    model = PopularityRecommender(country_weight=0.8).fit(x, side)
    assert model.recommend([5], k=1).items[0].tolist() == [1]  # FR's chart, not the global one
    scores = model.score(np.array([5]))[0]
    assert scores[1] == pytest.approx(0.2 * 2 / 5 + 0.8 * 1.0)
    assert model.explain(5, 1).code == "popular_in_your_country"
    # per listener: no row shared by everyone (retrieval must score each listener)
    assert model.shared_scores() is None
    plain = PopularityRecommender(measure="weight").fit(x)
    assert np.array_equal(plain.shared_scores(), plain.score(np.array([5]))[0])
    with pytest.raises(SegueError, match="demographics"):
        PopularityRecommender(country_weight=0.5).fit(x)


@pytest.mark.parametrize("fmt", ["csr", "csr_unsorted"])
def test_take_rows_is_scipys_row_indexing(fmt: str) -> None:
    """Any rows in any order, repeated, negative, empty rows, a mask, none at all: the same
    matrix as ``matrix[rows]``; out-of-range rows are an IndexError as in scipy."""
    matrix = sp.random(40, 25, density=0.15, random_state=2, dtype=np.float32).tolil()
    matrix[7] = 0  # an empty row
    matrix = matrix.tocsr()
    if fmt == "csr_unsorted":  # indices within a row kept in their stored order
        matrix.indices[matrix.indptr[3] : matrix.indptr[4]] = matrix.indices[
            matrix.indptr[3] : matrix.indptr[4]
        ][::-1].copy()
    cases = [np.array([3]), np.array([7]), np.array([5, 3, 3, 39, 7, 0]), np.array([-1, 2]),
             np.zeros(0, np.int64), np.arange(40) % 3 == 0]  # fmt: skip
    for rows in cases:
        got, want = take_rows(matrix, rows), matrix[rows]
        assert got.shape == want.shape and got.dtype == want.dtype
        assert np.array_equal(got.indptr, want.indptr)
        assert np.array_equal(got.indices, want.indices)
        assert np.array_equal(got.data, want.data)
    alone = take_rows(matrix, np.array([3]))
    alone.data[:] = -5.0  # a copy: the model's matrix must not change through it
    assert (matrix.data != -5.0).all()
    for bad in (np.array([40]), np.array([-41])):
        with pytest.raises(IndexError):
            take_rows(matrix, bad)


@pytest.mark.parametrize("name", ["als", "itemknn", "ease"])
def test_lists_asked_together_equal_each_asked_alone(name: str) -> None:
    """recommend_many scores a batch once for several (k, filters): by factors (ALS), sparse
    (item-kNN) or dense (EASE); each list must be the one recommend gives alone, even when a
    dense batch is shared (masking one list's items must not leak into the next)."""
    from segue.models.filters import Filters
    from segue.models.names import model_spec

    rng = np.random.default_rng(4)
    plays = sp.random(60, 90, density=0.12, random_state=5, format="csr", dtype=np.float32)
    plays.data[:] = 1.0
    model = model_spec(name).build().fit(plays)
    scored = model._block_scores(np.arange(3))
    held = [p for p in ("factors", "sparse", "dense") if getattr(scored, p) is not None]
    path = {"als": "factors", "itemknn": "sparse", "ease": "dense"}[name]
    assert held == [path]
    tracks = rng.random(90) < 0.6
    artist = rng.integers(0, 6, size=90)
    wants = [
        (5, None),
        (20, Filters(allowed=tracks)),
        (8, Filters(allowed=~tracks, artist=artist, max_per_artist=1)),
        (90, None),
    ]
    users = rng.permutation(60)[:37]
    exclude = sp.random(60, 90, density=0.2, random_state=6, format="csr")
    for kwargs in ({}, {"exclude": exclude}, {"exclude_seen": False}):
        together = model.recommend_many(users, wants, batch_size=16, **kwargs)
        assert len(together) == len(wants)
        for (k, filters), got in zip(wants, together, strict=True):
            alone = model.recommend(users, k, filters=filters, batch_size=16, **kwargs)
            np.testing.assert_array_equal(got.users, users)
            np.testing.assert_array_equal(got.items, alone.items)
            np.testing.assert_array_equal(got.scores, alone.scores)
            listed = got.items[got.items >= 0]
            if filters is not None:
                assert filters.allowed[listed].all()
    capped = together[2].items
    for row in capped:  # one track per artist
        row = row[row >= 0]
        assert len(set(artist[row].tolist())) == len(row)
    with pytest.raises(SegueError, match="filters cover 4 items"):
        model.recommend_many(users, [(5, Filters(allowed=np.ones(4, dtype=bool)))])
