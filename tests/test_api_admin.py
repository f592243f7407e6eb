"""What the admin console reads and does, over ``/v1/admin`` (no browser): the process's
health, the registry with promote through the gate and roll back, the outbox by campaign,
the store's counts; and the pages themselves, served with their assets."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from segue.api import create_app
from segue.config import Settings
from segue.dataset.from_store import load_interactions
from segue.models.mf import ALSRecommender
from segue.registry import ModelRegistry
from segue.registry.trained import TrainedModel, save_trained
from segue.store import open_store
from segue.store.base import READABLE_TABLES
from segue.store.outbox import OutboxMessage
from web_world import build_world

ADMIN = {"X-API-Key": "boss"}
LISTENER = {"X-API-Key": "fan"}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A world, and two registry versions of "daily": v0001 (NDCG@10 0.20) serves, v0002 is
    worse (0.10) so the gate refuses it."""
    root = tmp_path_factory.mktemp("api-admin")
    url, _ = build_world(root)
    registry = ModelRegistry(root / "registry")
    first = registry.publish(
        "daily", root / "models" / "als", {"model_type": "als", "metrics": {"ndcg@10": 0.2}}
    )
    with open_store(url) as store:
        data = load_interactions(store)
        store.outbox_add([_message("spring", "email"), _message("spring", "push"),
                          _message("spring", "email"), _message("autumn", "in_app")])  # fmt: skip
    other = ALSRecommender(factors=8, iterations=3, random_state=1).fit(data.matrix())
    save_trained(TrainedModel("als", other, data.users, data.items), root / "other")
    registry.publish("daily", root / "other", {"model_type": "als", "metrics": {"ndcg@10": 0.1}})
    registry.promote("daily", first.version)
    yield root


def _message(campaign: str, channel: str) -> OutboxMessage:
    return OutboxMessage(
        message_id=uuid.uuid4().hex,
        campaign=campaign,
        user_id="usr-0000001",
        channel=channel,
        action_type="play_item",
        item_id="trk-000001",
        payload={},
        scheduled_ms=0,
        created_ms=0,
    )


@pytest.fixture
def client(root: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=root,
        database_url=f"sqlite:///{root / 'segue.sqlite'}",
        api_keys="boss=admin,fan=read+ingest",
    )
    with TestClient(create_app(settings, model="daily", watch_s=None)) as c:
        yield c


def test_promote_goes_through_the_gate_and_rollback_returns(client: TestClient) -> None:
    served = client.get("/v1/admin/registry", headers=ADMIN).json()
    assert served["serving"] == "daily" and served["key_metric"] == "ndcg@10"
    (entry,) = served["entries"]
    assert [(v["version"], v["key_metric"], v["serving"]) for v in entry["versions"]] == [
        ("v0001", 0.2, True),
        ("v0002", 0.1, False),
    ]
    assert entry["rollback_to"] is None

    url = "/v1/admin/registry/daily"
    refused = client.post(f"{url}/promote", json={"version": "v0002"}, headers=ADMIN)
    assert refused.status_code == 409 and "ndcg@10" in refused.json()["detail"]
    assert client.get("/v1/admin/model", headers=ADMIN).json()["version"] == "v0001"

    forced = client.post(f"{url}/promote", json={"version": "v0002", "force": True}, headers=ADMIN)
    assert forced.json() == {"name": "daily", "version": "v0002", "loaded": True}
    assert client.get("/v1/ready").json()["version"] == "v0002"  # this process serves it now
    assert (
        client.get("/v1/admin/registry", headers=ADMIN).json()["entries"][0]["rollback_to"]
        == "v0001"
    )

    back = client.post(f"{url}/rollback", headers=ADMIN)
    assert back.json() == {"name": "daily", "version": "v0001", "loaded": True}
    assert client.post(f"{url}/rollback", headers=ADMIN).status_code == 409  # nothing left
    missing = client.post(f"{url}/promote", json={"version": "v0009"}, headers=ADMIN)
    assert missing.status_code == 404
    assert client.post("/v1/admin/registry/nope/rollback", headers=ADMIN).status_code == 404
    bad = client.post(f"{url}/promote", json={"version": "latest"}, headers=ADMIN)
    assert bad.status_code == 422


def test_compare_gives_each_versions_list_for_one_listener(client: TestClient) -> None:
    user = "usr-0000001"
    served = client.get(f"/v1/users/{user}/recommendations", params={"k": 10}, headers=ADMIN)
    url = "/v1/admin/registry/daily/compare"
    # by default a is what a rollback would serve (none yet: production) and b production
    same = client.get(url, params={"user_id": user}, headers=ADMIN).json()
    assert same["a"]["version"] == same["b"]["version"] == "v0001"
    assert [i["item_id"] for i in same["a"]["items"]] == [
        i["item_id"] for i in served.json()["items"]
    ]
    assert same["added"] == same["removed"] == [] and same["overlap"] == 1.0

    c = client.get(url, params={"user_id": user, "b": "v0002"}, headers=ADMIN).json()
    a = [i["item_id"] for i in c["a"]["items"]]
    b = [i["item_id"] for i in c["b"]["items"]]
    assert a != b and [i["rank"] for i in c["b"]["items"]] == list(range(1, len(b) + 1))
    assert c["added"] == [i for i in b if i not in a]
    assert c["removed"] == [i for i in a if i not in b]
    assert c["overlap"] == pytest.approx(len(set(a) & set(b)) / len(b))
    assert client.get("/v1/admin/model", headers=ADMIN).json()["version"] == "v0001", (
        "comparing serves nothing new"
    )

    for params, code in (
        ({"user_id": "nobody"}, 404),
        ({"user_id": user, "b": "v0009"}, 404),
        ({"user_id": user, "b": "latest"}, 422),
        ({"user_id": user, "k": 0}, 422),
        ({}, 422),
    ):
        assert client.get(url, params=params, headers=ADMIN).status_code == code, params
    other = client.get("/v1/admin/registry/weekly/compare", params={"user_id": user}, headers=ADMIN)
    assert other.status_code == 409 and "daily" in other.json()["detail"]


def test_health_counts_this_processs_requests_and_events(client: TestClient, root: Path) -> None:
    before = client.get("/v1/admin/health", headers=ADMIN).json()
    for _ in range(5):
        client.get("/v1/users/usr-0000001/recommendations", headers=LISTENER)
    event = {"user_id": "usr-0000001", "item_id": "trk-000001", "type": "play"}
    assert client.post("/v1/events", json={"events": [event] * 3}).status_code == 401
    accepted = client.post("/v1/events", json={"events": [event] * 3}, headers=LISTENER)
    assert accepted.status_code == 202
    after = client.get("/v1/admin/health", headers=ADMIN).json()
    assert after["requests"] - before["requests"] == 7  # its own polling is not counted
    assert after["events_ingested"] - before["events_ingested"] == 3
    assert after["p50_ms"] is not None and 0 < after["p50_ms"] <= after["p99_ms"]
    assert after["recommendations"]["personal"] - before["recommendations"].get("personal", 0) == 5
    assert (after["model"], after["version"], after["degraded"]) == ("als", "v0001", [])
    assert after["state"] == "in-process" and after["stream_lag"] is not None


def test_campaigns_and_data_are_the_stores(client: TestClient, root: Path) -> None:
    campaigns = client.get("/v1/admin/campaigns", headers=ADMIN).json()
    assert campaigns["statuses"]["pending"] == 4
    assert campaigns["campaigns"] == {
        "spring": {"email": {"pending": 2}, "push": {"pending": 1}},
        "autumn": {"in_app": {"pending": 1}},
    }
    tables = client.get("/v1/admin/stats", headers=ADMIN).json()["tables"]
    with open_store(f"sqlite:///{root / 'segue.sqlite'}") as store:
        assert tables == {name: store.count(name) for name in READABLE_TABLES}
    runs = client.get("/v1/admin/runs", headers=ADMIN).json()
    assert runs["runs"] == [] and "segue flow run" in runs["note"]
    assert client.get("/v1/admin/runs/1700000000/steps", headers=ADMIN).status_code == 404
    assert client.get("/v1/admin/runs/..%2Fx/steps", headers=ADMIN).status_code in (404, 422)

    spring = client.get("/v1/admin/campaigns/spring/lift", headers=ADMIN).json()
    assert spring["messages"] == 3 and spring["by_status"]["pending"] == 3
    # no holdout in these messages (holdout_share absent) and nothing shown yet: no figure,
    # said as null rather than a made-up 0
    assert spring["lift"] is None and spring["ctr"] is None and spring["holdout_inactive"] == 0
    assert client.get("/v1/admin/campaigns/winter/lift", headers=ADMIN).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "health",
        "registry",
        "runs",
        "campaigns",
        "stats",
        "model",
        "dead-letters",
        "registry/daily/compare?user_id=usr-0000001",
    ],
)
def test_a_listener_key_reads_no_admin_route(client: TestClient, path: str) -> None:
    assert client.get(f"/v1/admin/{path}", headers=LISTENER).status_code == 403
    assert client.get(f"/v1/admin/{path}").status_code == 401
    promote = client.post(
        "/v1/admin/registry/daily/promote", json={"version": "v0002"}, headers=LISTENER
    )
    assert promote.status_code == 403


def test_the_pages_and_their_assets_are_served(client: TestClient) -> None:
    for path, script in (("/", "listener.js"), ("/admin", "admin.js")):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assets = re.findall(r'(?:href|src)="(/web/static/[^"]+)"', page.text)
        assert {a.split("?")[0].rsplit("/", 1)[1] for a in assets} == {
            "app.css",
            "common.js",
            script,
        }
        for asset in assets:  # versioned by content, served from the package
            r = client.get(asset)
            assert r.status_code == 200 and r.content
    assert "/admin" not in client.get("/").text.split("<main", 1)[1]  # no admin on the app
    assert "/" not in client.get("/openapi.json").json()["paths"]  # pages are not the API


def test_segue_serve_builds_each_served_versions_products_before_anyone_asks(root: Path) -> None:
    """``warm`` (as ``segue serve`` runs): the product tables and the name index of the loaded
    version, then of a newly promoted one, are built in the background, not by a request."""
    import gc
    import time

    settings = Settings(
        data_dir=root, database_url=f"sqlite:///{root / 'segue.sqlite'}", api_keys="boss=admin"
    )

    def built_for(svc: object, model: object) -> bool:
        products, names = svc.products, svc.names  # type: ignore[attr-defined]
        return products is not None and names is not None and products[0] is names[0] is model

    def wait(svc: object, model: object) -> bool:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not built_for(svc, model):
            time.sleep(0.1)
        return built_for(svc, model)

    app = create_app(settings, model="daily", watch_s=None, warm=True)
    with TestClient(app) as client:
        svc = app.state.services
        first = svc.models.loaded
        assert first.version == "v0001" and wait(svc, first)
        assert svc.warmed.wait(20) and client.get("/v1/ready").status_code == 200
        assert gc.get_freeze_count() > 0, "what the warm version keeps is out of the GC's walk"
        svc.warmed.clear()  # as in the seconds before the first warm ends
        ready = client.get("/v1/ready")
        assert ready.status_code == 503 and any("warming" in m for m in ready.json()["missing"])
        svc.warmed.set()
        url = "/v1/admin/registry/daily"
        body = {"version": "v0002", "force": True}
        assert client.post(f"{url}/promote", json=body, headers=ADMIN).status_code == 200
        second = svc.models.loaded
        assert second is not first and wait(svc, second), "the new version's, unasked"
        client.post(f"{url}/rollback", headers=ADMIN)
    gc.unfreeze()  # the rest of this test process collects as before
    cold = create_app(settings, model="daily", watch_s=None)
    with TestClient(cold) as client:
        time.sleep(0.5)
        assert cold.state.services.products is None, "without warm, built on first use"
        assert client.get("/v1/ready").status_code == 200, "nothing to wait for without warm"
