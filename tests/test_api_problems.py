"""One error format: every non-2xx answer is RFC 9457 problem details, declared in OpenAPI;
and ``segue serve`` on an empty data directory starts, says what is missing, and answers the
personal routes with 503 and the fix.

Real SQLite stores and real requests (FastAPI's test client, and one real ``segue serve``
process); errors are provoked the way clients and operators provoke them.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from private_redis import free_port
from segue.api import create_app
from segue.config import Settings
from segue.data.model import Item, ItemKind
from segue.data.synth import SynthParams
from segue.jobs.ingest import load_synthetic_world
from segue.store import open_store

PARAMS = SynthParams(
    seed=11,
    n_users=80,
    n_tracks=300,
    n_events=4_000,
    n_podcast_shows=2,
    n_podcast_episodes=8,
    n_videos=3,
    n_audiobooks=2,
)
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("problems-world")
    with open_store(f"sqlite:///{root / 'segue.sqlite'}") as store:
        load_synthetic_world(store, PARAMS)
    return root


@pytest.fixture
def client(data_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=data_dir), watch_s=None)) as c:
        yield c


def _problem(r: httpx.Response, status: int) -> dict:
    """The body of ``r``, checked to be problem details with ``status``."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM, r.headers["content-type"]
    body = r.json()
    assert {"type", "title", "status", "detail", "instance"} <= set(body), body
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["instance"] == r.request.url.path
    return body


def _a_user(data_dir: Path) -> str:
    with open_store(f"sqlite:///{data_dir / 'segue.sqlite'}") as store:
        return next(store.iter_users()).id


def _an_item(data_dir: Path) -> str:
    with open_store(f"sqlite:///{data_dir / 'segue.sqlite'}") as store:
        return next(store.iter_items()).id


# -- every kind of error --------------------------------------------------------------------
def test_validation_errors_name_each_field_and_where(client: TestClient, data_dir: Path) -> None:
    user = _a_user(data_dir)
    body = _problem(client.get(f"/v1/users/{user}/recommendations?k=0&surface=moon"), 422)
    assert body["type"] == "urn:segue:problem:invalid-request"
    assert "2 invalid fields" in body["detail"]
    assert "query parameter 'k'" in body["detail"] and "query parameter 'surface'" in body["detail"]
    by_name = {e["name"]: e for e in body["errors"]}
    assert by_name["k"]["loc"] == ["query", "k"] and by_name["k"]["location"] == "query"
    assert "greater than or equal to 1" in by_name["k"]["detail"]

    event = {"user_id": user, "item_id": _an_item(data_dir), "type": "teleport"}
    body = _problem(client.post("/v1/events", json={"events": [event]}), 422)
    (error,) = body["errors"]
    assert error["loc"] == ["body", "events", 0, "type"] and error["pointer"] == "/events/0/type"
    assert "body events[0].type" in body["detail"]

    r = client.post(
        "/v1/events", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert _problem(r, 422)["errors"][0]["type"] == "json_invalid"


def test_http_errors_and_segue_errors(client: TestClient, data_dir: Path) -> None:
    user = _a_user(data_dir)
    body = _problem(client.get("/v1/users/nobody-at-all"), 404)
    assert body["type"] == "about:blank" and body["title"] == "Not Found"
    assert "'nobody-at-all'" in body["detail"]
    assert "/v1" in _problem(client.get("/no/such/path"), 404)["detail"]
    assert "DELETE" in _problem(client.delete("/v1/health"), 405)["detail"]
    _problem(client.post("/v1/users", json={"id": user}), 409)
    # a SegueError of the intake: which event, which item
    event = {"user_id": user, "item_id": "ghost", "type": "play"}
    body = _problem(client.post("/v1/events", json={"events": [event]}), 422)
    assert "events[0].item_id='ghost'" in body["detail"]
    body = _problem(client.get(f"/v1/users/{user}/next-best-action"), 503)
    assert "segue nba train" in body["detail"]


def test_keys_and_body_limit(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, api_keys="reader=read")
    with TestClient(create_app(settings, watch_s=None, max_body_bytes=500)) as c:
        r = c.get("/v1/users/x/recommendations")
        assert "'read' scope" in _problem(r, 401)["detail"]
        assert r.headers["www-authenticate"].startswith("Bearer")
        _problem(c.get("/v1/users/x/recommendations", headers={"X-API-Key": "nope"}), 401)
        r = c.post("/v1/events", json={"events": []}, headers={"X-API-Key": "reader"})
        assert "'ingest' scope" in _problem(r, 403)["detail"]
        big = {"events": [{"user_id": "u", "item_id": "i" * 600, "type": "play"}]}
        r = c.post("/v1/events", json=big, headers={"Authorization": "Bearer reader"})
        assert "limit is 500 bytes" in _problem(r, 413)["detail"]


def test_a_locked_store_is_a_503_not_a_500(data_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'segue.sqlite'}"
    with open_store(url) as store:
        load_synthetic_world(store, PARAMS)
    settings = Settings(data_dir=tmp_path, db_busy_timeout_ms=200)
    with TestClient(create_app(settings, watch_s=None, run_worker=False)) as c:
        holder = sqlite3.connect(tmp_path / "segue.sqlite", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            started = time.perf_counter()
            r = c.post("/v1/users", json={"id": "new-listener"})
            assert time.perf_counter() - started < 5
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        body = _problem(r, 503)
        assert body["type"] == "urn:segue:problem:store-unavailable"
        assert r.headers["retry-after"]
        assert "sqlite" not in r.text.lower() and "INSERT" not in r.text  # no internals
        assert c.post("/v1/users", json={"id": "new-listener"}).status_code == 201


def test_an_unexpected_error_is_a_500_without_internals(data_dir: Path) -> None:
    app = create_app(Settings(data_dir=data_dir), watch_s=None)

    def broken() -> None:
        raise RuntimeError("secret internals at /srv/segue/db password=hunter2")

    app.add_api_route("/v1/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/v1/broken")
        body = _problem(r, 500)
        assert body["type"] == "urn:segue:problem:internal-error"
        assert "secret" not in r.text and "hunter2" not in r.text and "Runtime" not in r.text


# -- OpenAPI --------------------------------------------------------------------------------
def test_openapi_declares_problems_per_route_and_the_key_schemes(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert {"type", "title", "status", "detail", "instance", "errors"} <= set(
        schemas["Problem"]["properties"]
    )
    assert "HTTPValidationError" not in schemas  # FastAPI's own 422 shape is gone
    schemes = doc["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {**schemes["ApiKey"], "type": "apiKey", "in": "header"}
    assert schemes["ApiKey"]["name"] == "X-API-Key"
    assert schemes["Bearer"]["type"] == "http" and schemes["Bearer"]["scheme"] == "bearer"
    checked = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            for code, response in responses.items():
                if code[0] in "45":
                    ref = response["content"][PROBLEM]["schema"]["$ref"]
                    assert ref.rsplit("/", 1)[1] in ("Problem", "NotReady"), (path, method, code)
                    assert "application/json" not in response["content"], (path, method, code)
            if path in ("/v1/health", "/v1/ready"):
                assert "security" not in op
                continue
            names = {name for req in op["security"] for name in req}
            assert names == {"ApiKey", "Bearer"}, (path, method)
            assert {"401", "403", "503"} <= set(responses), (path, method)
            if "requestBody" in op:
                assert {"413", "422"} <= set(responses), (path, method)
            checked += 1
    assert checked >= 15
    recs = doc["paths"]["/v1/users/{user_id}/recommendations"]["get"]["responses"]
    assert {"200", "401", "403", "422", "503"} <= set(recs)
    assert "409" in doc["paths"]["/v1/users"]["post"]["responses"]
    assert "404" in doc["paths"]["/v1/items/{item_id}/similar"]["get"]["responses"]
    ready = doc["paths"]["/v1/ready"]["get"]["responses"]["503"]
    assert ready["content"][PROBLEM]["schema"]["$ref"].endswith("/NotReady")
    assert {"type", "title", "status", "detail", "instance", "missing", "ready"} <= set(
        schemas["NotReady"]["properties"]
    )


# -- an empty data directory ----------------------------------------------------------------
def test_an_empty_store_starts_says_what_is_missing_and_serves_once_filled(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path)
    with TestClient(create_app(settings, watch_s=None)) as c:
        assert c.get("/v1/health").status_code == 200
        ready = _problem(c.get("/v1/ready"), 503)  # problem details with readiness fields
        assert ready["ready"] is False and ready["model"] is None
        assert "segue import" in ready["detail"]
        assert any(m.startswith("items:") and "segue import" in m for m in ready["missing"])
        for path in (
            "/v1/users/u1/recommendations",
            "/v1/items/i1/similar",
            "/v1/admin/model",
        ):
            body = _problem(c.get(path), 503)
            assert body["type"] == "urn:segue:problem:not-ready", path
            assert "segue import" in body["detail"], path
        assert c.get("/v1/users/u1").status_code == 404  # the store answers
        assert c.post("/v1/users", json={"id": "first"}).status_code == 201

        with open_store(settings.resolved_database_url) as store:  # a catalog, no plays
            store.upsert_items(
                [Item(id=f"t{n}", kind=ItemKind.TRACK, title=f"T{n}") for n in range(5)]
            )
        assert c.post("/v1/admin/model/reload").status_code == 503
        missing = c.get("/v1/ready").json()["missing"]
        assert any(m.startswith("events:") and "segue train" in m for m in missing), missing
        body = _problem(c.get("/v1/users/u1/recommendations"), 503)
        assert "no listening events" in body["detail"] and "segue train" in body["detail"]
        # listening flows in before any model exists: accepted, stored by the worker
        play = {"event_id": "first-play", "user_id": "first", "item_id": "t1", "type": "play"}
        accepted = c.post("/v1/events", json={"events": [play]})
        assert accepted.status_code == 202, accepted.text
        ghost = {**play, "event_id": "ghost", "item_id": "no-such-item"}
        assert _problem(c.post("/v1/events", json={"events": [ghost]}), 422)
        with open_store(settings.resolved_database_url) as store:
            deadline = time.monotonic() + 10
            while store.count("events") < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert store.count("events") == 1

        with open_store(settings.resolved_database_url) as store:  # now the listening
            load_synthetic_world(store, PARAMS)
        assert c.post("/v1/admin/model/reload").json()["swapped"] is True  # no restart
        r = c.get("/v1/ready")
        assert r.status_code == 200 and r.json()["fallback"]
        assert any("segue train" in m for m in r.json()["missing"])  # popularity serves
        recs = c.get("/v1/users/u1/recommendations")
        assert recs.status_code == 200 and len(recs.json()["items"]) == 10


def test_segue_serve_starts_on_an_empty_data_directory(tmp_path: Path) -> None:
    """With --fallback popularity (without it, an untrained model is refused: see
    tests/test_readme_promises.py)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")}
    segue = Path(sys.executable).with_name("segue")
    (tmp_path / "empty").mkdir()
    proc = subprocess.Popen(
        [
            str(segue), "--data-dir", str(tmp_path / "empty"), "serve", "--port", str(port),
            "--fallback", "popularity",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
            try:
                health = httpx.get(f"{base}/v1/health", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert health.status_code == 200
        ready = httpx.get(f"{base}/v1/ready", timeout=5)
        assert ready.status_code == 503 and ready.json()["missing"]
        recs = httpx.get(f"{base}/v1/users/u/recommendations", timeout=5)
        body = _problem(recs, 503)
        assert "segue import" in body["detail"]
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0].decode()
    assert "Traceback" not in output, output[-3000:]


def test_success_answers_stay_plain_json(client: TestClient) -> None:
    """Only errors are problem details."""
    assert client.get("/v1/health").headers["content-type"] == "application/json"
