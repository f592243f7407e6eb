"""Cold-start holdouts: new users (with onboarding pairs) and new items."""

from __future__ import annotations

import numpy as np
import pytest

from segue.data.log import UNKNOWN_MS, InteractionLog
from segue.data.model import EVENT_CODES
from segue.dataset import Interactions, Split, new_item_split, new_user_split
from segue.errors import DatasetError

T0 = 1_600_000_000_000


def synthetic_log(seed: int = 21, n_events: int = 50_000) -> InteractionLog:
    """~50k events of 600 users over 2000 items, some skips, unique timestamps."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 600, 2000
    kinds = np.array([EVENT_CODES[k] for k in ("play",) * 7 + ("like", "skip", "dislike")])
    return InteractionLog(
        user_ids=np.array([f"u{i}" for i in range(n_users)], dtype=object),
        item_ids=np.array([f"i{i}" for i in range(n_items)], dtype=object),
        user=np.minimum((rng.pareto(1.5, n_events) * 60).astype(np.int64), n_users - 1),
        item=rng.integers(0, n_items, n_events),
        type=kinds[rng.integers(0, len(kinds), n_events)],
        ts_ms=T0 + rng.permutation(n_events).astype(np.int64) * 1000,
        ms_played=np.full(n_events, UNKNOWN_MS),
        count=np.ones(n_events),
        focus=np.zeros(n_events, bool),
        rating=np.full(n_events, np.nan),
    )


@pytest.fixture(scope="module")
def data() -> Interactions:
    return Interactions.from_log(synthetic_log())


def keys(part: Interactions) -> np.ndarray:
    return part.pairs.keys(part.n_items)


def assert_partition(data: Interactions, split: Split) -> None:
    joined = np.concatenate([keys(p) for p in split])
    assert len(joined) == len(data)
    np.testing.assert_array_equal(np.sort(joined), keys(data))
    for part in split:
        assert part.users is data.users and part.items is data.items


def test_new_users_leave_train_except_their_onboarding_pairs(data: Interactions) -> None:
    split = new_user_split(data, test_fraction=0.1, valid_fraction=0.05, n_onboarding=2, seed=3)
    assert_partition(data, split)
    with_pairs = int((data.user_counts() > 0).sum())
    test_users = np.unique(split.test.pairs.user)
    valid_users = np.unique(split.valid.pairs.user)
    assert len(test_users) == round(0.1 * with_pairs)
    assert len(valid_users) == round(0.05 * with_pairs)
    assert not np.intersect1d(test_users, valid_users).size
    held = np.concatenate([test_users, valid_users])
    train_counts = split.train.user_counts()
    assert np.all(train_counts[held] == 2)  # exactly the onboarding pairs stay
    # ... and they are each held-out user's two oldest pairs.
    for user in held[:20]:
        own = data.pairs.last_ts[data.pairs.user == user]
        shown = split.train.pairs.last_ts[split.train.pairs.user == user]
        np.testing.assert_array_equal(np.sort(shown), np.sort(own)[:2])
    # Users who are not held out keep all their pairs in train.
    warm = np.setdiff1d(np.flatnonzero(data.user_counts() > 0), held)
    np.testing.assert_array_equal(train_counts[warm], data.user_counts()[warm])
    # No negative of a held-out user reaches train.
    assert len(split.train.negatives) > 0
    assert not np.isin(split.train.negatives.user, held).any()


def test_new_users_without_onboarding(data: Interactions) -> None:
    split = new_user_split(data, test_fraction=0.2, seed=0)
    assert_partition(data, split)
    assert len(split.valid) == 0
    test_users = np.unique(split.test.pairs.user)
    assert split.train.user_counts()[test_users].sum() == 0
    with_pairs = int((data.user_counts() > 0).sum())
    assert len(test_users) == round(0.2 * with_pairs)


def test_random_onboarding_is_seeded(data: Interactions) -> None:
    a = new_user_split(data, n_onboarding=3, onboarding_order="random", seed=8)
    b = new_user_split(data, n_onboarding=3, onboarding_order="random", seed=8)
    by_time = new_user_split(data, n_onboarding=3, seed=8)
    np.testing.assert_array_equal(keys(a.train), keys(b.train))
    np.testing.assert_array_equal(np.unique(a.test.pairs.user), np.unique(by_time.test.pairs.user))
    assert not np.array_equal(keys(a.train), keys(by_time.train))


def test_users_too_small_for_onboarding_are_never_held_out(data: Interactions) -> None:
    split = new_user_split(data, test_fraction=0.1, n_onboarding=10, seed=1)
    assert np.all(data.user_counts()[np.unique(split.test.pairs.user)] > 10)


def test_new_items_leave_train_entirely(data: Interactions) -> None:
    split = new_item_split(data, test_fraction=0.1, valid_fraction=0.1, seed=5)
    assert_partition(data, split)
    present = int((data.item_counts() > 0).sum())
    test_items = np.unique(split.test.pairs.item)
    valid_items = np.unique(split.valid.pairs.item)
    assert len(test_items) == round(0.1 * present)
    assert len(valid_items) == round(0.1 * present)
    train_counts = split.train.item_counts()
    assert train_counts[test_items].sum() == 0 and train_counts[valid_items].sum() == 0
    # Every pair of a held-out item is in its part.
    np.testing.assert_array_equal(
        split.test.item_counts()[test_items], data.item_counts()[test_items]
    )
    assert not np.isin(split.train.negatives.item, np.concatenate([test_items, valid_items])).any()
    assert len(split.train.negatives) > 0
    assert split.train.matrix()[:, test_items].nnz == 0


@pytest.mark.parametrize("splitter", [new_user_split, new_item_split])
def test_cold_splits_are_deterministic(data: Interactions, splitter) -> None:
    first, again, other = (splitter(data, test_fraction=0.1, seed=s) for s in (4, 4, 5))
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(keys(a), keys(b))
    assert not np.array_equal(keys(first.test), keys(other.test))


@pytest.mark.parametrize("splitter", [new_user_split, new_item_split])
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"test_fraction": 0.0}, r"test_fraction must lie in \(0, 1\), got 0.0"),
        ({"test_fraction": 1.0}, r"test_fraction must lie in \(0, 1\)"),
        ({"test_fraction": -0.2}, r"test_fraction must lie in \(0, 1\)"),
        ({"test_fraction": "0.1"}, r"test_fraction must lie in \(0, 1\)"),
        ({"valid_fraction": 1.5}, r"valid_fraction must lie in \[0, 1\)"),
        (
            {"test_fraction": 0.6, "valid_fraction": 0.4},
            r"test_fraction \+ valid_fraction must be < 1",
        ),
        ({"seed": -3}, "seed must be an integer >= 0"),
    ],
)
def test_bad_fractions(data: Interactions, splitter, kwargs: dict, message: str) -> None:
    with pytest.raises(DatasetError, match=f"{splitter.__name__}: {message}"):
        splitter(data, **kwargs)


def test_bad_onboarding(data: Interactions) -> None:
    with pytest.raises(DatasetError, match="n_onboarding must be an integer >= 0, got -1"):
        new_user_split(data, n_onboarding=-1)
    with pytest.raises(DatasetError, match="onboarding_order must be 'time' or 'random'"):
        new_user_split(data, onboarding_order="popular")  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match=r"but only .* users have more than n_onboarding=10000"):
        new_user_split(data, n_onboarding=10_000)


def test_too_few_users_or_items_to_hold_out() -> None:
    rows = 2
    log = InteractionLog(
        user_ids=np.array(["a", "b"], dtype=object),
        item_ids=np.array(["x"], dtype=object),
        user=[0, 1],
        item=[0, 0],
        type=np.zeros(rows),
        ts_ms=[T0, T0 + 1],
        ms_played=np.full(rows, UNKNOWN_MS),
        count=np.ones(rows),
        focus=np.zeros(rows, bool),
        rating=np.full(rows, np.nan),
    )
    tiny = Interactions.from_log(log)
    assert new_user_split(tiny, test_fraction=0.1).sizes == (1, 0, 1)  # one of two users
    with pytest.raises(DatasetError, match="only 1 items have pairs; holding out 1 would leave"):
        new_item_split(tiny)
    with pytest.raises(DatasetError, match="only 2 users have pairs; holding out 2"):
        new_user_split(tiny, test_fraction=0.3, valid_fraction=0.3)
