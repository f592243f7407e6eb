"""The HTTP API end to end: real store (SQLite; PostgreSQL in Redis mode), real Redis, a
trained ALS model, and requests through FastAPI's test client.

Two modes, as served: ``embedded`` (SQLite, in-process bus and state, worker thread) and
``redis`` (PostgreSQL, Redis Streams and Redis state).
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import PG_ADMIN_URL, REDIS_URL
from segue.api import create_app
from segue.config import Settings
from segue.data.synth import SynthParams
from segue.dataset.from_store import load_interactions, load_side_info
from segue.jobs.ingest import load_synthetic_world
from segue.registry.similar import similar_table
from segue.registry.trained import TrainedModel, save_trained, train_models
from segue.store import Store, open_store

PARAMS = SynthParams(
    seed=3,
    n_users=400,
    n_tracks=1500,
    n_events=30_000,
    n_podcast_shows=4,
    n_podcast_episodes=40,
    n_videos=10,
    n_audiobooks=4,
)


@dataclass(frozen=True)
class World:
    models_dir: Path
    sqlite_url: str
    pg_url: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One synthetic world in SQLite and in a PostgreSQL database of this module's own, and an
    ALS model trained on it."""
    root = tmp_path_factory.mktemp("api-world")
    sqlite_url = f"sqlite:///{root / 'segue.sqlite'}"
    name = f"segue_api_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    pg_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        for url in (sqlite_url, pg_url):
            with open_store(url) as store:
                load_synthetic_world(store, PARAMS)
        with open_store(sqlite_url) as store:
            data = load_interactions(store)
            train_models(data, ["als"], root / "data" / "models", side=load_side_info(store, data))
        yield World(root / "data", sqlite_url, pg_url)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _settings(world: World, mode: str, redis_prefix: str | None) -> Settings:
    if mode == "embedded":
        return Settings(data_dir=world.models_dir, database_url=world.sqlite_url)
    assert redis_prefix is not None
    return Settings(
        data_dir=world.models_dir,
        database_url=world.pg_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
    )


@pytest.fixture(params=["embedded", "redis"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def settings(world: World, mode: str, request: pytest.FixtureRequest) -> Settings:
    prefix = request.getfixturevalue("redis_prefix") if mode == "redis" else None
    return _settings(world, mode, prefix)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, watch_s=None)) as c:
        yield c


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with open_store(settings.resolved_database_url) as s:
        yield s


def _known_user(store: Store, n: int = 0) -> str:
    """A listener with plenty of plays in the training data."""
    data = load_interactions(store)
    counts = np.diff(data.matrix().indptr)
    return str(data.users.to_ids(np.argsort(-counts, kind="stable")[n]))


def _recs(client: TestClient, user: str, **params: object) -> dict:
    response = client.get(f"/v1/users/{user}/recommendations", params={"k": 10, **params})
    assert response.status_code == 200, response.text
    return response.json()


def _post(client: TestClient, *events: dict, headers: dict | None = None) -> dict:
    response = client.post("/v1/events", json={"events": list(events)}, headers=headers or {})
    assert response.status_code == 202, response.text
    return response.json()


def _event(user: str, item: str, kind: str = "play", **kw: object) -> dict:
    return {"event_id": uuid.uuid4().hex, "user_id": user, "item_id": item, "type": kind, **kw}


def _eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll ``check`` until true (the worker persists in the background)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def _artist_items(store: Store, artist_id: str) -> set[str]:
    return {i.id for i in store.iter_items() if i.artist_id == artist_id}


# -- the real-time loop ---------------------------------------------------------------------


def test_skips_push_the_artist_out_of_the_very_next_list(client: TestClient, store: Store) -> None:
    user = _known_user(store, 1)
    before = _recs(client, user)
    assert before["path"] == "personal" and len(before["items"]) == 10
    top = store.get_item(before["items"][0]["item_id"])
    assert top is not None and top.artist_id is not None
    by_artist = _artist_items(store, top.artist_id)
    assert any(i["item_id"] in by_artist for i in before["items"])
    _post(client, *(_event(user, top.id, "skip") for _ in range(2)))
    after = _recs(client, user)
    assert after["session_id"] is not None
    assert not [i for i in after["items"] if i["item_id"] in by_artist]
    assert len(after["items"]) == 10


def test_plays_fold_in_for_a_new_listener_from_the_first_event(
    client: TestClient, store: Store
) -> None:
    user = f"new-{uuid.uuid4().hex[:8]}"
    cold = _recs(client, user)
    assert cold["path"] == "cold_start" and cold["personal_weight"] == 0.0
    # the new listener plays three tracks of one artist, far down the popular list
    donor = _known_user(store, 5)
    seed = _recs(client, donor, k=30)["items"][-1]["item_id"]
    artist = store.get_item(seed).artist_id
    plays = sorted(_artist_items(store, artist))[:3]
    report = _post(client, *(_event(user, item) for item in plays))
    assert report["accepted"] == 3 and report["applied"] == 3
    warm = _recs(client, user)
    assert warm["path"] == "cold_start" and warm["fresh_plays"] == 3
    assert warm["personal_weight"] > 0
    shown = [i["item_id"] for i in warm["items"]]
    assert not set(shown) & set(plays), "played tracks must not be recommended back"
    assert shown != [i["item_id"] for i in cold["items"]]


def test_focus_mode_changes_nothing_yet_still_answers(client: TestClient, store: Store) -> None:
    user = _known_user(store, 2)
    before = _recs(client, user)
    item = before["items"][0]["item_id"]
    # the event flag alone
    report = _post(client, *(_event(user, item, "skip", focus=True) for _ in range(3)))
    assert report["focus"] == 3 and report["applied"] == 0
    assert _recs(client, user)["items"] == before["items"]
    # the user setting: the server marks the events itself
    r = client.patch(f"/v1/users/{user}/settings", json={"focus_mode": True})
    assert r.status_code == 200 and r.json()["focus_mode"] is True
    report = _post(client, *(_event(user, item, "skip") for _ in range(3)))
    assert report["focus"] == 3 and report["applied"] == 0
    assert _recs(client, user)["items"] == before["items"]
    client.patch(f"/v1/users/{user}/settings", json={"focus_mode": False})


def test_events_are_persisted_by_the_worker_once(
    client: TestClient, store: Store, settings: Settings
) -> None:
    user = _known_user(store, 3)
    item = _recs(client, user)["items"][0]["item_id"]
    events = [_event(user, item, "play", focus=(n == 0)) for n in range(4)]
    before = store.count("events")
    _post(client, *events)
    _post(client, *events)  # a client retry: the same ids again
    assert _eventually(lambda: store.count("events") == before + 4)
    time.sleep(0.3)  # a second copy would have landed by now
    assert store.count("events") == before + 4
    focus_rows = len(store.interactions(include_focus=True)) - len(store.interactions())
    assert focus_rows >= 1


def test_new_user_with_onboarding_picks_gets_matching_music(
    client: TestClient, store: Store
) -> None:
    donor = _known_user(store, 4)
    picks = [i["item_id"] for i in _recs(client, donor, k=3)["items"]]
    user = f"signup-{uuid.uuid4().hex[:8]}"
    r = client.post(
        "/v1/users", json={"id": user, "country": "GB", "age_band": "25-34", "picks": picks}
    )
    assert r.status_code == 201, r.text
    assert r.json()["country"] == "GB"
    answer = _recs(client, user)
    assert answer["path"] == "cold_start"
    assert {i["reason"] for i in answer["items"]} == {"matches what you picked"}
    assert not {i["item_id"] for i in answer["items"]} & set(picks)
    assert client.post("/v1/users", json={"id": user}).status_code == 409


def test_kids_profile_never_sees_explicit_items(client: TestClient, store: Store) -> None:
    explicit = {i.id for i in store.iter_items() if i.explicit}
    assert explicit, "the synthetic world should have explicit tracks"
    users = [_known_user(store, n) for n in range(6, 16)]
    shown_before = {i["item_id"] for u in users for i in _recs(client, u, k=50)["items"]}
    assert shown_before & explicit, "some explicit item should appear for adults"
    for user in users:
        client.patch(f"/v1/users/{user}/settings", json={"kids_profile": True})
    shown = {i["item_id"] for u in users for i in _recs(client, u, k=50)["items"]}
    assert not shown & explicit
    for user in users:
        client.patch(f"/v1/users/{user}/settings", json={"kids_profile": False})


def test_discovery_shows_no_artist_the_listener_has_heard(client: TestClient, store: Store) -> None:
    user = _known_user(store, 0)
    data = load_interactions(store)
    row = data.matrix()[int(data.users.to_index([user])[0])]
    heard = {store.get_item(str(i)).artist_id for i in data.items.to_ids(row.indices)} - {None}
    answer = _recs(client, user, surface="discovery", k=20)
    assert len(answer["items"]) == 20
    assert not {store.get_item(i["item_id"]).artist_id for i in answer["items"]} & heard
    radio = _recs(client, user, surface="radio", k=50)["items"]
    radio_artists = {store.get_item(i["item_id"]).artist_id for i in radio}
    assert radio_artists & heard, "radio, by contrast, plays known artists"


def test_filters_and_per_artist_cap(client: TestClient, store: Store) -> None:
    user = _known_user(store, 1)
    answer = _recs(client, user, k=15, max_per_artist=1, kinds="track")
    artists = [store.get_item(i["item_id"]).artist_id for i in answer["items"]]
    assert len(artists) == 15 and len(set(artists)) == 15
    assert {store.get_item(i["item_id"]).kind.value for i in answer["items"]} == {"track"}
    genre = store.get_item(answer["items"][0]["item_id"]).genres[0]
    only = _recs(client, user, genres=genre)
    assert all(genre in store.get_item(i["item_id"]).genres for i in only["items"])


def test_similar_items(client: TestClient, store: Store) -> None:
    item = _recs(client, _known_user(store))["items"][0]["item_id"]
    r = client.get(f"/v1/items/{item}/similar", params={"k": 5})
    assert r.status_code == 200
    similar = [i["item_id"] for i in r.json()["items"]]
    assert len(similar) == 5 and item not in similar
    assert client.get("/v1/items/no-such-item/similar").status_code == 404


def test_similar_items_are_looked_up_in_the_published_table(
    client: TestClient, store: Store
) -> None:
    """With the table published beside the version the route answers its row (on the event
    loop); a ``k`` wider than the table ranks per request (off the loop), as without one."""
    item = _recs(client, _known_user(store))["items"][0]["item_id"]

    def ids(k: int) -> list[str]:
        r = client.get(f"/v1/items/{item}/similar", params={"k": k})
        assert r.status_code == 200, r.text
        return [i["item_id"] for i in r.json()["items"]]

    ranked = ids(12)  # this world's version was saved without a table
    served = client.app.state.services.models.current  # type: ignore[attr-defined]
    table = similar_table(served.trained.model, served.train, k=12)
    # as if the version had been saved with its table (this client's copy; frozen dataclass)
    object.__setattr__(served.trained, "similar", table)
    assert ids(12) == ranked, "the table holds the model's own ranking"
    column = int(served.items.to_index([item])[0])
    planted = np.roll(table.items[column], 1)  # a different order: only a lookup gives it
    table.items[column] = planted
    assert ids(12) == [str(served.item_ids[c]) for c in planted if c >= 0]
    assert ids(13) == [*ranked, ids(13)[-1]], "wider than the table: ranked per request"


# -- bad input ------------------------------------------------------------------------------


def test_invalid_requests_get_a_4xx_that_says_what(client: TestClient, store: Store) -> None:
    user = _known_user(store)
    r = client.get(f"/v1/users/{user}/recommendations", params={"k": 0})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "k"]
    assert r.headers["content-type"] == "application/problem+json"
    assert "query parameter 'k'" in r.json()["detail"]
    r = client.get(f"/v1/users/{user}/recommendations", params={"surface": "moon"})
    assert r.status_code == 422 and "surface" in r.json()["errors"][0]["loc"]
    before = store.count("events")
    item = _recs(client, user)["items"][0]["item_id"]
    good = _event(user, item)
    r = client.post("/v1/events", json={"events": [good, _event(user, "ghost-item")]})
    assert r.status_code == 422
    assert "events[1].item_id='ghost-item'" in r.json()["detail"]
    r = client.post("/v1/events", json={"events": [good, {**good, "type": "teleport"}]})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "events", 1, "type"]
    assert r.json()["errors"][0]["pointer"] == "/events/1/type"
    assert "body events[1].type" in r.json()["detail"]
    time.sleep(0.3)  # give the worker time to store anything it (wrongly) got
    assert store.count("events") == before, "a refused batch stores nothing"
    r = client.patch("/v1/users/nobody-here/settings", json={"kids_profile": True})
    assert r.status_code == 404 and "nobody-here" in r.json()["detail"]
    r = client.post("/v1/users", json={"id": "x", "picks": ["ghost-item"]})
    assert r.status_code == 422 and "ghost-item" in r.json()["detail"]


def test_oversized_bodies_are_refused(settings: Settings, store: Store) -> None:
    user = _known_user(store)
    with TestClient(create_app(settings, watch_s=None, max_body_bytes=2_000)) as c:
        item = _recs(c, user)["items"][0]["item_id"]
        events = [_event(user, item) for _ in range(40)]
        r = c.post("/v1/events", json={"events": events})
        assert r.status_code == 413 and "limit is 2000 bytes" in r.json()["detail"]


def test_unknown_user_gets_the_cold_start_path(client: TestClient) -> None:
    answer = _recs(client, "never-seen-before")
    assert answer["path"] == "cold_start" and len(answer["items"]) == 10
    assert all(i["reason"].startswith("popular with") for i in answer["items"])


# -- keys, metrics, health -------------------------------------------------------------------


def test_api_keys_and_scopes(settings: Settings, store: Store) -> None:
    keys = "reader=read,writer=ingest,boss=admin"
    user = _known_user(store)
    with TestClient(create_app(settings.with_overrides(api_keys=keys), watch_s=None)) as c:
        url = f"/v1/users/{user}/recommendations"
        assert c.get(url).status_code == 401
        assert c.get(url, headers={"X-API-Key": "nope"}).status_code == 401
        items = c.get(url, headers={"X-API-Key": "reader"}).json()["items"]
        body = {"events": [_event(user, items[0]["item_id"])]}
        r = c.post("/v1/events", json=body, headers={"X-API-Key": "reader"})
        assert r.status_code == 403 and "'ingest'" in r.json()["detail"]
        r = c.post("/v1/events", json=body, headers={"Authorization": "Bearer writer"})
        assert r.status_code == 202
        assert c.get("/v1/admin/model", headers={"X-API-Key": "writer"}).status_code == 403
        assert c.get("/v1/admin/model", headers={"X-API-Key": "boss"}).json()["model"] == "als"
        assert c.get("/v1/health").status_code == 200  # liveness needs no key
        assert c.get("/v1/ready").json()["auth"] is True


def test_metrics_count_latency_and_events(client: TestClient, store: Store) -> None:
    user = _known_user(store)
    items = [i["item_id"] for i in _recs(client, user)["items"]]
    _recs(client, user)
    _post(client, *(_event(user, i) for i in items[:3]))
    text = client.get("/metrics").text
    route = 'route="/v1/users/{user_id}/recommendations",status="200"'
    assert f'segue_request_seconds_count{{method="GET",{route}}} 2.0' in text
    assert 'segue_events_ingested_total{path="bus"} 3.0' in text
    assert 'segue_recommendations_total{path="personal"} 2.0' in text


def test_openapi_documents_the_versioned_paths(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/users/{user_id}/recommendations",
        "/v1/items/{item_id}/similar",
        "/v1/events",
        "/v1/users",
        "/v1/users/{user_id}/settings",
        "/v1/health",
        "/v1/ready",
    ):
        assert path in paths


# -- degradation and model lifecycle ---------------------------------------------------------


def test_redis_down_degrades_to_in_process_and_direct_persisting(
    world: World, store: Store
) -> None:
    settings = _settings(world, "redis", f"segue-test:{uuid.uuid4().hex[:8]}:").with_overrides(
        redis_url="redis://127.0.0.1:1/0",  # nothing listens there
    )
    user = _known_user(store, 2)
    with open_store(settings.resolved_database_url) as pg:
        before = pg.count("events")
        with TestClient(create_app(settings, watch_s=None)) as c:
            first = _recs(c, user)
            top = pg.get_item(first["items"][0]["item_id"])
            report = _post(c, *(_event(user, top.id, "skip") for _ in range(2)))
            assert report["path"] == "direct"
            assert pg.count("events") == before + 2, "stored at once, nothing lost"
            after = _recs(c, user)
            assert after["items"][0]["item_id"] != top.id, "the skip still counts, in-process"
            assert c.get("/v1/ready").json()["state"] == "degraded"
            metrics = c.get("/metrics").text
            assert 'segue_fallbacks_total{kind="bus_unavailable"} 1.0' in metrics
            assert 'segue_degraded{component="redis"} 1.0' in metrics


def test_a_model_that_fails_to_load_falls_back_to_popularity(world: World, tmp_path: Path) -> None:
    broken = tmp_path / "models" / "als"
    broken.mkdir(parents=True)
    (broken / "params.json").write_text("{not json")
    settings = Settings(data_dir=tmp_path, database_url=world.sqlite_url)
    with TestClient(create_app(settings, watch_s=None)) as c:
        ready = c.get("/v1/ready").json()
        assert ready["ready"] is True and "failed to load" in ready["fallback"]
        answer = _recs(c, "anyone")
        assert answer["path"] == "fallback" and answer["model"] == "popularity"
        assert len(answer["items"]) == 10
        assert 'segue_fallbacks_total{kind="model_unavailable"} 1.0' in c.get("/metrics").text


def test_a_new_model_version_is_swapped_in_without_a_restart(world: World, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(world.models_dir / "models" / "als", tmp_path / "models" / "als")
    settings = Settings(data_dir=tmp_path, database_url=world.sqlite_url)
    with (
        TestClient(create_app(settings, watch_s=None)) as c,
        open_store(world.sqlite_url) as store,
    ):
        user = _known_user(store)
        old = _recs(c, user)
        from segue.models.mf import ALSRecommender

        data = load_interactions(store)
        model = ALSRecommender(factors=8, iterations=3, random_state=1).fit(data.matrix())
        save_trained(TrainedModel("als", model, data.users, data.items), tmp_path / "models/als")
        versions: list[str] = []
        stop = threading.Event()

        def read() -> None:  # requests in flight while the model changes
            while not stop.is_set():
                versions.append(_recs(c, user)["version"])

        readers = [threading.Thread(target=read) for _ in range(3)]
        for t in readers:
            t.start()
        r = c.post("/v1/admin/model/reload")
        time.sleep(0.2)
        stop.set()
        for t in readers:
            t.join()
        assert r.json()["swapped"] is True
        assert set(versions) <= {old["version"], r.json()["version"]} and versions
        new = _recs(c, user)
        assert new["version"] != old["version"]
        assert [i["item_id"] for i in new["items"]] != [i["item_id"] for i in old["items"]]
        assert c.post("/v1/admin/model/reload").json()["swapped"] is False


def test_two_processes_share_the_live_state_through_redis(world: World, redis_prefix: str) -> None:
    settings = _settings(world, "redis", redis_prefix)
    with (
        TestClient(create_app(settings, watch_s=None)) as a,
        TestClient(create_app(settings, watch_s=None)) as b,
        open_store(world.pg_url) as store,
    ):
        user = _known_user(store, 7)
        before = _recs(b, user)
        top = store.get_item(before["items"][0]["item_id"])
        _post(a, *(_event(user, top.id, "skip") for _ in range(2)))
        after = _recs(b, user)
        artist_items = _artist_items(store, top.artist_id)
        assert not [i for i in after["items"] if i["item_id"] in artist_items]


def test_timestamps_default_to_now(client: TestClient, store: Store) -> None:
    user = _known_user(store, 9)
    item = _recs(client, user)["items"][0]["item_id"]
    event = _event(user, item, "skip")
    _post(client, event)
    state = client.app.state.services.state
    session = state.session(user)
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    assert session is not None and abs(session.last_ms - now_ms) < 60_000


def test_a_known_listeners_fresh_plays_update_their_vector(
    client: TestClient, store: Store
) -> None:
    from segue.serving.session import history_from_recent

    user = _known_user(store, 11)
    before = _recs(client, user)
    plays = [i["item_id"] for i in _recs(client, _known_user(store, 12), k=40)["items"][-3:]]
    _post(client, *(_event(user, item) for item in plays))
    after = _recs(client, user)
    assert after["path"] == "personal" and after["fresh_plays"] == 3
    assert after["items"] != before["items"]
    assert not {i["item_id"] for i in after["items"]} & set(plays)
    model = client.app.state.services.models.current
    row = model.train[int(model.users.to_index([user])[0])]
    expected = model.trained.model.fold_in(history_from_recent(plays, model.items, row))[0]
    vector = client.app.state.services.state.get_vector(user)
    np.testing.assert_allclose(vector, expected, rtol=1e-4, atol=1e-5)


def test_item_play_counters_follow_the_stream(client: TestClient, store: Store) -> None:
    user = _known_user(store, 13)
    item = _recs(client, user)["items"][3]["item_id"]
    before = client.get(f"/v1/items/{item}/plays").json()
    now = dt.datetime.now(dt.UTC)
    _post(
        client,
        _event(user, item, timestamp=now.isoformat()),
        _event(user, item, timestamp=(now - dt.timedelta(minutes=5)).isoformat()),
        _event(user, item, timestamp=(now - dt.timedelta(hours=3)).isoformat()),
        _event(user, item, timestamp=(now - dt.timedelta(days=2)).isoformat()),
    )
    after = client.get(f"/v1/items/{item}/plays").json()
    assert after["last_hour"] - before["last_hour"] == 2
    assert after["last_day"] - before["last_day"] == 3
    assert client.get("/v1/items/ghost/plays").status_code == 404


# -- the listener's surfaces -----------------------------------------------------------------


def test_mixes_are_stable_within_a_day_and_kids_safe(tmp_path: Path) -> None:
    import products_world

    url = f"sqlite:///{tmp_path / 'segue.sqlite'}"
    with open_store(url) as store:
        products_world.build(store)
        trained, _ = products_world.trained(store)
        save_trained(trained, tmp_path / "models" / trained.name)
        explicit = {i.id for i in store.iter_items() if i.explicit}
    settings = Settings(data_dir=tmp_path, database_url=url)
    with TestClient(create_app(settings, model=trained.name, watch_s=None)) as c:
        r = c.get("/v1/users/main/mixes", params={"date": "2024-06-01"})
        assert r.status_code == 200, r.text
        mixes = r.json()
        assert mixes and all(25 <= len(m["tracks"]) <= 50 for m in mixes)
        assert c.get("/v1/users/main/mixes", params={"date": "2024-06-01"}).json() == mixes
        other_day = c.get("/v1/users/main/mixes", params={"date": "2024-06-02"}).json()
        assert other_day != mixes
        kid = c.get("/v1/users/kid/mixes", params={"date": "2024-06-01"}).json()
        assert not {t["item_id"] for m in kid for t in m["tracks"]} & explicit
        assert c.get("/v1/users/nobody-at-all/mixes").status_code == 404


def test_station_drops_a_genre_skipped_three_times(client: TestClient, store: Store) -> None:
    user = _known_user(store, 15)
    url = f"/v1/users/{user}/station"
    page = client.get(url, params={"seed": "discovery", "k": 10}).json()["tracks"]
    assert len(page) == 10
    genre = page[0]["genre"]
    assert genre is not None
    skipped = [t["item_id"] for t in page if t["genre"] == genre][:1] * 3
    _post(client, *(_event(user, item, "skip") for item in skipped))
    served = [t["item_id"] for t in page]
    after = client.get(url, params={"seed": "discovery", "k": 10, "served": served}).json()
    assert after["skips_by_genre"].get(genre) == 3
    assert after["tracks"] and all(t["genre"] != genre for t in after["tracks"])
    assert not {t["item_id"] for t in after["tracks"]} & set(served)


def test_wrapped_as_json_page_and_card(client: TestClient, store: Store) -> None:
    user = _known_user(store, 0)
    data = client.get(f"/v1/users/{user}/wrapped/2024")
    assert data.status_code == 200, data.text
    assert data.json()["minutes_listened"] > 0
    page = client.get(f"/v1/users/{user}/wrapped/2024/page")
    assert page.headers["content-type"].startswith("text/html") and "<html" in page.text
    card = client.get(f"/v1/users/{user}/wrapped/2024/card.png")
    assert card.headers["content-type"] == "image/png"
    assert card.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_next_best_action_says_when_it_is_not_set_up(client: TestClient, store: Store) -> None:
    r = client.get(f"/v1/users/{_known_user(store)}/next-best-action")
    assert r.status_code == 503 and "segue nba train" in r.json()["detail"]


def test_promote_and_rollback_in_the_registry_reach_the_running_api(
    world: World, tmp_path: Path
) -> None:
    from segue.models.mf import ALSRecommender
    from segue.registry import ModelRegistry

    registry = ModelRegistry(tmp_path / "registry")
    manifest = {"model_type": "als"}  # served as "daily": the winning model may change
    first = registry.publish("daily", world.models_dir / "models" / "als", manifest)
    with open_store(world.sqlite_url) as store:
        user = _known_user(store)
        data = load_interactions(store)
        other = ALSRecommender(factors=8, iterations=3, random_state=1).fit(data.matrix())
        save_trained(TrainedModel("als", other, data.users, data.items), tmp_path / "other")
    second = registry.publish("daily", tmp_path / "other", manifest)
    registry.promote("daily", first.version)
    settings = Settings(data_dir=tmp_path, database_url=world.sqlite_url)
    with TestClient(create_app(settings, model="daily", watch_s=None)) as c:
        served_first = _recs(c, user)
        assert served_first["version"] == first.version
        registry.promote("daily", second.version)
        assert c.post("/v1/admin/model/reload").json() == {
            "swapped": True,
            "version": second.version,
        }
        served_second = _recs(c, user)
        assert served_second["items"] != served_first["items"]
        registry.rollback("daily")
        assert c.post("/v1/admin/model/reload").json()["version"] == first.version
        assert _recs(c, user)["items"] == served_first["items"], "exactly the old answers"


def test_music_requests_without_the_nlu_extra_say_which_to_install(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # as Python reports a missing one
    r = client.post("/v1/query", json={"text": "play bohemian rhapsody by queen"})
    assert r.status_code == 503
    detail = r.json()["detail"]
    assert "install segue[nlu]" in detail and "transformers" in detail
    assert "segue nlu train" not in detail  # training would not help


def test_music_requests_say_when_they_are_not_set_up(client: TestClient) -> None:
    r = client.post("/v1/query", json={"text": "play bohemian rhapsody by queen"})
    assert r.status_code == 503 and "segue nlu train" in r.json()["detail"]
    r = client.post("/v1/query", json={"text": ""})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "text"]


def _metric(client: TestClient, name: str) -> float | None:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_dead_letters_are_listed_counted_replayed_and_dropped_over_the_api(
    client: TestClient, store: Store
) -> None:
    """An event naming an item the catalog lacks (put straight onto the bus, past the API's
    check, as another producer might) is dead-lettered by the worker; operators see it (in the
    embedded mode only the serving process holds it), and the gauge counts it."""
    from segue.data.model import Event

    user = _known_user(store)
    ghost = _event(user, "no-such-track")
    event = Event.model_validate({**ghost, "timestamp": dt.datetime.now(dt.UTC)})
    client.app.state.services.bus.publish([event])  # type: ignore[attr-defined]
    assert _eventually(lambda: len(client.get("/v1/admin/dead-letters").json()) == 1)
    (letter,) = client.get("/v1/admin/dead-letters").json()
    assert letter["event"]["event_id"] == ghost["event_id"]
    assert "unknown item" in letter["error"]
    assert _metric(client, "segue_events_dead_letters") == 1.0
    # replayed: published again, and (the item still unknown) dead-lettered again
    replayed = client.post("/v1/admin/dead-letters/replay", json={"ids": [letter["id"], "999"]})
    assert replayed.status_code == 200, replayed.text
    assert replayed.json() == {"done": [letter["id"]], "missing": ["999"]}
    assert _eventually(lambda: len(client.get("/v1/admin/dead-letters").json()) == 1)
    (again,) = client.get("/v1/admin/dead-letters").json()
    assert again["id"] != letter["id"] and again["event"]["event_id"] == ghost["event_id"]
    dropped = client.post("/v1/admin/dead-letters/drop", json={"all": True})
    assert dropped.json() == {"done": [again["id"]], "missing": []}
    assert client.get("/v1/admin/dead-letters").json() == []
    assert _metric(client, "segue_events_dead_letters") == 0.0
    for bad in ({}, {"ids": ["1"], "all": True}, {"ids": ["x; DROP"]}):
        answer = client.post("/v1/admin/dead-letters/drop", json=bad)
        assert answer.status_code == 422, bad
        assert answer.headers["content-type"].startswith("application/problem+json")


@pytest.fixture(scope="module")
def pipeline_settings(world: World) -> Settings:
    """The staged pipeline (issue 19: ``segue serve --model pipeline``) trained beside ALS,
    with every default generator, content included, on two inner folds to keep it quick."""
    with open_store(world.sqlite_url) as store:
        data = load_interactions(store)
        side = load_side_info(store, data)
    params = {"pipeline": {"folds": 2, "n_estimators": 60}}
    train_models(data, ["pipeline"], world.models_dir / "models", side=side, params=params)
    return _settings(world, "embedded", None)


def test_the_pipeline_serves_and_follows_fresh_plays_and_new_listeners(
    pipeline_settings: Settings,
) -> None:
    """A listener's fresh plays and a new listener's picks are scored by the pipeline through
    every generator's ``score_history``: the answer stays on the personal and cold-start
    paths (a generator that could not score a history turned every such answer into the
    popular fallback)."""
    with (
        TestClient(create_app(pipeline_settings, model="pipeline", watch_s=None)) as client,
        open_store(pipeline_settings.resolved_database_url) as store,
    ):
        user = _known_user(store, 3)
        before = _recs(client, user)
        assert before["model"] == "pipeline" and before["path"] == "personal"
        plays = [i["item_id"] for i in _recs(client, _known_user(store, 4), k=30)["items"][-3:]]
        _post(client, *(_event(user, item) for item in plays))
        after = _recs(client, user)
        assert after["path"] == "personal" and after["fresh_plays"] == 3, after["degraded"]
        assert not after["degraded"] and after["items"] != before["items"]
        assert not {i["item_id"] for i in after["items"]} & set(plays)
        newcomer = f"new-{uuid.uuid4().hex[:8]}"
        _post(client, *(_event(newcomer, item) for item in plays))
        warm = _recs(client, newcomer)
        assert warm["path"] == "cold_start" and warm["fresh_plays"] == 3, warm["degraded"]
        assert warm["personal_weight"] > 0 and not warm["degraded"]
