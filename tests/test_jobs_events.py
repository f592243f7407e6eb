"""The event worker on real backends: in-process and Redis bus+state, SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pytest

from conftest import REDIS_URL
from segue.data.model import Event, EventType, Item, ItemKind, User
from segue.online.bus import EventBus, InProcessBus, RedisStreamBus
from segue.online.factory import open_state
from segue.online.state import OnlineState, SessionState
from segue.serving.worker import EventWorker
from segue.store import Store

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
T0_MS = int(T0.timestamp() * 1000)
_ids = itertools.count()


@pytest.fixture(params=["memory", "redis"])
def online(request: pytest.FixtureRequest) -> Iterator[tuple[EventBus, OnlineState]]:
    """A bus and a state on the same backend."""
    if request.param == "memory":
        bus: EventBus = InProcessBus()
        state = open_state(None)
    else:
        prefix = request.getfixturevalue("redis_prefix")
        bus = RedisStreamBus(REDIS_URL, prefix)
        state = open_state(REDIS_URL, prefix)
    try:
        yield bus, state
    finally:
        bus.close()
        state.close()


@pytest.fixture
def catalog(store: Store) -> Store:
    store.upsert_items(
        [
            Item(id="t1", kind=ItemKind.TRACK, title="One", artist_id="a1", genres=("rock",)),
            Item(id="t2", kind=ItemKind.TRACK, title="Two", artist_id="a1", genres=("rock",)),
            Item(id="t3", kind=ItemKind.TRACK, title="Three", artist_id="a2", genres=("jazz",)),
        ]
    )
    store.upsert_users([User(id="u1", signup_at=T0 - dt.timedelta(days=30))])
    return store


def ev(user: str, item: str, kind: EventType = EventType.PLAY, sec: int = 0, **kw: object) -> Event:
    return Event(
        event_id=f"e{next(_ids)}",
        user_id=user,
        item_id=item,
        type=kind,
        timestamp=T0 + dt.timedelta(seconds=sec),
        session_id="s1",
        **kw,  # type: ignore[arg-type]
    )


def _day_counts(state: OnlineState, items: list[str]) -> list[int]:
    _, day = state.item_counts(items, T0_MS + 60_000)
    return day.tolist()


def _session(state: OnlineState, user: str) -> SessionState:
    s = state.session(user)
    assert s is not None, f"no session for {user}"
    return s


def test_events_are_persisted_then_applied(
    online: tuple[EventBus, OnlineState], catalog: Store
) -> None:
    bus, state = online
    bus.publish(
        [
            ev("u1", "t1", sec=1),
            ev("u1", "t3", sec=2),
            ev("u1", "t2", EventType.SKIP, sec=3),
            ev("u1", "t3", EventType.SKIP, sec=4),
        ]
    )
    worker = EventWorker(bus, catalog, state)

    report = worker.run_once()

    assert (report.received, report.persisted, report.applied) == (4, 4, 4)
    assert report.created_users == 0 and report.rejected == []
    assert catalog.count("events") == 4
    assert state.recent_plays("u1") == ["t3", "t1"]
    s = _session(state, "u1")
    assert s.skips_by_artist == {"a1": 1, "a2": 1}
    assert s.skips_by_genre == {"rock": 1, "jazz": 1}
    assert bus.pending("persist") == 0
    assert worker.run_once().received == 0  # acknowledged: nothing left


class _Died(BaseException):
    """Not an ``Exception``: the worker process died; the bus settles nothing."""


class _CrashOnce(OnlineState):
    """The real state, but the first ``apply`` dies (before or after applying), like a
    worker process killed between persisting and acknowledging."""

    def __init__(self, real: OnlineState, *, after_apply: bool) -> None:
        super().__init__()
        self.real = real
        self.after_apply = after_apply
        self.crashed = False

    def apply(
        self,
        events: Sequence[Event],
        *,
        artist_of: Mapping[str, str] | None = None,
        genres_of: Mapping[str, Sequence[str]] | None = None,
    ) -> int:
        if not self.crashed:
            self.crashed = True
            if self.after_apply:
                self.real.apply(events, artist_of=artist_of, genres_of=genres_of)
            raise _Died("worker died before acknowledging")
        return self.real.apply(events, artist_of=artist_of, genres_of=genres_of)

    def recent_plays(self, user_id: str, n: int = 50) -> list[str]:
        return self.real.recent_plays(user_id, n)

    def session(self, user_id: str, now_ms: int | None = None) -> SessionState | None:
        return self.real.session(user_id, now_ms)

    def last_context(self, user_id: str) -> dict[str, object]:
        return self.real.last_context(user_id)

    def set_vector(self, user_id: str, vector: np.ndarray) -> None:
        self.real.set_vector(user_id, vector)

    def get_vector(self, user_id: str) -> np.ndarray | None:
        return self.real.get_vector(user_id)

    def item_counts(self, item_ids: Sequence[str], now_ms: int) -> tuple[np.ndarray, np.ndarray]:
        return self.real.item_counts(item_ids, now_ms)

    def set_onboarding(self, user_id: str, items: Sequence[str], genres: Sequence[str]) -> None:
        self.real.set_onboarding(user_id, items, genres)

    def onboarding(self, user_id: str) -> tuple[list[str], list[str]]:
        return self.real.onboarding(user_id)

    def close(self) -> None:
        self.real.close()


def _crash_batch() -> list[Event]:
    return [
        ev("u1", "t1", sec=1),
        ev("u1", "t1", sec=2),
        ev("u1", "t2", EventType.SKIP, sec=3),
        ev("u9", "t3", sec=4),  # unknown user: created during the crashed attempt
    ]


def test_crash_after_apply_then_reclaim_counts_nothing_twice(
    online: tuple[EventBus, OnlineState], catalog: Store
) -> None:
    bus, state = online
    bus.publish(_crash_batch())
    crashing = EventWorker(bus, catalog, _CrashOnce(state, after_apply=True), consumer="w1")
    with pytest.raises(_Died, match="before acknowledging"):
        crashing.run_once()
    assert catalog.count("events") == 4  # persisted, but not acknowledged
    assert bus.pending("persist") == 4

    takeover = EventWorker(bus, catalog, state, consumer="w2")
    assert takeover.reclaim(0) == 4
    report = takeover.run_once()

    assert (report.received, report.persisted, report.applied) == (4, 0, 0)
    assert report.created_users == 0  # u9 was created by the crashed attempt
    assert catalog.count("events") == 4
    assert catalog.count("users") == 2
    assert state.recent_plays("u1") == ["t1", "t1"]
    assert _day_counts(state, ["t1", "t3"]) == [2, 1]
    assert _session(state, "u1").skips_by_artist == {"a1": 1}
    assert bus.pending("persist") == 0


def test_crash_before_apply_is_retried_and_applied_once(
    online: tuple[EventBus, OnlineState], catalog: Store
) -> None:
    bus, state = online
    bus.publish(_crash_batch())
    worker = EventWorker(bus, catalog, _CrashOnce(state, after_apply=False))
    with pytest.raises(_Died):
        worker.run_once()
    assert catalog.count("events") == 4
    assert state.recent_plays("u1") == []  # the crash came before the state saw anything

    report = worker.run_once()  # the same consumer gets its pending batch again

    # Old to the store, new to the state: the state must still get every event.
    assert (report.received, report.persisted, report.applied) == (4, 0, 4)
    assert catalog.count("events") == 4
    assert state.recent_plays("u1") == ["t1", "t1"]
    assert _day_counts(state, ["t1", "t3"]) == [2, 1]
    assert _session(state, "u1").skips_by_artist == {"a1": 1}
    assert worker.run_once().received == 0


def test_unknown_user_is_created_at_first_event(
    online: tuple[EventBus, OnlineState], catalog: Store
) -> None:
    bus, state = online
    bus.publish([ev("new", "t2", sec=20), ev("new", "t1", sec=10), ev("u1", "t3", sec=5)])

    report = EventWorker(bus, catalog, state).run_once()

    assert report.created_users == 1 and report.persisted == 3
    user = catalog.get_user("new")
    assert user is not None
    assert user.signup_at == T0 + dt.timedelta(seconds=10)  # earliest event, not batch order
    assert not user.consent_push and not user.consent_email
    assert catalog.get_user("u1").signup_at == T0 - dt.timedelta(days=30)  # type: ignore[union-attr]
    assert state.recent_plays("new") == ["t1", "t2"]  # in arrival order, newest first


def test_unknown_item_is_dead_lettered_and_stored_after_a_fix_and_replay(
    online: tuple[EventBus, OnlineState], catalog: Store
) -> None:
    bus, state = online
    bad = ev("u1", "ghost", sec=2)
    only_bad_user = ev("u7", "ghost", sec=3)
    bus.publish([ev("u1", "t1", sec=1), bad, only_bad_user, ev("u1", "t2", sec=4)])
    worker = EventWorker(bus, catalog, state)

    report = worker.run_once()

    assert [eid for eid, _ in report.rejected] == [bad.event_id, only_bad_user.event_id]
    assert "ghost" in report.rejected[0][1]
    assert (report.received, report.persisted, report.applied) == (4, 2, 2)
    assert report.created_users == 0  # u7's only event was rejected
    assert catalog.get_user("u7") is None
    assert catalog.count("events") == 2
    assert state.recent_plays("u1") == ["t2", "t1"]
    assert bus.pending("persist") == 0  # the poison does not block the stream
    assert worker.run_once().received == 0
    letters = bus.dead_letters()
    assert [d.fields()["event_id"] for d in letters] == [bad.event_id, only_bad_user.event_id]
    assert all("unknown item 'ghost'" in d.error and d.attempts == 1 for d in letters)

    catalog.upsert_items([Item(id="ghost", kind=ItemKind.TRACK, title="Ghost", artist_id="a9")])
    assert len(bus.replay_dead(None)) == 2
    report = worker.run_once()
    assert (report.received, report.persisted, report.rejected) == (2, 2, [])
    assert catalog.count("events") == 4 and catalog.get_user("u7") is not None
    assert bus.dead_letters() == [] and bus.pending("persist") == 0


def test_item_added_after_the_cache_was_loaded_is_found(
    online: tuple[EventBus, OnlineState], catalog: Store
) -> None:
    bus, state = online
    worker = EventWorker(bus, catalog, state)
    bus.publish([ev("u1", "t1", sec=1)])
    worker.run_once()  # loads the item cache
    catalog.upsert_items([Item(id="t4", kind=ItemKind.TRACK, title="Four", artist_id="a4")])
    bus.publish([ev("u1", "t4", EventType.SKIP, sec=2)])

    report = worker.run_once()

    assert report.rejected == [] and report.persisted == 1
    assert _session(state, "u1").skips_by_artist == {"a4": 1}


def test_focus_events_are_stored_but_not_applied(
    online: tuple[EventBus, OnlineState], catalog: Store
) -> None:
    bus, state = online
    bus.publish([ev("u1", "t1", sec=1, focus=True), ev("u1", "t2", EventType.SKIP, focus=True)])

    report = EventWorker(bus, catalog, state).run_once()

    assert (report.persisted, report.applied) == (2, 0)
    assert catalog.count("events") == 2
    assert len(catalog.interactions(include_focus=True)) == 2
    assert state.recent_plays("u1") == []
    assert state.session("u1") is None
    assert _day_counts(state, ["t1"]) == [0]


def test_a_running_worker_takes_over_idle_messages_of_any_consumer(
    online: tuple[EventBus, OnlineState], catalog: Store
) -> None:
    bus, state = online
    bus.publish([ev("u1", "t1", sec=1), ev("u1", "t2", sec=2)])
    dead = EventWorker(bus, catalog, _CrashOnce(state, after_apply=False), consumer="dead-one")
    with pytest.raises(_Died):
        dead.run_once()  # persisted, never acknowledged: pending with "dead-one"
    heir = EventWorker(bus, catalog, state, consumer="heir", reclaim_idle_ms=1500)
    bus.publish([ev("u1", "t3", sec=3)])
    assert heir.run_once().received == 1  # not idle long enough yet: only the new one
    assert bus.pending("persist") == 2
    time.sleep(1.6)
    report = heir.run_once()  # its loop claims them: no restart, no shared name
    assert (report.received, report.persisted, report.applied) == (2, 0, 2)
    assert bus.pending("persist") == 0
    assert state.recent_plays("u1") == ["t2", "t1", "t3"]
    never = EventWorker(bus, catalog, state, consumer="never", reclaim_idle_ms=None)
    assert never.reclaim_if_due(force=True) == 0


def test_a_catalog_the_worker_cannot_load_counts_against_no_event(
    online: tuple[EventBus, OnlineState], catalog: Store, database_url: str
) -> None:
    import sqlalchemy as sa

    from segue.online.bus import TransientFailure

    bus, state = online
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:  # a row from before the rules: a control character
        conn.execute(
            sa.text(
                "INSERT INTO items (id, kind, title, genres, tags, explicit, description) "
                "VALUES ('old', 'track', 'bad\x01title', '[]', '[]', false, '')"
            )
        )
    bus.publish([ev("u1", "t1", sec=1)])
    worker = EventWorker(bus, catalog, state)
    for _ in range(5):
        with pytest.raises(TransientFailure, match="item catalog"):
            worker.run_once()
    assert bus.pending("persist") == 1 and bus.dead_letters() == []
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM items WHERE id = 'old'"))
    engine.dispose()
    assert worker.run_once().persisted == 1
    assert bus.pending("persist") == 0 and bus.dead_letters() == []
