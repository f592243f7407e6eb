"""Genre first, then the track: the genre-mix model against scores worked out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from segue.data.model import Item, ItemKind
from segue.dataset import IdMap, ItemCatalog, SideInfo
from segue.errors import SegueError
from segue.models.genremix import GenreMixRecommender, _genre_weights
from segue.models.names import DEFAULT_MODELS, model_spec


def track(item_id: str, *genres: str) -> Item:
    return Item(id=item_id, kind=ItemKind.TRACK, title=f"Song {item_id}", genres=genres)


# a, b: rock; c: rock and jazz; d, e: jazz; f: no genre (an episode, say)
ITEMS = [
    track("a", "rock"),
    track("b", "rock"),
    track("c", "rock", "jazz"),
    track("d", "jazz"),
    track("e", "jazz"),
    track("f"),
]
SIDE = SideInfo(catalog=ItemCatalog.from_items(ITEMS, IdMap([i.id for i in ITEMS])))
#      a  b  c  d  e  f
PLAYS = np.array(
    [
        [1, 0, 0, 0, 0, 0],  # listener 0: rock only
        [1, 1, 0, 0, 0, 0],
        [0, 0, 1, 1, 0, 0],
        [0, 0, 0, 1, 1, 1],
        [1, 0, 0, 1, 0, 0],
    ],
    dtype=np.float32,
)


def by_hand(row: np.ndarray, prior: float) -> np.ndarray:
    """Σ_g π(g)·P(i|g), written out for the catalog above (columns rock, jazz, none)."""
    genre = np.array([[1, 0, 0], [1, 0, 0], [0.5, 0.5, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]])
    listeners = (PLAYS > 0).sum(axis=0)  # a 3, b 1, c 1, d 3, e 1, f 1
    mass = genre * listeners[:, None]
    share = mass / mass.sum(axis=0)  # P(i | g)
    overall = mass.sum(axis=0) / mass.sum()
    counts = row @ genre + prior * overall
    return (counts / counts.sum()) @ share.T


def test_scores_are_the_genre_mix_times_each_genres_chart() -> None:
    model = GenreMixRecommender(prior=2.0).fit(sp.csr_matrix(PLAYS), SIDE)
    scores = model.score(np.arange(len(PLAYS)))
    for u, row in enumerate(PLAYS):
        np.testing.assert_allclose(scores[u], by_hand(row, 2.0), rtol=1e-5)
    # with little prior: listener 0 played rock only, so after the played a come rock's b
    # and the half-rock c; the jazz listener 3's best unplayed item is the half-jazz c,
    # though a has more listeners
    sure = GenreMixRecommender(prior=0.1).fit(sp.csr_matrix(PLAYS), SIDE)
    assert np.argsort(-sure.score(np.array([0]))[0])[:3].tolist() == [0, 1, 2]
    assert np.argmax(np.where(PLAYS[3] > 0, -np.inf, sure.score(np.array([3]))[0])) == 2
    # with two pseudo-items of everyone's mix, the much-played rock a overtakes c for them
    assert np.argmax(np.where(PLAYS[3] > 0, -np.inf, scores[3])) == 0
    # the scores are a distribution over items (mixes and charts both sum to one)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)


def test_a_specific_label_weighs_more_than_its_parent() -> None:
    """Three rock tracks, one of them also indie rock: that one is 3/4 indie rock (1/1
    against rock's 1/3, normalised), and an unlabelled item sits in the "no genre" column."""
    labels = sp.csr_matrix(np.array([[1, 1], [1, 0], [1, 0], [0, 0]], dtype=np.float32))
    weights = _genre_weights(labels).toarray()
    np.testing.assert_allclose(
        weights, [[0.25, 0.75, 0], [1, 0, 0], [1, 0, 0], [0, 0, 1]], rtol=1e-6
    )


def test_a_listener_known_by_plays_is_scored_as_one_trained_on_them() -> None:
    model = GenreMixRecommender(prior=0.5).fit(sp.csr_matrix(PLAYS), SIDE)
    history = sp.csr_matrix(PLAYS[[2, 4]])
    np.testing.assert_allclose(model.score_history(history), model.score(np.array([2, 4])))
    # a newcomer with no plays gets everyone's mix: the genres' charts weighted by use
    empty = model.score_history(sp.csr_matrix((1, PLAYS.shape[1]), dtype=np.float32))[0]
    np.testing.assert_allclose(empty, by_hand(np.zeros(6), 0.5), rtol=1e-5)


def test_the_prior_decides_how_far_few_plays_move_the_mix() -> None:
    """One rock play: with a small prior the listener is all rock, with a large one close
    to everyone's mix."""
    row = sp.csr_matrix(PLAYS[[0]])
    small = GenreMixRecommender(prior=0.01).fit(sp.csr_matrix(PLAYS), SIDE).mix(row)[0]
    large = GenreMixRecommender(prior=100.0).fit(sp.csr_matrix(PLAYS), SIDE)
    assert small[0] > 0.99
    np.testing.assert_allclose(large.mix(row)[0], large.overall, atol=0.01)


def test_similar_items_are_the_charts_of_the_items_genres() -> None:
    """a (rock): rock's b and the half-rock c; d (jazz): jazz's e and c, by listeners
    (e 1, c 1/2 of its one listener); f alone in "no genre" has no similar item."""
    model = GenreMixRecommender().fit(sp.csr_matrix(PLAYS), SIDE)
    similar = model.similar_items([0, 3, 5], k=3).tolist()
    assert similar == [[1, 2, -1], [4, 2, -1], [-1, -1, -1]]


def test_without_a_catalog_it_ranks_by_listeners() -> None:
    model = GenreMixRecommender().fit(sp.csr_matrix(PLAYS))
    listeners = (PLAYS > 0).sum(axis=0)
    np.testing.assert_allclose(model.score(np.array([1]))[0], listeners / listeners.sum())


def test_saved_and_loaded_it_scores_the_same(tmp_path: Path) -> None:
    model = GenreMixRecommender(prior=3.0).fit(sp.csr_matrix(PLAYS), SIDE)
    model.save(tmp_path / "m")
    loaded = GenreMixRecommender.load(tmp_path / "m")
    assert loaded.prior == 3.0
    users = np.arange(len(PLAYS))
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    history = sp.csr_matrix(PLAYS[[3]])
    np.testing.assert_array_equal(loaded.score_history(history), model.score_history(history))
    top = model.recommend(users, 2)
    assert loaded.recommend(users, 2).items.tolist() == top.items.tolist()


def test_only_the_most_carried_genres_are_kept_and_an_empty_matrix_scores_evenly() -> None:
    """With one genre kept, rock (carried by a, b, c) stays and jazz-only d, e join the
    no-genre f; a matrix without plays gives every genre the same weight, not NaN."""
    model = GenreMixRecommender(max_genres=1).fit(sp.csr_matrix(PLAYS), SIDE)
    assert model.genres.shape == (6, 2)
    np.testing.assert_allclose(model.genres.toarray()[:, 1], [0, 0, 0, 1, 1, 1])
    empty = GenreMixRecommender().fit(sp.csr_matrix((2, 6), dtype=np.float32), SIDE)
    np.testing.assert_allclose(empty.overall, 1 / 3)
    assert np.isfinite(empty.score(np.array([0, 1]))).all()


def test_bad_settings_and_a_mismatched_catalog_say_what_is_wrong() -> None:
    for prior in (0.0, -1.0, float("nan")):
        with pytest.raises(SegueError, match="prior must be a positive number"):
            GenreMixRecommender(prior=prior)
    for most in (0, 2.5):
        with pytest.raises(SegueError, match="max_genres must be a whole number"):
            GenreMixRecommender(max_genres=most)
    with pytest.raises(SegueError, match="catalog describes 6 items but the matrix has 4"):
        GenreMixRecommender().fit(sp.csr_matrix(PLAYS[:, :4]), SIDE)


def test_it_is_a_registered_default_model() -> None:
    assert "genremix" in DEFAULT_MODELS
    assert isinstance(model_spec("genremix").build(), GenreMixRecommender)
