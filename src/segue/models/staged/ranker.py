"""The learned ranker: LightGBM with the LambdaRank objective over the candidates' features.

Each listener's candidates form one query group; the label is 1 for a candidate the listener
went on to play in the held-out part of an *inner* split of the training matrix (never the
test). Boosting stops early on NDCG@10 of a separate set of inner listeners, so the number of
trees is chosen on validation, not fixed by hand. The booster is saved as LightGBM's text
model (``ranker.txt``) in the model folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segue.errors import SegueError

#: Rows under which prediction runs on one thread.
SMALL_BATCH = 4096


class Ranker:
    """A LambdaRank booster with named features; ``importance()`` gives each feature's gain."""

    def __init__(
        self,
        feature_names: Sequence[str],
        n_estimators: int = 500,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 50,
        seed: int = 0,
        threads: int = 2,
    ) -> None:
        self.feature_names = list(feature_names)
        self.params: dict[str, Any] = {
            "objective": "lambdarank",
            "lambdarank_truncation_level": 20,
            "learning_rate": learning_rate,
            "num_leaves": num_leaves,
            "min_data_in_leaf": min_child_samples,
            "feature_fraction": 0.9,
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": threads,
            "verbose": -1,
        }
        self.n_estimators = n_estimators
        self.booster: Any = None
        self.best_iteration = 0
        self.valid_ndcg = float("nan")

    def fit(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        groups: np.ndarray,
        valid: tuple[np.ndarray, Callable[[np.ndarray], float]] | None = None,
        every: int = 10,
        patience: int = 60,
    ) -> Ranker:
        """``groups``: pairs per listener, in row order.

        ``valid``: (features, quality of their scores) for early stopping, checked every
        ``every`` trees and stopped ``patience`` trees after the best. The caller's quality
        breaks ties as serving does (by item index): LightGBM's own NDCG metric is optimistic
        about tied scores, so it picks the first, coarse trees, whose scores tie a lot.
        """
        import lightgbm as lgb

        if features.shape[1] != len(self.feature_names):
            raise SegueError(
                f"ranker: {features.shape[1]} feature columns for {len(self.feature_names)} names"
            )
        if labels.sum() == 0:
            raise SegueError("ranker: no candidate is a held-out play; nothing to learn from")
        train = lgb.Dataset(
            features, labels, group=groups, feature_name=self.feature_names, free_raw_data=True
        )
        best = {"iteration": self.n_estimators, "value": -np.inf}

        def check(env: Any) -> None:
            done = env.iteration + 1
            if valid is None or (done % every and done != self.n_estimators):
                return
            value = valid[1](env.model.predict(valid[0], num_iteration=done))
            if value > best["value"] + 1e-6:
                best.update(iteration=done, value=value)
            elif done - best["iteration"] >= patience:
                raise lgb.callback.EarlyStopException(int(best["iteration"]) - 1, [])

        params = {key: v for key, v in self.params.items() if key not in ("metric", "eval_at")}
        self.booster = lgb.train(params, train, self.n_estimators, callbacks=[check])
        self.best_iteration = int(best["iteration"])
        self.valid_ndcg = float(best["value"]) if valid is not None else float("nan")
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        if self.booster is None:
            raise SegueError("ranker: not trained yet")
        if len(features) == 0:
            return np.zeros(0, dtype=np.float32)
        # one listener's few hundred candidates (a served request): one thread, as waking
        # OpenMP's pool costs more than it saves and the serving threads share two cores
        threads = 1 if len(features) < SMALL_BATCH else self.params["num_threads"]
        return self.booster.predict(
            features, num_iteration=self.best_iteration, num_threads=threads
        ).astype(np.float32)

    def importance(self) -> dict[str, float]:
        """Total gain per feature, largest first (LightGBM's ``gain`` importance)."""
        if self.booster is None:
            raise SegueError("ranker: not trained yet")
        gains = self.booster.feature_importance("gain", iteration=self.best_iteration)
        pairs = sorted(zip(self.feature_names, gains, strict=True), key=lambda p: -p[1])
        return {name: float(gain) for name, gain in pairs}

    def save(self, path: Path) -> None:
        self.booster.save_model(str(path), num_iteration=self.best_iteration)

    def load(self, path: Path) -> None:
        import lightgbm as lgb

        self.booster = lgb.Booster(model_file=str(path))
        self.best_iteration = self.booster.current_iteration()
