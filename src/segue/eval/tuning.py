"""Hyperparameter tuning on the validation part only: a plain, seeded grid.

The test part cannot influence a tuned choice because it never reaches the code that scores
one: :func:`tune` splits the data, keeps ``TuningData(train, valid)`` and drops the test part
before anything is fitted; :func:`tune_on` and everything under it only ever see that object,
which has no test field. Models are fitted on train and ranked with train masked, against the
validation pairs, under the same protocol rule the test evaluation uses.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from segue.dataset import Binary, Interactions, SideInfo, Weighting
from segue.errors import SegueError
from segue.eval.metrics import ranking_scores
from segue.eval.protocols import Protocol, make_protocol
from segue.eval.scoring import Factory, fit_and_rank

#: Metrics a tuner may maximise (means over validation users at k).
TUNABLE = ("precision", "recall", "f1", "ndcg", "hit_rate", "mrr", "map")


@dataclass(frozen=True, eq=False)
class TuningData:
    """What tuning may look at: the training and validation parts, and nothing else."""

    train: Interactions
    valid: Interactions

    def __post_init__(self) -> None:
        if not self.train.same_space(self.valid):
            raise SegueError("TuningData: train and valid index different users or items")
        if len(self.valid) == 0:
            raise SegueError(
                "TuningData: the validation part is empty; use a protocol with a validation "
                "share (e.g. random 8:1:1) to tune"
            )


@dataclass(frozen=True)
class TuningRow:
    params: dict[str, Any]
    metrics: dict[str, float]
    fit_seconds: float


@dataclass(frozen=True)
class TuningResult:
    """The winning parameters (first in grid order among equals) and every row tried."""

    best_params: dict[str, Any]
    best_score: float
    metric: str
    k: int
    table: list[TuningRow] = field(default_factory=list)


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination, keys in sorted order so the walk is the same on every run."""
    for name, values in grid.items():
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise SegueError(f"grid[{name!r}] must be a non-empty list of values, got {values!r}")
    names = sorted(grid)
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*(grid[n] for n in names))
    ]


def tune(
    factory: Factory,
    grid: Mapping[str, Sequence[Any]],
    data: Interactions,
    seed: int = 0,
    *,
    weighting: Weighting | None = None,
    protocol: Protocol | str = "random",
    k: int = 10,
    metric: str = "ndcg",
    side: SideInfo | None = None,
) -> TuningResult:
    """Split ``data`` by ``protocol`` with ``seed``, then :func:`tune_on` train and valid."""
    split = make_protocol(protocol).split(data, seed)
    return tune_on(
        factory,
        grid,
        TuningData(split.train, split.valid),
        weighting=weighting,
        protocol=protocol,
        k=k,
        metric=metric,
        side=side,
    )


def tune_on(
    factory: Factory,
    grid: Mapping[str, Sequence[Any]],
    data: TuningData,
    *,
    weighting: Weighting | None = None,
    protocol: Protocol | str = "random",
    k: int = 10,
    metric: str = "ndcg",
    side: SideInfo | None = None,
) -> TuningResult:
    """Fit every grid point on ``data.train``, score it on ``data.valid`` at ``k``."""
    if metric not in TUNABLE:
        raise SegueError(f"cannot tune for {metric!r}; choose one of {', '.join(TUNABLE)}")
    if k < 1:
        raise SegueError(f"k must be at least 1, got {k}")
    if not isinstance(data, TuningData):
        raise SegueError(f"tune_on needs TuningData(train, valid), got {type(data).__name__}")
    holdout = make_protocol(protocol).holdout_of(data.train, data.valid)
    relevant = holdout.relevant[holdout.users]
    rows = []
    for params in grid_points(grid):
        ranked = fit_and_rank(factory, params, weighting or Binary(), holdout, k, side)
        metrics = ranking_scores(ranked.items, relevant, k).mean()
        rows.append(TuningRow(params, metrics, ranked.fit_seconds))
    best = max(range(len(rows)), key=lambda i: (rows[i].metrics[metric], -i))
    return TuningResult(
        best_params=dict(rows[best].params),
        best_score=rows[best].metrics[metric],
        metric=metric,
        k=k,
        table=rows,
    )
