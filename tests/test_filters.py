"""Business rules on lists: kinds, explicit content, allow/deny lists and the per-artist cap."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import scipy.sparse as sp

from segue.data.model import AudioFeatures, Item, ItemKind
from segue.dataset import IdMap
from segue.dataset.catalog import ItemCatalog
from segue.errors import SegueError
from segue.models.filters import Filters
from segue.models.popularity import PopularityRecommender

ITEMS = [
    Item(id="a1", kind=ItemKind.ARTIST, title="Artist One", genres=("rock",)),
    Item(id="a2", kind=ItemKind.ARTIST, title="Artist Two"),
    Item(
        id="t1",
        kind=ItemKind.TRACK,
        title="T1",
        artist_id="a1",
        explicit=True,
        release_date=dt.date(2024, 1, 2),
        genres=("rock", "indie"),
        tags=("loud",),
        audio=AudioFeatures(
            tempo=120,
            energy=0.8,
            danceability=0.5,
            valence=0.4,
            acousticness=0.1,
            instrumentalness=0.0,
        ),
    ),
    Item(id="t2", kind=ItemKind.TRACK, title="T2", artist_id="a1"),
    Item(id="t3", kind=ItemKind.TRACK, title="T3", artist_id="a1"),
    Item(id="t4", kind=ItemKind.TRACK, title="T4", artist_id="a2"),
    Item(id="p1", kind=ItemKind.PODCAST_EPISODE, title="P1"),
]
IDS = IdMap([i.id for i in ITEMS] + ["unknown"], name="item")


def _catalog() -> ItemCatalog:
    return ItemCatalog.from_items(ITEMS, IDS)


def test_catalog_arrays_align_with_the_id_map() -> None:
    cat = _catalog()
    col = {i: IDS.to_index(i) for i in IDS.ids}
    assert cat.artist_ids[cat.artist[col["t2"]]] == "a1"
    assert cat.artist_ids[cat.artist[col["a2"]]] == "a2"  # an artist is its own artist
    assert cat.artist[col["t1"]] == cat.artist[col["a1"]]
    assert cat.artist[col["p1"]] == -1
    assert cat.explicit.tolist() == [False, False, True, False, False, False, False, False]
    assert cat.known[col["unknown"]] == False  # noqa: E712
    assert cat.titles[col["t1"]] == "T1"
    assert sorted(cat.genre_names[j] for j in cat.genres[col["t1"]].indices) == ["indie", "rock"]
    assert cat.audio[col["t1"], 0] == pytest.approx(120)
    assert np.isnan(cat.audio[col["t2"]]).all()
    assert cat.release_ms[col["t1"]] == int(
        dt.datetime(2024, 1, 2, tzinfo=dt.UTC).timestamp() * 1000
    )


def test_hard_rules_mask_items() -> None:
    cat = _catalog()
    f = Filters.build(
        cat,
        exclude_kinds=["podcast_episode", "artist"],
        no_explicit=True,
        exclude=[IDS.to_index("t3")],
    )
    allowed = {IDS.ids[i] for i in np.flatnonzero(f.allowed)}
    assert allowed == {"t2", "t4", "unknown"}
    only = Filters.build(
        cat, include=[IDS.to_index("t4"), IDS.to_index("p1")], only_kinds=["track"]
    )
    assert {IDS.ids[i] for i in np.flatnonzero(only.allowed)} == {"t4"}


def test_recommend_respects_filters_and_artist_cap() -> None:
    cat = _catalog()
    # popularity: t1 > t2 > t3 > t4 > others
    counts = np.array([0, 0, 9, 8, 7, 6, 1, 0], dtype=np.float32)
    x = sp.csr_matrix(
        (
            np.ones(sum(counts.astype(int))),
            (np.arange(int(counts.sum())), np.repeat(np.arange(8), counts.astype(int))),
        ),
        shape=(int(counts.sum()) + 1, 8),
    )
    model = PopularityRecommender().fit(x)
    user = [x.shape[0] - 1]  # a user with no history
    plain = model.recommend(user, k=3)
    assert [IDS.ids[i] for i in plain.items[0]] == ["t1", "t2", "t3"]
    capped = model.recommend(
        user, k=3, filters=Filters.build(cat, max_per_artist=1, only_kinds=["track"])
    )
    # one per artist: t2 and t3 share t1's artist; "unknown" has no artist and scores 0
    assert [IDS.ids[i] for i in capped.items[0]] == ["t1", "t4", "unknown"]
    assert capped.scores[0][0] == pytest.approx(9 / counts.sum())  # a share of listening
    assert capped.scores[0][1] == pytest.approx(6 / counts.sum())
    kids = model.recommend(user, k=2, filters=Filters.build(cat, no_explicit=True))
    assert [IDS.ids[i] for i in kids.items[0]] == ["t2", "t3"]


def test_bad_filter_arguments_are_explained() -> None:
    cat = _catalog()
    with pytest.raises(SegueError, match="max_per_artist"):
        Filters.build(cat, max_per_artist=0)
    with pytest.raises(SegueError, match="outside"):
        Filters.build(cat, exclude=[99])
    with pytest.raises(SegueError, match=r"unknown item kind.*podcst"):
        Filters.build(cat, only_kinds=["podcst"])
