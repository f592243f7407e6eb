"""Where next best action keeps its models: the click model file, and the CF model it reads.

The click model is saved as ``<model_dir>/nba/click_model.pkl``; the CF model it uses for
candidates and for the CF-score feature is the registry model ``cf_name`` (default ``als``)
saved by ``segue train`` in the same folder, trained here if missing.
"""

from __future__ import annotations

from pathlib import Path

from segue.dataset.from_store import load_interactions
from segue.errors import SegueError
from segue.nba.cf import CFScorer
from segue.nba.training import (
    NBAContext,
)
from segue.progress import Progress, no_progress
from segue.registry.trained import load_trained, train_models
from segue.store import Store

CLICK_MODEL = Path("nba") / "click_model.pkl"


def click_model_path(model_dir: Path) -> Path:
    return Path(model_dir) / CLICK_MODEL


def cf_scorer(
    store: Store, model_dir: Path, cf_name: str, ctx: NBAContext, progress: Progress = no_progress
) -> CFScorer:
    """The saved CF model (trained and saved now if missing), aligned to the context."""
    try:
        trained = load_trained(model_dir, cf_name)
    except SegueError:
        progress(f"training {cf_name}", 0, 1)
        trained = train_models(load_interactions(store), [cf_name], model_dir)[cf_name]
    return CFScorer(trained.model, trained.users, trained.items, ctx.audience.ids, ctx.items.ids)
