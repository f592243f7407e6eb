"""Offline evaluation as a job: registered models through :mod:`segue.eval`'s runner.

``evaluate_models`` keeps the one-split answer the demo prints; ``evaluate_protocol`` is the
full run behind ``segue evaluate`` (any protocol, several seeds, mean ± std, a report).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segue.data.log import InteractionLog
from segue.dataset import Interactions, SideInfo
from segue.errors import SegueError
from segue.eval import Evaluation, RandomProtocol, evaluate, registry_candidates
from segue.eval.report import write_report
from segue.progress import Progress, no_progress


@dataclass(frozen=True)
class ModelResult:
    """One model's test-split figures (means over users with test items)."""

    model: str
    metrics: dict[str, float]
    fit_seconds: float
    recommend_seconds: float


def evaluate_models(
    data: Interactions,
    names: list[str],
    *,
    k: int = 10,
    seed: int = 0,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    progress: Progress = no_progress,
    side: SideInfo | None = None,
) -> list[ModelResult]:
    """Random per-user split; fit on train, rank all items with train and valid masked."""
    evaluation = evaluate(
        data,
        registry_candidates(names),
        RandomProtocol(tuple(ratios)),
        seeds=[seed],
        k=k,
        side=side,
        progress=progress,
    )
    return [
        ModelResult(r.model, dict(r.metrics), r.fit_seconds, r.recommend_seconds)
        for r in evaluation.runs
    ]


def evaluate_protocol(
    data: Interactions,
    names: Sequence[str],
    *,
    protocol: str = "random",
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    k: int = 10,
    side: SideInfo | None = None,
    report: Path | None = None,
    progress: Progress = no_progress,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    positive: Interactions | None = None,
) -> Evaluation:
    """Every named model on each seed's identical split; optionally a report folder.

    ``params``: settings per model (``segue tune``'s); the others run with their defaults.
    ``positive``: the pairs that count as relevant (:func:`positive_pairs`); None, all.
    """
    evaluation = evaluate(
        data,
        registry_candidates(list(names), params),
        protocol,
        seeds=seeds,
        k=k,
        side=side,
        progress=progress,
        positive=positive,
    )
    if report is not None:
        write_report(evaluation, report)
    return evaluation


_CONDITION = re.compile(r"\s*rating\s*(>=|<=|==|>|<)\s*([+-]?[0-9]+(?:\.[0-9]*)?)\s*")
_COMPARE: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    ">=": np.greater_equal,
    ">": np.greater,
    "<=": np.less_equal,
    "<": np.less,
    "==": np.equal,
}


def positive_pairs(log: InteractionLog, condition: str) -> Interactions:
    """The (user, item) pairs with an event meeting ``condition`` (``"rating>=4"``), in the
    same id space as ``Interactions.from_log(log)``.

    Explicit feedback says more than "the user met this item": a 2-star rating is a miss for a
    list, though still something the user saw. Events without a rating never qualify.
    """
    match = _CONDITION.fullmatch(condition)
    if match is None:
        raise SegueError(
            f"--positive {condition!r} is not a rating condition; e.g. rating>=4 "
            "(>=, >, <=, < or ==)"
        )
    op, threshold = match.groups()
    rated = ~np.isnan(log.rating)
    meets = np.zeros(len(log), dtype=bool)
    meets[rated] = _COMPARE[op](log.rating[rated], float(threshold))
    if not meets.any():
        raise SegueError(
            f"--positive {condition}: no event qualifies ({int(rated.sum()):,} of "
            f"{len(log):,} events carry a rating)"
        )
    return Interactions.from_log(log.select(meets))
