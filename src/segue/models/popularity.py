"""The baseline everyone must beat: items ranked by how many listeners have them."""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from segue.dataset.side import SideInfo
from segue.models.base import Reason, Recommender


class PopularityRecommender(Recommender):
    """Scores = number of distinct users who interacted with the item (same for every user)."""

    name = "popularity"

    def __init__(self) -> None:
        self.listeners: np.ndarray = np.zeros(0)

    def fit(self, interactions: sp.csr_matrix, side: SideInfo | None = None) -> Self:
        self._train = interactions.tocsr()
        self.listeners = np.asarray((self._train > 0).sum(axis=0)).ravel().astype(np.float32)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.listeners, (len(users), len(self.listeners))).copy()

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        return self.score(np.zeros(history.shape[0], dtype=np.int64))

    def explain(self, user: int, item: int) -> Reason:
        return Reason("popular", value=float(self.listeners[item]))

    def _state(self) -> dict[str, np.ndarray]:
        return {"listeners": self.listeners}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.listeners = state["listeners"]
