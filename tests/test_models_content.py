"""Content-based filtering against hand-computed TF-IDF and cosines, cold items, and Last.fm."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from segue.data.model import AudioFeatures, Item, ItemKind
from segue.dataset import IdMap, ItemCatalog, SideInfo
from segue.errors import SegueError
from segue.models.content import (
    ContentRecommender,
    audio_block,
    item_texts,
    label_tfidf,
    normalise_label,
)
from segue.models.names import MODELS


def track(item_id: str, *, genres: tuple[str, ...] = (), tags: tuple[str, ...] = (), **kw) -> Item:
    return Item(
        id=item_id, kind=ItemKind.TRACK, title=f"Song {item_id}", genres=genres, tags=tags, **kw
    )


def side_for(items: list[Item], ids: list[str] | None = None) -> SideInfo:
    ids = ids if ids is not None else [i.id for i in items]
    return SideInfo(catalog=ItemCatalog.from_items(items, IdMap(ids)))


def matrix(rows: list[list[float]]) -> sp.csr_matrix:
    return sp.csr_matrix(np.array(rows, dtype=np.float32))


# a: rock+indie, b: rock, c: jazz, d: nothing
TINY = [
    track("a", genres=("rock",), tags=("indie",)),
    track("b", tags=("Rock",)),
    track("c", genres=("jazz",)),
    track("d"),
]


def test_tfidf_by_hand_merges_genres_and_tags() -> None:
    tfidf, terms = label_tfidf(side_for(TINY).catalog)
    assert sorted(terms) == ["indie", "jazz", "rock"]  # genre "rock" and tag "Rock" are one term
    col = {t: i for i, t in enumerate(terms)}
    # 3 labelled items; df(rock)=2, df(indie)=df(jazz)=1; idf = ln((1+n)/(1+df)) + 1
    idf_rock, idf_one = math.log(4 / 3) + 1, math.log(4 / 2) + 1
    norm_a = math.hypot(idf_rock, idf_one)
    dense = tfidf.toarray()
    assert dense[0, col["rock"]] == pytest.approx(idf_rock / norm_a)
    assert dense[0, col["indie"]] == pytest.approx(idf_one / norm_a)
    assert dense[1].tolist() == pytest.approx([1.0 if t == "rock" else 0.0 for t in terms])
    assert dense[2, col["jazz"]] == pytest.approx(1.0)
    assert not dense[3].any()


def test_cosines_and_similar_items_by_hand() -> None:
    model = ContentRecommender().fit(matrix([[1, 0, 0, 0]]), side_for(TINY))
    idf_rock, idf_one = math.log(4 / 3) + 1, math.log(4 / 2) + 1
    cos_ab = idf_rock / math.hypot(idf_rock, idf_one)
    sims = model.item_similarity(np.array([0, 1, 2, 3]), 1)
    np.testing.assert_allclose(sims, [cos_ab, 1.0, 0.0, 0.0], rtol=1e-6, atol=1e-7)
    assert model.described.tolist() == [True, True, True, False]
    # a's only neighbour is b; c and d share nothing with it
    assert model.similar_items([0, 3], k=3).tolist() == [[1, -1, -1], [-1, -1, -1]]
    # the user played a: b scores cos(a, b), c and the attribute-less d score 0
    scores = model.score(np.array([0]))[0]
    np.testing.assert_allclose(scores, [1.0, cos_ab, 0.0, 0.0], rtol=1e-6, atol=1e-7)


def test_label_spellings_meet() -> None:
    assert normalise_label(" Hip-Hop ") == "hip hop"
    assert normalise_label("hip_hop") == normalise_label("HIP  hop") == "hip hop"


def test_new_item_with_the_users_tags_ranks_first() -> None:
    items = [
        track("r1", genres=("rock",), tags=("guitar", "90s")),
        track("r2", genres=("rock",), tags=("guitar",)),
        track("j1", genres=("jazz",), tags=("saxophone",)),
        track("j2", genres=("jazz",), tags=("saxophone", "90s")),
        track("p1", genres=("pop",)),
        track("new", genres=("rock",), tags=("guitar", "90s")),  # nobody has played it
    ]
    train = matrix(
        [
            [3, 1, 0, 0, 0, 0],  # the rock fan
            [0, 0, 1, 1, 1, 0],
            [0, 1, 1, 0, 1, 0],
        ]
    )
    model = ContentRecommender().fit(train, side_for(items))
    assert train[:, 5].nnz == 0
    recs = model.recommend([0], k=3)
    assert recs.items[0, 0] == 5
    # the new item has r1's exact labels: r1 is the played item that explains it
    reason = recs.reasons(0)[0]
    assert reason.code == "because_you_played" and reason.anchor_item == 0
    # and the new item is r1's most similar item, with cosine 1
    assert model.similar_items([0], k=1)[0, 0] == 5
    assert model.item_similarity(np.array([0]), 5)[0] == pytest.approx(1.0, abs=1e-6)


def test_a_history_row_scores_as_the_same_training_row_and_new_plays_move_the_list() -> None:
    """score_history is what serving calls for a listener with fresh plays (and the pipeline
    for its content generator): a training row as a history gives that user's scores."""
    items = [
        track("r1", genres=("rock",), tags=("guitar",)),
        track("r2", genres=("rock",), tags=("guitar", "90s")),
        track("j1", genres=("jazz",), tags=("saxophone",)),
        track("j2", genres=("jazz",), tags=("saxophone", "90s")),
    ]
    train = matrix([[3, 0, 0, 0], [0, 0, 2, 0]])
    model = ContentRecommender().fit(train, side_for(items))
    np.testing.assert_allclose(model.score_history(train), model.score(np.array([0, 1])))
    now_jazz = matrix([[3, 0, 9, 0]])  # the rock fan's fresh jazz plays
    scores = model.score_history(now_jazz)[0]
    assert scores[3] > scores[1]
    with pytest.raises(SegueError, match=r"sparse \(n, 4\)"):
        model.score_history(matrix([[1, 0, 0]]))


def test_profile_is_weighted_by_the_training_values() -> None:
    items = [
        track("r", genres=("rock",)),
        track("j", genres=("jazz",)),
        track("x", tags=("rock", "jazz")),
    ]
    heavy_rock = ContentRecommender().fit(matrix([[9, 1, 0]]), side_for(items))
    heavy_jazz = ContentRecommender().fit(matrix([[1, 9, 0]]), side_for(items))
    # x is equally rock and jazz (unit vector (1,1)/sqrt2); profile ∝ (9, 1) or (1, 9)
    expected = (9 + 1) / (math.sqrt(2) * math.hypot(9, 1))
    assert heavy_rock.score(np.array([0]))[0, 2] == pytest.approx(expected, rel=1e-6)
    assert heavy_rock.score(np.array([0]))[0, 0] > heavy_rock.score(np.array([0]))[0, 1]
    assert heavy_jazz.score(np.array([0]))[0, 1] > heavy_jazz.score(np.array([0]))[0, 0]


def audio(tempo: float, energy: float, acoustic: float) -> AudioFeatures:
    return AudioFeatures(
        tempo=tempo,
        energy=energy,
        danceability=0.5,
        valence=0.5,
        acousticness=acoustic,
        instrumentalness=0.1,
        loudness=-8.0,
    )


def test_audio_only_similarity() -> None:
    items = [
        track("loud1", audio=audio(170, 0.95, 0.05)),
        track("quiet1", audio=audio(70, 0.10, 0.90)),
        track("loud2", audio=audio(165, 0.90, 0.10)),
        track("quiet2", audio=audio(75, 0.15, 0.85)),
        track("silent"),  # no audio, no labels
    ]
    block = audio_block(side_for(items).catalog.audio)
    known = block[:4]
    # standardised over the four known items: each column has mean 0; constant columns are 0
    np.testing.assert_allclose(known.mean(axis=0), 0, atol=1e-6)
    assert not known[:, [2, 3, 5, 6]].any()
    # population std 1, scaled by 1/sqrt(7)
    np.testing.assert_allclose(known[:, 0].std() * math.sqrt(7), 1.0, rtol=1e-5)
    assert not block[4].any()

    model = ContentRecommender(label_weight=0.0, audio_weight=1.0).fit(
        matrix([[1, 0, 0, 0, 0]]), side_for(items)
    )
    assert model.similar_items([0], k=4)[0].tolist() == [2, -1, -1, -1]
    assert model.recommend([0], k=4).items[0].tolist() == [2, 4, 3, 1]  # silent scores 0
    assert model.described.tolist() == [True, True, True, True, False]
    assert model.score(np.array([0]))[0, 4] == 0.0


def test_onboarding_profile_ranks_the_picked_genre_first() -> None:
    genres = ["rock", "jazz", "techno"]
    items = [
        track(f"{g}{i}", genres=(g,), tags=(f"{g}-{i % 2}",)) for g in genres for i in range(4)
    ]
    train = sp.csr_matrix((2, len(items)), dtype=np.float32)  # nobody has played anything
    model = ContentRecommender().fit(train, side_for(items))
    jazz = [i for i, item in enumerate(items) if item.genres == ("jazz",)]
    profile = model.profile_from_items(jazz[:2], weights=[2.0, 1.0])
    assert profile.shape == (model.dim,)
    scores = model.score_profiles(profile)
    assert scores.shape == (1, len(items))
    top = np.argsort(-scores[0], kind="stable")[:4]
    assert sorted(top.tolist()) == jazz
    # a stack of profiles scores each row independently
    rock = model.profile_from_items([0])
    both = model.score_profiles(np.stack([profile, rock]))
    np.testing.assert_allclose(both[0], scores[0], rtol=1e-6)
    assert int(np.argmax(both[1])) == 0


def test_profile_and_fit_refuse_bad_input() -> None:
    model = ContentRecommender().fit(matrix([[1, 0, 0, 0]]), side_for(TINY))
    with pytest.raises(SegueError, match="at least one liked item"):
        model.profile_from_items([])
    with pytest.raises(SegueError, match=r"item index 7 is out of range 0\.\.3"):
        model.profile_from_items([1, 7])
    with pytest.raises(SegueError, match="got 1 weights for 2 items"):
        model.profile_from_items([0, 1], weights=[1.0])
    with pytest.raises(SegueError, match="finite, >= 0"):
        model.profile_from_items([0, 1], weights=[1.0, -1.0])
    with pytest.raises(SegueError, match=rf"expected \(n, {model.dim}\)"):
        model.score_profiles(np.zeros((1, model.dim + 1)))
    with pytest.raises(SegueError, match="item attributes"):
        ContentRecommender().fit(matrix([[1, 0, 0, 0]]))
    with pytest.raises(SegueError, match="describes 4 items but the interaction matrix has 3"):
        ContentRecommender().fit(matrix([[1, 0, 0]]), side_for(TINY))
    with pytest.raises(SegueError, match="audio_weight must be a finite number >= 0"):
        ContentRecommender(audio_weight=-1)
    with pytest.raises(SegueError, match="at least one of its weights"):
        ContentRecommender(label_weight=0, audio_weight=0)
    with pytest.raises(SegueError, match="not fitted"):
        ContentRecommender().profile_from_items([0])


def test_unknown_items_and_users_without_content_score_zero() -> None:
    # "ghost" is in the id map but has no catalog record
    model = ContentRecommender().fit(
        matrix([[0, 0, 0, 0, 1], [1, 0, 0, 0, 0]]), side_for(TINY, ["a", "b", "c", "d", "ghost"])
    )
    assert not model.described[4]
    assert not model.score(np.array([0])).any()  # played only the ghost
    assert model.explain(0, 1).code == "matches_your_taste"
    assert model.explain(1, 2).code == "matches_your_taste"  # c shares nothing with a


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    labels = ["rock", "jazz", "pop", "folk", "metal", "soul"]
    items = []
    for i in range(40):
        chosen = tuple(rng.choice(labels, size=int(rng.integers(0, 3)), replace=False))
        au = (
            audio(float(rng.uniform(60, 200)), float(rng.random()), float(rng.random()))
            if i % 3
            else None
        )
        items.append(track(f"t{i}", tags=chosen, audio=au))
    train = sp.csr_matrix((rng.random((25, 40)) < 0.15).astype(np.float32))
    model = ContentRecommender(label_weight=1.0, audio_weight=0.7).fit(train, side_for(items))
    model.save(tmp_path / "content")
    loaded = ContentRecommender.load(tmp_path / "content")
    assert loaded.params() == model.params()
    assert loaded.terms == model.terms
    np.testing.assert_array_equal(loaded.described, model.described)
    before, after = model.recommend(np.arange(25), k=8), loaded.recommend(np.arange(25), k=8)
    np.testing.assert_array_equal(before.items, after.items)
    np.testing.assert_allclose(before.scores, after.scores)
    np.testing.assert_array_equal(
        model.similar_items(np.arange(40), 5), loaded.similar_items(np.arange(40), 5)
    )
    assert [model.explain(u, 3) for u in range(25)] == [loaded.explain(u, 3) for u in range(25)]


def test_explain_names_the_closest_played_item() -> None:
    items = [
        track("rock", tags=("rock", "guitar")),
        track("jazz", tags=("jazz", "piano")),
        track("rockpiano", tags=("rock", "piano", "guitar")),  # closer to "rock" than to "jazz"
        track("jazzpiano", tags=("jazz", "piano", "smooth")),
    ]
    model = ContentRecommender().fit(matrix([[1, 5, 0, 0]]), side_for(items))
    # the heavy jazz listener still gets rockpiano explained by the rock track they played
    assert model.explain(0, 2).anchor_item == 0
    assert model.explain(0, 3).anchor_item == 1
    sims = model.item_similarity(np.array([0, 1]), 2)
    assert sims[0] > sims[1] > 0


def test_registered_under_its_name() -> None:
    spec = MODELS["content"]
    assert spec.cls is ContentRecommender and isinstance(spec.factory(), ContentRecommender)


def test_item_texts_join_title_genres_and_tags() -> None:
    texts = item_texts(side_for(TINY).catalog)
    assert texts == ["Song a. rock. indie", "Song b. Rock", "Song c. jazz", "Song d"]


def expected_random_ndcg(relevant: sp.csr_matrix, candidates: np.ndarray, k: int) -> float:
    """Mean NDCG@k of a uniformly random ranking: each slot hits with prob n_rel / n_cand."""
    n_rel = np.diff(relevant.indptr)
    users = np.flatnonzero(n_rel > 0)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.array([discounts[: min(k, int(n))].sum() for n in n_rel[users]])
    p = n_rel[users] / candidates[users]
    return float(np.mean(p * discounts.sum() / ideal))


@pytest.mark.slow
def test_lastfm_content_beats_random(lastfm_dir: Path) -> None:
    from segue.data.log import InteractionLog
    from segue.data.sources.lastfm import read_lastfm_2k
    from segue.dataset import Interactions, random_split
    from segue.eval.metrics import ranking_scores

    batch = read_lastfm_2k(lastfm_dir)
    data = Interactions.from_log(InteractionLog.from_events(batch.events))
    side = SideInfo(catalog=ItemCatalog.from_items(batch.items, data.items))
    split = random_split(data, (0.8, 0.1, 0.1), seed=2020)
    spec = MODELS["content"]
    model = spec.factory().fit(split.train.matrix(spec.weighting), side)
    started = time.perf_counter()
    recs = model.recommend(np.arange(data.n_users), k=10)
    seconds = time.perf_counter() - started
    relevant = split.valid.binary_matrix()
    ndcg = ranking_scores(recs.items, relevant, 10).mean()["ndcg"]
    candidates = data.n_items - np.diff(split.train.binary_matrix().indptr)
    chance = expected_random_ndcg(relevant, candidates, 10)
    print(
        f"\nLast.fm content NDCG@10 (validation) {ndcg:.4f}, random {chance:.5f}, "
        f"recommend all {data.n_users} users {seconds:.2f}s, "
        f"{model.described.sum()} items described"
    )
    assert ndcg > 20 * chance


def test_one_profile_and_a_batch_of_profiles_score_alike() -> None:
    """A request's profile is scored dimension-major, a batch's item-major in slices; both
    must give every profile the cosines a plain dense product gives, labels and audio."""
    rng = np.random.default_rng(5)
    genres = ("rock", "jazz", "pop", "folk", "metal")
    items = [
        track(
            f"t{i}",
            genres=tuple(rng.choice(genres, 2, replace=False)),
            audio=audio(float(rng.uniform(60, 180)), *rng.random(2)),
        )
        for i in range(60)
    ]
    plays = sp.csr_matrix((rng.random((40, 60)) < 0.1).astype(np.float32))
    model = ContentRecommender().fit(plays, side_for(items))
    profiles = model._profiles(plays)
    vectors = np.hstack([model.sparse_vectors.toarray(), model.dense_vectors])
    norms = np.linalg.norm(profiles, axis=1, keepdims=True)
    expected = (profiles / np.where(norms > 0, norms, 1.0)) @ vectors.T
    batch = model.score_profiles(profiles)  # 40 profiles: item-major, in slices
    singles = np.vstack([model.score_profiles(p) for p in profiles])  # dimension-major
    np.testing.assert_allclose(batch, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(singles, expected, rtol=1e-5, atol=1e-6)
    assert batch.dtype == singles.dtype == np.float32 and batch.flags.c_contiguous


def test_a_large_catalogs_content_candidates_come_from_a_vector_index(tmp_path: Path) -> None:
    """The query space reproduces the scores (unit profile · item vectors); above the ANN
    threshold the content generator searches an index and retrieves what exact scoring
    does, scores its pairs as score() does, and retrieves nothing for a listener whose
    plays say nothing (a zero profile), from a training row or from a history."""
    from segue.models.staged.retrieval import Generators

    rng = np.random.default_rng(9)
    genres = ("rock", "jazz", "pop", "folk", "metal", "soul")
    items = [
        track(f"t{i}", genres=tuple(rng.choice(genres, 2, replace=False)),
              audio=audio(float(rng.uniform(60, 180)), *rng.random(2)))
        for i in range(150)
    ] + [track(f"bare{i}") for i in range(10)]  # fmt: skip
    plays = sp.csr_matrix((rng.random((30, 160)) < 0.08).astype(np.float32))
    plays = sp.vstack([plays, sp.csr_matrix(([1.0], ([0], [155])), shape=(1, 160))]).tocsr()
    side = side_for(items)
    model = ContentRecommender().fit(plays, side)
    query, vectors = model.query_space()
    np.testing.assert_allclose(query(plays) @ vectors.T, model.score(np.arange(31)), atol=1e-5)
    exact = Generators(("content",)).fit(plays, side)
    indexed = Generators(("content",), exact_below=0).fit(plays, side)
    users = np.arange(31)
    a = exact.retrieve(users, plays[users], 20)
    b = indexed.retrieve(users, plays[users], 20)
    assert indexed._indexes and not exact._indexes
    keys_a = set(zip(a.rows.tolist(), a.items.tolist(), strict=True))
    keys_b = set(zip(b.rows.tolist(), b.items.tolist(), strict=True))
    assert len(keys_a & keys_b) >= 0.9 * len(keys_a)
    scored = indexed.models["content"].score(users)[b.rows, b.items]  # its own weighting
    np.testing.assert_allclose(b.scores[:, 0], scored, rtol=1e-5, atol=1e-5)
    assert np.isnan(b.zall).all() and 30 not in b.rows  # listener 30 played a bare track
    by_history = indexed.retrieve(None, plays[users], 20, history=plays[users], raw=plays)
    keys_h = set(zip(by_history.rows.tolist(), by_history.items.tolist(), strict=True))
    # weighed as rows joining the matrix (its statistics shift a little): nearly the same
    assert len(keys_h & keys_b) >= 0.9 * len(keys_b) and 30 not in by_history.rows
    # saved and loaded, a model is served as it was trained: with the index where the fit
    # used one, without where the model predates content's index (no record kept)
    assert indexed.searched() == ["content"] and exact.searched() == []
    folder = tmp_path / "generators"
    indexed.save(folder)
    for searched, zall_nan in ((["content"], True), (None, False)):
        loaded = Generators(("content",), exact_below=0)
        loaded.load(folder, ["content"], searched)
        again = loaded.retrieve(users, plays[users], 20)
        assert bool(np.isnan(again.zall).all()) == zall_nan
        assert loaded.searched() == (["content"] if zall_nan else [])
