"""Interactions.from_log: event filtering, Focus-Mode exclusion, aggregation, matrices."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from segue.data.log import UNKNOWN_MS, InteractionLog
from segue.data.model import EVENT_CODES, EventType
from segue.dataset import (
    BM25,
    NO_TIMESTAMP,
    Binary,
    Counts,
    EventFilter,
    Interactions,
    Pairs,
    TimeDecay,
)
from segue.errors import DatasetError

DAY = 86_400_000
T0 = 1_700_000_000_000


def make_log(
    rows: list[tuple[str, str, str, int, int, bool]],
    user_ids: list[str] | None = None,
    item_ids: list[str] | None = None,
) -> InteractionLog:
    """Log from (user, item, type, ts_ms, count, focus) rows over the given vocabularies."""
    user_ids = user_ids or sorted({r[0] for r in rows})
    item_ids = item_ids or sorted({r[1] for r in rows})
    n = len(rows)
    return InteractionLog(
        user_ids=np.array(user_ids, dtype=object),
        item_ids=np.array(item_ids, dtype=object),
        user=np.array([user_ids.index(r[0]) for r in rows], dtype=np.int32),
        item=np.array([item_ids.index(r[1]) for r in rows], dtype=np.int32),
        type=np.array([EVENT_CODES[r[2]] for r in rows], dtype=np.uint8),
        ts_ms=np.array([r[3] for r in rows], dtype=np.int64),
        ms_played=np.full(n, UNKNOWN_MS, dtype=np.int64),
        count=np.array([r[4] for r in rows], dtype=np.int32),
        focus=np.array([r[5] for r in rows], dtype=bool),
        rating=np.full(n, np.nan),
    )


def table(pairs: Pairs, *columns: str) -> list[tuple]:
    return list(zip(*(getattr(pairs, c).tolist() for c in columns), strict=True))


USERS = ["u1", "u2", "u3"]
ITEMS = ["i1", "i2", "i3", "i4"]
ROWS = [
    ("u1", "i1", "play", T0 + 1, 1, False),
    ("u1", "i1", "play", T0 + 5, 3, False),  # same pair again: counts sum to 4
    ("u1", "i2", "like", T0 + 2, 1, False),
    ("u1", "i3", "skip", T0 + 3, 1, False),
    ("u1", "i3", "skip", T0 + 4, 1, False),
    ("u1", "i4", "play", T0 + 9, 7, True),  # Focus Mode: never counts
    ("u2", "i1", "play", T0 + 20, 2, True),  # Focus Mode only
    ("u2", "i2", "add_to_playlist", T0 + 7, 1, False),
    ("u2", "i2", "dislike", T0 + 8, 1, False),
    ("u2", "i3", "follow", T0 + 6, 1, False),
    ("u2", "i4", "skip", T0 + 30, 1, True),  # Focus-Mode skip: not a negative either
    ("u2", "i4", "impression", T0 + 10, 1, False),  # neither positive nor negative
]


def small() -> Interactions:
    return Interactions.from_log(make_log(ROWS, USERS, ITEMS))


def test_pairs_are_summed_filtered_and_sorted() -> None:
    data = small()
    assert list(data.users) == USERS and list(data.items) == ITEMS
    p = data.pairs
    assert table(p, "user", "item", "count", "last_ts") == [
        (0, 0, 4, T0 + 5),  # u1 i1: 1 + 3 plays, newest at +5
        (0, 1, 1, T0 + 2),  # u1 i2: like
        (1, 1, 1, T0 + 7),  # u2 i2: add_to_playlist (the dislike is kept apart)
        (1, 2, 1, T0 + 6),  # u2 i3: follow
    ]
    assert p.value.tolist() == [4.0, 1.0, 1.0, 1.0]
    negatives = table(data.negatives, "user", "item", "count", "last_ts")
    assert negatives == [(0, 2, 2, T0 + 4), (1, 1, 1, T0 + 8)]  # u1 skipped i3 twice
    assert len(data) == 4
    assert data.user_counts().tolist() == [2, 2, 0]
    assert data.item_counts().tolist() == [1, 2, 1, 0]


def test_matrix_is_float32_csr_over_the_whole_vocabulary() -> None:
    data = small()
    matrix = data.matrix()
    assert isinstance(matrix, sp.csr_matrix)
    assert matrix.dtype == np.float32
    assert matrix.shape == (3, 4)  # u3 has no events but keeps its row; i4 its column
    expected = np.array([[4, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(matrix.toarray(), expected)
    np.testing.assert_array_equal(data.binary_matrix().toarray(), (expected > 0).astype(float))
    negatives = data.negative_matrix()
    assert negatives.dtype == np.float32 and negatives.shape == (3, 4)
    np.testing.assert_array_equal(
        negatives.toarray(), np.array([[0, 0, 2, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    )


def test_matrix_is_fresh_each_call() -> None:
    data = small()
    first = data.matrix()
    first.data[:] = 99
    assert data.matrix().toarray()[0, 0] == 4


def test_user_last_timestamp() -> None:
    assert small().user_last_ts().tolist() == [T0 + 5, T0 + 7, NO_TIMESTAMP]


def test_pair_times_are_each_pairs_newest_event_in_days_in_the_matrixs_order() -> None:
    data = small()
    times, matrix = data.pair_times(), data.matrix()
    assert times.dtype == np.float64 and times.shape == matrix.shape
    np.testing.assert_array_equal(times.indptr, matrix.indptr)
    np.testing.assert_array_equal(times.indices, matrix.indices)
    expected = np.array([T0 + 5, T0 + 2, T0 + 7, T0 + 6]) / DAY
    np.testing.assert_allclose(times.data, expected, rtol=0, atol=1e-9)


def test_fit_on_gives_the_pairs_times_to_a_model_that_reads_them() -> None:
    """The pipeline fitted through ``fit_on`` weighs each listener's plays by recency (the
    newest weighs 1, one half-life older 0.5); a model that does not read times is fitted
    on the matrix alone."""
    from segue.models.base import fit_on
    from segue.models.ease import EASERecommender
    from segue.models.staged.pipeline import StagedRecommender

    rows = [
        (f"u{u}", f"i{(u + k) % 12}", "play", T0 + k * 30 * DAY, 1, False)
        for u in range(40)
        for k in range(6)
    ]
    data = Interactions.from_log(make_log(rows))
    model = StagedRecommender(
        generators=("itemknn",), n_estimators=5, min_child_samples=2, recency_days=30.0
    )
    fit_on(model, data, Counts())
    assert model._recency is not None
    ages = (data.user_last_ts()[data.pairs.user] - data.pairs.last_ts) / (30 * DAY)
    np.testing.assert_allclose(model._recency.data, 0.5**ages, rtol=1e-5)
    ease = fit_on(EASERecommender(), data, Binary())
    np.testing.assert_array_equal(ease._fitted().toarray(), data.matrix(Binary()).toarray())


def test_focus_mode_is_excluded_even_when_it_is_all_there_is() -> None:
    rows = [("u1", "i1", "play", T0, 5, True), ("u1", "i2", "like", T0, 1, True)]
    with pytest.raises(DatasetError, match="2 events, 2 of them Focus-Mode"):
        Interactions.from_log(make_log(rows))


def test_empty_log_is_rejected() -> None:
    with pytest.raises(DatasetError, match="no positive interactions: the log has 0 events"):
        Interactions.from_log(InteractionLog.empty())


def test_custom_event_filter() -> None:
    data = Interactions.from_log(
        make_log(ROWS, USERS, ITEMS),
        events=EventFilter(positive=("play",), negative=(EventType.SKIP,)),
    )
    assert table(data.pairs, "user", "item") == [(0, 0)]
    assert table(data.negatives, "user", "item") == [(0, 2)]
    assert (
        Interactions.from_log(
            make_log(ROWS, USERS, ITEMS), events=EventFilter(negative=())
        ).negatives.user.tolist()
        == []
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"positive": ("play", "skip")}, r"\['skip'\] cannot be both positive and negative"),
        ({"positive": ()}, "positive is empty"),
        ({"positive": ("plays",)}, "'plays' is not a valid EventType"),
    ],
)
def test_bad_event_filters(kwargs: dict, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        EventFilter(**kwargs)


def test_bad_weighting_is_rejected() -> None:
    with pytest.raises(DatasetError, match=r"weighting must be a segue\.dataset weighting"):
        Interactions.from_log(make_log(ROWS, USERS, ITEMS), weighting="bm25")  # type: ignore[arg-type]


def test_weighting_is_applied_and_replaceable() -> None:
    data = Interactions.from_log(make_log(ROWS, USERS, ITEMS), weighting=Binary())
    assert data.matrix().toarray()[0, 0] == 1.0
    counted = data.with_weighting(Counts())
    assert counted.matrix().toarray()[0, 0] == 4.0
    assert counted.users is data.users and counted.pairs is data.pairs
    assert data.matrix(BM25()).shape == (3, 4)


def test_time_decay_weighs_each_event_before_summing() -> None:
    rows = [
        ("u1", "i1", "play", T0, 2, False),  # 30 days before the newest event: 2 * 1/2
        ("u1", "i1", "play", T0 + 30 * DAY, 1, False),  # newest: counts fully
        ("u1", "i2", "play", T0 - 30 * DAY, 8, False),  # 60 days old: 8 * 1/4
        ("u1", "i2", "skip", T0 + 30 * DAY, 1, False),
        ("u1", "i3", "play", T0 + 99 * DAY, 5, True),  # Focus Mode: not even the reference
    ]
    data = Interactions.from_log(make_log(rows), decay=TimeDecay(half_life_days=30))
    np.testing.assert_allclose(data.pairs.value, [1.0 + 1.0, 2.0])
    assert data.pairs.count.tolist() == [3, 8]  # raw counts are kept undecayed
    np.testing.assert_allclose(data.matrix().toarray()[0], [2.0, 2.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(data.negatives.value, [1.0])
    # An explicit reference 15 days later (half a half-life) divides every weight by sqrt(2).
    later = Interactions.from_log(
        make_log(rows), decay=TimeDecay(half_life_days=30, reference_ms=T0 + 45 * DAY)
    )
    np.testing.assert_allclose(later.pairs.value, np.array([2.0, 2.0]) / np.sqrt(2))


def test_aggregation_matches_a_plain_python_reference() -> None:
    rng = np.random.default_rng(11)
    n, n_users, n_items = 5000, 40, 60
    users = [f"u{i}" for i in range(n_users)]
    items = [f"i{i}" for i in range(n_items)]
    kinds = ["play", "play", "like", "skip", "dislike", "impression", "follow"]
    rows = [
        (
            users[rng.integers(n_users)],
            items[rng.integers(n_items)],
            kinds[rng.integers(len(kinds))],
            int(T0 + rng.integers(0, 10**9)),
            int(rng.integers(1, 6)),
            bool(rng.random() < 0.1),
        )
        for _ in range(n)
    ]
    data = Interactions.from_log(make_log(rows, users, items))
    expected: dict[tuple[int, int], list[int]] = {}
    for user, item, kind, ts, count, focus in rows:
        if focus or kind not in ("play", "like", "add_to_playlist", "follow"):
            continue
        key = (users.index(user), items.index(item))
        total, newest = expected.get(key, [0, -1])
        expected[key] = [total + count, max(newest, ts)]
    got = {
        (u, i): [c, t]
        for u, i, c, t in zip(
            data.pairs.user.tolist(),
            data.pairs.item.tolist(),
            data.pairs.count.tolist(),
            data.pairs.last_ts.tolist(),
            strict=True,
        )
    }
    assert got == expected
    keys = data.pairs.keys(n_items)
    assert np.all(np.diff(keys) > 0)  # sorted by (user, item), each pair once
    dense = np.zeros((n_users, n_items))
    for (u, i), (c, _) in expected.items():
        dense[u, i] = c
    np.testing.assert_array_equal(data.matrix().toarray(), dense)


def test_dataset_layer_imports_no_higher_layer() -> None:
    code = (
        "import sys, segue.dataset\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[:2] in "
        "(['segue', 'store'], ['segue', 'models'], ['segue', 'eval'], ['segue', 'cli']))\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
