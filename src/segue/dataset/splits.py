"""Deterministic train / validation / test splits of unique (user, item) pairs.

Every splitter assigns each positive pair of an :class:`~segue.dataset.interactions.Interactions`
to exactly one part, so the parts never overlap and together are the whole; all parts keep the
whole's user and item maps, so their matrices align. A pair's time is its newest event
(``last_ts``): a pair in train therefore never holds an event from after the cut.

Randomness comes from ``numpy.random.default_rng(seed)`` only, and every sort that could meet
ties is stable, so the same seed on the same data gives the same split on any machine.

Negative signals (skips, dislikes) go to train only, minus any that would leak a held-out pair:
the negatives of a pair that is held out, of a held-out user or item, and (temporal splits)
those newer than the cut. Validation and test parts carry no negatives.

Per-user counts (:func:`random_split`, :func:`user_temporal_split`) follow RecBole's
``Dataset._calcu_split_ids`` exactly, which is what published Last.fm 2K results use
(``eval_args: {split: {RS: [0.8, 0.1, 0.1]}, order: RO, group_by: user}``). For a user with n
pairs and ratios (r_train, r_valid, r_test) normalised to sum 1:

* ``n_valid = floor(r_valid * n)``, ``n_test = floor(r_test * n)``, train takes the rest;
* then, test first and validation second, a part whose ``r * n`` lies strictly between 0 and 1
  takes one pair from train, as long as train still has more than one.

With 8:1:1 that gives: n = 1 → 1/0/0; n = 2 → 1/0/1; 3 <= n <= 19 → n-2/1/1; n = 20 → 16/2/2.
RecBole shuffles all rows, groups them by user keeping that order, and cuts each group
train-first; ranking each user's pairs by a seeded random key and cutting the same way is the
same distribution over splits (not the same draw: the random generators differ).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import scipy.sparse as sp

from segue.data.dayparts import DAYPARTS
from segue.dataset.interactions import Interactions, ensure_interactions
from segue.errors import DatasetError

TRAIN, VALID, TEST = 0, 1, 2
_PART_DTYPE = np.int8
_RATIO_TOLERANCE = 1e-6


class Split(NamedTuple):
    """The three parts; unpack as ``train, valid, test = split``."""

    train: Interactions
    valid: Interactions
    test: Interactions

    @property
    def sizes(self) -> tuple[int, int, int]:
        """Positive pairs in train, validation and test."""
        return (len(self.train), len(self.valid), len(self.test))


# -- public splitters ------------------------------------------------------------------------
def random_split(
    data: Interactions, ratios: Sequence[float] = (0.8, 0.1, 0.1), *, seed: int = 0
) -> Split:
    """Per user, shuffle their pairs and cut by ``ratios`` (train, valid, test); see module doc."""
    data = ensure_interactions(data, "random_split")
    r_train, r_valid, r_test = check_ratios(ratios, "random_split")
    rng = make_rng(seed, "random_split")
    n_per_user = data.user_counts()
    n_valid, n_test = recbole_counts(n_per_user, (r_train, r_valid, r_test))
    # Pairs are sorted by user already; a stable sort on (user, random word) ranks within user.
    noise = rng.integers(0, 2**32, size=len(data.pairs), dtype=np.uint64)
    order = np.argsort((data.pairs.user.astype(np.uint64) << np.uint64(32)) | noise, kind="stable")
    part = assign_by_rank(data.pairs.user, order, n_per_user, n_valid, n_test)
    return build_split(data, part)


def global_temporal_split(data: Interactions, ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> Split:
    """Cut the time line at the ``ratios`` quantiles of pair times.

    Train is everything strictly before the first cut, validation up to the second, test from
    the second on; pairs sharing a cut's timestamp all land on the later side, so each test time
    is >= every train time and proportions move a little when timestamps tie.
    """
    data = ensure_interactions(data, "global_temporal_split")
    r_train, r_valid, _ = check_ratios(ratios, "global_temporal_split")
    ts = data.pairs.last_ts
    ordered = np.sort(ts, kind="stable")
    n = len(ordered)
    first_cut = int(ordered[min(n - 1, math.floor(r_train * n))])
    second_cut = int(ordered[min(n - 1, math.floor((r_train + r_valid) * n))])
    if r_valid == 0:
        second_cut = first_cut
    part = np.full(n, TEST, dtype=_PART_DTYPE)
    part[ts < second_cut] = VALID
    part[ts < first_cut] = TRAIN
    if not (part == TRAIN).any():
        raise DatasetError(
            "global_temporal_split: no pair is older than the first cut "
            f"(ts {first_cut}); {int((ts == first_cut).sum())} of {n} pairs share that "
            "timestamp, so the log's times cannot be cut (does the source record time?)"
        )
    negatives_keep = data.negatives.last_ts < first_cut
    return build_split(data, part, negatives_keep)


def user_temporal_split(
    data: Interactions, ratios: Sequence[float] = (0.8, 0.1, 0.1), *, seed: int = 0
) -> Split:
    """Per user, hold out their newest pairs: the RecBole counts of :func:`random_split`.

    Within a user, equal timestamps are ordered by a seeded random key.
    """
    data = ensure_interactions(data, "user_temporal_split")
    ratios = check_ratios(ratios, "user_temporal_split")
    rng = make_rng(seed, "user_temporal_split")
    n_per_user = data.user_counts()
    n_valid, n_test = recbole_counts(n_per_user, ratios)
    return _temporal_by_counts(data, rng, n_per_user, n_valid, n_test)


def last_n_split(
    data: Interactions,
    n_valid: int = 1,
    n_test: int = 1,
    *,
    order: Literal["time", "random"] = "time",
    seed: int = 0,
) -> Split:
    """Per user, hold out ``n_test`` pairs for test and the ``n_valid`` before them for validation.

    ``order="time"`` holds out the newest pairs (ties broken by a seeded random key);
    ``order="random"`` seeded random ones. Train always keeps at least one pair of each user:
    a user with n pairs gives ``min(n_test, n - 1)`` to test, then at most what is left minus
    one to validation, so a user with a single pair stays wholly in train.
    """
    where = "last_n_split"
    data = ensure_interactions(data, where)
    for label, value in (("n_valid", n_valid), ("n_test", n_test)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 0:
            raise DatasetError(f"{where}: {label} must be an integer >= 0, got {value!r}")
    if n_test == 0:
        raise DatasetError(f"{where}: n_test must be at least 1")
    if order not in ("time", "random"):
        raise DatasetError(f"{where}: order must be 'time' or 'random', got {order!r}")
    rng = make_rng(seed, where)
    n_per_user = data.user_counts()
    test_counts = np.minimum(n_test, np.maximum(n_per_user - 1, 0))
    valid_counts = np.minimum(n_valid, np.maximum(n_per_user - 1 - test_counts, 0))
    if order == "time":
        return _temporal_by_counts(data, rng, n_per_user, valid_counts, test_counts)
    noise = rng.integers(0, 2**32, size=len(data.pairs), dtype=np.uint64)
    ranked = np.argsort((data.pairs.user.astype(np.uint64) << np.uint64(32)) | noise, kind="stable")
    return build_split(
        data, assign_by_rank(data.pairs.user, ranked, n_per_user, valid_counts, test_counts)
    )


def leave_one_out_split(
    data: Interactions,
    *,
    order: Literal["time", "random"] = "time",
    validation: bool = True,
    seed: int = 0,
) -> Split:
    """Per user, the last pair (by time, or a seeded random one) to test, the one before to
    validation when ``validation``; users with too few pairs keep them in train (see
    :func:`last_n_split`)."""
    return last_n_split(data, 1 if validation else 0, 1, order=order, seed=seed)


# -- building blocks shared with segue.dataset.coldstart -------------------------------------
def check_ratios(ratios: Sequence[float], where: str) -> tuple[float, float, float]:
    """Three finite non-negative ratios (train, valid, test) summing to 1; train and test > 0."""
    try:
        values = tuple(float(r) for r in ratios)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: ratios must be numbers, got {ratios!r}") from exc
    if len(values) != 3:
        raise DatasetError(
            f"{where}: ratios must be (train, valid, test), got {len(values)} values {values}"
        )
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise DatasetError(f"{where}: ratios must be finite and >= 0, got {values}")
    total = sum(values)
    if abs(total - 1.0) > _RATIO_TOLERANCE:
        raise DatasetError(f"{where}: ratios must sum to 1, got {values} (sum {total:g})")
    if values[0] == 0 or values[2] == 0:
        raise DatasetError(f"{where}: the train and test ratios must be > 0, got {values}")
    return (values[0] / total, values[1] / total, values[2] / total)


def make_rng(seed: int, where: str) -> np.random.Generator:
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise DatasetError(f"{where}: seed must be an integer >= 0, got {seed!r}")
    return np.random.default_rng(int(seed))


def recbole_counts(
    n: np.ndarray, ratios: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Validation and test sizes per group, as RecBole's ``_calcu_split_ids`` (module doc)."""
    sizes = n.astype(np.float64)
    exact = [r * sizes for r in ratios]
    valid = np.floor(exact[1]).astype(np.int64)
    test = np.floor(exact[2]).astype(np.int64)
    train = n.astype(np.int64) - valid - test
    for part, share in ((test, exact[2]), (valid, exact[1])):
        bump = (train > 1) & (share > 0) & (share < 1)
        part += bump
        train -= bump
    return valid, test


def assign_by_rank(
    user: np.ndarray,
    order: np.ndarray,
    n_per_user: np.ndarray,
    n_valid: np.ndarray,
    n_test: np.ndarray,
) -> np.ndarray:
    """Part of each pair, given an order that groups pairs by user (ascending) and ranks them.

    The first ``n - n_valid - n_test`` ranks of a user go to train, the next ``n_valid`` to
    validation, the last ``n_test`` to test.
    """
    ranked_user = user[order]
    starts = np.cumsum(n_per_user) - n_per_user
    rank = np.arange(len(order), dtype=np.int64) - starts[ranked_user]
    n_train = (n_per_user - n_valid - n_test)[ranked_user]
    ranked_part = np.full(len(order), TEST, dtype=_PART_DTYPE)
    ranked_part[rank < n_train + n_valid[ranked_user]] = VALID
    ranked_part[rank < n_train] = TRAIN
    part = np.empty(len(order), dtype=_PART_DTYPE)
    part[order] = ranked_part
    return part


def time_order(data: Interactions, rng: np.random.Generator) -> np.ndarray:
    """Pairs grouped by user, oldest first within a user, ties by a seeded random key."""
    noise = rng.integers(0, 2**32, size=len(data.pairs), dtype=np.uint64)
    return np.lexsort((noise, data.pairs.last_ts, data.pairs.user))


def build_split(
    data: Interactions, part: np.ndarray, negatives_keep: np.ndarray | None = None
) -> Split:
    """The three parts; train keeps negatives not on a held-out pair and in ``negatives_keep``."""
    n_items = data.n_items
    negatives = data.negatives
    keep = np.ones(len(negatives), dtype=bool) if negatives_keep is None else negatives_keep
    if len(negatives):
        held = data.pairs.keys(n_items)[part != TRAIN]  # sorted: pairs are
        neg_keys = negatives.keys(n_items)
        position = np.minimum(np.searchsorted(held, neg_keys), max(len(held) - 1, 0))
        on_held = (held[position] == neg_keys) if len(held) else np.zeros(len(neg_keys), bool)
        keep = keep & ~on_held
    return Split(
        train=data.subset(part == TRAIN, keep),
        valid=data.subset(part == VALID),
        test=data.subset(part == TEST),
    )


def _temporal_by_counts(
    data: Interactions,
    rng: np.random.Generator,
    n_per_user: np.ndarray,
    n_valid: np.ndarray,
    n_test: np.ndarray,
) -> Split:
    order = time_order(data, rng)
    part = assign_by_rank(data.pairs.user, order, n_per_user, n_valid, n_test)
    # A user's negatives from the moment their first held-out pair was last touched would tell
    # train what came after the cut.
    cut = np.full(data.n_users, np.iinfo(np.int64).max, dtype=np.int64)
    held = part != TRAIN
    np.minimum.at(cut, data.pairs.user[held], data.pairs.last_ts[held])
    negatives_keep = data.negatives.last_ts < cut[data.negatives.user]
    return build_split(data, part, negatives_keep)


def inner_holdout(
    matrix: sp.csr_matrix, share: float, seed: int
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Per user with at least 3 items, move round(share·n) (at least 1) random items out.

    A model's own validation part carved out of the matrix it is fitted on (early stopping,
    the hybrid's weights, the staged ranker's labels): the test part is never passed to
    ``fit``, so choosing on this part cannot see it.
    """
    return inner_folds(matrix, share, 1, seed)[0]


def inner_folds(
    matrix: sp.csr_matrix,
    share: float,
    n_folds: int,
    seed: int,
    times: sp.csr_matrix | None = None,
) -> list[tuple[sp.csr_matrix, sp.csr_matrix]]:
    """``n_folds`` inner splits whose held-out parts are disjoint: fold k holds out the k-th
    round(share·n) (at least 1) of each user's items in one random order (users with at least
    3 items); fold 0 is :func:`inner_holdout` with the same seed.

    More labelled pairs for a model that learns from its own held-out part (the staged
    ranker) without holding out more of any one fold's training matrix. A user with few
    items runs out of items before the last folds: those folds hold out nothing of theirs.

    With ``times`` (each stored pair's time, the matrix's pattern) the order is newest
    first and fold k trains only on the items older than the ones it holds out: each fold
    is a cut in each user's time line, as a temporal test is, and never trains on its future.
    """
    if not 0 < share < 1:
        raise DatasetError(f"holdout must lie strictly between 0 and 1, got {share!r}")
    if n_folds < 1 or n_folds * share > 1 + 1e-9:
        raise DatasetError(
            f"inner folds: {n_folds} folds of {share:g} each do not fit in one matrix "
            "(need 1 <= n_folds <= 1/share)"
        )
    rng = np.random.default_rng(seed)
    matrix = matrix.tocsr()
    counts = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    noise = rng.random(len(rows))
    if times is None:
        order = np.lexsort((noise, rows))
    else:
        when = aligned_values(times, matrix, "times")
        order = np.lexsort((noise, -when, rows))
    rank = np.empty(len(rows), dtype=np.int64)
    rank[order] = np.arange(len(rows)) - np.repeat(matrix.indptr[:-1], counts)
    n_out = np.where(counts >= 3, np.maximum(1, np.round(share * counts)), 0).astype(np.int64)
    coo = matrix.tocoo()
    shape = matrix.shape
    folds = []
    for k in range(n_folds):
        out = (rank >= k * n_out[rows]) & (rank < (k + 1) * n_out[rows])
        kept = ~out if times is None else rank >= (k + 1) * n_out[rows]
        train = sp.csr_matrix((coo.data[kept], (coo.row[kept], coo.col[kept])), shape=shape)
        held = sp.csr_matrix((np.ones(out.sum(), np.float32), (coo.row[out], coo.col[out])), shape)
        folds.append((train, held))
    return folds


def aligned_values(values: sp.csr_matrix, matrix: sp.csr_matrix, what: str) -> np.ndarray:
    """``values``' stored entries, one per stored entry of ``matrix`` in its order: both
    must hold the same pairs (what ``Interactions.matrix`` and ``pair_times`` give)."""
    values, matrix = values.tocsr(), matrix.tocsr()
    same = values.shape == matrix.shape and np.array_equal(values.indptr, matrix.indptr)
    if not same or not np.array_equal(values.indices, matrix.indices):
        raise DatasetError(f"{what}: must hold exactly the stored pairs of the matrix")
    return np.asarray(values.data)


def values_at(values: sp.csr_matrix, matrix: sp.csr_matrix, what: str) -> np.ndarray:
    """``values``' entry at each stored entry of ``matrix`` (in its order), where ``matrix``
    holds a subset of ``values``' pairs (an inner fold of the training matrix, a test part
    of the whole data)."""
    n_items = values.shape[1]
    if np.array_equal(values.indptr, matrix.indptr) and np.array_equal(
        values.indices, matrix.indices
    ):  # the same pairs (the whole training matrix): no lookup
        return np.asarray(values.data)

    def keys(m: sp.csr_matrix) -> np.ndarray:
        rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
        return rows * n_items + m.indices

    source = values.sorted_indices() if not values.has_sorted_indices else values
    known, wanted = keys(source), keys(matrix)
    at = np.minimum(np.searchsorted(known, wanted), max(len(known) - 1, 0))
    if len(wanted) and not np.array_equal(known[at], wanted):
        raise DatasetError(f"{what}: a pair of the matrix has no value")
    return np.asarray(source.data)[at]


def daypart_queries(
    users: np.ndarray, relevant: sp.csr_matrix, parts: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, sp.csr_matrix]:
    """(listener, request daypart, relevant items) of each request: one per listener of
    ``users`` and daypart of their ``relevant`` items (``parts``: each stored entry's
    daypart, -1 unknown, in ``relevant``'s order), holding those items — what a listener
    played in the morning is the answer to a morning's request. One request per listener
    with all their items, daypart unknown (None), where ``parts`` is None. Requests are in
    listener order."""
    users = np.asarray(users, dtype=np.int64)
    if parts is None:
        return users, None, relevant[users]
    width = len(DAYPARTS) + 1
    by_part = sp.csr_matrix(
        (np.asarray(parts, dtype=np.int64) + 1, relevant.indices, relevant.indptr),
        shape=relevant.shape,
    )[users]
    rows = relevant[users]
    owner = np.repeat(np.arange(len(users)), np.diff(rows.indptr))
    queries, which = np.unique(owner * width + by_part.data, return_inverse=True)
    out = sp.csr_matrix((rows.data, (which, rows.indices)), shape=(len(queries), rows.shape[1]))
    return users[queries // width], (queries % width - 1).astype(np.int8), out
