"""Trained models in and out of the registry, behind the quality gate.

``publish_trained`` is the one way a trained model becomes a registry version: it saves the
model (``registry.trained.save_trained``), writes the manifest (how it was made and how well it did)
and, when asked, promotes it — but only past the gate: a candidate whose key metric (NDCG@10 on
its held-out split) is more than ``margin`` below the production model's recorded figure is
refused and nothing is published, so a bad training run leaves production untouched.
``load_production`` / ``load_version`` give the serving side a ``TrainedModel`` back.
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segue.errors import SegueError
from segue.registry import ModelRegistry, ModelVersion, RegistryError
from segue.registry.trained import TrainedModel, load_trained_at, save_trained

#: The metric the gate compares; manifests keep ranking metrics as ``<metric>@<k>``.
KEY_METRIC = "ndcg@10"
#: Relative drop of the key metric that the gate tolerates (5% of the production value).
DEFAULT_MARGIN = 0.05
#: Ranking metrics that depend on the list length and get an ``@k`` suffix in manifests.
AT_K = ("precision", "recall", "ndcg", "hit_rate", "map", "mrr")
#: Files published with a daily version (registry artifacts): every user's top-k, their daily
#: mixes and the campaign inputs (see segue.batch.publish); a rollback brings all back.
RECOMMENDATIONS = "recommendations.parquet"
MIXES = "mixes.parquet"
CAMPAIGN = "campaign.parquet"


class GateRefused(SegueError):
    """The candidate's key metric fell more than the margin below production's."""

    def __init__(self, decision: GateDecision) -> None:
        self.decision = decision
        super().__init__(decision.reason)


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    metric: str
    candidate: float
    baseline: float | None
    baseline_version: str | None


@dataclass(frozen=True)
class LoadedVersion:
    """A registry version with its model loaded, ready to answer."""

    version: ModelVersion
    trained: TrainedModel


def metrics_at_k(metrics: Mapping[str, float], k: int) -> dict[str, float]:
    """Evaluation metrics keyed as manifests keep them (``ndcg`` → ``ndcg@10``)."""
    return {(f"{m}@{k}" if m in AT_K else m): float(v) for m, v in metrics.items()}


def check_gate(
    candidate_metrics: Mapping[str, float],
    production: ModelVersion | None,
    *,
    metric: str = KEY_METRIC,
    margin: float = DEFAULT_MARGIN,
) -> GateDecision:
    """Pass unless ``metric`` is below ``(1 - margin) ×`` production's recorded value.

    The baseline is the production manifest's figure from *its* held-out split: the
    comparison is between what each model achieved when it was trained, which is what a
    daily run can afford (re-evaluating production on today's split would retrain it).
    """
    if not 0.0 <= margin < 1.0:
        raise SegueError(f"gate margin must be in [0, 1), got {margin!r}")
    if metric not in candidate_metrics or not math.isfinite(candidate_metrics[metric]):
        raise SegueError(
            f"the candidate has no finite {metric!r} (metrics: {sorted(candidate_metrics)}); "
            "evaluate it before publishing"
        )
    value = float(candidate_metrics[metric])
    if production is None:
        return GateDecision(True, "no production model yet", metric, value, None, None)
    baseline = production.manifest.get("metrics", {}).get(metric)
    if baseline is None:
        reason = f"production {production.version} records no {metric}; nothing to compare"
        return GateDecision(True, reason, metric, value, None, production.version)
    floor = (1.0 - margin) * float(baseline)
    passed = value >= floor
    verdict = "passes" if passed else "refused"
    reason = (
        f"{verdict}: {metric} {value:.4f} vs production {production.version} {baseline:.4f} "
        f"(floor {floor:.4f} at margin {margin:.0%})"
    )
    return GateDecision(passed, reason, metric, value, float(baseline), production.version)


def build_manifest(
    trained: TrainedModel,
    metrics: Mapping[str, float],
    *,
    data: Mapping[str, Any],
    engine: str = "in-process",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What a version records: type, params, data range and counts, metrics, engine."""
    return {
        "model_type": trained.name,
        "params": trained.model.params(),
        "engine": engine,
        "training_data": dict(data),
        "n_users": len(trained.users),
        "n_items": len(trained.items),
        "metrics": dict(metrics),
        "fit_seconds": round(trained.fit_seconds, 3),
        **dict(extra or {}),
    }


def publish_trained(
    registry: ModelRegistry,
    name: str,
    trained: TrainedModel,
    manifest: Mapping[str, Any],
    *,
    promote: bool = True,
    margin: float = DEFAULT_MARGIN,
    force: bool = False,
    artifacts: Mapping[str, Path] | None = None,
) -> tuple[ModelVersion, GateDecision]:
    """Gate, save, publish and (optionally) promote one trained model.

    Raises :class:`GateRefused` (publishing nothing) when the gate says no, unless ``force``.
    """
    decision = check_gate(manifest.get("metrics", {}), registry.production(name), margin=margin)
    if not decision.passed and not force:
        raise GateRefused(decision)
    body = dict(manifest)
    body["gate"] = {
        "passed": decision.passed,
        "forced": force and not decision.passed,
        "reason": decision.reason,
        "margin": margin,
    }
    with tempfile.TemporaryDirectory(prefix="segue-publish-") as tmp:
        folder = Path(tmp) / "model"
        save_trained(trained, folder, similar=True)
        version = registry.publish(name, folder, body, extra=artifacts)
    if promote:
        registry.promote(name, version.version)
    return version, decision


def promote_checked(
    registry: ModelRegistry, name: str, version: str, *, margin: float = DEFAULT_MARGIN
) -> ModelVersion:
    """Promote a published version after the same gate ``publish_trained`` applies."""
    target = registry.get(name, version)
    production = registry.production(name)
    if production is not None and production.version != version:
        decision = check_gate(target.manifest.get("metrics", {}), production, margin=margin)
        if not decision.passed:
            raise GateRefused(decision)
    return registry.promote(name, version)


def load_version(version: ModelVersion) -> TrainedModel:
    """The model of a registry version, as ``registry.trained.load_trained`` would give it."""
    model_type = version.manifest.get("model_type")
    if not isinstance(model_type, str):
        raise RegistryError(f"{version.path}: the manifest names no model_type")
    return load_trained_at(version.path, model_type)


def load_production(registry: ModelRegistry, name: str) -> LoadedVersion | None:
    """The serving version of ``name`` with its model loaded; None before any promotion."""
    version = registry.production(name)
    if version is None:
        return None
    return LoadedVersion(version, load_version(version))


def production_recommendations(registry: ModelRegistry, name: str) -> Path | None:
    """The batch recommendations published with the serving version, if it has any."""
    version = registry.production(name)
    if version is None:
        return None
    path = version.artifacts / RECOMMENDATIONS
    return path if path.exists() else None


def data_summary(ts_ms: Any, *, events: int, users: int, items: int, pairs: int) -> dict:
    """The ``training_data`` block of a manifest: time range and row counts."""
    import numpy as np

    ts = np.asarray(ts_ms)
    valid = ts[ts > 0] if len(ts) else ts

    def iso(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")

    return {
        "start": iso(int(valid.min())) if len(valid) else None,
        "end": iso(int(valid.max())) if len(valid) else None,
        "events": int(events),
        "users": int(users),
        "items": int(items),
        "pairs": int(pairs),
    }
