"""Cold-start holdouts: users or items that training has (almost) never seen.

A warm split tells how well a model ranks for people it knows; these tell what a new listener
or a new release gets. Both choose whole users or items with a seeded permutation and, like
every splitter, keep the full id maps so a held-out user still owns an (empty) train row.
"""

from __future__ import annotations

import numbers
from typing import Literal

import numpy as np

from segue.dataset.interactions import Interactions, ensure_interactions
from segue.dataset.splits import (
    TEST,
    TRAIN,
    VALID,
    Split,
    assign_by_rank,
    build_split,
    make_rng,
    time_order,
)
from segue.errors import DatasetError


def new_user_split(
    data: Interactions,
    *,
    test_fraction: float = 0.1,
    valid_fraction: float = 0.0,
    n_onboarding: int = 0,
    onboarding_order: Literal["time", "random"] = "time",
    seed: int = 0,
) -> Split:
    """Move a seeded fraction of users out of train, revealing ``n_onboarding`` pairs of each.

    Fractions are of the users who have pairs. Only users with more than ``n_onboarding`` pairs
    can be held out (one with no pair left over would test nothing); their first
    ``n_onboarding`` pairs (oldest, or seeded random with ``onboarding_order="random"``) stay in
    train, as what a sign-up flow would have asked, and the rest go to test (or validation for
    the ``valid_fraction`` users). All negatives of held-out users are dropped.
    """
    where = "new_user_split"
    data = ensure_interactions(data, where)
    n_test_users, n_valid_users = _holdout_sizes(
        test_fraction, valid_fraction, int((data.user_counts() > 0).sum()), "users", where
    )
    integer = isinstance(n_onboarding, int | np.integer) and not isinstance(n_onboarding, bool)
    if not integer or n_onboarding < 0:
        raise DatasetError(f"{where}: n_onboarding must be an integer >= 0, got {n_onboarding!r}")
    if onboarding_order not in ("time", "random"):
        raise DatasetError(
            f"{where}: onboarding_order must be 'time' or 'random', got {onboarding_order!r}"
        )
    rng = make_rng(seed, where)
    n_per_user = data.user_counts()
    eligible = np.flatnonzero(n_per_user > n_onboarding)
    if len(eligible) < n_test_users + n_valid_users + 1:
        raise DatasetError(
            f"{where}: {n_test_users + n_valid_users} users to hold out plus one to train on, "
            f"but only {len(eligible)} users have more than n_onboarding={n_onboarding} pairs"
        )
    chosen = rng.permutation(eligible)
    role = np.full(data.n_users, TRAIN, dtype=np.int8)
    role[chosen[:n_test_users]] = TEST
    role[chosen[n_test_users : n_test_users + n_valid_users]] = VALID

    # Within each user: the onboarding ranks stay in train, the rest go to the user's role.
    if onboarding_order == "time":
        order = time_order(data, rng)
    else:
        noise = rng.integers(0, 2**32, size=len(data.pairs), dtype=np.uint64)
        key = (data.pairs.user.astype(np.uint64) << np.uint64(32)) | noise
        order = np.argsort(key, kind="stable")
    held = np.maximum(n_per_user - n_onboarding, 0)
    n_valid = np.where(role == VALID, held, 0)
    n_test = np.where(role == TEST, held, 0)
    part = assign_by_rank(data.pairs.user, order, n_per_user, n_valid, n_test)
    negatives_keep = role[data.negatives.user] == TRAIN
    return build_split(data, part, negatives_keep)


def new_item_split(
    data: Interactions,
    *,
    test_fraction: float = 0.1,
    valid_fraction: float = 0.0,
    seed: int = 0,
) -> Split:
    """Remove a seeded fraction of items from train entirely; all their pairs go to test
    (or validation for the ``valid_fraction`` items), and so do none of their negatives.

    Fractions are of the items that have pairs.
    """
    where = "new_item_split"
    data = ensure_interactions(data, where)
    item_counts = data.item_counts()
    present = np.flatnonzero(item_counts > 0)
    n_test_items, n_valid_items = _holdout_sizes(
        test_fraction, valid_fraction, len(present), "items", where
    )
    rng = make_rng(seed, where)
    chosen = rng.permutation(present)
    role = np.full(data.n_items, TRAIN, dtype=np.int8)
    role[chosen[:n_test_items]] = TEST
    role[chosen[n_test_items : n_test_items + n_valid_items]] = VALID
    part = role[data.pairs.item]
    if not (part == TRAIN).any():  # pragma: no cover - _holdout_sizes leaves one item
        raise DatasetError(f"{where}: no pair is left for train")
    negatives_keep = role[data.negatives.item] == TRAIN
    return build_split(data, part, negatives_keep)


def _holdout_sizes(
    test_fraction: float, valid_fraction: float, population: int, what: str, where: str
) -> tuple[int, int]:
    """How many users/items each held-out part gets: rounded, at least one for a part asked for,
    and at least one left for train."""
    for label, value, low_open in (
        ("test_fraction", test_fraction, True),
        ("valid_fraction", valid_fraction, False),
    ):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        ok = ok and (0 < value < 1 if low_open else 0 <= value < 1)
        if not ok:
            interval = "(0, 1)" if low_open else "[0, 1)"
            raise DatasetError(f"{where}: {label} must lie in {interval}, got {value!r}")
    if test_fraction + valid_fraction >= 1:
        raise DatasetError(
            f"{where}: test_fraction + valid_fraction must be < 1 so that some {what} stay in "
            f"train, got {test_fraction} + {valid_fraction}"
        )
    n_test = max(1, round(test_fraction * population))
    n_valid = max(1, round(valid_fraction * population)) if valid_fraction > 0 else 0
    if n_test + n_valid >= population:
        raise DatasetError(
            f"{where}: only {population} {what} have pairs; holding out {n_test + n_valid} "
            f"would leave none for train"
        )
    return n_test, n_valid
