"""The model registry: versions, manifests, atomic promotion and rollback, and the gate."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from segue.batch.lifecycle import (
    GateRefused,
    check_gate,
    load_production,
    production_recommendations,
    promote_checked,
    publish_trained,
)
from segue.dataset import IdMap
from segue.models.names import model_spec
from segue.registry import ModelRegistry, RegistryError
from segue.registry.trained import TrainedModel, save_trained


def _trained(seed: int, name: str = "itemknn") -> TrainedModel:
    rng = np.random.default_rng(seed)
    matrix = sp.random(40, 30, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    matrix.data[:] = 1.0
    model = model_spec(name).factory().fit(matrix)
    users = IdMap([f"u{i}" for i in range(40)], name="user")
    items = IdMap([f"i{i}" for i in range(30)], name="item")
    return TrainedModel(name, model, users, items)


def _manifest(ndcg: float, tag: str = "") -> dict:
    return {"model_type": "itemknn", "metrics": {"ndcg@10": ndcg}, "tag": tag}


def _saved(tmp_path: Path, seed: int) -> Path:
    folder = tmp_path / f"saved-{seed}"
    save_trained(_trained(seed), folder)
    return folder


def test_publish_numbers_versions_and_copies_the_model(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    first = registry.publish("daily", _saved(tmp_path, 1), _manifest(0.2))
    second = registry.publish("daily", _saved(tmp_path, 2), _manifest(0.3))
    assert (first.version, second.version) == ("v0001", "v0002")
    assert [v.version for v in registry.versions("daily")] == ["v0001", "v0002"]
    assert registry.production("daily") is None  # publishing does not promote
    manifest = json.loads((second.path / "manifest.json").read_text())
    assert manifest["version"] == "v0002" and manifest["name"] == "daily"
    assert manifest["metrics"] == {"ndcg@10": 0.3}
    assert manifest["code_version"] and manifest["created_at"]
    assert (second.path / "params.json").read_bytes() == (
        tmp_path / "saved-2" / "params.json"
    ).read_bytes()
    assert not [p for p in (tmp_path / "registry" / "daily").iterdir() if "staging" in p.name]


def test_promote_and_rollback_walk_the_history(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    for seed in range(3):
        registry.publish("daily", _saved(tmp_path, seed), _manifest(0.2))
    registry.promote("daily", "v0001")
    registry.promote("daily", "v0002")
    registry.promote("daily", "v0003")
    assert registry.production("daily").version == "v0003"
    assert registry.rollback("daily").version == "v0002"
    assert registry.rollback("daily").version == "v0001"
    with pytest.raises(RegistryError, match="nothing earlier"):
        registry.rollback("daily")
    assert registry.production("daily").version == "v0001"
    actions = [(h["action"], h["version"]) for h in registry.history("daily")]
    assert actions[-2:] == [("rollback", "v0002"), ("rollback", "v0001")]


def test_unknown_names_and_versions_are_clear_errors(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.publish("daily", _saved(tmp_path, 1), _manifest(0.2))
    with pytest.raises(RegistryError, match=r"no version v0009 of 'daily'.*v0001"):
        registry.promote("daily", "v0009")
    with pytest.raises(RegistryError, match="not a version"):
        registry.get("daily", "latest")
    with pytest.raises(RegistryError, match="bad registry name"):
        registry.publish("../escape", _saved(tmp_path, 1), {})
    with pytest.raises(RegistryError, match="no production version"):
        registry.rollback("daily")


def test_a_failed_publish_leaves_nothing_behind(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.publish("daily", _saved(tmp_path, 1), _manifest(0.2))
    registry.promote("daily", "v0001")
    with pytest.raises(RegistryError, match="does not exist"):
        registry.publish(
            "daily", _saved(tmp_path, 2), _manifest(0.3), extra={"recs": tmp_path / "missing"}
        )
    assert [v.version for v in registry.versions("daily")] == ["v0001"]
    assert registry.production("daily").version == "v0001"
    assert sorted(p.name for p in (tmp_path / "daily").iterdir() if p.is_dir()) == ["v0001"]


def test_gate_refuses_a_regressed_model_and_production_stays(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    good, _ = publish_trained(registry, "daily", _trained(1), _manifest(0.40))
    assert registry.production("daily") == good
    with pytest.raises(GateRefused, match=r"refused: ndcg@10 0\.3000 vs production v0001 0\.4000"):
        publish_trained(registry, "daily", _trained(2), _manifest(0.30), margin=0.05)
    assert registry.production("daily").version == "v0001"
    assert [v.version for v in registry.versions("daily")] == ["v0001"]
    # within the margin passes; forcing a regression is recorded as such
    within, decision = publish_trained(registry, "daily", _trained(3), _manifest(0.385))
    assert decision.passed and registry.production("daily") == within
    forced, _ = publish_trained(registry, "daily", _trained(4), _manifest(0.1), force=True)
    assert forced.manifest["gate"]["forced"] is True


def test_gate_arithmetic() -> None:
    assert check_gate({"ndcg@10": 0.5}, None).passed
    with pytest.raises(Exception, match="no finite 'ndcg@10'"):
        check_gate({"recall@10": 0.5}, None)


def test_promote_checked_applies_the_gate(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.publish("daily", _saved(tmp_path, 1), _manifest(0.5))
    registry.publish("daily", _saved(tmp_path, 2), _manifest(0.2))
    promote_checked(registry, "daily", "v0001")
    with pytest.raises(GateRefused):
        promote_checked(registry, "daily", "v0002")
    assert registry.production("daily").version == "v0001"


def _write_recs(path: Path, trained: TrainedModel) -> Path:
    recs = trained.model.recommend(np.arange(len(trained.users)), 5)
    table = pa.table(
        {
            "user_id": np.repeat(trained.users.ids, 5),
            "item_id": trained.items.ids[recs.items.ravel()],
            "score": recs.scores.ravel(),
        }
    )
    pq.write_table(table, path)
    return path


def test_rollback_restores_exactly_the_previous_recommendations(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    first, second = _trained(1), _trained(2)
    recs1 = _write_recs(tmp_path / "r1.parquet", first)
    recs2 = _write_recs(tmp_path / "r2.parquet", second)
    assert recs1.read_bytes() != recs2.read_bytes()
    art = "recommendations.parquet"
    publish_trained(registry, "daily", first, _manifest(0.4), artifacts={art: recs1})
    publish_trained(registry, "daily", second, _manifest(0.4), artifacts={art: recs2})
    assert production_recommendations(registry, "daily").read_bytes() == recs2.read_bytes()
    registry.rollback("daily")
    assert production_recommendations(registry, "daily").read_bytes() == recs1.read_bytes()
    served = load_production(registry, "daily")
    assert served is not None and served.version.version == "v0001"
    users = np.arange(len(first.users))
    np.testing.assert_array_equal(
        served.trained.model.recommend(users, 5).items, first.model.recommend(users, 5).items
    )
    assert served.trained.users == first.users and served.trained.items == first.items


def _read_loop(root: str, stop_after: int, queue) -> None:  # runs in a child process
    registry = ModelRegistry(Path(root))
    seen, errors = set(), []
    for _ in range(stop_after):
        try:
            version = registry.production("daily")
            if version is None or version.manifest["tag"] != version.version:
                errors.append(repr(version))
            seen.add(version.version)
        except Exception as exc:
            errors.append(repr(exc))
    queue.put((sorted(seen), errors))


def test_promote_and_rollback_are_atomic_under_concurrent_reads(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    source = _saved(tmp_path, 1)
    for number in (1, 2, 3):
        registry.publish("daily", source, {"metrics": {}, "tag": f"v{number:04d}"})
    registry.promote("daily", "v0001")

    stop = threading.Event()
    thread_errors: list[str] = []
    thread_seen: set[str] = set()

    def reader() -> None:
        own = ModelRegistry(tmp_path)  # its own manifest cache, like another server
        while not stop.is_set():
            try:
                version = own.production("daily")
                assert version is not None and version.manifest["tag"] == version.version
                thread_seen.add(version.version)
            except Exception as exc:
                thread_errors.append(repr(exc))

    threads = [threading.Thread(target=reader) for _ in range(3)]
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_read_loop, args=(str(tmp_path), 3000, queue))
    process.start()
    for thread in threads:
        thread.start()
    try:
        for _ in range(150):
            registry.promote("daily", "v0002")
            registry.promote("daily", "v0003")
            registry.rollback("daily")  # back to v0002
            registry.rollback("daily")  # back to v0001
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    seen, errors = queue.get(timeout=60)
    process.join(timeout=60)
    assert thread_errors == [] and errors == []
    assert thread_seen == {"v0001", "v0002", "v0003"}
    assert set(seen) <= {"v0001", "v0002", "v0003"} and seen
    assert registry.production("daily").version == "v0001"
    assert registry.rollback_target("daily") is None  # each promote was undone by a rollback
