"""The daily lists from Parquet to the store, the online state and the API: every user's mixes
and top list as rows, loaded per registry version, served for the production version, and
back to the previous version's exact lists after a rollback."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

import products_world as world
from conftest import REDIS_URL
from segue.api import create_app
from segue.batch.lifecycle import MIXES, RECOMMENDATIONS
from segue.batch.lists import batch_recommend
from segue.batch.publish import (
    MIX_SCHEMA,
    batch_mixes,
    output_path,
    publish_version,
    published_top,
)
from segue.config import Settings
from segue.errors import SegueError, StoreError
from segue.jobs.products import ProductContext, daily_mixes, product_context
from segue.online.redis_state import RedisState
from segue.online.resilient import ResilientState
from segue.online.state import InProcessState, OnlineState
from segue.registry import ModelRegistry, ModelVersion
from segue.registry.trained import TrainedModel, save_trained
from segue.store import PublishedList, Store, open_store
from segue.store import schema as store_schema
from test_store_migrations import _old_store

DAY = dt.date(2024, 6, 1)
K = 5


@dataclass
class Made:
    """One model's lists of the day: the model, its product context and the Parquet files."""

    trained: TrainedModel
    ctx: ProductContext
    top: Path
    mixes: Path


def _make(store: Store, model: str, folder: Path) -> Made:
    trained, side = world.trained(store, model)
    ctx = product_context(store, trained, side)
    top, mixes = folder / RECOMMENDATIONS, folder / MIXES
    batch_recommend(trained, top, k=K, date=DAY)
    batch_mixes(trained, mixes, DAY, context=ctx)
    return Made(trained, ctx, top, mixes)


def _top_rows(path: Path) -> dict[str, list[tuple[str, float]]]:
    """user -> [(item, score)] by rank, read with plain pyarrow (not the code under test)."""
    out: dict[str, list[tuple[int, str, float]]] = {}
    for r in pq.read_table(path).to_pylist():
        out.setdefault(r["user_id"], []).append((r["rank"], r["item_id"], r["score"]))
    return {u: [(i, s) for _, i, s in sorted(rows)] for u, rows in out.items()}


def _mix_rows(path: Path) -> dict[str, list[tuple]]:
    """user -> [(number, title, description, cluster, [(item, familiar)] by position)]."""
    mixes: dict[str, dict[int, dict]] = {}
    for r in pq.read_table(path).to_pylist():
        assert r["date"] == DAY
        m = mixes.setdefault(r["user_id"], {}).setdefault(
            r["mix"], {"words": (r["title"], r["description"], r["cluster"]), "tracks": []}
        )
        m["tracks"].append((r["position"], r["item_id"], r["familiar"]))
    return {
        user: [
            (n, *m["words"], [(i, f) for _, i, f in sorted(m["tracks"])])
            for n, m in sorted(by_number.items())
        ]
        for user, by_number in mixes.items()
    }


def _served_mixes(body: list[dict]) -> list[tuple]:
    return [
        (
            m["number"],
            m["title"],
            m["description"],
            m["cluster"],
            [(t["item_id"], t["familiar"]) for t in m["tracks"]],
        )
        for m in body
    ]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory):
    """The products world on SQLite with two models' lists (item-kNN "a", popularity "b")."""
    root = tmp_path_factory.mktemp("publish")
    store = open_store(f"sqlite:///{root / 'segue.sqlite'}")
    world.build(store)
    lists = {tag: _make(store, m, root / tag) for tag, m in (("a", "itemknn"), ("b", "popularity"))}
    yield store, lists
    store.close()


# -- the Parquet files ------------------------------------------------------------------------
def test_mixes_parquet_holds_every_users_mixes_exactly(made) -> None:
    store, lists = made
    a = lists["a"]
    table = pq.read_table(a.mixes)
    assert table.schema == MIX_SCHEMA
    assert not list(a.mixes.parent.glob("*.tmp"))  # written to a temporary file, renamed
    rows = _mix_rows(a.mixes)
    assert len(rows) == 42  # every user of the model, the kid included
    for user in ("main", "kid", "bg3", "bg17"):
        one = daily_mixes(store, a.trained, user, DAY, context=a.ctx)
        expected = [
            (
                m.number,
                m.title,
                m.description,
                m.cluster,
                [(t.item_id, t.familiar) for t in m.tracks],
            )
            for m in one
        ]
        assert rows[user] == expected
    explicit = {i.id for i in store.iter_items() if i.explicit}
    assert not {i for m in rows["kid"] for i, _ in m[4]} & explicit
    assert output_path(Path("/d"), "mix", DAY, "daily") == Path(
        "/d/mixes/date=2024-06-01/daily.parquet"
    )
    with pytest.raises(SegueError, match="no output folder for list kind 'top'"):
        output_path(Path("/d"), "top", DAY, "daily")


def test_reading_the_files_back_does_not_depend_on_the_batch_size(
    made, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segue.batch import publish

    _, lists = made
    a = lists["a"]
    whole = (list(publish.mix_lists(a.mixes)), [r for r, _, _ in publish.top_lists(a.top)])
    monkeypatch.setattr(publish, "READ_ROWS", 7)  # users and mixes split across batches
    assert (list(publish.mix_lists(a.mixes)), [r for r, _, _ in publish.top_lists(a.top)]) == whole
    assert len(whole[0]) == len(_mix_rows(a.mixes)) and len(whole[1]) == len(_top_rows(a.top))


# -- the store table --------------------------------------------------------------------------
def _lists(n: int, tag: str) -> list[PublishedList]:
    return [PublishedList(f"u{i}", DAY, json.dumps({"tag": tag, "i": i})) for i in range(n)]


def test_published_lists_are_replaced_whole_or_not_at_all(store: Store) -> None:
    assert store.publish_lists("daily", "v0001", "top", _lists(12_000, "first")) == 12_000
    assert store.publish_lists("daily", "v0002", "top", _lists(3, "other")) == 3
    assert store.published_counts("daily", "v0001") == {"top": 12_000}
    got = store.published_list("daily", "v0001", "top", "u11999")
    assert got == PublishedList("u11999", DAY, json.dumps({"tag": "first", "i": 11999}))
    assert store.published_list("daily", "v0001", "mix", "u1") is None

    # a user listed twice, after 6,000 good rows: nothing of the new load stays
    twice = [*_lists(6_000, "second"), PublishedList("u5", DAY, "{}")]
    with pytest.raises(StoreError, match="user 'u5' has two 'top' lists in daily v0001"):
        store.publish_lists("daily", "v0001", "top", twice)
    assert store.published_counts("daily", "v0001") == {"top": 12_000}
    assert json.loads(store.published_list("daily", "v0001", "top", "u5").payload)["tag"] == (
        "first"
    )
    # a good reload replaces the version's rows, other versions keep theirs
    assert store.publish_lists("daily", "v0001", "top", _lists(2, "third")) == 2
    assert store.published_counts("daily", "v0001") == {"top": 2}
    assert store.published_counts("daily", "v0002") == {"top": 3}
    with pytest.raises(StoreError, match="kind of 1 to 16 characters"):
        store.publish_lists("daily", "v0001", "", [])


def test_a_version_2_store_is_migrated_to_the_published_table(database_url: str) -> None:
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    _old_store(engine, 2, 1)  # made by segue 1, opened by 2 (tests/test_store_migrations.py)
    engine.dispose()
    with open_store(database_url) as store:
        assert store.schema_version == store_schema.SCHEMA_VERSION  # every later step ran too
        assert store.publish_lists("daily", "v0001", "mix", _lists(2, "m")) == 2
    with open_store(database_url) as store:  # reopening does not migrate twice
        assert store.published_counts("daily", "v0001") == {"mix": 2}


# -- Parquet into the store and the online state ----------------------------------------------
def _version(tmp_path: Path, m: Made, registry: ModelRegistry | None = None) -> ModelVersion:
    registry = registry or ModelRegistry(tmp_path / "registry")
    folder = tmp_path / f"saved-{m.trained.name}"
    if not folder.exists():
        save_trained(m.trained, folder)
    manifest = {"model_type": m.trained.name, "metrics": {"ndcg@10": 0.1}}
    return registry.publish(
        "daily", folder, manifest, extra={RECOMMENDATIONS: m.top, MIXES: m.mixes}
    )


def _state(kind: str, prefix: str) -> OnlineState:
    return RedisState(REDIS_URL, prefix) if kind == "redis" else InProcessState()


@pytest.mark.parametrize("state_kind", ["in-process", "redis"])
def test_a_versions_lists_load_into_the_store_and_state_exactly(
    made, store: Store, tmp_path: Path, state_kind: str, redis_prefix: str
) -> None:
    _, lists = made
    a = lists["a"]
    version = _version(tmp_path, a)
    state = _state(state_kind, redis_prefix)
    report = publish_version(store, version, state)
    tops, mixes = _top_rows(a.top), _mix_rows(a.mixes)
    assert report.stored == {"top": len(tops), "mix": len(mixes)}
    assert report.online == len(tops) and report.notes == []
    assert store.published_counts("daily", "v0001") == {"top": len(tops), "mix": len(mixes)}
    for user, expected in tops.items():
        body = json.loads(store.published_list("daily", "v0001", "top", user).payload)
        assert list(zip(body["items"], body["scores"], strict=True)) == [
            (i, pytest.approx(s, abs=1e-6)) for i, s in expected
        ]
        online = state.batch_list(user, "daily")
        assert online.version == "v0001" and online.items == [i for i, _ in expected]
    for user, expected in mixes.items():
        row = store.published_list("daily", "v0001", "mix", user)
        assert row.day == DAY
        stored = [
            (m["number"], m["title"], m["description"], m["cluster"],
             [(i, bool(f)) for i, f in zip(m["items"], m["familiar"], strict=True)])
            for m in json.loads(row.payload)
        ]  # fmt: skip
        assert stored == expected
    # loading the same version again is idempotent
    assert publish_version(store, version, state).stored == report.stored
    assert store.published_counts("daily", "v0001") == {"top": len(tops), "mix": len(mixes)}

    # serving reads the state for its version, the store for any other
    assert published_top(store, state, "daily", "v0001", "main").items == [
        i for i, _ in tops["main"]
    ]
    state.set_batch_lists("daily", "v0009", [("main", ["x"], [1.0])])
    assert published_top(store, state, "daily", "v0001", "main").items == [
        i for i, _ in tops["main"]
    ]  # the state holds another version's list: the store answers
    assert published_top(store, state, "daily", "v0009", "main").items == ["x"]
    assert published_top(store, state, "daily", "v0002", "main") is None
    state.close()


def test_unreachable_redis_keeps_batch_lists_in_process(made, store: Store) -> None:
    state = ResilientState(lambda: RedisState("redis://localhost:1/0"), retry_after_s=60)
    assert state.set_batch_lists("daily", "v0003", [("u1", ["t1", "t2"], [0.5, 0.25])]) == 1
    assert state.degraded
    got = state.batch_list("u1", "daily")
    assert (got.version, got.items, got.scores) == ("v0003", ["t1", "t2"], [0.5, 0.25])
    store.publish_lists("daily", "v0004", "top", [
        PublishedList("u1", DAY, json.dumps({"items": ["s1"], "scores": [2.0]}))
    ])  # fmt: skip
    assert published_top(store, state, "daily", "v0004", "u1").items == ["s1"]


def test_a_broken_file_publishes_nothing_of_its_kind(made, store: Store, tmp_path: Path) -> None:
    _, lists = made
    version = _version(tmp_path, lists["a"])
    publish_version(store, version, None)
    before = store.published_list("daily", "v0001", "mix", "main")
    (version.artifacts / MIXES).chmod(0o644)
    (version.artifacts / MIXES).write_bytes(b"not parquet at all")
    with pytest.raises(SegueError, match=r"cannot publish the mix lists of daily v0001 from"):
        publish_version(store, version, None)
    assert store.published_list("daily", "v0001", "mix", "main") == before


# -- serving, promotion and rollback ----------------------------------------------------------
def test_the_api_serves_the_production_versions_lists_and_rollback_restores_them(
    database_url: str, tmp_path: Path, redis_prefix: str
) -> None:
    redis = database_url.startswith("postgres")  # PostgreSQL with Redis, SQLite embedded
    with open_store(database_url) as store:
        world.build(store)
        lists = {
            t: _make(store, m, tmp_path / t) for t, m in (("a", "itemknn"), ("b", "popularity"))
        }
        registry = ModelRegistry(tmp_path / "registry")
        v1, v2 = _version(tmp_path, lists["a"], registry), _version(tmp_path, lists["b"], registry)
        state = RedisState(REDIS_URL, redis_prefix) if redis else None
        for v in (v1, v2):
            publish_version(store, v, state)
            registry.promote("daily", v.version)
        main_b = daily_mixes(store, lists["b"].trained, "main", DAY, context=lists["b"].ctx)
    mixes = {t: _mix_rows(m.mixes) for t, m in lists.items()}
    tops = {t: _top_rows(m.top) for t, m in lists.items()}
    assert mixes["a"]["main"] != mixes["b"]["main"] and tops["a"]["main"] != tops["b"]["main"]

    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        redis_url=REDIS_URL if redis else "",
        redis_prefix=redis_prefix,
    )

    def served(c: TestClient, tag: str, user: str = "main") -> None:
        r = c.get(f"/v1/users/{user}/mixes", params={"date": DAY.isoformat()})
        assert r.status_code == 200, r.text
        assert _served_mixes(r.json()) == mixes[tag][user]
        top = c.get(f"/v1/users/{user}/published").json()
        assert top["version"] == {"a": v1, "b": v2}[tag].version
        assert [(i["item_id"], i["score"]) for i in top["items"]] == [
            (i, pytest.approx(s, abs=1e-6)) for i, s in tops[tag][user]
        ]

    with TestClient(create_app(settings, model="daily", watch_s=None)) as c:
        served(c, "b")
        served(c, "b", "bg7")
        # identical to what the served model computes for the day, titles and artists included
        r = c.get("/v1/users/main/mixes", params={"date": DAY.isoformat()})
        assert r.json() == [m.model_dump(mode="json") for m in main_b]
        # another day has no published mixes: computed as before
        other = c.get("/v1/users/main/mixes", params={"date": "2024-06-02"})
        assert other.status_code == 200 and _served_mixes(other.json()) != mixes["b"]["main"]

        # a later version whose publish fails is never promoted: v2's lists keep serving
        broken = tmp_path / "broken"
        broken.mkdir()
        (broken / MIXES).write_bytes(b"garbage")
        shutil.copy(lists["b"].top, broken / RECOMMENDATIONS)
        v3 = registry.publish(
            "daily", tmp_path / "saved-popularity", {"model_type": "popularity"},
            extra={RECOMMENDATIONS: broken / RECOMMENDATIONS, MIXES: broken / MIXES},
        )  # fmt: skip
        with open_store(database_url) as store, pytest.raises(SegueError, match="mix lists"):
            publish_version(store, v3, None)
        assert registry.production("daily").version == v2.version
        assert c.post("/v1/admin/model/reload").json()["swapped"] is False
        served(c, "b")

        registry.rollback("daily")
        assert c.post("/v1/admin/model/reload").json()["version"] == v1.version
        served(c, "a")
        served(c, "a", "bg7")
        assert c.get("/v1/users/nobody/published").status_code == 404

        # the rows are what serves, not a recomputation: change v1's row and the API follows
        with open_store(database_url) as store:
            row = store.published_list("daily", v1.version, "mix", "main")
            changed = [dict(m, items=m["items"][::-1], familiar=m["familiar"][::-1])
                       for m in json.loads(row.payload)]  # fmt: skip
            payload = json.dumps(changed)
            store.publish_lists("daily", v1.version, "mix", [PublishedList("main", DAY, payload)])
        r = c.get("/v1/users/main/mixes", params={"date": DAY.isoformat()}).json()
        assert _served_mixes(r) == [
            (n, t, d, cl, tracks[::-1]) for n, t, d, cl, tracks in mixes["a"]["main"]
        ]


def test_when_the_model_cannot_load_the_published_list_beats_popular(made, tmp_path: Path) -> None:
    _, lists = made
    data_dir = tmp_path / "data"
    url = f"sqlite:///{data_dir / 'segue.sqlite'}"
    data_dir.mkdir()
    with open_store(url) as fresh:
        world.build(fresh)
        registry = ModelRegistry(data_dir / "registry")
        version = _version(tmp_path, lists["a"], registry)
        publish_version(fresh, version, None)
        registry.promote("daily", version.version)
        explicit = {i.id for i in fresh.iter_items() if i.explicit}
    (version.path / "params.json").unlink()  # the production model no longer loads
    tops = _top_rows(lists["a"].top)
    settings = Settings(data_dir=data_dir, database_url=url)
    with TestClient(create_app(settings, model="daily", watch_s=None)) as c:
        r = c.get("/v1/users/main/recommendations", params={"k": 3}).json()
        assert r["path"] == "batch" and r["version"] == version.version
        assert [i["item_id"] for i in r["items"]] == [i for i, _ in tops["main"][:3]]
        assert any("published batch list" in d for d in r["degraded"])
        kid = c.get("/v1/users/kid/recommendations", params={"k": K}).json()
        assert kid["path"] == "batch"
        assert [i["item_id"] for i in kid["items"]] == [
            i for i, _ in tops["kid"] if i not in explicit
        ]
        assert len(kid["items"]) < K  # the kid's list had explicit tracks, now left out
        # a listener without a published list still gets the popular fallback
        c.post("/v1/users", json={"id": "late-comer"})
        assert c.get("/v1/users/late-comer/recommendations").json()["path"] == "fallback"


def test_kids_top_lists_in_the_file_hold_no_explicit_items(made, tmp_path: Path) -> None:
    store, _ = made
    trained, side = world.trained(store, "itemknn")
    plain, ruled = tmp_path / "plain.parquet", tmp_path / "ruled.parquet"
    batch_recommend(trained, plain, k=K, date=DAY)
    batch_recommend(trained, ruled, k=K, date=DAY, side=side)
    explicit = {i.id for i in store.iter_items() if i.explicit}
    before, after = _top_rows(plain), _top_rows(ruled)
    assert explicit & {item for item, _ in before["kid"]}, "the world should tempt the kid"
    assert not explicit & {item for item, _ in after["kid"]}
    assert len(after["kid"]) == K
    assert {u: rows for u, rows in after.items() if u != "kid"} == {
        u: rows for u, rows in before.items() if u != "kid"
    }
