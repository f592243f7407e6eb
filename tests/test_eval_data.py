"""A small synthetic world for the evaluation tests, and checks that it is what they assume.

Users belong to one of four taste groups, each owning a quarter of the catalog; most of a
user's plays fall in their group, skewed to its popular items, so item-kNN has structure to
find and popularity does not. Timestamps are unique, activity is long-tailed (from 2 pairs to
over 50), and each item carries its group as a genre.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from segue.data.log import UNKNOWN_MS, InteractionLog
from segue.data.model import EVENT_CODES, Item, ItemKind
from segue.dataset import IdMap, Interactions, ItemCatalog, SideInfo

N_USERS, N_ITEMS, N_GROUPS = 160, 320, 4
T0 = 1_600_000_000_000


def synthetic_log(seed: int = 5) -> InteractionLog:
    rng = np.random.default_rng(seed)
    per_group = N_ITEMS // N_GROUPS
    group_of_user = rng.integers(0, N_GROUPS, N_USERS)
    activity = np.clip((rng.pareto(1.0, N_USERS) + 1) * 4, 2, 120).astype(int)
    weights = 1.0 / np.arange(1, per_group + 1) ** 0.8  # popular items within each group
    weights /= weights.sum()
    users, items = [], []
    for user in range(N_USERS):
        n = activity[user]
        own = rng.random(n) < 0.85
        group = np.where(own, group_of_user[user], rng.integers(0, N_GROUPS, n))
        offset = rng.choice(per_group, size=n, p=weights)
        chosen = np.unique(group * per_group + offset)
        users += [user] * len(chosen)
        items += list(chosen)
    n = len(users)
    return InteractionLog(
        user_ids=np.array([f"u{i}" for i in range(N_USERS)], dtype=object),
        item_ids=np.array([f"i{i}" for i in range(N_ITEMS)], dtype=object),
        user=np.array(users),
        item=np.array(items),
        type=np.full(n, EVENT_CODES["play"]),
        ts_ms=T0 + rng.permutation(n).astype(np.int64) * 1000,
        ms_played=np.full(n, UNKNOWN_MS),
        count=rng.integers(1, 20, n),
        focus=np.zeros(n, bool),
        rating=np.full(n, np.nan),
    )


def synthetic_interactions(seed: int = 5) -> Interactions:
    return Interactions.from_log(synthetic_log(seed))


def synthetic_side(data: Interactions) -> SideInfo:
    """Each item's taste group as its one genre."""
    per_group = N_ITEMS // N_GROUPS
    records = [
        Item(
            id=item_id,
            kind=ItemKind.TRACK,
            title=f"track {item_id}",
            genres=(f"g{int(item_id[1:]) // per_group}",),
            release_date=dt.date(2020, 1, 1),
        )
        for item_id in data.items.ids
    ]
    return SideInfo(catalog=ItemCatalog.from_items(records, data.items))


def test_the_synthetic_world_has_what_the_evaluation_tests_assume() -> None:
    data = synthetic_interactions()
    assert data.shape == (N_USERS, N_ITEMS)
    counts = data.user_counts()
    assert counts.min() >= 2 and counts.max() > 50  # every activity bucket is populated
    assert len(np.unique(data.pairs.last_ts)) == len(data)  # times allow a temporal split
    side = synthetic_side(data)
    assert side.catalog is not None and side.catalog.genres.nnz == N_ITEMS
    assert isinstance(data.users, IdMap)
