"""Session-aware re-ranking: skips, likes and fresh plays change the next list (real models)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import scipy.sparse as sp

from segue.data.model import Event, EventType, Item, ItemKind
from segue.dataset.catalog import ItemCatalog
from segue.dataset.idmap import IdMap
from segue.errors import SegueError
from segue.models.itemknn import ItemKNNRecommender
from segue.models.mf import ALSRecommender
from segue.models.popularity import PopularityRecommender
from segue.online.state import InProcessState, SessionState
from segue.serving.session import (
    SCORE_BOUND,
    SessionAdjuster,
    bounded_z_scores,
    history_from_recent,
    rerank_for_session,
)

GENRES = ("jazz", "rock", "pop")
PER_GENRE = 6
#: jazz is the most listened genre, so popularity ranks jazz first
USERS_PER_GENRE = {"jazz": 20, "rock": 12, "pop": 12}
K = 5


def _item_id(genre: str, j: int) -> str:
    return f"{genre}{j}"


def _artist(genre: str, j: int) -> str:
    return f"{genre}-artist{1 if j < PER_GENRE // 2 else 2}"


ITEM_IDS = [_item_id(g, j) for g in GENRES for j in range(PER_GENRE)]
ITEMS = IdMap(ITEM_IDS, name="item")
RECORDS = [
    Item(
        id=_item_id(g, j),
        kind=ItemKind.TRACK,
        title=f"{g} {j}",
        artist_id=_artist(g, j),
        genres=(g,),
    )
    for g in GENRES
    for j in range(PER_GENRE)
]
CATALOG = ItemCatalog.from_items(RECORDS, ITEMS)


def _genre_items(genre: str) -> np.ndarray:
    return np.asarray(ITEMS.to_index([_item_id(genre, j) for j in range(PER_GENRE)]))


def _interactions() -> tuple[sp.csr_matrix, dict[str, list[int]]]:
    """Users who each play 4 items of their genre and, sometimes, one of another genre."""
    rng = np.random.default_rng(7)
    rows, cols, users = [], [], {g: [] for g in GENRES}
    u = 0
    for genre, count in USERS_PER_GENRE.items():
        for _ in range(count):
            own = rng.choice(_genre_items(genre), size=4, replace=False)
            picked = list(own)
            if rng.random() < 0.3:
                other = rng.choice([g for g in GENRES if g != genre])
                picked.append(int(rng.choice(_genre_items(other))))
            rows += [u] * len(picked)
            cols += picked
            users[genre].append(u)
            u += 1
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(u, len(ITEMS)))
    return matrix, users


TRAIN, USERS = _interactions()


def _genre_of(items: np.ndarray) -> list[str]:
    return [str(ITEMS.to_ids(int(i))).rstrip("0123456789") for i in items]


@pytest.fixture(scope="module")
def popularity() -> PopularityRecommender:
    return PopularityRecommender().fit(TRAIN)


@pytest.fixture(scope="module")
def itemknn() -> ItemKNNRecommender:
    return ItemKNNRecommender(neighbours=10, shrink=1.0).fit(TRAIN)


@pytest.fixture(scope="module")
def als() -> ALSRecommender:
    return ALSRecommender(
        factors=8, regularization=0.1, alpha=10.0, iterations=15, num_threads=1
    ).fit(TRAIN)


def _session(**counts: dict[str, int]) -> SessionState:
    return SessionState("s1", 0, 0, **counts)


def test_three_genre_skips_remove_the_genre_from_the_next_top_k(
    popularity: PopularityRecommender,
) -> None:
    empty = sp.csr_matrix((1, len(ITEMS)), dtype=np.float32)
    before, _ = rerank_for_session(popularity, None, empty, CATALOG, None, K)
    assert _genre_of(before).count("jazz") == K  # jazz dominates the chart

    two, _ = rerank_for_session(
        popularity, None, empty, CATALOG, _session(skips_by_genre={"jazz": 2}), K
    )
    three, scores = rerank_for_session(
        popularity, None, empty, CATALOG, _session(skips_by_genre={"jazz": 3}), K
    )
    assert "jazz" not in _genre_of(three)
    assert np.all(np.diff(scores) <= 0)
    assert _genre_of(two).count("jazz") < K  # already fewer after two skips


def test_skip_events_through_the_online_state_change_the_next_call(
    popularity: PopularityRecommender,
) -> None:
    state = InProcessState()
    t0 = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    events = [
        Event(
            event_id=f"e{n}",
            user_id="u1",
            item_id=item,
            type=EventType.SKIP,
            timestamp=t0 + dt.timedelta(minutes=n),
        )
        for n, item in enumerate(["jazz0", "jazz3", "jazz4"])
    ]
    state.apply(
        events,
        artist_of={r.id: r.artist_id for r in RECORDS if r.artist_id},
        genres_of={r.id: r.genres for r in RECORDS},
    )
    session = state.session("u1")
    assert session is not None and session.skips_by_genre == {"jazz": 3}
    empty = sp.csr_matrix((1, len(ITEMS)), dtype=np.float32)
    items, _ = rerank_for_session(popularity, None, empty, CATALOG, session, K)
    assert "jazz" not in _genre_of(items)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("shape", ["normal", "pareto"])
def test_default_three_genre_skips_sink_the_genre_below_a_typical_top_k(
    seed: int, shape: str
) -> None:
    """The documented promise, on bell-shaped and heavy-tailed scores of 300 items."""
    rng = np.random.default_rng(seed)
    n, genres = 300, ("a", "b", "c", "d")
    ids = IdMap([f"i{i}" for i in range(n)], name="item")
    records = [
        Item(id=f"i{i}", kind=ItemKind.TRACK, title="t", genres=(genres[i % len(genres)],))
        for i in range(n)
    ]
    catalog = ItemCatalog.from_items(records, ids)
    scores = rng.normal(size=n) if shape == "normal" else rng.pareto(1.5, size=n)
    adjusted = SessionAdjuster(catalog).adjust(scores, _session(skips_by_genre={"b": 3}))
    affected = np.arange(n) % len(genres) == 1
    top = np.argsort(-adjusted, kind="stable")[:20]
    assert not affected[top].any()
    unaffected_above_minus_one = (
        bounded_z_scores(scores) > bounded_z_scores(np.array([-1.0, 1.0]))[0]
    )
    assert adjusted[affected].max() < adjusted[~affected & unaffected_above_minus_one].min()


def test_likes_of_an_artist_lift_its_items(itemknn: ItemKNNRecommender) -> None:
    user = USERS["rock"][0]
    history = TRAIN[user]
    liked = "pop-artist1"
    liked_items = np.flatnonzero(CATALOG.artist == CATALOG.artist_ids.index(liked))
    before, _ = rerank_for_session(itemknn, user, history, CATALOG, None, len(ITEMS))
    after, _ = rerank_for_session(
        itemknn, user, history, CATALOG, _session(likes_by_artist={liked: 2}), len(ITEMS)
    )
    rank_before = {int(i): r for r, i in enumerate(before)}
    rank_after = {int(i): r for r, i in enumerate(after)}
    for item in liked_items:
        if item in rank_before:  # not already played
            assert rank_after[int(item)] < rank_before[int(item)]
    unplayed = set(liked_items.tolist()) - set(history.indices.tolist())
    assert unplayed <= set(after[:K].tolist())
    assert not unplayed <= set(before[:K].tolist())


def test_without_a_session_the_order_is_the_models(als: ALSRecommender) -> None:
    for user in (USERS["jazz"][0], USERS["rock"][1], USERS["pop"][2]):
        seen = TRAIN[user].indices
        items, scores = rerank_for_session(als, user, None, CATALOG, None, K, exclude=seen)
        expected = als.recommend([user], K).items[0]
        np.testing.assert_array_equal(items, expected)
        assert not set(items.tolist()) & set(seen.tolist())
        # the scores are the standardised model scores: same order, bounded
        assert np.all(np.abs(scores) < SCORE_BOUND)


def test_session_without_matching_labels_keeps_the_order(itemknn: ItemKNNRecommender) -> None:
    user = USERS["pop"][0]
    plain, _ = rerank_for_session(itemknn, user, TRAIN[user], CATALOG, None, K)
    other, _ = rerank_for_session(
        itemknn, user, TRAIN[user], CATALOG, _session(skips_by_genre={"polka": 5}), K
    )
    np.testing.assert_array_equal(plain, other)


@pytest.mark.parametrize("model_name", ["als", "itemknn"])
def test_fresh_jazz_plays_move_the_list_towards_jazz_without_refitting(
    model_name: str, request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(model_name)
    user = USERS["rock"][2]
    base = TRAIN[user]
    factors_before = getattr(model, "user_factors", np.zeros(0)).copy()
    before, _ = rerank_for_session(
        model, user, history_from_recent([], ITEMS, base), CATALOG, None, K
    )
    recent = ["jazz0", "jazz1", "jazz3", "jazz0", "jazz1", "jazz3"]
    history = history_from_recent(recent, ITEMS, base)
    after, _ = rerank_for_session(model, user, history, CATALOG, None, K)
    # before: the rock listener's own genre leads; after: the jazz they have not played yet
    assert _genre_of(before[:2]) == ["rock", "rock"]
    assert _genre_of(after[:1]) == ["jazz"]
    assert _genre_of(after[:3]).count("jazz") >= 2
    played = ITEMS.to_index(["jazz0", "jazz1", "jazz3"])
    assert not set(after.tolist()) & set(played.tolist())  # fresh plays count as seen
    np.testing.assert_array_equal(getattr(model, "user_factors", np.zeros(0)), factors_before)


def test_history_from_recent_adds_one_per_play_and_ignores_unknown_items() -> None:
    base = sp.csr_matrix(([2.5], ([0], [ITEMS.to_index("rock1")])), shape=(1, len(ITEMS)))
    row = history_from_recent(["rock1", "jazz2", "jazz2", "not-in-the-model"], ITEMS, base)
    dense = row.toarray().ravel()
    assert dense[ITEMS.to_index("rock1")] == pytest.approx(3.5)
    assert dense[ITEMS.to_index("jazz2")] == pytest.approx(2.0)
    assert dense.sum() == pytest.approx(5.5)
    assert base.toarray().sum() == pytest.approx(2.5)  # base row untouched
    fresh = history_from_recent(["pop0"], ITEMS, None)
    assert fresh.shape == (1, len(ITEMS)) and fresh.nnz == 1
    with pytest.raises(SegueError, match=r"base_row must have shape \(1, 18\)"):
        history_from_recent([], ITEMS, sp.csr_matrix((1, 3)))


def test_reranking_is_deterministic(als: ALSRecommender) -> None:
    user = USERS["jazz"][3]
    session = _session(skips_by_artist={"jazz-artist1": 1}, likes_by_genre={"pop": 1})
    history = history_from_recent(["rock2", "jazz5"], ITEMS, TRAIN[user])
    first = rerank_for_session(als, user, history, CATALOG, session, K)
    refit = ALSRecommender(
        factors=8, regularization=0.1, alpha=10.0, iterations=15, num_threads=1
    ).fit(TRAIN)
    for model in (als, als, refit):
        items, scores = rerank_for_session(model, user, history, CATALOG, session, K)
        np.testing.assert_array_equal(items, first[0])
        np.testing.assert_allclose(scores, first[1], rtol=1e-6)


def test_ties_are_broken_by_item_index(popularity: PopularityRecommender) -> None:
    flat = SessionAdjuster(CATALOG).adjust(np.ones(len(ITEMS)), None)
    assert np.all(flat == 0.0)
    model = PopularityRecommender().fit(sp.csr_matrix((3, len(ITEMS)), dtype=np.float32))
    items, _ = rerank_for_session(model, None, sp.csr_matrix((1, len(ITEMS))), CATALOG, None, K)
    np.testing.assert_array_equal(items, np.arange(K))


def test_clear_errors() -> None:
    adjuster = SessionAdjuster(CATALOG)
    with pytest.raises(SegueError, match=r"expected scores of shape \(18,\)"):
        adjuster.adjust(np.zeros(4), None)
    with pytest.raises(SegueError, match="skip_penalty must be a finite number >= 0"):
        SessionAdjuster(CATALOG, skip_penalty=-1.0)
    model = PopularityRecommender().fit(TRAIN)
    with pytest.raises(SegueError, match="give a history_row or a user_row"):
        rerank_for_session(model, None, None, CATALOG, None, K)
    with pytest.raises(SegueError, match=r"outside 0\.\.17: \[99\]"):
        rerank_for_session(model, 0, None, CATALOG, None, K, exclude=[1, 99])
    with pytest.raises(SegueError, match=r"history_row must have shape \(1, 18\)"):
        rerank_for_session(model, None, sp.csr_matrix((1, 2)), CATALOG, None, K)


@pytest.mark.parametrize("seed", range(12))
def test_top_ranks_exactly_like_adjusting_every_item(seed: int) -> None:
    """The fast path (only candidates adjusted) equals sorting the fully adjusted scores."""
    rng = np.random.default_rng(seed)
    n = len(ITEMS)
    scores = rng.normal(size=n).round(1)  # rounding makes ties, the tricky part
    scores[rng.choice(n, size=4, replace=False)] = -np.inf  # masked items
    artists = sorted({r.artist_id for r in RECORDS})
    session = SessionState(
        "s",
        0,
        0,
        skips_by_artist={artists[seed % len(artists)]: 1 + seed % 3},
        skips_by_genre={GENRES[seed % 3]: seed % 2},
        likes_by_artist={artists[(seed + 2) % len(artists)]: seed % 2},
        likes_by_genre={},
    )
    adjuster = SessionAdjuster(CATALOG)
    for s in (session, None):
        full = adjuster.adjust(scores, s)
        finite = np.flatnonzero(np.isfinite(full))
        expected = finite[np.lexsort((finite, -full[finite]))]
        for k in (1, 3, K, n):
            items, adjusted = adjuster.top(scores, s, k)
            np.testing.assert_array_equal(items, expected[:k])
            np.testing.assert_allclose(adjusted, full[expected[:k]])


@pytest.mark.parametrize("seed", range(12))
def test_a_row_held_sparsely_ranks_as_its_dense_row(seed: int) -> None:
    """top_sparse (a few candidates, every other item at one fill value, stored -inf
    entries, excluded items) gives the items and adjusted scores of top() on the same row
    made dense: with and without a session, k inside the candidates and beyond them."""
    rng = np.random.default_rng(100 + seed)
    n = len(ITEMS)
    fill = -50.0
    stored = np.sort(rng.choice(n, size=9, replace=False))
    values = rng.normal(size=9).round(1)
    values[:2] = -np.inf  # items the model masks itself (its listener's plays)
    row = sp.csr_matrix((values, (np.zeros(9, np.int64), stored)), shape=(1, n))
    excluded = np.zeros(n, dtype=bool)
    excluded[rng.choice(n, size=3, replace=False)] = True
    dense = np.full(n, fill)
    dense[stored] = values
    dense[excluded] = -np.inf
    artists = sorted({r.artist_id for r in RECORDS})
    session = SessionState(
        "s",
        0,
        0,
        skips_by_artist={artists[seed % len(artists)]: 1 + seed % 2},
        skips_by_genre={},
        likes_by_artist={artists[(seed + 3) % len(artists)]: 1},
        likes_by_genre={GENRES[seed % 3]: seed % 2},
    )
    adjuster = SessionAdjuster(CATALOG)
    for s in (None, session):
        for k in (1, 3, 6, n):
            got_items, got = adjuster.top_sparse(row, fill, excluded, s, k)
            want_items, want = adjuster.top(dense, s, k)
            np.testing.assert_array_equal(got_items, want_items)
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_rerank_for_session_ranks_a_sparse_models_row_as_its_dense_scores(
    itemknn: ItemKNNRecommender,
) -> None:
    """A model with score_sparse (item-kNN) is served from the sparse row; the list must be
    the one its dense scores give, with a session, exclusions, and k past its candidates."""

    class DenseOnly(ItemKNNRecommender):
        def score_sparse(self, users: np.ndarray) -> None:
            return None

    dense_model = DenseOnly()
    dense_model.__dict__.update(itemknn.__dict__)
    session = _session(skips_by_genre={"jazz": 1}, likes_by_artist={"rock-artist2": 1})
    for user in (0, 5, 30):
        for k, exclude in ((K, [1, 2]), (len(ITEMS), None)):
            want = rerank_for_session(dense_model, user, None, CATALOG, session, k, exclude)
            got = rerank_for_session(itemknn, user, None, CATALOG, session, k, exclude)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_allclose(got[1], want[1], rtol=1e-6, atol=1e-6)


def test_a_history_scored_sparsely_ranks_as_its_dense_scores(
    itemknn: ItemKNNRecommender,
) -> None:
    """A listener with fresh plays, scored by a model with score_history_sparse: the list
    (own plays masked or, on radio, not) must be the dense scores' list."""

    class SparseHistory(ItemKNNRecommender):
        def score_history_sparse(self, history: sp.csr_matrix) -> sp.csr_matrix:
            return sp.csr_matrix(self.score_history(history))  # zeros unstored

    sparse_model = SparseHistory()
    sparse_model.__dict__.update(itemknn.__dict__)
    session = _session(skips_by_artist={"jazz-artist1": 1}, likes_by_genre={"pop": 1})
    for user in (0, 25):
        history = history_from_recent([_item_id("rock", 1)], ITEMS, TRAIN[user])
        for k, exclude_seen in ((K, True), (len(ITEMS), True), (K, False)):
            args = (None, history, CATALOG, session, k, [2])
            want = rerank_for_session(itemknn, *args, exclude_seen=exclude_seen)
            got = rerank_for_session(sparse_model, *args, exclude_seen=exclude_seen)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_allclose(got[1], want[1], rtol=1e-6, atol=1e-6)
