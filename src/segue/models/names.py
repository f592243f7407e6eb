"""The registry of model names (``segue train --models``, the registry, serving).

Every model a hybrid may combine (:mod:`segue.models.specs`) plus the hybrid itself.
"""

from __future__ import annotations

from segue.dataset import Counts
from segue.errors import SegueError
from segue.models.hybrid import HybridRecommender
from segue.models.specs import COMPONENTS, ModelSpec
from segue.models.staged.pipeline import StagedRecommender

MODELS: dict[str, ModelSpec] = {
    **COMPONENTS,
    # components apply their own weightings to the raw counts the hybrid receives
    "hybrid": ModelSpec(
        lambda: HybridRecommender(components=("als", "ease", "userknn")),
        Counts(),
        HybridRecommender,
    ),
    # retrieval → LightGBM LambdaRank → calibrated re-ranking; generators weight the counts
    "pipeline": ModelSpec(StagedRecommender, Counts(), StagedRecommender),
}


#: Registered but trained only when named (``--models ncf,twotower``): they need torch (the
#: ``nlu`` extra) and take a minute or more where the others take seconds. The staged
#: ``pipeline`` fits its generators twice and a LightGBM ranker (~1.5 min on Last.fm 2K).
OPT_IN: tuple[str, ...] = ("ncf", "twotower", "pipeline")

#: What ``segue train``/``evaluate``/the demo run when no ``--models`` is given.
DEFAULT_MODELS: tuple[str, ...] = tuple(name for name in MODELS if name not in OPT_IN)


def model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise SegueError(f"unknown model {name!r}; available: {', '.join(MODELS)}") from None


__all__ = ["DEFAULT_MODELS", "MODELS", "OPT_IN", "ModelSpec", "model_spec"]
