"""ALS, BPR, EASE and user-kNN: planted structure, hand-computed cases, seeds and persistence.

Expected values come from the papers' formulas computed directly with NumPy here, or from the
structure planted in the data (two listener groups with disjoint artists), never from a
previous run of the code under test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from segue.data.synth import SynthParams, generate_world
from segue.dataset import Interactions, SideInfo, friend_matrix, random_split
from segue.errors import SegueError
from segue.eval.metrics import ranking_scores
from segue.models.base import Recommender
from segue.models.ease import EASERecommender
from segue.models.mf import ALSRecommender, BPRRecommender
from segue.models.names import MODELS, model_spec
from segue.models.popularity import PopularityRecommender
from segue.models.userknn import UserKNNRecommender

# -- planted structure -------------------------------------------------------------------------
# Four listener groups of falling size (24, 16, 12, 8 users), each playing only its own ten
# artists. The first group's artists have the most listeners, so popularity recommends them to
# everyone; a personal model must recommend each group its own.
GROUP_SIZES = (24, 16, 12, 8)
GROUP_ITEMS = 10
N_USERS, N_ITEMS = sum(GROUP_SIZES), GROUP_ITEMS * len(GROUP_SIZES)
USER_GROUP = np.repeat(np.arange(len(GROUP_SIZES)), GROUP_SIZES)
ITEM_GROUP = np.repeat(np.arange(len(GROUP_SIZES)), GROUP_ITEMS)


def planted(seed: int = 0, density: float = 0.6) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(train, held_out): each user's group items with play counts, one in five held out."""
    rng = np.random.default_rng(seed)
    own = USER_GROUP[:, None] == ITEM_GROUP[None, :]
    dense = (own & (rng.random((N_USERS, N_ITEMS)) < density)).astype(np.float32)
    dense *= rng.integers(1, 20, size=dense.shape)  # play counts
    held = (dense > 0) & (rng.random(dense.shape) < 0.2)
    held[held.sum(axis=1) == (dense > 0).sum(axis=1)] = False  # everyone keeps a train item
    train, test = dense.copy(), np.zeros_like(dense)
    test[held], train[held] = 1.0, 0.0
    return sp.csr_matrix(train), sp.csr_matrix(test)


def small_models() -> list[Recommender]:
    """Each model with settings sized for a 60×40 matrix (the defaults suit Last.fm)."""
    return [
        ALSRecommender(factors=8, regularization=5.0, alpha=0.3, iterations=20),
        BPRRecommender(factors=8, learning_rate=0.05, regularization=0.05, iterations=100),
        EASERecommender(regularization=200.0, min_item_count=1),
        UserKNNRecommender(neighbours=10, shrink=1.0),
    ]


def ndcg_at(model: Recommender, test: sp.csr_matrix, k: int = 5) -> float:
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    ranked = np.full((test.shape[0], k), -1, dtype=np.int64)
    ranked[users] = model.recommend(users, k).items
    return ranking_scores(ranked, test, k).mean()["ndcg"]


def own_group_share(model: Recommender, k: int = 3) -> np.ndarray:
    """Per group, the share of its members' top slots that show the group's own artists.

    A user's top slots are the first ``min(k, own artists not yet played)``: past those, even
    a perfect model must show other groups' artists.
    """
    train = model._fitted()
    items = model.recommend(np.arange(N_USERS), k).items
    own = ITEM_GROUP[items] == USER_GROUP[:, None]
    played_own = np.diff(train.indptr)  # users play only their own group's artists
    slots = np.arange(k)[None, :] < np.minimum(k, GROUP_ITEMS - played_own)[:, None]
    return np.array(
        [own[g == USER_GROUP][slots[g == USER_GROUP]].mean() for g in range(len(GROUP_SIZES))]
    )


@pytest.mark.parametrize("model", small_models(), ids=lambda m: m.name)
def test_each_model_finds_the_planted_groups_and_beats_popularity(model: Recommender) -> None:
    counts, test = planted()
    popularity = PopularityRecommender().fit(counts)
    model.fit(model_spec(model.name).weighting.apply(counts))  # weighted as the jobs do
    # popularity shows the smaller groups the first group's artists; a personal model does not
    assert own_group_share(popularity)[1:].max() == 0.0
    assert own_group_share(model).tolist() == [1.0, 1.0, 1.0, 1.0]
    assert ndcg_at(model, test) > ndcg_at(popularity, test) + 0.25


@pytest.mark.parametrize("model", small_models(), ids=lambda m: m.name)
def test_save_and_load_give_identical_recommendations(model: Recommender, tmp_path: Path) -> None:
    train, _ = planted(seed=1)
    model.fit(train)
    model.save(tmp_path / model.name)
    loaded = type(model).load(tmp_path / model.name)
    assert loaded.params() == model.params()
    users = np.arange(train.shape[0])
    before, after = model.recommend(users, 8), loaded.recommend(users, 8)
    np.testing.assert_array_equal(before.items, after.items)
    np.testing.assert_array_equal(before.scores, after.scores)
    assert before.reasons(3) == after.reasons(3)


@pytest.mark.parametrize("cls", [ALSRecommender, BPRRecommender], ids=["als", "bpr"])
def test_factor_models_are_reproducible_for_a_seed(cls: type) -> None:
    train, _ = planted(seed=2)
    first = cls(factors=8, iterations=10, random_state=5).fit(train)
    again = cls(factors=8, iterations=10, random_state=5).fit(train)
    other = cls(factors=8, iterations=10, random_state=6).fit(train)
    np.testing.assert_array_equal(first.item_factors, again.item_factors)
    np.testing.assert_array_equal(first.user_factors, again.user_factors)
    assert not np.allclose(first.item_factors, other.item_factors)


# -- ALS ---------------------------------------------------------------------------------------
def test_als_fold_in_reproduces_a_trained_users_vector() -> None:
    train, _ = planted(seed=3)
    model = ALSRecommender(factors=6, regularization=0.5, alpha=0.5, iterations=60).fit(train)
    users = np.arange(0, train.shape[0], 7)
    folded = model.fold_in(train[users])
    trained = model.user_factors[users]
    relative = np.linalg.norm(folded - trained, axis=1) / np.linalg.norm(trained, axis=1)
    assert relative.max() < 0.05
    # and the vectors rank as the trained ones do
    np.testing.assert_array_equal(
        np.argsort(-model.score_vectors(folded), axis=1)[:, :5],
        np.argsort(-model.score(users), axis=1)[:, :5],
    )


def test_als_fold_in_solves_the_least_squares_problem_of_hu_et_al() -> None:
    train, _ = planted(seed=4)
    alpha, lam = 2.0, 0.3
    model = ALSRecommender(factors=5, regularization=lam, alpha=alpha, iterations=5).fit(train)
    new_user = sp.csr_matrix(([3.0, 1.0, 7.0], ([0, 0, 0], [21, 25, 28])), shape=(1, N_ITEMS))
    y = model.item_factors.astype(np.float64)
    c = np.zeros(N_ITEMS)
    c[[21, 25, 28]] = alpha * np.array([3.0, 1.0, 7.0])  # implicit: confidence = alpha·value
    p = (c > 0).astype(np.float64)
    # minimise Σ_i c'_i (p_i − x·y_i)² + λ|x|², c' = c where played, 1 elsewhere
    weights = np.where(c > 0, c, 1.0)
    expected = np.linalg.solve(y.T @ (weights[:, None] * y) + lam * np.eye(5), y.T @ (weights * p))
    np.testing.assert_allclose(model.fold_in(new_user)[0], expected, rtol=1e-3, atol=1e-5)
    # a newcomer who plays the third group's artists is recommended the third group's artists
    scores = model.score_vectors(model.fold_in(new_user))[0]
    scores[[21, 25, 28]] = -np.inf
    assert (ITEM_GROUP[np.argsort(-scores)[:3]] == 2).all()


def test_als_fold_in_checks_the_item_count() -> None:
    train, _ = planted()
    model = ALSRecommender(factors=4, iterations=2).fit(train)
    with pytest.raises(SegueError, match=str(N_ITEMS)):
        model.fold_in(sp.csr_matrix((1, N_ITEMS - 1), dtype=np.float32))
    with pytest.raises(SegueError, match="components"):
        model.score_vectors(np.zeros((1, 5)))
    with pytest.raises(SegueError, match="not fitted"):
        ALSRecommender().fold_in(train[:1])


@pytest.mark.parametrize("model", small_models()[:3], ids=lambda m: m.name)
def test_reasons_name_a_played_item_of_the_same_group(model: Recommender) -> None:
    train, _ = planted(seed=5)
    model.fit(train)
    users = np.array([2, 50])  # one of the first group, one of the third
    recs = model.recommend(users, 3)
    for row, user in enumerate(users):
        played = set(train[user].indices.tolist())
        for item, reason in zip(recs.items[row], recs.reasons(row), strict=True):
            assert reason.code == "because_you_played"
            assert reason.anchor_item in played
            assert ITEM_GROUP[reason.anchor_item] == ITEM_GROUP[item]


def test_als_reason_is_the_largest_term_of_the_score() -> None:
    train, _ = planted(seed=6)
    alpha, lam = 1.5, 0.2
    model = ALSRecommender(factors=6, regularization=lam, alpha=alpha, iterations=10).fit(train)
    user = 7
    row = train[user]
    y = model.item_factors.astype(np.float64)
    c = alpha * row.data.astype(np.float64)
    w = y.T @ y + lam * np.eye(6) + y[row.indices].T @ ((c - 1)[:, None] * y[row.indices])
    for item in model.recommend([user], 4).items[0]:
        terms = c * (y[row.indices] @ np.linalg.solve(w, y[item]))
        # the terms sum to the score of the user's exactly folded-in vector
        folded = model.fold_in(row)[0]
        assert terms.sum() == pytest.approx(float(folded @ y[item]), rel=1e-3)
        assert model.explain(user, int(item)).anchor_item == row.indices[np.argmax(terms)]


def test_als_reasons_for_a_page_are_the_reasons_one_by_one() -> None:
    # explain_items solves the user's system once for all items: the same answers as explain
    train, _ = planted(seed=6)
    model = ALSRecommender(factors=6, regularization=0.2, alpha=1.5, iterations=10).fit(train)
    items = np.random.default_rng(0).choice(train.shape[1], size=12, replace=False)
    for user in (0, 7, 50):
        assert model.explain_items(user, items) == [model.explain(user, int(i)) for i in items]
    assert model.explain_items(7, []) == []


# -- EASE --------------------------------------------------------------------------------------
def ease_by_formula(x: np.ndarray, lam: float) -> np.ndarray:
    """Steck 2019, eq. 8: B = I − P · diagMat(1 ⊘ diag(P)), P = (XᵀX + λI)⁻¹."""
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    return np.eye(x.shape[1]) - p @ np.diag(1.0 / np.diag(p))


@pytest.mark.parametrize("shape", [(9, 5), (4, 7)], ids=["more-users", "more-items"])
def test_ease_weights_match_the_closed_form(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    x = (rng.random(shape) < 0.6) * rng.integers(1, 4, size=shape).astype(np.float64)
    x[0, :] = 1.0  # every item has a listener
    model = EASERecommender(regularization=2.5, min_item_count=1).fit(sp.csr_matrix(x))
    expected = ease_by_formula(x, 2.5)
    assert np.diag(expected) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(model.weights, expected, atol=1e-6)
    np.testing.assert_allclose(model.score(np.arange(shape[0])), x @ expected, atol=1e-5)


def test_ease_scores_rare_items_minus_infinity_and_fits_the_rest_alone() -> None:
    x = np.array(
        [
            [1, 1, 0, 1, 0],
            [1, 0, 1, 0, 0],
            [0, 1, 1, 0, 1],
            [1, 1, 1, 0, 0],
        ],
        dtype=np.float64,
    )
    model = EASERecommender(regularization=1.0, min_item_count=2).fit(sp.csr_matrix(x))
    assert model.kept.tolist() == [0, 1, 2]  # items 3 and 4 have one listener each
    np.testing.assert_allclose(model.weights, ease_by_formula(x[:, :3], 1.0), atol=1e-6)
    scores = model.score(np.arange(4))
    assert np.isneginf(scores[:, 3:]).all()
    recs = model.recommend(np.arange(4), k=4)
    assert not np.isin(recs.items, [3, 4]).any()
    # user 0 played items 0, 1, 3: item 2 is left, item 4 cannot be scored, the rest is padding
    assert recs.items[0].tolist() == [2, -1, -1, -1]
    assert model.explain(0, 3).code == "matches_your_taste"


def test_ease_reason_is_the_played_item_with_the_largest_weight() -> None:
    train, _ = planted(seed=7)
    model = EASERecommender(regularization=3.0, min_item_count=1).fit(train)
    b = ease_by_formula(train.toarray().astype(np.float64), 3.0)
    user = 11
    row = train[user]
    for item in model.recommend([user], 5).items[0]:
        terms = row.data * b[row.indices, item]
        assert model.explain(user, int(item)).anchor_item == row.indices[np.argmax(terms)]


# -- user-kNN ----------------------------------------------------------------------------------
def test_userknn_similarity_and_scores_by_hand() -> None:
    r = np.array(
        [
            [2, 1, 0, 0],
            [1, 1, 1, 0],
            [0, 0, 1, 3],
            [2, 0, 0, 1],
        ],
        dtype=np.float64,
    )
    model = UserKNNRecommender(neighbours=2, shrink=1.0, friends_weight=0.0).fit(sp.csr_matrix(r))
    norms = np.linalg.norm(r, axis=1)
    cosine = (r @ r.T) / np.outer(norms, norms)
    common = (r > 0).astype(float) @ (r > 0).T
    shrunk = cosine * common / (common + 1.0)
    np.fill_diagonal(shrunk, 0.0)
    expected = np.zeros_like(shrunk)
    for u in range(4):  # each user's two most similar others
        best = np.argsort(-shrunk[u])[:2]
        expected[u, best] = shrunk[u, best]
    np.testing.assert_allclose(model.similarity.toarray(), expected, rtol=1e-5)
    np.testing.assert_allclose(model.score(np.arange(4)), expected @ r, rtol=1e-5)
    reason = model.explain(0, 2)
    assert reason.code == "listeners_like_you"
    assert reason.value == float((r[expected[0] > 0, 2] > 0).sum())


def test_userknn_friend_blending_pulls_towards_friends_items() -> None:
    # user 0 shares taste with users 1-2 (who also play item 4); user 3 shares little with
    # user 0 but is their friend, and plays item 5
    r = np.array(
        [
            [1, 1, 1, 0, 0, 0],
            [1, 1, 1, 1, 1, 0],
            [1, 1, 0, 0, 1, 0],
            [0, 0, 1, 0, 0, 1],
        ],
        dtype=np.float32,
    )
    friends = sp.csr_matrix(([1.0, 1.0], ([0, 3], [3, 0])), shape=(4, 4))
    side = SideInfo(friends=friends)
    plain = UserKNNRecommender(neighbours=3, shrink=0.0, friends_weight=0.0).fit(
        sp.csr_matrix(r), side
    )
    assert plain.recommend([0], 1).items[0, 0] == 4
    w = 0.7
    social = UserKNNRecommender(neighbours=3, shrink=0.0, friends_weight=w).fit(
        sp.csr_matrix(r), side
    )
    assert social.recommend([0], 1).items[0, 0] == 5
    cos_03 = 1 / (np.sqrt(3) * np.sqrt(2))
    assert social.similarity[0, 3] == pytest.approx((1 - w) * cos_03 + w, rel=1e-5)
    cos_01 = 3 / (np.sqrt(3) * np.sqrt(5))
    assert social.similarity[0, 1] == pytest.approx((1 - w) * cos_01, rel=1e-5)
    # without a friend graph the weight changes nothing
    alone = UserKNNRecommender(neighbours=3, shrink=0.0, friends_weight=w).fit(sp.csr_matrix(r))
    np.testing.assert_allclose(alone.similarity.toarray(), plain.similarity.toarray())


def test_userknn_refuses_a_friend_graph_of_another_size() -> None:
    side = SideInfo(friends=sp.csr_matrix((3, 3), dtype=np.float32))
    with pytest.raises(SegueError, match="friend graph is 3×3"):
        UserKNNRecommender(friends_weight=0.1).fit(sp.csr_matrix(np.eye(4)), side)


# -- parameters and the registry ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ALSRecommender(factors=0), "factors"),
        (lambda: ALSRecommender(alpha=-1.0), "alpha"),
        (lambda: BPRRecommender(learning_rate=0.0), "learning_rate"),
        (lambda: BPRRecommender(iterations=0), "iterations"),
        (lambda: EASERecommender(regularization=0.0), "regularization"),
        (lambda: EASERecommender(min_item_count=0), "min_item_count"),
        (lambda: UserKNNRecommender(neighbours=0), "neighbours"),
        (lambda: UserKNNRecommender(friends_weight=1.5), "friends_weight"),
    ],
)
def test_bad_parameters_are_named(build, message: str) -> None:
    with pytest.raises(SegueError, match=message):
        build()


def test_non_finite_interactions_are_refused() -> None:
    bad = sp.csr_matrix(np.array([[1.0, np.nan], [0.0, 1.0]], dtype=np.float32))
    for model in small_models():
        with pytest.raises(SegueError, match="finite"):
            model.fit(bad)


def test_registry_builds_each_model_with_its_weighting() -> None:
    for name, cls in (
        ("als", ALSRecommender),
        ("bpr", BPRRecommender),
        ("ease", EASERecommender),
        ("userknn", UserKNNRecommender),
    ):
        spec = model_spec(name)
        assert spec.cls is cls
        assert isinstance(spec.factory(), cls)
        assert spec.factory().name == name
        assert name in MODELS


@pytest.fixture(scope="module")
def synthetic() -> tuple[Interactions, SideInfo]:
    world = generate_world(
        SynthParams(
            seed=5,
            n_users=800,
            n_tracks=1_500,
            n_events=60_000,
            n_podcast_shows=10,
            n_podcast_episodes=50,
            n_videos=20,
            n_audiobooks=5,
        )
    )
    data = Interactions.from_log(world.events())
    links = [(f.user_id, f.friend_id) for f in world.friendships]
    return data, SideInfo(friends=friend_matrix(links, data.users))


@pytest.mark.parametrize("name", ["als", "bpr", "ease", "userknn"])
def test_registry_defaults_beat_popularity_on_the_synthetic_world(
    name: str, synthetic: tuple[Interactions, SideInfo]
) -> None:
    data, side = synthetic
    train, _, test = random_split(data, seed=0)
    relevant = test.binary_matrix()
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)

    def ndcg(model: Recommender) -> float:
        ranked = np.full((data.n_users, 10), -1, dtype=np.int64)
        ranked[users] = model.recommend(users, 10).items
        return ranking_scores(ranked, relevant, 10).mean()["ndcg"]

    spec = model_spec(name)
    model = spec.factory().fit(train.matrix(spec.weighting), side)
    baseline = PopularityRecommender().fit(train.binary_matrix())
    assert ndcg(model) > 3 * ndcg(baseline)


# -- listeners known only by a history row ------------------------------------------------------
def test_history_scores_of_a_training_row_equal_the_users_scores() -> None:
    train, _ = planted(seed=8)
    users = np.array([0, 30, 59])
    ease = EASERecommender(regularization=4.0, min_item_count=1).fit(train)
    np.testing.assert_array_equal(ease.score_history(train[users]), ease.score(users))
    als = ALSRecommender(factors=6, regularization=0.5, alpha=0.5, iterations=60).fit(train)
    np.testing.assert_allclose(
        als.score_history(train[users]), als.score_vectors(als.fold_in(train[users]))
    )
    np.testing.assert_array_equal(
        np.argsort(-als.score_history(train[users]), axis=1)[:, :5],
        np.argsort(-als.score(users), axis=1)[:, :5],
    )


def test_userknn_scores_a_newcomer_from_their_nearest_listeners() -> None:
    r = np.array([[2, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 3], [2, 0, 0, 1]], dtype=np.float64)
    model = UserKNNRecommender(neighbours=2, shrink=1.0).fit(sp.csr_matrix(r))
    history = np.array([[1.0, 0.0, 2.0, 0.0]])
    cosine = (history @ r.T)[0] / (np.linalg.norm(history) * np.linalg.norm(r, axis=1))
    common = ((history > 0).astype(float) @ (r > 0).T)[0]
    shrunk = cosine * common / (common + 1.0)
    nearest = np.argsort(-shrunk)[:2]
    expected = shrunk[nearest] @ r[nearest]
    got = model.score_history(sp.csr_matrix(history))
    np.testing.assert_allclose(got[0], expected, rtol=1e-5)


def test_history_of_the_wrong_width_and_bpr_histories_are_refused() -> None:
    train, _ = planted()
    narrow = sp.csr_matrix((1, N_ITEMS - 1), dtype=np.float32)
    for model in (EASERecommender(min_item_count=1), UserKNNRecommender()):
        model.fit(train)
        with pytest.raises(SegueError, match=f"\\(n, {N_ITEMS}\\)"):
            model.score_history(narrow)
    bpr = BPRRecommender(factors=4, iterations=2).fit(train)
    with pytest.raises(SegueError, match="cannot score users outside"):
        bpr.score_history(train[:1])
