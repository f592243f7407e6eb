"""The baselines everyone must beat, and the fallback when nothing else can answer.

Three flavours share one class: *global* (how many listeners an item has), *trending* (the same
sum over a matrix weighted by :class:`~segue.dataset.Recency`, so recent listening counts more)
and *per country* (each listener's country's own chart, blended with the global one so that a
country with few listeners still gets a sensible list).
"""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from segue.dataset.side import SideInfo
from segue.errors import SegueError
from segue.models.base import Reason, Recommender


class PopularityRecommender(Recommender):
    """Scores = the item's share of listening (same for all users of one country)."""

    name = "popularity"

    def __init__(self, measure: str = "listeners", country_weight: float = 0.0) -> None:
        if measure not in ("listeners", "weight"):
            raise SegueError("measure must be 'listeners' (distinct users) or 'weight' (sum)")
        if not 0.0 <= country_weight <= 1.0:
            raise SegueError("country_weight must lie in [0, 1]")
        self.measure = measure
        self.country_weight = country_weight
        self.listeners: np.ndarray = np.zeros(0)
        self.by_country: np.ndarray = np.zeros((0, 0), dtype=np.float32)
        self.user_country: np.ndarray = np.zeros(0, dtype=np.int64)

    def params(self) -> dict[str, object]:
        return {"measure": self.measure, "country_weight": self.country_weight}

    def fit(self, interactions: sp.csr_matrix, side: SideInfo | None = None) -> Self:
        self._train = interactions.tocsr()
        x = self._train if self.measure == "weight" else (self._train > 0).astype(np.float32)
        self.listeners = np.asarray(x.sum(axis=0)).ravel().astype(np.float32)
        n_users = self._train.shape[0]
        self.user_country = np.full(n_users, -1, dtype=np.int64)
        self.by_country = np.zeros((0, self._train.shape[1]), dtype=np.float32)
        if self.country_weight > 0:
            if side is None or side.users is None:
                raise SegueError("per-country popularity needs user demographics (side.users)")
            self.user_country = side.users.country[:n_users].astype(np.int64)
            n_countries = len(side.users.countries)
            known = self.user_country >= 0
            onehot = sp.csr_matrix(
                (
                    np.ones(known.sum(), np.float32),
                    (self.user_country[known], np.flatnonzero(known)),
                ),
                shape=(n_countries, n_users),
            )
            self.by_country = np.asarray((onehot @ x).todense(), dtype=np.float32)
        return self

    def _shares(self, users: np.ndarray) -> np.ndarray:
        total = self.listeners.sum() or 1.0
        shares = np.broadcast_to(self.listeners / total, (len(users), len(self.listeners))).copy()
        if self.country_weight > 0 and len(self.by_country):
            countries = self.user_country[users]
            known = countries >= 0
            local = self.by_country[countries[known]]
            local /= np.maximum(local.sum(axis=1, keepdims=True), 1e-12)
            w = self.country_weight
            shares[known] = (1 - w) * shares[known] + w * local
        return shares

    def score(self, users: np.ndarray) -> np.ndarray:
        return self._shares(np.asarray(users, dtype=np.int64))

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        total = self.listeners.sum() or 1.0
        return np.broadcast_to(
            self.listeners / total, (history.shape[0], len(self.listeners))
        ).copy()

    def shared_scores(self) -> np.ndarray | None:
        """The global shares, when no per-country part moves them per listener."""
        if self.country_weight > 0 and len(self.by_country):
            return None
        total = self.listeners.sum() or 1.0
        return self.listeners / total

    def explain(self, user: int, item: int) -> Reason:
        if self.country_weight > 0 and self.user_country[user] >= 0:
            return Reason("popular_in_your_country")
        if self.measure == "weight":
            return Reason("trending")
        return Reason("popular", value=float(self.listeners[item]))

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "listeners": self.listeners,
            "by_country": self.by_country,
            "user_country": self.user_country,
        }

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.listeners = state["listeners"]
        self.by_country = state["by_country"]
        self.user_country = state["user_country"]
