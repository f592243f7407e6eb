"""NCF (NeuMF) and the two-tower model on a tiny world with planted taste groups.

Four groups of listeners each play items of their own group (plus a little noise). Each group's
items share a genre and artists, so features say which group an item belongs to. A model that
learns anything beats popularity on held-out plays, folds a new listener in by their group, and
(the two-tower) places an unplayed item by its features.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from segue.data.model import Item, ItemKind
from segue.dataset import IdMap, ItemCatalog, SideInfo
from segue.dataset.splits import inner_holdout
from segue.errors import SegueError
from segue.models.names import DEFAULT_MODELS, MODELS
from segue.models.popularity import PopularityRecommender
from segue.ranking import hit_matrix, ndcg_per_user

pytest.importorskip("torch")

from segue.models.ncf import NCFRecommender
from segue.models.twotower import TwoTowerRecommender

GROUPS = 4
N_USERS = 240
N_ITEMS = 96  # 24 per group; the last item of each group is never played (a "new" item)
GROUP_OF_ITEM = np.arange(N_ITEMS) % GROUPS
GROUP_OF_USER = np.arange(N_USERS) % GROUPS
NEW_ITEMS = np.arange(N_ITEMS - GROUPS, N_ITEMS)  # one per group


def world(seed: int = 0) -> sp.csr_matrix:
    """Each user plays 9 items of their group (popular ones more often) and 1 at random."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    playable = np.setdiff1d(np.arange(N_ITEMS), NEW_ITEMS)
    for user in range(N_USERS):
        own = playable[GROUP_OF_ITEM[playable] == GROUP_OF_USER[user]]
        weights = 1.0 / (1.0 + np.arange(len(own)))
        picks = rng.choice(own, 9, replace=False, p=weights / weights.sum())
        noise = rng.choice(np.setdiff1d(playable, picks), 1)
        for item in (*picks, *noise):
            rows.append(user)
            cols.append(int(item))
    return sp.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, cols)), shape=(N_USERS, N_ITEMS)
    )


def catalog() -> SideInfo:
    """Item g (mod 4) has genre g, one of two artists of group g, and an instrument tag."""
    items = [
        Item(
            id=f"i{i}",
            kind=ItemKind.TRACK,
            title=f"Song {i}",
            artist_id=f"artist{GROUP_OF_ITEM[i]}-{(i // GROUPS) % 2}",
            genres=(f"genre{GROUP_OF_ITEM[i]}",),
            tags=(("guitar", "piano")[i % 2],),
        )
        for i in range(N_ITEMS)
    ]
    return SideInfo(catalog=ItemCatalog.from_items(items, IdMap([f"i{i}" for i in range(N_ITEMS)])))


FAST_NCF = {"factors": 16, "mlp_layers": (16, 8), "epochs": 15, "learning_rate": 0.01,
            "batch_size": 256, "patience": 4}  # fmt: skip
FAST_TT = {"dim": 16, "epochs": 25, "learning_rate": 0.02, "batch_size": 32, "patience": 5}


def ndcg_on(model, train: sp.csr_matrix, held: sp.csr_matrix) -> float:
    users = np.flatnonzero(np.diff(held.indptr) > 0)
    recs = model.recommend(users, 10)
    relevant = held[users]
    return float(ndcg_per_user(hit_matrix(recs.items, relevant), np.diff(relevant.indptr)).mean())


@pytest.fixture(scope="module")
def split() -> tuple[sp.csr_matrix, sp.csr_matrix]:
    return inner_holdout(world(), 0.2, seed=7)


@pytest.fixture(scope="module")
def ncf(split) -> NCFRecommender:
    return NCFRecommender(**FAST_NCF).fit(split[0])


@pytest.fixture(scope="module")
def twotower(split) -> TwoTowerRecommender:
    return TwoTowerRecommender(**FAST_TT).fit(split[0], catalog())


def test_registered_but_opt_in() -> None:
    assert {"ncf", "twotower"} <= set(MODELS)
    assert not {"ncf", "twotower"} & set(DEFAULT_MODELS)
    assert isinstance(MODELS["ncf"].build(factors=8), NCFRecommender)
    assert MODELS["twotower"].build(dim=8).dim == 8


@pytest.mark.parametrize("name", ["ncf", "twotower"])
def test_learns_the_groups_better_than_popularity(split, ncf, twotower, name) -> None:
    train, held = split
    model = {"ncf": ncf, "twotower": twotower}[name]
    popularity = PopularityRecommender().fit(train)
    ours, base = ndcg_on(model, train, held), ndcg_on(popularity, train, held)
    # popularity mixes the four groups' favourites; a model of the groups ranks within one
    assert ours > base + 0.1, (ours, base)
    recs = model.recommend(np.arange(N_USERS), 5)
    same_group = GROUP_OF_ITEM[recs.items] == GROUP_OF_USER[:, None]
    assert same_group.mean() > 0.8
    assert model.trained_epochs >= 1 and len(model.validation_curve) >= model.trained_epochs


@pytest.mark.parametrize("name", ["ncf", "twotower"])
def test_new_listener_follows_their_history(ncf, twotower, name) -> None:
    model = {"ncf": ncf, "twotower": twotower}[name]
    histories = []
    for group in range(GROUPS):
        picks = np.flatnonzero(group == GROUP_OF_ITEM)[:4]
        histories.append(sp.csr_matrix((np.ones(4), (np.zeros(4, int), picks)), (1, N_ITEMS)))
    scores = model.score_history(sp.vstack(histories).tocsr())
    assert scores.shape == (GROUPS, N_ITEMS)
    for group, row in enumerate(scores):
        played = np.flatnonzero(group == GROUP_OF_ITEM)[:4]
        row = row.copy()
        row[played] = -np.inf
        top = np.argsort(-row)[:10]
        assert (GROUP_OF_ITEM[top] == group).mean() >= 0.8, (group, GROUP_OF_ITEM[top])


def test_twotower_scores_an_unplayed_item_by_its_features(twotower) -> None:
    # the column of each group's never-played item: it ranks high for its group only
    scores = twotower.score(np.arange(N_USERS))[:, NEW_ITEMS]
    assert (np.argmax(scores, axis=1) == GROUP_OF_USER).mean() > 0.9
    # and not below the played items: unplayed items never served as softmax negatives
    ranked = twotower.recommend(np.arange(N_USERS), 10).items
    own_new = NEW_ITEMS[GROUP_OF_USER]
    assert (ranked == own_new[:, None]).any(axis=1).mean() > 0.9
    # an item added after training, described only by a catalog of its own
    fresh = [
        Item(id=f"new{g}", kind=ItemKind.TRACK, title=f"New {g}", genres=(f"genre{g}",),
             artist_id=f"artist{g}-{(i // GROUPS) % 2}", tags=(("guitar", "piano")[i % 2],))
        for g, i in enumerate(NEW_ITEMS)
    ]  # the same features as the unplayed columns: the same vectors  # fmt: skip
    vectors = twotower.embed_items(ItemCatalog.from_items(fresh, IdMap([f.id for f in fresh])))
    assert vectors.shape == (GROUPS, twotower.dim + 1)
    np.testing.assert_allclose(vectors, twotower.item_embeddings()[NEW_ITEMS], rtol=1e-5, atol=1e-6)
    by_user = twotower.user_embeddings() @ vectors.T
    assert (np.argmax(by_user, axis=1) == GROUP_OF_USER).mean() > 0.9


def test_embeddings_are_the_scores(ncf, twotower) -> None:
    users = np.arange(0, N_USERS, 7)
    np.testing.assert_allclose(
        twotower.user_embeddings()[users] @ twotower.item_embeddings().T,
        twotower.score(users),
        rtol=1e-5,
        atol=1e-5,
    )
    for model in (ncf, twotower):
        for matrix in (model.user_embeddings(), model.item_embeddings()):
            assert matrix.dtype == np.float32 and matrix.flags.c_contiguous
    # twotower ranks by the factor path; it must agree with ranking the dense scores
    recs = twotower.recommend(users, 10)
    dense = twotower.score(users)
    seen = twotower._fitted()[users]
    dense[np.repeat(np.arange(len(users)), np.diff(seen.indptr)), seen.indices] = -np.inf
    expected = np.take_along_axis(dense, recs.items, axis=1)
    np.testing.assert_allclose(recs.scores, expected, rtol=1e-5, atol=1e-5)
    assert (recs.scores[:, :-1] >= recs.scores[:, 1:] - 1e-6).all()
    # the GMF half of NCF's logit is exactly the dot product of its embeddings
    gmf = ncf.user_embeddings()[users] @ ncf.item_embeddings().T
    assert np.corrcoef(gmf.ravel(), ncf.score(users).ravel())[0, 1] > 0.3


@pytest.mark.parametrize("name", ["ncf", "twotower"])
def test_save_load_round_trip(tmp_path: Path, ncf, twotower, name) -> None:
    model = {"ncf": ncf, "twotower": twotower}[name]
    model.save(tmp_path / name)
    loaded = type(model).load(tmp_path / name)
    users = np.arange(N_USERS)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    history = sp.csr_matrix((np.ones(3), ([0, 0, 0], [1, 5, 9])), shape=(1, N_ITEMS))
    np.testing.assert_array_equal(loaded.score_history(history), model.score_history(history))
    np.testing.assert_array_equal(loaded.similar_items([0, 1], 5), model.similar_items([0, 1], 5))
    assert loaded.params() == model.params()
    assert loaded.validation_curve == model.validation_curve


@pytest.mark.parametrize("name", ["ncf", "twotower"])
def test_same_seed_same_model(split, name) -> None:
    cls, settings = {"ncf": (NCFRecommender, FAST_NCF), "twotower": (TwoTowerRecommender, FAST_TT)}[
        name
    ]
    settings = {**settings, "epochs": 3}
    side = catalog() if name == "twotower" else None
    users = np.arange(N_USERS)
    first = cls(**settings, seed=3).fit(split[0], side).score(users)
    again = cls(**settings, seed=3).fit(split[0], side).score(users)
    other = cls(**settings, seed=4).fit(split[0], side).score(users)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_twotower_without_side_info_uses_ids_only(split) -> None:
    model = TwoTowerRecommender(**FAST_TT).fit(split[0])
    assert set(model.weights) == {"ids", "user", "user_bias", "temperature"}
    assert ndcg_on(model, *split) > ndcg_on(PopularityRecommender().fit(split[0]), *split) + 0.1
    with pytest.raises(SegueError, match="use_text needs SideInfo"):
        TwoTowerRecommender(use_text=True).fit(split[0])


def test_twotower_sampled_softmax_learns_too(tmp_path: Path, split) -> None:
    """Above ``full_softmax_items`` the softmax runs over the batch's items plus uniform
    ones with the logQ correction: still far above popularity (here with a hidden user layer,
    which must survive a save and load too)."""
    model = TwoTowerRecommender(**FAST_TT, full_softmax_items=10, sampled=16, user_hidden=8)
    model.fit(split[0], catalog())
    assert {"user_hidden", "user_hidden_bias"} <= set(model.weights)
    assert ndcg_on(model, *split) > ndcg_on(PopularityRecommender().fit(split[0]), *split) + 0.1
    model.save(tmp_path / "tt")
    history = sp.csr_matrix((np.ones(2), ([0, 0], [2, 6])), shape=(1, N_ITEMS))
    loaded = TwoTowerRecommender.load(tmp_path / "tt")
    np.testing.assert_array_equal(loaded.score_history(history), model.score_history(history))


def test_bad_settings_and_input_are_one_line_errors() -> None:
    with pytest.raises(SegueError, match="loss must be one of bpr, bce"):
        NCFRecommender(loss="hinge")
    with pytest.raises(SegueError, match=r"first .* even"):
        NCFRecommender(mlp_layers=(15, 8))
    with pytest.raises(SegueError, match="id_dropout"):
        TwoTowerRecommender(id_dropout=1.0)
    with pytest.raises(SegueError, match="no positive entries"):
        NCFRecommender().fit(sp.csr_matrix((3, 4), dtype=np.float32))
    with pytest.raises(SegueError, match="catalog describes 96 items"):
        TwoTowerRecommender().fit(sp.csr_matrix(np.ones((2, 5), np.float32)), catalog())
    with pytest.raises(SegueError, match="not fitted"):
        NCFRecommender().score(np.array([0]))


def test_importing_the_models_does_not_import_torch() -> None:
    code = (
        "import sys, segue.models.names, segue.models.ncf, segue.models.twotower; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_without_torch_the_error_names_the_extra() -> None:
    """An interpreter where torch cannot be imported (a finder refuses it): fitting says which
    extra to install, in one line, instead of a traceback."""
    code = """
import sys
import numpy as np, scipy.sparse as sp

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoTorch())
from segue.errors import SegueError
from segue.models.names import model_spec
for name in ("ncf", "twotower"):
    try:
        model_spec(name).build().fit(sp.csr_matrix(np.ones((3, 4), np.float32)))
    except SegueError as exc:
        print(exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines == [
        "install segue[nlu] to use the ncf model (pip install 'segue[nlu]'); missing: torch",
        "install segue[nlu] to use the twotower model (pip install 'segue[nlu]'); missing: torch",
    ]
