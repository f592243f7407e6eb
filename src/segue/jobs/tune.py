"""``segue tune`` as a job: search each model's settings on validation, keep the winners.

One seeded random 8:1:1 split is made; its test part is dropped before anything is fitted
(:class:`segue.eval.TuningData` has no field for it), every model is searched on the same
train/valid parts, and the chosen settings are merged into ``<data_dir>/tuned.json`` with
their validation score and the data's fingerprint. ``segue train``, ``segue evaluate`` and the
daily flow read that file (:mod:`segue.registry.tuned`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from segue.dataset import Interactions, SideInfo
from segue.eval import TuningData, make_protocol
from segue.eval.search import SearchResult, search, tunable, write_search_report
from segue.progress import Progress, no_progress
from segue.registry.tuned import data_fingerprint, save_tuned, tuned_entry


@dataclass(frozen=True)
class TuneOutcome:
    results: list[SearchResult]
    saved: Path
    report: Path


def tune_models(
    data: Interactions,
    names: Sequence[str],
    data_dir: Path,
    *,
    budget_s: float = 300.0,
    trials: int | None = None,
    seed: int = 0,
    metric: str = "ndcg",
    k: int = 10,
    side: SideInfo | None = None,
    report: Path | None = None,
    progress: Progress = no_progress,
) -> TuneOutcome:
    """Search each of ``names`` for ``budget_s`` seconds; save and report the winners."""
    for name in names:
        tunable(name)  # an untunable name fails before the split
    split = make_protocol("random").split(data, seed)
    parts = TuningData(split.train, split.valid)
    del split  # the test part goes no further
    fingerprint = data_fingerprint(data)
    results = []
    for done, name in enumerate(names):
        progress(f"tuning {name}", done, len(names))
        result = search(
            name, parts, budget_s=budget_s, trials=trials, seed=seed, metric=metric, k=k, side=side
        )
        results.append(result)
        saved = save_tuned(data_dir, {name: tuned_entry(
            result.best_params,
            score=result.best_score,
            default_score=result.default_score,
            metric=f"{metric}@{k}",
            trials=len(result.trials),
            fingerprint=fingerprint,
            budget_s=budget_s,
            seed=seed,
        )})  # fmt: skip
    progress("tuning", len(names), len(names))
    folder = report if report is not None else Path(data_dir) / "tuning"
    return TuneOutcome(results, saved, write_search_report(results, folder))
