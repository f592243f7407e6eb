"""Cold start: onboarding picks, demographics, nothing at all, the schedule, and new items."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import scipy.sparse as sp

from segue.data.model import Item, ItemKind, User
from segue.dataset import IdMap, ItemCatalog, SideInfo, UserTable
from segue.errors import SegueError
from segue.models.coldstart import ColdStartRecommender, NewItemPolicy, Onboarding
from segue.models.filters import Filters
from segue.models.itemknn import ItemKNNRecommender
from segue.ranking import standardise

# 12 tracks: 0-5 rock by artists r1/r2, 6-9 jazz by j1/j2, 10-11 never played (new releases)
ARTISTS = ["r1", "r1", "r1", "r2", "r2", "r2", "j1", "j1", "j2", "j2", "r1", "j2"]
GENRES = ["rock"] * 6 + ["jazz"] * 4 + ["rock", "jazz"]
TRACKS = [
    Item(
        id=f"t{i}",
        kind=ItemKind.TRACK,
        title=f"Track {i}",
        artist_id=ARTISTS[i],
        genres=(GENRES[i],),
        release_date=dt.date(2024, 1, 1) + dt.timedelta(days=i),
    )
    for i in range(12)
]
ITEMS = IdMap([t.id for t in TRACKS], name="item")
N_USERS = 80


def _world() -> tuple[sp.csr_matrix, SideInfo]:
    """Users 0-39 (DE, 18-24) play rock, users 40-79 (FR, 45-54) play jazz."""
    rng = np.random.default_rng(0)
    rows, cols = [], []
    for u in range(N_USERS):
        pool = np.arange(6) if u < 40 else np.arange(6, 10)
        for item in rng.choice(pool, size=3, replace=False):
            rows.append(u)
            cols.append(int(item))
    # item 0 and 6 are the most popular overall
    rows += list(range(40, 55))
    cols += [0] * 15
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(N_USERS, 12))
    x.sum_duplicates()
    x.data[:] = 1
    users = [
        User(
            id=f"u{u}",
            signup_at=dt.datetime(2024, 1, 1),
            country="DE" if u < 40 else "FR",
            age_band="18-24" if u < 40 else "45-54",
        )
        for u in range(N_USERS)
    ]
    user_map = IdMap([u.id for u in users], name="user")
    side = SideInfo(
        catalog=ItemCatalog.from_items(TRACKS, ITEMS), users=UserTable.from_users(users, user_map)
    )
    return x, side


def _cold(half_life_events: float = 5.0) -> ColdStartRecommender:
    x, side = _world()
    knn = ItemKNNRecommender(neighbours=20, shrink=0).fit(x)
    return ColdStartRecommender(knn, x, side, half_life_events=half_life_events)


def test_onboarding_picks_personalise_immediately() -> None:
    result = _cold().recommend(Onboarding(items=[6]), k=3)  # picked a jazz track
    assert set(result.items.tolist()) <= {7, 8, 9}
    assert 6 not in result.items  # a pick is not recommended back
    assert result.reasons[0].code == "matches_your_picks"


def test_genre_picks_lift_that_genre() -> None:
    result = _cold().recommend(Onboarding(genres=["jazz"]), k=4)
    assert all(GENRES[i] == "jazz" for i in result.items)


def test_demographics_give_what_similar_listeners_play() -> None:
    cold = _cold()
    de = cold.recommend(Onboarding(country="DE", age_band="18-24"), k=3)
    fr = cold.recommend(Onboarding(country="FR", age_band="45-54"), k=3)
    assert all(i < 6 for i in de.items)
    assert all(6 <= i < 10 or i == 0 for i in fr.items)
    assert de.reasons[0].code == "listeners_like_you"


def test_small_segments_back_off_to_coarser_ones() -> None:
    cold = _cold()
    # nobody is 65+ in DE: the segment falls back to the country alone
    counts, code = cold.segment_popularity(Onboarding(country="DE", age_band="65+"))
    assert code == "listeners_like_you"
    assert counts[6:10].sum() == 0
    counts, code = cold.segment_popularity(Onboarding(country="US"))
    assert code == "popular"


def test_nothing_known_gives_a_diverse_popular_set() -> None:
    result = _cold().recommend(Onboarding(), k=4)
    artists = [ARTISTS[i] for i in result.items]
    assert len(set(artists)) == len(artists)  # one per artist
    assert {GENRES[i] for i in result.items} == {"rock", "jazz"}
    x, _ = _world()
    listeners = np.asarray((x > 0).sum(axis=0)).ravel()
    assert listeners[result.items[0]] == listeners.max()  # the most popular item opens
    assert all(r.code == "popular" for r in result.reasons)


def test_plays_move_the_list_towards_collaborative_filtering() -> None:
    cold = _cold(half_life_events=1.0)
    assert cold.personal_weight(0) == 0
    assert cold.personal_weight(1) == pytest.approx(0.5)
    assert cold.personal_weight(50) > 0.95
    onboarding = Onboarding(genres=["rock"])
    one_play = sp.csr_matrix(([1.0], ([0], [6])), shape=(1, 12))
    two_plays = sp.csr_matrix(([1.0] * 2, ([0] * 2, [6, 7])), shape=(1, 12))
    before = cold.recommend(onboarding, k=3)
    early = cold.recommend(onboarding, history=one_play, k=3)
    later = cold.recommend(onboarding, history=two_plays, k=3)
    assert all(GENRES[i] == "rock" for i in before.items)
    assert before.personal_weight == 0
    assert later.personal_weight == pytest.approx(2 / 3)
    # the jazz plays pull the list over smoothly: never fewer jazz items as plays add up
    jazz = [sum(GENRES[i] == "jazz" for i in r.items) for r in (before, early, later)]
    assert jazz == sorted(jazz)
    assert jazz[-1] > 0
    assert later.reasons[0].code == "because_you_played"


def test_bad_onboarding_answers_are_explained() -> None:
    cold = _cold()
    with pytest.raises(SegueError, match="unknown genre"):
        cold.recommend(Onboarding(genres=["polka"]))
    with pytest.raises(SegueError, match="age band"):
        cold.recommend(Onboarding(age_band="30-ish"))
    with pytest.raises(SegueError, match="item columns"):
        cold.recommend(Onboarding(items=[99]))


def test_new_items_enter_by_artist_within_a_bounded_share() -> None:
    x, side = _world()
    policy = NewItemPolicy(x, side, max_share=0.2, exploration=0.0)
    assert policy.new_items.tolist() == [10, 11]
    history = sp.csr_matrix(([1.0, 1.0], ([0, 0], [0, 1])), shape=(1, 12))  # plays r1
    ranked = np.arange(10)
    items, reasons = policy.blend(history, ranked, [None] * 10, k=5)  # type: ignore[list-item]
    new = [i for i in items if i in (10, 11)]
    assert new == [10]  # r1's new release; j2's is not for this listener
    assert reasons[list(items).index(10)].code == "new_from_artist"
    assert len(items) == 5
    assert sum(i in (10, 11) for i in items) <= int(0.2 * 5)


def test_exploration_fills_a_slot_with_a_random_new_item() -> None:
    x, side = _world()
    policy = NewItemPolicy(x, side, max_share=0.1, exploration=1.0, seed=1)
    history = sp.csr_matrix(([1.0], ([0], [6])), shape=(1, 12))  # j1 only: no new release
    items, reasons = policy.blend(history, np.arange(10), [None] * 10, k=10)  # type: ignore[list-item]
    codes = [r.code for r, i in zip(reasons, items, strict=True) if i in (10, 11)]
    assert "exploration" in codes
    kids = Filters.build(side.catalog, exclude=[10, 11])  # type: ignore[arg-type]
    items, _ = policy.blend(history, np.arange(10), [None] * 10, k=10, filters=kids)  # type: ignore[list-item]
    assert not set(items.tolist()) & {10, 11}


def test_an_item_with_plays_is_no_longer_new() -> None:
    x, side = _world()
    x = x.tolil()
    x[3, 10] = 1
    policy = NewItemPolicy(x.tocsr(), side)
    assert policy.new_items.tolist() == [11]


def test_new_items_respect_the_per_artist_cap() -> None:
    x, side = _world()
    policy = NewItemPolicy(x, side, max_share=0.4, exploration=0.0)
    history = sp.csr_matrix(([1.0, 1.0], ([0, 0], [0, 1])), shape=(1, 12))  # plays r1
    capped = Filters.build(side.catalog, max_per_artist=1)  # type: ignore[arg-type]
    ranked = np.array([2, 3, 6, 8, 4, 5, 7, 9])  # r1, r2, j1, j2, ...
    items, _ = policy.blend(history, ranked, [None] * 8, k=5, filters=capped)  # type: ignore[list-item]
    artists = [ARTISTS[i] for i in items]
    assert len(artists) == len(set(artists)) == 4  # only four artists exist
    assert 10 not in items  # r1's new release would be r1's second item


def test_cached_answers_equal_fresh_ones() -> None:
    """Serving asks the same segment and diverse list repeatedly; the cache must not change
    an answer, nor hand out an array a caller could modify."""
    cold = _cold()
    questions = [
        Onboarding(country="DE", age_band="18-24"),
        Onboarding(country="DE", age_band="65+"),
        Onboarding(country="FR"),
        Onboarding(country="US"),
    ]
    for onboarding in questions:
        first, code = cold.segment_popularity(onboarding)
        again, code_again = cold.segment_popularity(onboarding)
        fresh, fresh_code = _cold().segment_popularity(onboarding)
        np.testing.assert_array_equal(again, fresh)
        np.testing.assert_array_equal(first, fresh)
        assert code == code_again == fresh_code
        for _ in range(2):  # computed, then from the cache
            prior, prior_code = cold.segment_prior(onboarding)
            expected = standardise(np.log1p(fresh)[None, :].astype(np.float32))[0]
            np.testing.assert_array_equal(prior, expected)
            assert prior_code == code
    kids = Filters(allowed=np.arange(len(ARTISTS)) % 3 != 0)
    for filters in (None, kids):
        first = cold.diverse_popular(4, filters)
        first[:] = -1  # the caller scribbles on its copy
        np.testing.assert_array_equal(
            cold.diverse_popular(4, filters), _cold().diverse_popular(4, filters)
        )
    assert not np.array_equal(cold.diverse_popular(4, kids), cold.diverse_popular(4))


def test_warming_computes_each_segment_once_and_changes_nothing() -> None:
    warm, fresh = _cold(), _cold()
    assert warm.warm_segments() >= 2
    cached = len(warm._segment_cache)
    for country, age in (("DE", "18-24"), ("FR", "45-54"), ("DE", "65+")):
        onboarding = Onboarding(country=country, age_band=age)
        np.testing.assert_array_equal(
            warm.segment_popularity(onboarding)[0], fresh.segment_popularity(onboarding)[0]
        )
    assert len(warm._segment_cache) <= cached + 1  # ("DE", "65+") is nobody's own segment
