"""The API at the edge: bad input is a 422 naming the field, and what gets past the edge
anyway is dead-lettered and counted in Prometheus, while valid events keep being stored.

Two modes, as served: ``embedded`` (SQLite, in-process bus and state, worker thread) and
``redis`` (PostgreSQL, Redis Streams and Redis state). No trained model: the service serves
popularity from the store, which is all these tests need.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import REDIS_URL
from segue.api import create_app
from segue.config import Settings
from segue.data.model import Event, EventType, Item, ItemKind, User
from segue.online.bus import RedisStreamBus
from segue.store import open_store

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(params=["embedded", "redis"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "embedded":
        url = f"sqlite:///{tmp_path / 'segue.sqlite'}"
        return Settings(data_dir=tmp_path, database_url=url)
    pg_url = request.getfixturevalue("database_url_pg")
    return Settings(
        data_dir=tmp_path,
        database_url=pg_url,
        redis_url=REDIS_URL,
        redis_prefix=request.getfixturevalue("redis_prefix"),
    )


@pytest.fixture
def database_url_pg(pg_database_url: str) -> str:
    from conftest import _reset_postgres

    _reset_postgres(pg_database_url)
    return pg_database_url


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with open_store(settings.resolved_database_url) as store:
        store.upsert_items(
            [Item(id=f"t{i}", kind=ItemKind.TRACK, title=f"T{i}") for i in range(20)]
        )
        store.upsert_users(
            [User(id=f"u{i}", signup_at=NOW - dt.timedelta(days=9)) for i in range(5)]
        )
        store.add_events(
            [
                Event(
                    event_id=f"seed{i}",
                    user_id=f"u{i % 5}",
                    item_id=f"t{i % 20}",
                    type=EventType.PLAY,
                    timestamp=NOW - dt.timedelta(days=1, seconds=i),
                )
                for i in range(100)
            ]
        )
    with TestClient(create_app(settings, watch_s=None)) as c:
        yield c


def _event(**fields: object) -> dict:
    return {
        "event_id": uuid.uuid4().hex,
        "user_id": "u1",
        "item_id": "t1",
        "type": "play",
        **fields,
    }


def _locations(body: dict) -> list[list]:
    """Where the body says the input was wrong, in the problem-details ``errors`` or in
    FastAPI's ``detail`` list."""
    found = body.get("errors")
    if found is None and isinstance(body.get("detail"), list):
        found = body["detail"]
    return [list(e["loc"]) for e in found or []]


def _eventually(check: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def _count(settings: Settings) -> int:
    with open_store(settings.resolved_database_url) as store:
        return store.count("events")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user_id", "u\x00"),
        ("item_id", "t\x1b"),
        ("event_id", "e" * 201),
        ("ms_played", 2**63),
        ("ms_played", 86_400_001),
        ("ms_played", -1),
        ("timestamp", "9999-12-31T00:00:00Z"),
        ("timestamp", "1969-07-20T20:17:00Z"),
        ("session_id", "s\x00"),
        ("item_id", "\xa0"),  # only whitespace (found by the fuzzer: was a 500)
        ("user_id", "   "),
    ],
)
def test_bad_events_get_a_422_naming_the_field_and_nothing_is_stored(
    client: TestClient, settings: Settings, field: str, value: object
) -> None:
    before = _count(settings)
    good = _event()
    r = client.post("/v1/events", json={"events": [good, _event(**{field: value})]})
    assert r.status_code == 422, r.text
    assert ["body", "events", 1, field] in _locations(r.json()), r.text
    time.sleep(0.3)  # give the worker time to store anything it (wrongly) got
    assert _count(settings) == before


def test_an_event_a_few_minutes_ahead_is_accepted(client: TestClient) -> None:
    ahead = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)).isoformat()
    r = client.post("/v1/events", json={"events": [_event(timestamp=ahead, ms_played=86_400_000)]})
    assert r.status_code == 202, r.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timezone", "Mars/Olympus"),
        ("id", "new\x00user"),
        ("id", "x" * 201),
        ("picks", ["t1\x00"]),
        ("genres", ["rock\x07"]),
    ],
)
def test_bad_signups_get_a_422_naming_the_field(
    client: TestClient, field: str, value: object
) -> None:
    r = client.post("/v1/users", json={"id": "newbie", field: value})
    assert r.status_code == 422, r.text
    locations = _locations(r.json())
    assert any(loc[:2] == ["body", field] for loc in locations), r.text
    assert client.get("/v1/users/newbie").status_code == 404


def test_a_tz_database_timezone_is_fine(client: TestClient) -> None:
    r = client.post("/v1/users", json={"id": "berliner", "timezone": "Europe/Berlin"})
    assert r.status_code == 201, r.text


def test_poison_past_the_api_is_dead_lettered_counted_and_stalls_nothing(
    client: TestClient, settings: Settings
) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    poison = [
        Event.model_construct(  # type: ignore[call-arg]
            event_id=f"poison-{n}",
            user_id="u\x00x" if n == 0 else "u1",
            item_id="t1",
            type=EventType.PLAY,
            timestamp=NOW,
            ms_played=None if n == 0 else 2**63,
            count=1,
            session_id=None,
            surface=None,
            source=None,
            device=None,
            focus=False,
            rating=None,
        )
        for n in range(2)
    ]
    if settings.redis_url:  # straight onto the stream, as a producer that skips the API
        raw = RedisStreamBus(REDIS_URL, settings.redis_prefix)
        try:
            import redis

            client_ = redis.Redis.from_url(REDIS_URL)
            for event in poison:
                client_.xadd(raw.key, {"e": event.model_dump_json()})
            client_.close()
        finally:
            raw.close()
    else:
        services.bus.publish(poison)
    before = _count(settings)
    for start in range(0, 1000, 500):
        batch = [
            _event(user_id=f"u{i % 5}", item_id=f"t{i % 20}") for i in range(start, start + 500)
        ]
        assert client.post("/v1/events", json={"events": batch}).status_code == 202

    assert _eventually(lambda: _count(settings) == before + 1000), _count(settings) - before
    assert _eventually(
        lambda: "segue_events_dead_lettered_total 2.0" in client.get("/metrics").text
    ), [line for line in client.get("/metrics").text.splitlines() if "dead" in line]
    if settings.redis_url:
        reader = RedisStreamBus(REDIS_URL, settings.redis_prefix)
        letters = reader.dead_letters()
        reader.close()
    else:
        letters = services.bus.dead_letters()
    assert sorted(d.fields()["event_id"] for d in letters) == ["poison-0", "poison-1"]
    assert all(d.attempts == 3 for d in letters)
