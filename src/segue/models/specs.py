"""The models a hybrid may combine, by name, with the weighting each trains on.

Kept apart from :mod:`segue.models.names` (which adds the hybrid itself) so that the hybrid
can build its components by name without importing the module that lists it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from segue.dataset import BM25, Binary, Recency, Weighting
from segue.errors import SegueError
from segue.models.base import Recommender
from segue.models.content import ContentRecommender
from segue.models.ease import EASERecommender
from segue.models.genremix import GenreMixRecommender
from segue.models.itemknn import ItemKNNRecommender
from segue.models.mf import ALSRecommender, BPRRecommender
from segue.models.ncf import NCFRecommender
from segue.models.popularity import PopularityRecommender
from segue.models.twotower import TwoTowerRecommender
from segue.models.userknn import UserKNNRecommender


@dataclass(frozen=True)
class ModelSpec:
    """How to build a model and which weighting of the interactions it trains on."""

    factory: Callable[[], Recommender]
    weighting: Weighting
    cls: type[Recommender]

    def build(self, **params: Any) -> Recommender:
        """The model with ``params`` (tuned settings) over the factory's own; none: as is.

        The factory's settings are read back through ``params()`` so that a name whose
        factory fixes some of them (``trending``'s measure) keeps those under tuned ones.
        """
        if not params:
            return self.factory()
        return self.cls(**{**self.factory().params(), **params})


COMPONENTS: dict[str, ModelSpec] = {
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
    "genremix": ModelSpec(GenreMixRecommender, Binary(), GenreMixRecommender),
    "ncf": ModelSpec(NCFRecommender, Binary(), NCFRecommender),
    "twotower": ModelSpec(TwoTowerRecommender, Binary(), TwoTowerRecommender),
}


def component_spec(name: str) -> ModelSpec:
    try:
        return COMPONENTS[name]
    except KeyError:
        raise SegueError(
            f"unknown component model {name!r}; available: {', '.join(COMPONENTS)}"
        ) from None
