"""Last.fm 2K through the dataset layer, as the published RecBole results split it.

The log is built straight from ``user_artists.dat`` (one row per user and artist, ``weight`` =
play count), so this test needs no importer or store.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segue.data.log import UNKNOWN_MS, InteractionLog
from segue.dataset import BM25, Binary, Interactions, global_temporal_split, random_split
from segue.errors import DatasetError


def lastfm_log(directory: Path) -> InteractionLog:
    rows = np.loadtxt(directory / "user_artists.dat", dtype=np.int64, skiprows=1, delimiter="\t")
    user_ids, user = np.unique(rows[:, 0], return_inverse=True)
    item_ids, item = np.unique(rows[:, 1], return_inverse=True)
    n = len(rows)
    return InteractionLog(
        user_ids=np.array([str(u) for u in user_ids], dtype=object),
        item_ids=np.array([str(i) for i in item_ids], dtype=object),
        user=user,
        item=item,
        type=np.zeros(n),  # play
        ts_ms=np.zeros(n, dtype=np.int64),  # the file has no time
        ms_played=np.full(n, UNKNOWN_MS),
        count=rows[:, 2],
        focus=np.zeros(n, bool),
        rating=np.full(n, np.nan),
    )


def recbole_sizes(n: int) -> tuple[int, int, int]:
    """RecBole's per-user 8:1:1 sizes, by the rule its docs state (floor, then at least one
    in test and then validation while train keeps more than one)."""
    valid, test = n // 10, n // 10
    train = n - valid - test
    if train > 1 and 0 < n < 10:
        test, train = test + 1, train - 1
    if train > 1 and 0 < n < 10:
        valid, train = valid + 1, train - 1
    return train, valid, test


def test_lastfm_random_split_matches_the_published_protocol(lastfm_dir: Path) -> None:
    data = Interactions.from_log(lastfm_log(lastfm_dir), weighting=Binary())
    assert data.shape == (1892, 17632)
    assert len(data) == 92_834  # every row is its own (user, artist) pair
    assert int(data.pairs.count.sum()) == 69_183_975  # total plays, summed exactly
    assert data.matrix().sum() == 92_834  # binarised, as the published results are

    split = random_split(data, (0.8, 0.1, 0.1), seed=2020)
    counts = np.stack([p.user_counts() for p in split], axis=1)
    expected = np.array([recbole_sizes(int(n)) for n in data.user_counts()])
    np.testing.assert_array_equal(counts, expected)
    # 1,829 users have 50 artists (40/5/5); the 63 others follow the rounding rule. The totals
    # are the reference's sum, written out as the figure a paper's table would quote.
    assert split.sizes == tuple(int(v) for v in expected.sum(axis=0))
    assert split.sizes == (74_295, 9_269, 9_270)
    np.testing.assert_allclose(np.array(split.sizes) / len(data), [0.8, 0.1, 0.1], atol=0.003)
    assert np.isfinite(split.train.matrix(BM25()).data).all()


def test_lastfm_has_no_time_to_cut(lastfm_dir: Path) -> None:
    data = Interactions.from_log(lastfm_log(lastfm_dir))
    with pytest.raises(DatasetError, match="92834 of 92834 pairs share that timestamp"):
        global_temporal_split(data)
