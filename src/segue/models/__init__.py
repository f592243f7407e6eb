"""Recommenders behind one protocol (``base.Recommender``) and the registry of their names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from segue.dataset import BM25, Binary, Weighting
from segue.errors import SegueError
from segue.models.base import Reason, Recommendations, Recommender
from segue.models.content import ContentRecommender
from segue.models.ease import EASERecommender
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
    "itemknn": ModelSpec(ItemKNNRecommender, BM25(), ItemKNNRecommender),
    "userknn": ModelSpec(UserKNNRecommender, BM25(), UserKNNRecommender),
    "als": ModelSpec(ALSRecommender, BM25(k1=1.2, b=0.75), ALSRecommender),
    "bpr": ModelSpec(BPRRecommender, Binary(), BPRRecommender),
    "ease": ModelSpec(EASERecommender, Binary(), EASERecommender),
    "content": ModelSpec(ContentRecommender, BM25(), ContentRecommender),
}


def model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise SegueError(f"unknown model {name!r}; available: {', '.join(MODELS)}") from None


__all__ = ["MODELS", "ModelSpec", "Reason", "Recommendations", "Recommender", "model_spec"]
