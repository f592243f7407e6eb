"""A fitted model with the id maps it was trained on: fitted, saved and loaded as one.

The registry stores these folders as versions; ``segue train`` writes them under the model
directory. Models see only matrix indices, so the id maps travel with every saved model.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segue.dataset import IdMap, Interactions, SideInfo
from segue.errors import SegueError
from segue.models import Recommender
from segue.models.base import fit_on
from segue.models.names import model_spec
from segue.progress import Progress, no_progress
from segue.registry.similar import SimilarTable, similar_table


@dataclass(frozen=True)
class TrainedModel:
    name: str
    model: Recommender
    users: IdMap
    items: IdMap
    fit_seconds: float = 0.0
    #: each item's neighbours, computed when saved (``segue.registry.similar``); None for a
    #: model fitted in this process and not saved, or saved by an older segue
    similar: SimilarTable | None = None


def train_models(
    data: Interactions,
    names: list[str],
    model_dir: Path | None = None,
    progress: Progress = no_progress,
    side: SideInfo | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    similar: bool = False,
) -> dict[str, TrainedModel]:
    """Fit each named model on all of ``data``; save under ``model_dir/<name>`` if given
    (with its similar-items table when ``similar``: what serves, not what is compared).

    ``params`` holds settings per model name (``segue tune``'s, :mod:`segue.registry.tuned`);
    a model without an entry is built with its defaults.
    """
    trained = {}
    for done, name in enumerate(names):
        progress("training", done, len(names))
        spec = model_spec(name)
        started = time.perf_counter()
        model = fit_on(spec.build(**(params or {}).get(name, {})), data, spec.weighting, side)
        result = TrainedModel(name, model, data.users, data.items, time.perf_counter() - started)
        if model_dir is not None:
            save_trained(result, model_dir / name, similar=similar)
        trained[name] = result
    progress("training", len(names), len(names))
    return trained


def save_trained(trained: TrainedModel, path: Path, *, similar: bool = False) -> None:
    """The model and its id maps; with ``similar``, its similar-items table too (computed
    here, once per version that will serve, so serving looks neighbours up instead of
    ranking the catalog per request)."""
    trained.model.save(path)
    trained.users.save(path / "users.idmap")
    trained.items.save(path / "items.idmap")
    if similar:
        table = trained.similar or similar_table(trained.model, trained.model._fitted())
        table.save(path)


def load_trained(model_dir: Path, name: str) -> TrainedModel:
    """The model ``name`` saved by ``segue train`` under ``model_dir/<name>``."""
    path = model_dir / name
    if not (path / "params.json").is_file():
        raise SegueError(f"no trained {name!r} model in {model_dir}; run `segue train` first")
    return load_trained_at(path, name)


def load_trained_at(path: Path, name: str) -> TrainedModel:
    """The model of registry name ``name`` saved in the folder ``path`` (any folder name)."""
    if not (path / "params.json").is_file():
        raise SegueError(f"{path} holds no saved model (params.json is missing)")
    spec = model_spec(name)
    return TrainedModel(
        name,
        spec.cls.load(path),
        IdMap.load(path / "users.idmap"),
        IdMap.load(path / "items.idmap"),
        similar=SimilarTable.load(path),
    )
