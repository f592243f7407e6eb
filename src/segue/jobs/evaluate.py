"""Offline evaluation as a job: registered models through :mod:`segue.eval`'s runner.

``evaluate_models`` keeps the one-split answer the demo prints; ``evaluate_protocol`` is the
full run behind ``segue evaluate`` (any protocol, several seeds, mean ± std, a report).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segue.dataset import Interactions, SideInfo
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
) -> Evaluation:
    """Every named model on each seed's identical split; optionally a report folder.

    ``params``: settings per model (``segue tune``'s); the others run with their defaults.
    """
    evaluation = evaluate(
        data,
        registry_candidates(list(names), params),
        protocol,
        seeds=seeds,
        k=k,
        side=side,
        progress=progress,
    )
    if report is not None:
        write_report(evaluation, report)
    return evaluation
