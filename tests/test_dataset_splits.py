"""Warm splitters: partition, shared maps, determinism, proportions, no leakage, RecBole counts."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from segue.data.log import UNKNOWN_MS, InteractionLog
from segue.data.model import EVENT_CODES
from segue.dataset import (
    Interactions,
    Split,
    global_temporal_split,
    last_n_split,
    leave_one_out_split,
    random_split,
    user_temporal_split,
)
from segue.errors import DatasetError

T0 = 1_600_000_000_000
KINDS = np.array([EVENT_CODES[k] for k in ("play",) * 6 + ("like", "skip", "dislike", "follow")])


def synthetic_log(seed: int = 7, n_events: int = 50_000, n_users: int = 500) -> InteractionLog:
    """~50k events of 500 users over 3000 items with a popularity skew, unique timestamps."""
    rng = np.random.default_rng(seed)
    n_items = 3000
    item = np.minimum((rng.pareto(1.2, n_events) * 200).astype(np.int64), n_items - 1)
    return InteractionLog(
        user_ids=np.array([f"user-{i}" for i in range(n_users)], dtype=object),
        item_ids=np.array([f"item-{i}" for i in range(n_items)], dtype=object),
        user=rng.integers(0, n_users, n_events),
        item=item,
        type=KINDS[rng.integers(0, len(KINDS), n_events)],
        ts_ms=T0 + rng.permutation(n_events).astype(np.int64) * 60_000,
        ms_played=np.full(n_events, UNKNOWN_MS),
        count=rng.integers(1, 4, n_events),
        focus=rng.random(n_events) < 0.03,
        rating=np.full(n_events, np.nan),
    )


@pytest.fixture(scope="module")
def data() -> Interactions:
    return Interactions.from_log(synthetic_log())


def keys(part: Interactions) -> np.ndarray:
    return part.pairs.keys(part.n_items)


SPLITTERS: dict[str, Callable[..., Split]] = {
    "random": lambda d, seed: random_split(d, (0.8, 0.1, 0.1), seed=seed),
    "global_temporal": lambda d, seed: global_temporal_split(d, (0.8, 0.1, 0.1)),
    "user_temporal": lambda d, seed: user_temporal_split(d, (0.7, 0.15, 0.15), seed=seed),
    "leave_one_out_time": lambda d, seed: leave_one_out_split(d, seed=seed),
    "leave_one_out_random": lambda d, seed: leave_one_out_split(d, order="random", seed=seed),
    "last_3": lambda d, seed: last_n_split(d, 1, 2, seed=seed),
}


@pytest.mark.parametrize("name", SPLITTERS)
def test_parts_partition_the_pairs_and_share_the_maps(data: Interactions, name: str) -> None:
    split = SPLITTERS[name](data, 5)
    whole = keys(data)
    parts = [keys(p) for p in split]
    joined = np.concatenate(parts)
    assert len(joined) == len(whole)  # nothing lost or duplicated ...
    np.testing.assert_array_equal(np.sort(joined), whole)  # ... and nothing invented
    for part in split:
        assert part.users is data.users and part.items is data.items
        assert part.weighting == data.weighting
        assert part.matrix().shape == data.matrix().shape
        # Each pair keeps its aggregated values.
        where = np.searchsorted(whole, keys(part))
        np.testing.assert_array_equal(part.pairs.count, data.pairs.count[where])
        np.testing.assert_array_equal(part.pairs.last_ts, data.pairs.last_ts[where])
        assert np.all(np.diff(keys(part)) > 0)  # still sorted and unique
    total = split.train.matrix() + split.valid.matrix() + split.test.matrix()
    assert (total != data.matrix()).nnz == 0
    assert split.sizes == tuple(len(p) for p in split)


@pytest.mark.parametrize("name", SPLITTERS)
def test_same_seed_same_split_other_seed_other_split(data: Interactions, name: str) -> None:
    first, again = SPLITTERS[name](data, 1), SPLITTERS[name](data, 1)
    rebuilt = SPLITTERS[name](Interactions.from_log(synthetic_log()), 1)
    for a, b, c in zip(first, again, rebuilt, strict=True):
        np.testing.assert_array_equal(keys(a), keys(b))
        np.testing.assert_array_equal(keys(a), keys(c))
    if name in ("global_temporal", "user_temporal", "leave_one_out_time", "last_3"):
        return  # ordered by time; the seed only breaks ties, and these timestamps are unique
    other = SPLITTERS[name](data, 2)
    assert not np.array_equal(keys(first.test), keys(other.test))


@pytest.mark.parametrize("name", ["user_temporal", "leave_one_out_time", "last_3"])
def test_seed_breaks_timestamp_ties(name: str) -> None:
    log = synthetic_log(n_events=20_000)
    log.ts_ms[:] = T0 + (np.arange(len(log)) % 3) * 1000  # many pairs share a time
    data = Interactions.from_log(log)
    first, again, other = (SPLITTERS[name](data, seed) for seed in (1, 1, 2))
    np.testing.assert_array_equal(keys(first.test), keys(again.test))
    assert not np.array_equal(keys(first.test), keys(other.test))


def test_random_split_proportions() -> None:
    # RecBole's rule rounds each held-out part down per user, so shares approach 8:1:1 as users
    # gain pairs (-0.5/n per part on average): ~150 pairs per user keeps all within a point.
    data = Interactions.from_log(synthetic_log(n_users=200))
    assert len(data) > 25_000 and data.user_counts().min() > 90
    split = random_split(data, (0.8, 0.1, 0.1), seed=0)
    shares = np.array(split.sizes) / len(data)
    np.testing.assert_allclose(shares, [0.8, 0.1, 0.1], atol=0.01)


def reference_recbole_counts(n: int, ratios: list[float]) -> list[int]:
    """RecBole's Dataset._calcu_split_ids, written out as in its source (sizes, not offsets)."""
    total = sum(ratios)
    ratios = [r / total for r in ratios]
    cnt = [int(ratios[i] * n) for i in range(len(ratios))]
    cnt[0] = n - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * n < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


@pytest.mark.parametrize("ratios", [(0.8, 0.1, 0.1), (0.7, 0.2, 0.1), (0.6, 0.0, 0.4)])
def test_random_split_counts_per_user_follow_recbole(data: Interactions, ratios: tuple) -> None:
    split = random_split(data, ratios, seed=3)
    per_part = np.stack([p.user_counts() for p in split], axis=1)
    for user, n in enumerate(data.user_counts().tolist()):
        assert per_part[user].tolist() == reference_recbole_counts(n, list(ratios)), user


def test_small_users_keep_their_pairs_in_train() -> None:
    # Users with 1, 2, 3, 10 and 20 pairs; 8:1:1 gives 1/0/0, 1/0/1, 1/1/1, 8/1/1, 16/2/2.
    sizes = [1, 2, 3, 10, 20]
    n_items = max(sizes)
    user = np.repeat(np.arange(len(sizes)), sizes)
    item = np.concatenate([np.arange(s) for s in sizes])
    log = InteractionLog(
        user_ids=np.array([f"u{i}" for i in range(len(sizes))], dtype=object),
        item_ids=np.array([f"i{i}" for i in range(n_items)], dtype=object),
        user=user,
        item=item,
        type=np.zeros(len(user)),
        ts_ms=T0 + np.arange(len(user)),
        ms_played=np.full(len(user), UNKNOWN_MS),
        count=np.ones(len(user)),
        focus=np.zeros(len(user), bool),
        rating=np.full(len(user), np.nan),
    )
    split = random_split(Interactions.from_log(log), seed=0)
    got = np.stack([p.user_counts() for p in split], axis=1).tolist()
    assert got == [[1, 0, 0], [1, 0, 1], [1, 1, 1], [8, 1, 1], [16, 2, 2]]
    loo = leave_one_out_split(Interactions.from_log(log))
    got = np.stack([p.user_counts() for p in loo], axis=1).tolist()
    assert got == [[1, 0, 0], [1, 0, 1], [1, 1, 1], [8, 1, 1], [18, 1, 1]]
    # Leave-one-out by time holds out each user's newest pair (timestamps rise with item here).
    assert loo.test.pairs.item.tolist() == [1, 2, 9, 19]
    assert loo.valid.pairs.item.tolist() == [1, 8, 18]


def test_global_temporal_split_has_no_leakage_and_right_shares(data: Interactions) -> None:
    train, valid, test = global_temporal_split(data, (0.8, 0.1, 0.1))
    assert train.pairs.last_ts.max() < valid.pairs.last_ts.min()
    assert valid.pairs.last_ts.max() < test.pairs.last_ts.min()
    shares = np.array([len(train), len(valid), len(test)]) / len(data)
    np.testing.assert_allclose(shares, [0.8, 0.1, 0.1], atol=0.01)
    # Negatives in train all happened before the first cut.
    assert len(train.negatives) > 0
    assert train.negatives.last_ts.max() < valid.pairs.last_ts.min()
    two_way = global_temporal_split(data, (0.9, 0.0, 0.1))
    assert len(two_way.valid) == 0
    assert two_way.train.pairs.last_ts.max() < two_way.test.pairs.last_ts.min()


def test_global_temporal_split_needs_spread_timestamps() -> None:
    log = synthetic_log(n_events=2000)
    log.ts_ms[:] = T0  # a source without time (Last.fm's play counts)
    with pytest.raises(DatasetError, match="pairs share that timestamp"):
        global_temporal_split(Interactions.from_log(log))


def test_global_temporal_ties_go_to_the_later_side() -> None:
    log = synthetic_log(n_events=5000)
    log.ts_ms[:] = T0 + (np.arange(len(log)) % 4) * 1000  # four distinct times
    data = Interactions.from_log(log)
    train, valid, test = global_temporal_split(data, (0.5, 0.25, 0.25))
    assert train.pairs.last_ts.max() < test.pairs.last_ts.min()
    assert len(train) + len(valid) + len(test) == len(data)


def test_user_temporal_split_has_no_leakage_per_user(data: Interactions) -> None:
    split = user_temporal_split(data, (0.8, 0.1, 0.1), seed=0)
    train_max = np.full(data.n_users, np.iinfo(np.int64).min)
    np.maximum.at(train_max, split.train.pairs.user, split.train.pairs.last_ts)
    for part in (split.valid, split.test):
        assert np.all(part.pairs.last_ts >= train_max[part.pairs.user])
    valid_max = np.full(data.n_users, np.iinfo(np.int64).min)
    np.maximum.at(valid_max, split.valid.pairs.user, split.valid.pairs.last_ts)
    assert np.all(split.test.pairs.last_ts >= valid_max[split.test.pairs.user])
    # Same per-user counts as the random split.
    counts = np.stack([p.user_counts() for p in split], axis=1)
    reference = np.stack([p.user_counts() for p in random_split(data, seed=9)], axis=1)
    np.testing.assert_array_equal(counts, reference)
    # Train negatives of a user predate that user's first held-out pair.
    held_min = np.full(data.n_users, np.iinfo(np.int64).max)
    for part in (split.valid, split.test):
        np.minimum.at(held_min, part.pairs.user, part.pairs.last_ts)
    neg = split.train.negatives
    assert len(neg) > 0
    assert np.all(neg.last_ts < held_min[neg.user])


def test_leave_one_out_by_time_holds_out_the_newest(data: Interactions) -> None:
    _, valid, test = leave_one_out_split(data, seed=4)
    counts = data.user_counts()
    assert np.array_equal(test.user_counts(), (counts >= 2).astype(int))
    assert np.array_equal(valid.user_counts(), (counts >= 3).astype(int))
    newest = np.full(data.n_users, np.iinfo(np.int64).min)
    np.maximum.at(newest, data.pairs.user, data.pairs.last_ts)
    assert np.array_equal(test.pairs.last_ts, newest[test.pairs.user])
    no_valid = leave_one_out_split(data, validation=False)
    assert len(no_valid.valid) == 0 and np.array_equal(keys(no_valid.test), keys(test))


def test_random_leave_one_out_is_not_the_newest(data: Interactions) -> None:
    test = leave_one_out_split(data, order="random", seed=4).test
    newest = np.full(data.n_users, np.iinfo(np.int64).min)
    np.maximum.at(newest, data.pairs.user, data.pairs.last_ts)
    is_newest = test.pairs.last_ts == newest[test.pairs.user]
    assert 0 < is_newest.mean() < 0.2  # a random one of ~90 pairs is rarely the newest


def test_train_negatives_never_touch_a_held_out_pair(data: Interactions) -> None:
    for split in (random_split(data, seed=1), leave_one_out_split(data, order="random")):
        held = np.concatenate([keys(split.valid), keys(split.test)])
        negative_keys = split.train.negatives.keys(data.n_items)
        assert not np.isin(negative_keys, held).any()
        all_negative = data.negatives.keys(data.n_items)
        dropped = all_negative[~np.isin(all_negative, negative_keys)]
        assert len(dropped) > 0 and np.isin(dropped, held).all()  # only those were dropped
        assert len(split.valid.negatives) == len(split.test.negatives) == 0


@pytest.mark.parametrize(
    ("ratios", "message"),
    [
        ((0.8, 0.1, 0.2), r"ratios must sum to 1, got \(0.8, 0.1, 0.2\) \(sum 1.1\)"),
        ((0.9, -0.1, 0.2), "ratios must be finite and >= 0"),
        ((0.8, 0.2), "ratios must be \\(train, valid, test\\), got 2 values"),
        ((0.9, 0.1, 0.0), "the train and test ratios must be > 0"),
        (("a", 0.5, 0.5), "ratios must be numbers"),
        ((float("nan"), 0.5, 0.5), "ratios must be finite"),
    ],
)
def test_bad_ratios(data: Interactions, ratios: tuple, message: str) -> None:
    for splitter in (random_split, global_temporal_split, user_temporal_split):
        with pytest.raises(DatasetError, match=f"{splitter.__name__}: {message}"):
            splitter(data, ratios)


def test_bad_arguments(data: Interactions) -> None:
    with pytest.raises(DatasetError, match="seed must be an integer >= 0, got -1"):
        random_split(data, seed=-1)
    with pytest.raises(DatasetError, match=r"seed must be an integer >= 0, got 1\.5"):
        leave_one_out_split(data, seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="order must be 'time' or 'random'"):
        leave_one_out_split(data, order="newest")  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="n_test must be at least 1"):
        last_n_split(data, 1, 0)
    with pytest.raises(DatasetError, match="n_valid must be an integer >= 0, got -2"):
        last_n_split(data, -2, 1)
    with pytest.raises(DatasetError, match="random_split needs an Interactions"):
        random_split(synthetic_log(n_events=10))  # type: ignore[arg-type]
    empty = data.subset(np.zeros(len(data), dtype=bool))
    with pytest.raises(DatasetError, match="user_temporal_split: there are no positive pairs"):
        user_temporal_split(empty)
