"""Popularity and item-kNN against hand-computed cases, and their save/load round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from segue.errors import SegueError
from segue.models.base import top_k
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


def test_top_k_orders_by_score_then_index() -> None:
    scores = np.array([[0.5, 0.9, 0.7, 0.1, 0.9], [0.0, 0.1, 0.2, 0.3, 0.4]])
    items, values = top_k(scores, 3)
    assert items.tolist() == [[1, 4, 2], [4, 3, 2]]
    assert values[0].tolist() == [0.9, 0.9, 0.7]
    full, _ = top_k(scores, 5)
    assert full[0].tolist() == [1, 4, 2, 0, 3]
