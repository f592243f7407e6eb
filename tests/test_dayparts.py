"""Dayparts: the local part of the day of plays and requests, and the requests per daypart."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import scipy.sparse as sp

from segue.data.dayparts import DAYPARTS, UNKNOWN, daypart_now, daypart_of_hour, local_dayparts
from segue.data.model import User
from segue.dataset.idmap import IdMap
from segue.dataset.side import UserTable
from segue.dataset.splits import daypart_queries, values_at
from segue.errors import DatasetError

DAY_MS = 86_400_000


def _days(when: dt.datetime) -> float:
    return when.timestamp() * 1000 / DAY_MS


def test_a_local_hour_falls_in_its_six_hour_part_of_the_day() -> None:
    hours = np.arange(24)
    expected = [0] * 6 + [1] * 6 + [2] * 6 + [3] * 6
    np.testing.assert_array_equal(daypart_of_hour(hours), expected)
    assert DAYPARTS[int(daypart_of_hour(7))] == "morning"
    assert DAYPARTS[int(daypart_of_hour(23))] == "evening"


def test_instants_take_their_zones_offset_on_their_day_daylight_saving_included() -> None:
    utc = dt.UTC
    names = ("Europe/Berlin", "America/New_York")
    instants = [
        (dt.datetime(2024, 7, 1, 5, 30, tzinfo=utc), 0, 1),  # Berlin summer 07:30: morning
        (dt.datetime(2024, 1, 15, 5, 30, tzinfo=utc), 0, 1),  # Berlin winter 06:30: morning
        (dt.datetime(2024, 1, 15, 4, 30, tzinfo=utc), 0, 0),  # Berlin winter 05:30: night
        (dt.datetime(2024, 7, 1, 4, 30, tzinfo=utc), 0, 1),  # Berlin summer 06:30: morning
        (dt.datetime(2024, 7, 2, 2, 0, tzinfo=utc), 1, 3),  # New York 22:00 the day before
        (dt.datetime(2024, 7, 2, 17, 0, tzinfo=utc), 1, 2),  # New York 13:00
        (dt.datetime(2024, 7, 2, 17, 0, tzinfo=utc), -1, UNKNOWN),  # no zone
    ]
    days = np.array([_days(t) for t, _, _ in instants])
    zones = np.array([z for _, z, _ in instants])
    expected = [p for _, _, p in instants]
    np.testing.assert_array_equal(local_dayparts(days, zones, names), expected)
    no_time = np.array([np.nan, -1 / DAY_MS, np.iinfo(np.int64).min / DAY_MS, 1e12, days[0]])
    marked = local_dayparts(no_time, np.zeros(len(no_time), np.int64), names)
    np.testing.assert_array_equal(marked, [UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, 1])
    now = int(dt.datetime(2024, 7, 2, 2, 0, tzinfo=utc).timestamp() * 1000)
    assert daypart_now("America/New_York", now) == 3
    assert daypart_now("Europe/Berlin", now) == 0  # 04:00 in Berlin
    assert daypart_now(None, now) == UNKNOWN


def test_the_user_table_keeps_each_listeners_zone_and_dates_their_pairs() -> None:
    users = IdMap(["a", "b", "c"])
    joined = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    records = [
        User(id="a", signup_at=joined, timezone="Europe/Berlin"),
        User(id="b", signup_at=joined),
        User(id="c", signup_at=joined, timezone="America/New_York"),
    ]
    table = UserTable.from_users(records, users)
    assert table.timezones == ("Europe/Berlin", "America/New_York")
    np.testing.assert_array_equal(table.timezone, [0, -1, 1])
    when = _days(dt.datetime(2024, 7, 2, 2, 0, tzinfo=dt.UTC))  # Berlin 04:00, NY 22:00
    times = sp.csr_matrix(
        ([when, when + 0.25, when, when], ([0, 0, 1, 2], [0, 1, 0, 2])), shape=(3, 3)
    )
    parts = table.pair_dayparts(times)
    np.testing.assert_array_equal(parts.indptr, times.indptr)
    np.testing.assert_array_equal(parts.indices, times.indices)
    np.testing.assert_array_equal(parts.data, [0, 1, UNKNOWN, 3])  # 04:00, 10:00, -, 22:00
    nobody = UserTable.from_users([User(id=u, signup_at=joined) for u in "abc"], users)
    assert nobody.pair_dayparts(times) is None


def test_requests_per_daypart_hold_what_each_listener_played_in_that_daypart() -> None:
    relevant = sp.csr_matrix(
        (np.ones(7, np.float32), ([0, 0, 0, 2, 2, 3, 3], [1, 2, 4, 0, 3, 1, 5])), shape=(4, 6)
    )
    parts = np.array([0, 3, 0, 2, 2, UNKNOWN, 1], dtype=np.int8)  # night is daypart 0
    users, request, per = daypart_queries(np.array([0, 2, 3]), relevant, parts)
    np.testing.assert_array_equal(users, [0, 0, 2, 3, 3])
    np.testing.assert_array_equal(request, [0, 3, 2, UNKNOWN, 1])
    rows = [sorted(per[r].indices.tolist()) for r in range(per.shape[0])]
    assert rows == [[1, 4], [2], [0, 3], [1], [5]]
    users, request, per = daypart_queries(np.array([2, 0]), relevant, None)
    assert request is None
    np.testing.assert_array_equal(users, [2, 0])
    assert (per != relevant[[2, 0]]).nnz == 0


def test_values_at_reads_a_subset_of_the_pairs_and_names_a_missing_one() -> None:
    values = sp.csr_matrix(([5.0, 6.0, 7.0, 8.0], ([0, 0, 1, 2], [1, 3, 0, 2])), shape=(3, 4))
    subset = sp.csr_matrix(([1.0, 1.0], ([0, 2], [3, 2])), shape=(3, 4))
    np.testing.assert_array_equal(values_at(values, subset, "times"), [6.0, 8.0])
    np.testing.assert_array_equal(values_at(values, values, "times"), values.data)
    stray = sp.csr_matrix(([1.0], ([1], [1])), shape=(3, 4))
    with pytest.raises(DatasetError, match="times: a pair of the matrix has no value"):
        values_at(values, stray, "times")
