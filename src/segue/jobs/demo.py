"""The main job end to end on embedded defaults: synth → store → train → evaluate → samples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segue.data.synth import SynthParams
from segue.jobs.evaluate import ModelResult, evaluate_models
from segue.jobs.ingest import SynthReport, load_synthetic_world
from segue.jobs.progress import Progress, no_progress
from segue.jobs.recommend import Suggestion, recommend_for_user
from segue.jobs.train import load_interactions, load_side_info, train_models
from segue.models import MODELS
from segue.store import Store


@dataclass(frozen=True)
class DemoResult:
    world: SynthReport
    results: list[ModelResult]
    samples: dict[str, dict[str, list[Suggestion]]]  # user id -> model -> suggestions


def run_demo(
    store: Store,
    params: SynthParams,
    model_dir: Path,
    *,
    models: list[str] | None = None,
    k: int = 10,
    sample_users: int = 3,
    progress: Progress = no_progress,
) -> DemoResult:
    """Build and import a world, evaluate every model on one split, train on all, sample."""
    names = models or list(MODELS)
    world = load_synthetic_world(store, params, progress=progress)
    data = load_interactions(store)
    side = load_side_info(store, data)
    results = evaluate_models(data, names, k=k, seed=params.seed, progress=progress, side=side)
    trained = train_models(data, names, model_dir, progress=progress, side=side)
    active = np.flatnonzero(data.user_counts() >= 5)
    rng = np.random.default_rng(params.seed)
    picked = rng.choice(active, size=min(sample_users, len(active)), replace=False)
    # sample lists from the best model and from item-kNN, whose reasons name a played item
    best = max(results, key=lambda r: r.metrics["ndcg"]).model
    shown = [name for name in dict.fromkeys([best, "itemknn"]) if name in trained]
    samples = {}
    for user_index in sorted(int(u) for u in picked):
        user_id = str(data.users.to_ids(np.array([user_index]))[0])
        samples[user_id] = {
            name: recommend_for_user(store, trained[name], user_id, k=5) for name in shown
        }
    return DemoResult(world, results, samples)
