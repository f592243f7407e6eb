"""A listener's data exported and erased: store (SQLite and PostgreSQL), online state (Redis and
in-process), the event stream, the worker, the CLI and the API.

After an erasure every string column of every table and every Redis key and value under the
test's prefix are searched for the id: it must be found nowhere, and the other listeners'
rows must be exactly what they were.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import REDIS_URL, _reset_postgres
from segue.api import create_app
from segue.config import Settings
from segue.data.model import (
    Event,
    EventType,
    Friendship,
    Item,
    ItemKind,
    Tag,
    TagAssignment,
    User,
)
from segue.dataset.from_store import load_interactions
from segue.jobs.privacy import UnknownListener, delete_user, export_user
from segue.nba.campaign import message_id
from segue.online.bus import InProcessBus, RedisStreamBus
from segue.online.factory import open_state
from segue.online.redis_state import RedisState
from segue.online.resilient import ResilientState
from segue.online.state import InProcessState, OnlineState, StateUnavailable
from segue.serving.worker import EventWorker
from segue.store import PublishedList, Store, open_store
from segue.store import schema as tables
from segue.store.exposures import Exposure
from segue.store.outbox import OutboxMessage
from segue.store.privacy import id_hash

VICTIM = "erase-me-7f3c"
OTHERS = ("keep-1", "keep-2")
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
_ids = itertools.count()


def ev(user: str, item: str, kind: EventType = EventType.PLAY, sec: int = 0, **kw: object) -> Event:
    fields: dict[str, object] = {
        "event_id": f"ev-{next(_ids)}",
        "user_id": user,
        "item_id": item,
        "type": kind,
        "timestamp": T0 + dt.timedelta(seconds=sec),
        **kw,
    }
    return Event.model_validate(fields)


def _message(user: str, campaign: str = "spring") -> OutboxMessage:
    return OutboxMessage(
        message_id=message_id(campaign, user),
        campaign=campaign,
        user_id=user,
        channel="email",
        action_type="track",
        item_id="t1",
        payload={"to": f"{user}@example.org", "title": "Hello", "holdout_share": 0.1},
        scheduled_ms=0,
        created_ms=1,
    )


def _fill(store: Store) -> dict[str, int]:
    """A small world where the victim has something in every table; their event count."""
    store.upsert_items(
        [
            Item(id=f"t{i}", kind=ItemKind.TRACK, title=f"T{i}", artist_id=f"a{i % 2}")
            for i in range(1, 6)
        ]
    )
    signup = T0 - dt.timedelta(days=10)
    store.upsert_users(
        [
            User(id=VICTIM, signup_at=signup, country="DE", consent_email=True),
            *(User(id=u, signup_at=signup) for u in OTHERS),
        ]
    )
    events = [ev(VICTIM, f"t{1 + i % 5}", sec=i) for i in range(12)]
    events += [
        ev(VICTIM, "t2", EventType.SKIP, sec=20, session_id="s-1"),
        ev(VICTIM, "t3", EventType.PLAY, sec=21, focus=True),
        ev(VICTIM, "t1", EventType.IMPRESSION, sec=22, session_id=message_id("spring", VICTIM)),
        ev(VICTIM, "t1", EventType.CLICK, sec=23, session_id=message_id("spring", VICTIM)),
    ]
    events += [ev(u, f"t{1 + i % 5}", sec=i) for u in OTHERS for i in range(7)]
    events.append(ev("keep-1", "t1", EventType.IMPRESSION, sec=30, session_id="m-other"))
    store.add_events(events)
    store.add_friendships(
        [
            Friendship(user_id=VICTIM, friend_id="keep-1"),
            Friendship(user_id="keep-2", friend_id=VICTIM),
            Friendship(user_id="keep-1", friend_id="keep-2"),
        ]
    )
    store.upsert_tags([Tag(id=1, name="loud")])
    store.add_tag_assignments(
        [
            TagAssignment(user_id=VICTIM, item_id="t1", tag_id=1, timestamp=T0),
            TagAssignment(user_id="keep-1", item_id="t2", tag_id=1, timestamp=T0),
        ]
    )
    store.outbox_add([_message(VICTIM), _message("keep-1")])
    store.add_exposures(
        [
            Exposure(f"req-{u}-{n}", u, 1_000 + n, "home", "als", "v0002", "personal",
                     ("t1", "t2"), {"ranker": "b"}, {"device": "phone"})
            for u in (VICTIM, "keep-1") for n in range(2)
        ]
    )  # fmt: skip
    day = T0.date()
    for version in ("v0001", "v0002"):
        store.publish_lists(
            "daily",
            version,
            "top",
            [
                PublishedList(u, day, json.dumps({"items": ["t1"], "for": u}))
                for u in (VICTIM, *OTHERS)
            ],
        )
    store.publish_lists(
        "daily", "v0002", "mix", [PublishedList(VICTIM, day, json.dumps({"mix": [VICTIM]}))]
    )
    return {"events": 16}


def _string_hits(store: Store, needle: str) -> list[tuple[str, str]]:
    """(table, column) of every string column of every table holding ``needle`` anywhere."""
    engine = sa.create_engine(store.url)
    hits = []
    try:
        with engine.connect() as conn:
            for table in tables.metadata.sorted_tables:
                for column in table.columns:
                    if not isinstance(column.type, sa.String):  # Text is a String too
                        continue
                    query = sa.select(sa.func.count()).where(column.contains(needle))
                    if conn.execute(query.select_from(table)).scalar_one():
                        hits.append((table.name, column.name))
    finally:
        engine.dispose()
    return hits


def _rows_of_key(store: Store, key: int) -> dict[str, int]:
    """Rows that still reference a users.key (events, links, tag assignments)."""
    engine = sa.create_engine(store.url)
    found = {}
    try:
        with engine.connect() as conn:
            for table, columns in (
                (tables.events, ("user_key",)),
                (tables.friendships, ("user_key", "friend_key")),
                (tables.tag_assignments, ("user_key",)),
                (tables.users, ("key",)),
            ):
                where = sa.or_(*(table.c[c] == key for c in columns))
                found[table.name] = conn.execute(
                    sa.select(sa.func.count()).select_from(table).where(where)
                ).scalar_one()
    finally:
        engine.dispose()
    return found


def _user_key(store: Store, user_id: str) -> int:
    engine = sa.create_engine(store.url)
    try:
        with engine.connect() as conn:
            users = tables.users
            return conn.execute(sa.select(users.c.key).where(users.c.id == user_id)).scalar_one()
    finally:
        engine.dispose()


def _others(store: Store) -> dict[str, object]:
    """Everything the store holds about the other listeners, to compare before/after."""
    out: dict[str, object] = {}
    for user in OTHERS:
        data = store.user_data(user)
        assert data is not None
        data["events"] = list(store.iter_user_events(user))
        out[user] = data
    return out


# -- online state fixtures --------------------------------------------------------------------
@pytest.fixture(params=["in-process", "redis"])
def online(request: pytest.FixtureRequest) -> Iterator[tuple[str, OnlineState, str | None]]:
    """(mode, state, redis prefix or None)."""
    if request.param == "in-process":
        state = InProcessState()
        yield "in-process", state, None
        state.close()
        return
    prefix = request.getfixturevalue("redis_prefix")
    state = open_state(REDIS_URL, prefix)
    yield "redis", state, prefix
    state.close()


def _fill_online(state: OnlineState) -> None:
    for user in (VICTIM, *OTHERS):
        state.apply(
            [
                ev(user, "t1", sec=1, session_id=f"{user}-session", device="phone"),
                ev(user, "t2", EventType.SKIP, sec=2, session_id=f"{user}-session"),
                ev(user, "t3", sec=3, session_id=f"{user}-session"),
            ],
            artist_of={"t1": "a1", "t2": "a0", "t3": "a1"},
            genres_of={"t2": ["rock"]},
        )
        state.set_vector(user, [0.5, 1.5, 2.5])
        state.set_onboarding(user, ["t4"], ["rock"])
    state.set_batch_lists("daily", "v0002", [(u, ["t5"], [1.0]) for u in (VICTIM, *OTHERS)])


def _redis_hits(prefix: str, needle: str) -> list[str]:
    """Keys under ``prefix`` whose name or value holds ``needle``."""
    client = redis.Redis.from_url(REDIS_URL)
    raw = needle.encode()
    hits = []
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            kind = client.type(key).decode()
            if kind == "string":
                values = [client.get(key) or b""]
            elif kind == "list":
                values = client.lrange(key, 0, -1)
            elif kind == "hash":
                values = [x for kv in client.hgetall(key).items() for x in kv]
            elif kind == "set":
                values = list(client.smembers(key))
            elif kind == "zset":
                values = client.zrange(key, 0, -1)
            elif kind == "stream":
                values = [
                    x for _, fields in client.xrange(key) for kv in fields.items() for x in kv
                ]
                groups = client.xinfo_groups(key)
                values += [str(g).encode() for g in groups]
            else:  # pragma: no cover - segue writes no other type
                values = [kind.encode()]
            if raw in key or any(raw in v for v in values):
                hits.append(key.decode())
    finally:
        client.close()
    return hits


def _redis_snapshot(prefix: str, exclude: str) -> dict[str, object]:
    """Every key under ``prefix`` not naming ``exclude``, with its value."""
    client = redis.Redis.from_url(REDIS_URL)
    out: dict[str, object] = {}
    try:
        for key in sorted(client.scan_iter(match=f"{prefix}*", count=1000)):
            if exclude.encode() in key:
                continue
            kind = client.type(key).decode()
            if kind == "string":
                out[key.decode()] = client.get(key)
            elif kind == "list":
                out[key.decode()] = client.lrange(key, 0, -1)
            elif kind == "hash":
                out[key.decode()] = client.hgetall(key)
            elif kind == "zset":
                out[key.decode()] = client.zrange(key, 0, -1)
            elif kind == "stream":
                out[key.decode()] = [
                    f for _, f in client.xrange(key) if exclude.encode() not in str(f).encode()
                ]
    finally:
        client.close()
    return out


# -- the store ----------------------------------------------------------------------------------
def test_erasure_leaves_the_id_nowhere_in_the_store_and_the_others_untouched(
    store: Store,
) -> None:
    _fill(store)
    before = _others(store)
    for data in before.values():  # their links with the victim go, nothing else of theirs
        for side in ("friends", "friend_of"):
            data[side] = [f for f in data[side] if f != VICTIM]
    assert before["keep-2"]["friends"] == [] and before["keep-1"]["friends"] == ["keep-2"]
    counts = {t: store.count(t) for t in ("users", "events", "friendships", "tag_assignments")}
    key = _user_key(store, VICTIM)
    assert VICTIM in load_interactions(store).users
    assert len(_string_hits(store, VICTIM)) >= 4  # users.id, outbox, published, ...

    report = delete_user(store, None, VICTIM)

    assert report.removed == {
        "events": 16,
        "friendships": 2,
        "tag_assignments": 1,
        "users": 1,
        "outbox": 1,
        "exposures": 2,
        "published": 3,
    }
    assert not report.previously_erased
    assert _string_hits(store, VICTIM) == []
    assert _rows_of_key(store, key) == {
        "events": 0,
        "friendships": 0,
        "tag_assignments": 0,
        "users": 0,
    }
    assert _others(store) == before
    assert {t: store.count(t) for t in ("users", "events", "friendships", "tag_assignments")} == {
        "users": counts["users"] - 1,
        "events": counts["events"] - 16,
        "friendships": counts["friendships"] - 2,
        "tag_assignments": counts["tag_assignments"] - 1,
    }
    assert store.outbox_counts()["pending"] == 1
    assert store.published_counts("daily", "v0002") == {"top": 2}
    # the next training never sees them: not a row of the matrices, not in the id maps
    data = load_interactions(store)
    assert VICTIM not in data.users and set(OTHERS) <= set(data.users)
    # the log: a hash of the id and a time, nothing readable
    engine = sa.create_engine(store.url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tables.deletion_log)).all()
    engine.dispose()
    assert [r.id_hash for r in rows] == [id_hash(VICTIM)]
    assert store.erased_user_ids([VICTIM, "keep-1", "nobody"]) == {VICTIM}


def test_erasing_twice_is_fine_and_an_unknown_id_is_refused(store: Store) -> None:
    _fill(store)
    delete_user(store, None, VICTIM)
    again = delete_user(store, None, VICTIM)
    assert again.previously_erased and again.rows == 0
    with pytest.raises(UnknownListener, match="unknown listener 'nobody'"):
        delete_user(store, None, "nobody")
    with pytest.raises(UnknownListener, match="was erased"):
        export_user(store, None, VICTIM)
    assert store.erased_user_ids(["nobody"]) == set()  # refusing wrote nothing


def test_export_holds_what_was_put_in(store: Store, online) -> None:
    _mode, state, _prefix = online
    _fill(store)
    _fill_online(state)
    doc = export_user(store, state, VICTIM)
    assert doc["user_id"] == VICTIM and doc["format"] == "segue-user-export/1"
    assert doc["profile"]["id"] == VICTIM and doc["profile"]["country"] == "DE"
    assert doc["profile"]["consent_email"] is True
    assert doc["friends"] == ["keep-1"] and doc["friend_of"] == ["keep-2"]
    assert doc["tag_assignments"] == [
        {"item_id": "t1", "tag_id": 1, "ts_ms": int(T0.timestamp() * 1000)}
    ]
    assert doc["event_count"] == len(doc["events"]) == 16
    types = [e["type"] for e in doc["events"]]
    assert types.count("impression") == 1 and types.count("click") == 1
    assert sum(e["focus"] for e in doc["events"]) == 1
    assert [e["ts_ms"] for e in doc["events"]] == sorted(e["ts_ms"] for e in doc["events"])
    assert {(p["version"], p["kind"]) for p in doc["published"]} == {
        ("v0001", "top"),
        ("v0002", "top"),
        ("v0002", "mix"),
    }
    assert [m["message_id"] for m in doc["outbox"]] == [message_id("spring", VICTIM)]
    assert doc["outbox"][0]["payload"]["to"] == f"{VICTIM}@example.org"
    assert [x["request_id"] for x in doc["exposures"]] == [f"req-{VICTIM}-0", f"req-{VICTIM}-1"]
    assert doc["exposures"][0]["items"] == ["t1", "t2"]
    assert doc["exposures"][0]["experiments"] == {"ranker": "b"}
    live = doc["online"]
    assert live["recent_plays"] == ["t3", "t1"]
    assert live["session"]["session_id"] == f"{VICTIM}-session"
    assert live["session"]["skips_by_artist"] == {"a0": 1}
    assert live["vector"] == [0.5, 1.5, 2.5]
    assert live["onboarding"] == {"items": ["t4"], "genres": ["rock"]}
    assert live["batch_lists"] == [
        {"name": "daily", "version": "v0002", "items": ["t5"], "scores": [1.0]}
    ]
    assert live["context"]["device"] == "phone"
    # nothing of anyone else
    text = json.dumps(doc)
    assert "keep-1-session" not in text and "m-other" not in text and "req-keep-1" not in text


# -- the online state and the stream ------------------------------------------------------------
def test_erasure_forgets_the_online_state(store: Store, online) -> None:
    mode, state, prefix = online
    _fill(store)
    _fill_online(state)
    others_before = {u: state.export_user(u) for u in OTHERS}
    if prefix is not None:
        assert _redis_hits(prefix, VICTIM)
        snapshot = _redis_snapshot(prefix, VICTIM)
    report = delete_user(store, state, VICTIM)
    # Redis: seen, plays, sess, sess:sa, sess:sg, ctx, vec, onb, batch:daily; else user + list
    assert report.online == (9 if mode == "redis" else 2)
    empty = state.export_user(VICTIM)
    assert empty["recent_plays"] == [] and empty["session"] is None
    assert empty["vector"] is None and empty["batch_lists"] == []
    assert {u: state.export_user(u) for u in OTHERS} == others_before
    if prefix is not None:
        assert _redis_hits(prefix, VICTIM) == []
        assert _redis_snapshot(prefix, VICTIM) == snapshot


def test_messages_on_the_stream_are_deleted_and_later_events_refused(
    store: Store, redis_prefix: str
) -> None:
    _fill(store)
    bus = RedisStreamBus(REDIS_URL, redis_prefix)
    state = open_state(REDIS_URL, redis_prefix)
    worker = EventWorker(bus, store, state)
    try:
        # one of the victim's events is pending (read by a worker that died), more are waiting
        bus.publish([ev(VICTIM, "t1", sec=100), ev("keep-1", "t1", sec=100)])
        client = redis.Redis.from_url(REDIS_URL)
        client.xgroup_create(bus.key, "persist", id="0", mkstream=True)
        assert len(client.xreadgroup("persist", "dead", {bus.key: ">"}, count=2)[0][1]) == 2
        client.close()
        bus.publish([ev(VICTIM, "t2", sec=101), ev("keep-2", "t2", sec=101)])
        assert bus.pending("persist") == 2
        events_before = store.count("events")

        delete_user(store, state, VICTIM)
        assert _redis_hits(redis_prefix, VICTIM) == []

        # the dead worker's pending messages: the victim's is gone, keep-1's is stored
        assert bus.reclaim("persist", "worker-1", 0) >= 1
        while worker.run_once().received:
            pass
        assert bus.pending("persist") == 0
        assert store.count("events") == events_before - 16 + 2
        assert store.get_user(VICTIM) is None

        # an event for the erased id published afterwards: dropped, the listener not re-created
        bus.publish([ev(VICTIM, "t3", sec=200)])
        report = worker.run_once()
        assert report.rejected and report.rejected[0][1] == "erased listener"
        assert report.created_users == 0 and store.get_user(VICTIM) is None
        assert state.recent_plays(VICTIM) == []
        assert _string_hits(store, VICTIM) == []

        # until they sign up again
        store.upsert_users([User(id=VICTIM, signup_at=T0)])
        bus.publish([ev(VICTIM, "t4", sec=300)])
        assert worker.run_once().persisted == 1
    finally:
        bus.close()
        state.close()


def test_the_in_process_worker_drops_events_of_erased_listeners(store: Store) -> None:
    _fill(store)
    bus, state = InProcessBus(), InProcessState()
    worker = EventWorker(bus, store, state)
    delete_user(store, state, VICTIM)
    bus.publish([ev(VICTIM, "t1", sec=500), ev("newcomer", "t1", sec=500)])
    report = worker.run_once()
    assert report.rejected == [(report.rejected[0][0], "erased listener")]
    assert report.created_users == 1  # the newcomer, as before
    assert store.get_user(VICTIM) is None and store.get_user("newcomer") is not None
    assert state.recent_plays(VICTIM) == [] and state.recent_plays("newcomer") == ["t1"]


def test_an_erasure_that_cannot_reach_redis_says_so_and_can_be_run_again(store: Store) -> None:
    _fill(store)
    down = ResilientState(lambda: RedisState("redis://127.0.0.1:1/0", connect_timeout_s=0.2))
    try:
        down.fallback.apply([ev(VICTIM, "t1", sec=1)])  # what an outage left in the process
        with pytest.raises(StateUnavailable):
            delete_user(store, down, VICTIM)
        assert store.get_user(VICTIM) is None  # the store part is done ...
        assert down.fallback.recent_plays(VICTIM) == []  # ... and the in-process part
        again = delete_user(store, InProcessState(), VICTIM)
        assert again.previously_erased and again.rows == 0
    finally:
        down.close()


def test_redis_forgets_exactly_the_listener_even_with_colons_in_ids(redis_prefix: str) -> None:
    state = open_state(REDIS_URL, redis_prefix)
    try:
        for user in ("a", "a:b", "a:batch"):
            state.apply([ev(user, "t1", sec=1)])
            state.set_onboarding(user, ["t2"], [])
        state.set_batch_lists("daily", "v1", [("a", ["t1"], [1.0]), ("a:b", ["t2"], [1.0])])
        keep = {u: state.export_user(u) for u in ("a:b", "a:batch")}
        state.forget_user("a")
        assert state.export_user("a")["recent_plays"] == []
        assert state.batch_list("a", "daily") is None
        assert {u: state.export_user(u) for u in ("a:b", "a:batch")} == keep
    finally:
        state.close()


# -- the API ------------------------------------------------------------------------------------
KEYS = "rk=read,ik=ingest+read,ak=admin"


def _api_event(user: str, item: str, sec: int) -> dict[str, object]:
    when = (T0 + dt.timedelta(seconds=sec)).isoformat()
    return {
        "event_id": f"api-{next(_ids)}",
        "user_id": user,
        "item_id": item,
        "type": "play",
        "timestamp": when,
    }


@pytest.fixture(params=["embedded", "redis"])
def api(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[TestClient, Store, str | None]]:
    """The service on a filled store: SQLite in-process, or PostgreSQL with Redis."""
    if request.param == "embedded":
        url, prefix = f"sqlite:///{tmp_path / 'segue.sqlite'}", None
    else:
        url = request.getfixturevalue("pg_database_url")
        _reset_postgres(url)
        prefix = request.getfixturevalue("redis_prefix")
    with open_store(url) as store:
        _fill(store)
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=url,
        redis_url=REDIS_URL if prefix else "",
        redis_prefix=prefix or "segue:",
        api_keys=KEYS,
    )
    with TestClient(create_app(settings, watch_s=None)) as client, open_store(url) as store:
        yield client, store, prefix


def test_the_api_exports_and_erases_with_the_admin_scope_only(api) -> None:
    client, store, prefix = api
    played = client.post(
        "/v1/events",
        json={"events": [_api_event(VICTIM, "t5", 40)]},
        headers={"X-API-Key": "ik"},
    )
    assert played.status_code == 202, played.text
    client.app.state.services.worker.drain()
    assert client.get(f"/v1/users/{VICTIM}", headers={"X-API-Key": "rk"}).status_code == 200

    for key, code in ((None, 401), ("rk", 403), ("ik", 403)):
        headers = {"X-API-Key": key} if key else {}
        assert client.get(f"/v1/users/{VICTIM}/export", headers=headers).status_code == code
        assert client.delete(f"/v1/users/{VICTIM}", headers=headers).status_code == code
    assert store.get_user(VICTIM) is not None

    admin = {"Authorization": "Bearer ak"}
    exported = client.get(f"/v1/users/{VICTIM}/export", headers=admin)
    assert exported.status_code == 200
    doc = exported.json()
    assert doc["event_count"] == len(doc["events"]) == 17
    assert doc["online"]["recent_plays"][0] == "t5"
    assert doc["friends"] == ["keep-1"]

    erased = client.delete(f"/v1/users/{VICTIM}", headers=admin)
    assert erased.status_code == 200, erased.text
    body = erased.json()
    assert body["removed"]["events"] == 17 and body["previously_erased"] is False
    assert client.get(f"/v1/users/{VICTIM}", headers=admin).status_code == 404
    assert _string_hits(store, VICTIM) == []
    if prefix is not None:
        assert _redis_hits(prefix, VICTIM) == []
    services = client.app.state.services
    assert services.state.export_user(VICTIM)["recent_plays"] == []
    # the served model still holds their row until the next training; it is not used: they
    # get what an id never seen gets (tracks they had all played)
    read = {"X-API-Key": "rk"}
    lists = [
        client.get(f"/v1/users/{u}/recommendations", params={"k": 5}, headers=read)
        for u in (VICTIM, "never-seen-1")
    ]
    assert [r.status_code for r in lists] == [200, 200], lists[0].text
    gone, fresh = ([i["item_id"] for i in r.json()["items"]] for r in lists)
    assert gone == fresh and gone

    # events still sent for them are left out, the listener is not re-created
    again = client.post(
        "/v1/events",
        json={"events": [_api_event(VICTIM, "t1", 50)]},
        headers={"X-API-Key": "ik"},
    )
    assert again.status_code == 202 and again.json()["accepted"] == 0
    services.worker.drain()
    assert store.get_user(VICTIM) is None
    assert services.state.recent_plays(VICTIM) == []

    twice = client.delete(f"/v1/users/{VICTIM}", headers=admin)
    assert twice.status_code == 200 and twice.json()["previously_erased"] is True
    assert client.delete("/v1/users/nobody", headers=admin).status_code == 404
    assert client.get(f"/v1/users/{VICTIM}/export", headers=admin).status_code == 404
    assert "/v1/users/{user_id}/export" in client.get("/openapi.json").json()["paths"]


# -- the CLI ------------------------------------------------------------------------------------
def _segue(data_dir: Path, *args: str, env: dict[str, str] | None = None):
    base = {**os.environ, "SEGUE_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    for name in ("SEGUE_DATABASE_URL", "SEGUE_REDIS_URL", "SEGUE_REDIS_PREFIX", "SEGUE_API_KEYS"):
        base.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", "from segue.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        check=False,
    )


def test_the_cli_exports_and_erases(tmp_path: Path, redis_prefix: str) -> None:
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'segue.sqlite'}"
    with open_store(url) as store:
        _fill(store)
    state = open_state(REDIS_URL, redis_prefix)
    _fill_online(state)
    env = {"SEGUE_REDIS_URL": REDIS_URL, "SEGUE_REDIS_PREFIX": redis_prefix}

    out = tmp_path / "export" / "victim.json"
    done = _segue(data, "users", "export", VICTIM, "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["event_count"] == 16 and doc["online"]["recent_plays"] == ["t3", "t1"]
    printed = _segue(data, "users", "export", VICTIM, env=env)
    assert json.loads(printed.stdout)["profile"] == doc["profile"]

    done = _segue(data, "users", "delete", VICTIM, env=env)
    assert done.returncode == 0, done.stderr
    assert "16 events" in done.stdout and "online state:" in done.stdout
    assert _redis_hits(redis_prefix, VICTIM) == []
    with open_store(url) as store:
        assert _string_hits(store, VICTIM) == []
    state.close()

    again = _segue(data, "users", "delete", VICTIM, env=env)
    assert again.returncode == 0 and "already erased" in again.stdout
    for args in (("users", "delete", "nobody"), ("users", "export", "nobody")):
        failed = _segue(data, *args, env=env)
        assert failed.returncode == 2
        lines = failed.stderr.strip().splitlines()
        assert len(lines) == 1 and "unknown listener 'nobody'" in lines[0]
        assert "Traceback" not in failed.stderr
