"""Online state: both implementations, same tests, real Redis (no fakes)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pytest

from conftest import REDIS_URL
from segue.data.model import Event, EventType, from_epoch_ms
from segue.online.factory import open_state
from segue.online.state import (
    RECENT_PLAYS_MAX,
    SEEN_MAX_IDS,
    InProcessState,
    OnlineState,
    StateUnavailable,
)

T0 = 1_700_000_000_000 - (1_700_000_000_000 % 60_000)  # a minute boundary
MIN = 60_000
ARTIST = {"a1": "artistA", "a2": "artistA", "b1": "artistB"}
GENRES = {"a1": ["rock", "indie"], "a2": ["rock"], "b1": ["jazz"]}


@pytest.fixture(params=["inprocess", "redis"])
def state(request: pytest.FixtureRequest) -> Iterator[OnlineState]:
    if request.param == "inprocess":
        s = open_state(None, "unused")
        assert isinstance(s, InProcessState)
    else:
        s = open_state(REDIS_URL, request.getfixturevalue("redis_prefix"))
    try:
        yield s
    finally:
        s.close()


_ids = iter(range(10**9))


def ev(
    kind: EventType,
    item: str,
    ts_ms: int,
    *,
    user: str = "u1",
    event_id: str | None = None,
    **kw: object,
) -> Event:
    return Event(
        event_id=event_id or f"e{next(_ids)}",
        user_id=user,
        item_id=item,
        type=kind,
        timestamp=from_epoch_ms(ts_ms),
        **kw,  # type: ignore[arg-type]
    )


def test_recent_plays_newest_first_and_bounded(state: OnlineState) -> None:
    plays = [ev(EventType.PLAY, f"t{i}", T0 + i * 1000) for i in range(RECENT_PLAYS_MAX + 5)]
    skip = ev(EventType.SKIP, "not-a-play", T0 + 10**6)
    assert state.apply([*plays, skip]) == RECENT_PLAYS_MAX + 6
    last = RECENT_PLAYS_MAX + 4
    assert state.recent_plays("u1", 3) == [f"t{last}", f"t{last - 1}", f"t{last - 2}"]
    everything = state.recent_plays("u1", 10_000)
    assert len(everything) == RECENT_PLAYS_MAX
    assert everything[-1] == "t5"
    assert state.recent_plays("nobody", 5) == []


def test_skips_and_likes_counted_in_session_and_reset_after_gap(state: OnlineState) -> None:
    events = [
        ev(EventType.SKIP, "a1", T0),
        ev(EventType.SKIP, "a2", T0 + 5 * MIN),
        ev(EventType.SKIP, "b1", T0 + 10 * MIN),
        ev(EventType.LIKE, "b1", T0 + 39 * MIN),  # 29 min gap: same session
        ev(EventType.PLAY, "zz", T0 + 40 * MIN),  # unknown item: counts nowhere
    ]
    state.apply(events, artist_of=ARTIST, genres_of=GENRES)
    s = state.session("u1")
    assert s is not None
    assert (s.session_id, s.started_ms, s.last_ms) == ("u1@" + str(T0), T0, T0 + 40 * MIN)
    assert s.skips_by_artist == {"artistA": 2, "artistB": 1}
    assert s.skips_by_genre == {"rock": 2, "indie": 1, "jazz": 1}
    assert s.likes_by_artist == {"artistB": 1}
    assert s.likes_by_genre == {"jazz": 1}
    # read-side expiry: the session has ended 31 minutes after its last event
    assert state.session("u1", now_ms=T0 + 70 * MIN) is not None
    assert state.session("u1", now_ms=T0 + 71 * MIN + 1) is None

    late = T0 + 40 * MIN + 30 * MIN + 1  # gap just over the timeout: a new session
    state.apply([ev(EventType.SKIP, "a1", late)], artist_of=ARTIST, genres_of=GENRES)
    s = state.session("u1")
    assert s is not None
    assert (s.session_id, s.started_ms, s.last_ms) == (f"u1@{late}", late, late)
    assert s.skips_by_artist == {"artistA": 1}
    assert s.skips_by_genre == {"rock": 1, "indie": 1}
    assert s.likes_by_artist == {} and s.likes_by_genre == {}


def test_new_session_id_resets_and_timeout_is_configurable(state: OnlineState) -> None:
    state.apply(
        [ev(EventType.SKIP, "a1", T0, session_id="s1"), ev(EventType.SKIP, "a1", T0 + MIN)],
        artist_of=ARTIST,
    )
    s = state.session("u1")
    assert s is not None and s.session_id == "s1" and s.skips_by_artist == {"artistA": 2}
    state.apply([ev(EventType.SKIP, "b1", T0 + 2 * MIN, session_id="s2")], artist_of=ARTIST)
    s = state.session("u1")
    assert s is not None and s.session_id == "s2" and s.skips_by_artist == {"artistB": 1}

    short = InProcessState(session_timeout_ms=MIN)
    short.apply(
        [ev(EventType.SKIP, "a1", T0), ev(EventType.SKIP, "a1", T0 + 2 * MIN)], artist_of=ARTIST
    )
    s = short.session("u1")
    assert s is not None and s.started_ms == T0 + 2 * MIN and s.skips_by_artist == {"artistA": 1}


def test_focus_events_change_nothing(state: OnlineState) -> None:
    focus = [
        ev(EventType.PLAY, "a1", T0, focus=True, device="phone", surface="home"),
        ev(EventType.SKIP, "a2", T0 + MIN, focus=True, event_id="f1"),
        ev(EventType.LIKE, "b1", T0 + 2 * MIN, focus=True),
    ]
    assert state.apply(focus, artist_of=ARTIST, genres_of=GENRES) == 0
    assert state.recent_plays("u1", 10) == []
    assert state.session("u1") is None
    assert state.last_context("u1") == {}
    hour, day = state.item_counts(["a1"], T0 + 5 * MIN)
    assert hour.tolist() == [0] and day.tolist() == [0]
    # the focus event's id was not remembered: the same id out of focus is applied
    assert state.apply([ev(EventType.SKIP, "a2", T0 + MIN, event_id="f1")], artist_of=ARTIST) == 1


def test_redelivered_event_is_not_double_counted(state: OnlineState) -> None:
    play = ev(EventType.PLAY, "a1", T0, event_id="p1")
    skip = ev(EventType.SKIP, "a2", T0 + MIN, event_id="s1")
    assert state.apply([play, skip], artist_of=ARTIST, genres_of=GENRES) == 2
    assert state.apply([play, skip, play], artist_of=ARTIST, genres_of=GENRES) == 0
    assert state.recent_plays("u1", 10) == ["a1"]
    s = state.session("u1")
    assert s is not None and s.skips_by_artist == {"artistA": 1}
    assert state.item_counts(["a1"], T0)[1].tolist() == [1]
    # the window is bounded: after SEEN_MAX_IDS newer ids, the old one is forgotten
    others = [ev(EventType.CLICK, "b1", T0 + 2 * MIN) for _ in range(SEEN_MAX_IDS - 2)]
    assert state.apply(others) == SEEN_MAX_IDS - 2
    assert state.apply([play]) == 0  # p1 is still among the last SEEN_MAX_IDS
    assert state.apply([ev(EventType.CLICK, "b1", T0 + 2 * MIN)]) == 1
    assert state.apply([skip]) == 0
    assert state.apply([play]) == 1
    # ids are per user: another user's event with the same id is applied
    assert state.apply([ev(EventType.PLAY, "a1", T0, user="u2", event_id="p1")]) == 1


def test_item_counts_last_hour_and_day(state: OnlineState) -> None:
    now = T0 + 30_000  # mid-minute: the bucket of `now` counts
    plays = [
        ev(EventType.PLAY, "x", now - 10),  # this minute
        ev(EventType.PLAY, "x", now - 59 * MIN, count=3),  # oldest minute of the hour
        ev(EventType.PLAY, "x", now - 60 * MIN),  # just outside the hour, inside the day
        ev(EventType.PLAY, "x", now - 23 * 60 * MIN),
        ev(EventType.PLAY, "x", now - 1439 * MIN, user="u2"),  # oldest minute of the day
        ev(EventType.PLAY, "x", now - 1440 * MIN, user="u3"),  # a day ago: out
        ev(EventType.PLAY, "x", now + MIN),  # after now: out
        ev(EventType.PLAY, "y", now - 2 * MIN),
        ev(EventType.SKIP, "x", now - MIN),  # not a play
        ev(EventType.PLAY, "z", now - 5 * MIN, focus=True),  # focus: not counted
    ]
    assert state.apply(plays) == 9
    hour, day = state.item_counts(["x", "y", "z", "never"], now)
    assert hour.dtype == np.int64 and day.dtype == np.int64
    assert hour.tolist() == [4, 1, 0, 0]
    assert day.tolist() == [7, 1, 0, 0]
    hour, day = state.item_counts(["x"], now + MIN)  # one minute later the `now+1` play counts
    assert hour.tolist() == [2] and day.tolist() == [7]
    assert [a.tolist() for a in state.item_counts([], now)] == [[], []]


def test_last_context_keeps_latest_values(state: OnlineState) -> None:
    state.apply(
        [
            ev(EventType.PLAY, "a1", T0, device="phone", surface="home"),
            ev(EventType.SKIP, "a1", T0 + MIN, device="car"),
            ev(EventType.PLAY, "a1", T0 - MIN, device="tv", surface="search"),  # older: ignored
        ]
    )
    assert state.last_context("u1") == {
        "device": "car",
        "surface": "home",
        "timestamp_ms": T0 + MIN,
    }


def test_vector_round_trip(state: OnlineState) -> None:
    assert state.get_vector("u1") is None
    vec = np.array([0.1, -2.5, 3.25, 1e-8], dtype=np.float64)
    state.set_vector("u1", vec)
    got = state.get_vector("u1")
    assert got is not None and got.dtype == np.float32
    np.testing.assert_array_equal(got, vec.astype(np.float32))
    state.set_vector("u1", np.zeros(2, dtype=np.float32))
    np.testing.assert_array_equal(state.get_vector("u1"), np.zeros(2, dtype=np.float32))
    with pytest.raises(ValueError, match="1-D"):
        state.set_vector("u1", np.zeros((2, 2)))


def test_unreachable_redis_raises_state_unavailable() -> None:
    url = "redis://127.0.0.1:1/0"
    with pytest.raises(StateUnavailable, match=r"127\.0\.0\.1:1.*SEGUE_REDIS_URL"):
        open_state(url, "p:")


def test_timestamp_naive_and_aware_agree(state: OnlineState) -> None:
    naive = dt.datetime(2024, 1, 1, 12, 0)
    e = Event(event_id="n1", user_id="u1", item_id="a1", type=EventType.PLAY, timestamp=naive)
    state.apply([e])
    aware_ms = int(naive.replace(tzinfo=dt.UTC).timestamp() * 1000)
    assert state.last_context("u1")["timestamp_ms"] == aware_ms


def test_onboarding_is_kept_per_user_and_replaced(state: OnlineState) -> None:
    assert state.onboarding("u1") == ([], [])
    state.set_onboarding("u1", ["t1", "t2"], ["jazz"])
    state.set_onboarding("u2", ["t9"], [])
    assert state.onboarding("u1") == (["t1", "t2"], ["jazz"])
    state.set_onboarding("u1", ["t3"], ["rock", "pop"])
    assert state.onboarding("u1") == (["t3"], ["rock", "pop"])
    assert state.onboarding("u2") == (["t9"], [])


def test_for_request_reads_what_the_separate_calls_read(state: OnlineState) -> None:
    events = [ev(EventType.PLAY, f"t{i}", T0 + i * 1000) for i in range(5)]
    events.append(ev(EventType.SKIP, "t1", T0 + 6000))
    state.apply(events, artist_of={"t1": "a1"}, genres_of={"t1": ["jazz"]})
    state.set_onboarding("u1", ["t7"], ["jazz"])
    now = T0 + 10_000
    recent, session, onboarding = state.for_request("u1", 3, now)
    assert recent == state.recent_plays("u1", 3) == ["t4", "t3", "t2"]
    assert session == state.session("u1", now)
    assert session is not None and session.skips_by_artist == {"a1": 1}
    assert onboarding == (["t7"], ["jazz"])
    assert state.for_request("nobody", 3, now) == ([], None, ([], []))
