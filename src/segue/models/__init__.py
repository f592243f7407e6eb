"""Recommenders behind one protocol (``base.Recommender``) and the registry of their names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from segue.dataset import BM25, Binary, Counts, Recency, Weighting
from segue.errors import SegueError
from segue.models.base import Reason, Recommendations, Recommender
from segue.models.content import ContentRecommender
from segue.models.ease import EASERecommender
from segue.models.hybrid import HybridRecommender
from segue.models.itemknn import ItemKNNRecommender
from segue.models.mf import ALSRecommender, BPRRecommender
from segue.models.popularity import PopularityRecommender
from segue.models.userknn import UserKNNRecommender


@dataclass(frozen=True)
class ModelSpec:
    """How to build a model and which weighting of the interactions it trains on."""

    factory: Callable[[], Recommender]
    weighting: Weighting
    cls: type[Recommender]


MODELS: dict[str, ModelSpec] = {
    "popularity": ModelSpec(PopularityRecommender, Binary(), PopularityRecommender),
    "trending": ModelSpec(
        lambda: PopularityRecommender(measure="weight"), Recency(14.0), PopularityRecommender
    ),
    "popularity_country": ModelSpec(
        lambda: PopularityRecommender(country_weight=0.7), Binary(), PopularityRecommender
    ),
    "itemknn": ModelSpec(ItemKNNRecommender, BM25(), ItemKNNRecommender),
    "userknn": ModelSpec(UserKNNRecommender, BM25(), UserKNNRecommender),
    "als": ModelSpec(ALSRecommender, BM25(k1=1.2, b=0.75), ALSRecommender),
    "bpr": ModelSpec(BPRRecommender, Binary(), BPRRecommender),
    "ease": ModelSpec(EASERecommender, BM25(k1=1.2, b=0.75), EASERecommender),
    "content": ModelSpec(ContentRecommender, BM25(), ContentRecommender),
    # components apply their own weightings to the raw counts the hybrid receives
    "hybrid": ModelSpec(
        lambda: HybridRecommender(components=("als", "ease", "userknn")),
        Counts(),
        HybridRecommender,
    ),
}


def model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise SegueError(f"unknown model {name!r}; available: {', '.join(MODELS)}") from None


__all__ = ["MODELS", "ModelSpec", "Reason", "Recommendations", "Recommender", "model_spec"]
