"""Collaborative-filtering scores for (user, item) pairs, in the store's vocabularies.

The click model uses the CF score of each candidate as a feature, and candidate generation
ranks by it. Models see matrix rows and columns only, so the ids are mapped here once per
vocabulary; users or items the model never saw get NaN (the click model has a flag for it).
"""

from __future__ import annotations

import numpy as np

from segue.dataset import IdMap
from segue.models import Recommender


class CFScorer:
    """A trained recommender plus its id maps, aligned to a user and an item vocabulary."""

    def __init__(
        self,
        model: Recommender,
        model_users: IdMap,
        model_items: IdMap,
        user_ids: np.ndarray,
        item_ids: np.ndarray,
    ) -> None:
        self.model = model
        self.user_map = model_users.to_index(list(user_ids), allow_unknown=True)
        self.item_map = model_items.to_index(list(item_ids), allow_unknown=True)
        self.inverse_items = np.full(len(model_items), -1, dtype=np.int64)
        known = self.item_map >= 0
        self.inverse_items[self.item_map[known]] = np.flatnonzero(known)
        factors = getattr(model, "user_factors", None), getattr(model, "item_factors", None)
        self._factors = factors if all(f is not None for f in factors) else None

    def pair_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Score per (user, item) position pair; NaN where the model knows either not."""
        mu, mi = self.user_map[np.asarray(users)], self.item_map[np.asarray(items)]
        out = np.full(len(mu), np.nan)
        ok = (mu >= 0) & (mi >= 0)
        if not ok.any():
            return out
        if self._factors is not None:
            uf, vf = self._factors
            out[ok] = np.einsum("ij,ij->i", uf[mu[ok]], vf[mi[ok]])
            return out
        unique, inverse = np.unique(mu[ok], return_inverse=True)
        for start in range(0, len(unique), 512):
            block = unique[start : start + 512]
            scores = np.asarray(self.model.score(block))
            sel = (inverse >= start) & (inverse < start + len(block))
            where = np.flatnonzero(ok)[sel]
            out[where] = scores[inverse[sel] - start, mi[where]]
        return out

    def top_items(self, users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(items, scores) of each user's top ``k`` unseen items, in the aligned item
        positions; -1 / -inf where a user is unknown to the model (or, for factor models, has
        no plays at all) or the list runs short."""
        users = np.asarray(users)
        items = np.full((len(users), k), -1, dtype=np.int64)
        scores = np.full((len(users), k), -np.inf)
        mu = self.user_map[users]
        known = mu >= 0
        if self._factors is not None:
            # a user without plays has the zero vector: every score is 0, nothing to rank
            known &= self._factors[0][np.maximum(mu, 0)].any(axis=1)
        known = np.flatnonzero(known)
        if len(known):
            recs = self.model.recommend(mu[known], k=k, batch_size=4096)
            got = recs.items[:, :k]
            mapped = np.where(got >= 0, self.inverse_items[np.maximum(got, 0)], -1)
            items[known, : got.shape[1]] = mapped
            scores[known, : got.shape[1]] = np.where(mapped >= 0, recs.scores[:, :k], -np.inf)
        return items, scores
