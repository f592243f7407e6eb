"""A hybrid of several recommenders with blend weights learned on held-out data.

Each component's scores are standardised per user (z-scores over the items it can score), so
that an ALS dot product and an item-kNN sum can be added; the hybrid score is their weighted
sum. Weights are learned in ``fit`` on a validation part carved from the training data (about
``holdout`` of each user's items), by coordinate ascent on NDCG@10, and the components are then
refitted on everything. Nothing outside the training matrix is ever looked at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from segue.dataset.side import SideInfo
from segue.dataset.splits import inner_holdout
from segue.errors import SegueError
from segue.models.base import Reason, Recommender, top_k
from segue.models.specs import component_spec
from segue.ranking import hit_matrix, ndcg_per_user, standardise

_WEIGHT_STEPS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


class HybridRecommender(Recommender):
    name = "hybrid"

    def __init__(
        self,
        components: Sequence[str] = ("itemknn", "popularity"),
        weights: Sequence[float] | None = None,
        holdout: float = 0.1,
        tuning_users: int = 1000,
        refit: bool = True,
        seed: int = 0,
        component_params: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """``component_params``: settings per component name (``segue tune``'s), so a hybrid
        of tuned models is built from the tuned models, not from their defaults."""
        if not components:
            raise SegueError("a hybrid needs at least one component")
        if "hybrid" in components:
            raise SegueError("a hybrid cannot contain itself")
        if weights is not None and len(weights) != len(components):
            raise SegueError(f"{len(components)} components but {len(weights)} weights")
        if not 0 < holdout < 1:
            raise SegueError("holdout must lie strictly between 0 and 1")
        self.components = list(components)
        self.weights = None if weights is None else [float(w) for w in weights]
        self.holdout = holdout
        self.tuning_users = tuning_users
        self.refit = refit
        self.seed = seed
        self.component_params = {
            name: dict(values) for name, values in (component_params or {}).items()
        }
        unknown = set(self.component_params) - set(self.components)
        if unknown:
            raise SegueError(f"component_params name models not in the hybrid: {sorted(unknown)}")
        self.models: list[Recommender] = []
        self.validation_ndcg: float | None = None

    def params(self) -> dict[str, Any]:
        return {
            "components": self.components,
            "weights": self.weights,
            "holdout": self.holdout,
            "tuning_users": self.tuning_users,
            "refit": self.refit,
            "seed": self.seed,
            "component_params": self.component_params,
        }

    # -- fitting -------------------------------------------------------------------------
    def fit(self, interactions: sp.csr_matrix, side: SideInfo | None = None) -> Self:
        """``interactions`` holds raw values (counts); each component applies its weighting."""
        raw = interactions.tocsr().astype(np.float32)
        if self.weights is None:
            inner_train, inner_valid = inner_holdout(raw, self.holdout, self.seed)
            models = self._fit_components(inner_train, side)
            self.weights, self.validation_ndcg = self._learn_weights(
                models, inner_train, inner_valid
            )
            if not self.refit:
                self.models, self._train = models, raw
                return self
        self.models = self._fit_components(raw, side, self.weights)
        self._train = raw
        return self

    def _fit_components(
        self, raw: sp.csr_matrix, side: SideInfo | None, weights: list[float] | None = None
    ) -> list[Recommender]:
        """Fit every component, or only those with a non-zero weight (the rest stay unfitted
        placeholders and are never scored)."""
        fitted = []
        for index, name in enumerate(self.components):
            spec = component_spec(name)
            model = spec.build(**self.component_params.get(name, {}))
            if weights is None or weights[index]:
                model.fit(spec.weighting.apply(raw), side)
            fitted.append(model)
        return fitted

    def _learn_weights(
        self, models: list[Recommender], train: sp.csr_matrix, valid: sp.csr_matrix
    ) -> tuple[list[float], float]:
        rng = np.random.default_rng(self.seed)
        users = np.flatnonzero(np.diff(valid.indptr) > 0)
        if len(users) > self.tuning_users:
            users = np.sort(rng.choice(users, self.tuning_users, replace=False))
        if len(users) == 0:
            return [1.0] * len(models), float("nan")
        seen = train[users]
        rows = np.repeat(np.arange(len(users)), np.diff(seen.indptr))
        standardised = []
        for model in models:
            scores = standardise(model.score(users).astype(np.float32))
            scores[rows, seen.indices] = -np.inf
            standardised.append(scores)
        relevant = valid[users]
        n_relevant = np.diff(relevant.indptr)

        def quality(weights: list[float]) -> float:
            if not any(weights):
                return -1.0
            blend = sum(w * s for w, s in zip(weights, standardised, strict=True) if w)
            ranked, _ = top_k(np.asarray(blend), 10)
            return float(ndcg_per_user(hit_matrix(ranked, relevant), n_relevant).mean())

        weights = [1.0] * len(models)
        best = quality(weights)
        for _ in range(3):  # coordinate ascent; converges in a pass or two
            improved = False
            for c in range(len(models)):
                for step in _WEIGHT_STEPS:
                    trial = weights.copy()
                    trial[c] = step
                    value = quality(trial)
                    if value > best + 1e-9:
                        best, weights, improved = value, trial, True
            if not improved:
                break
        total = sum(weights)
        return [w / total for w in weights], best

    # -- scoring -------------------------------------------------------------------------
    def score(self, users: np.ndarray) -> np.ndarray:
        return self._blend(lambda model: model.score(users))

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        return self._blend(lambda model: model.score_history(history))

    def _blend(self, part: Callable[[Recommender], np.ndarray]) -> np.ndarray:
        """Weighted sum of standardised component scores; zero-weight components are skipped."""
        assert self.weights is not None
        total = None
        for weight, model in zip(self.weights, self._fitted_models(), strict=True):
            if weight:
                term = standardise(part(model).astype(np.float32, copy=False))
                term *= weight
                total = term if total is None else total + term
        assert total is not None
        return total

    def explain(self, user: int, item: int) -> Reason:
        """The reason of the component that contributed most to this item's score."""
        models = self._fitted_models()
        assert self.weights is not None
        contributions = [
            w * standardise(m.score(np.array([user])).astype(np.float32))[0, item] if w else -np.inf
            for w, m in zip(self.weights, models, strict=True)
        ]
        return models[int(np.argmax(contributions))].explain(user, item)

    def similar_items(self, items: Sequence[int] | np.ndarray, k: int = 10) -> np.ndarray:
        for model in self._fitted_models():
            try:
                return model.similar_items(items, k)
            except SegueError:
                continue
        return super().similar_items(items, k)

    def _fitted_models(self) -> list[Recommender]:
        if not self.models:
            raise SegueError("model 'hybrid' is not fitted yet; call fit() first")
        return self.models

    # -- persistence ---------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return {"validation_ndcg": self.validation_ndcg}

    def _save_parts(self, folder: Path) -> None:
        assert self.weights is not None
        for index, (model, weight) in enumerate(zip(self.models, self.weights, strict=True)):
            if weight:  # zero-weight components were never fitted
                model.save(folder / f"component-{index}-{model.name}")

    def _load_parts(self, folder: Path, meta: dict[str, Any]) -> None:
        self.validation_ndcg = meta.get("validation_ndcg")
        self.models = [
            component_spec(name).cls.load(folder / f"component-{index}-{name}")
            if weight
            else component_spec(name).factory()
            for index, (name, weight) in enumerate(
                zip(self.components, self.weights or [], strict=True)
            )
        ]
