"""An experiment's report from what serving logged: ``segue experiments report``.

The unit is the listener (assignment is per listener): each listener in the experiment's
exposures contributes their lists, the lists' attributed plays, conversions and minutes
(:func:`segue.jobs.online_metrics.attributed_lists`). Per variant against the first variant
(the control): CTR per list by the delta method, conversions and minutes per listener by
Welch, Holm across the metrics, and the sample-ratio check of listeners against the shares.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from segue.errors import SegueError
from segue.experiments.book import ExperimentBook
from segue.experiments.stats import Effect, RatioCheck, delta_ratio, holm, sample_ratio, welch
from segue.jobs.online_metrics import DAY_MS, attributed_lists, day_start_ms
from segue.store import Store


@dataclass(frozen=True)
class VariantMetric:
    metric: str
    variant: str
    effect: Effect
    adjusted_p: float


@dataclass
class ExperimentReport:
    experiment: str
    control: str
    listeners: dict[str, int]
    lists: dict[str, int]
    split: RatioCheck | None
    metrics: list[VariantMetric] = field(default_factory=list)

    def markdown(self) -> str:
        counts = ", ".join(
            f"{v} {self.listeners[v]:,} listeners / {self.lists[v]:,} lists" for v in self.listeners
        )
        lines = [f"# Experiment {self.experiment}", "", f"Exposed: {counts}.", ""]
        if self.split is not None:
            verdict = "**sample-ratio mismatch: do not read the effects**" if (
                self.split.mismatch
            ) else "as designed"
            lines += [f"Sample ratio p = {self.split.p:.3g}: {verdict}.", ""]
        lines += [
            f"| metric | variant | {self.control} | variant's | difference [95 % CI] | p (Holm) |",
            "|---|---|---:|---:|---|---:|",
        ]
        for m in self.metrics:
            e = m.effect
            lines.append(
                f"| {m.metric} | {m.variant} | {e.control:.4g} | {e.treatment:.4g} | "
                f"{e.difference:+.4g} [{e.low:+.4g}, {e.high:+.4g}] | {m.adjusted_p:.2g} |"
            )
        return "\n".join(lines) + "\n"


def experiment_report(
    store: Store,
    book: ExperimentBook,
    experiment_id: str,
    start: dt.date,
    end: dt.date,
    *,
    window_s: int = 1_800,
    conversion_ms: int = 30_000,
) -> ExperimentReport:
    plan = book.get(experiment_id)
    names = [v.name for v in plan.experiment.variants]
    start_ms, end_ms = day_start_ms(start), day_start_ms(end) + DAY_MS
    table = attributed_lists(
        store, start_ms, end_ms, window_ms=window_s * 1000, conversion_ms=conversion_ms
    )
    if table.empty:
        raise SegueError(f"no lists were served from {start} to {end}")
    table["variant"] = [x.get(experiment_id) for x in table["experiments"]]
    table = table[table["variant"].notna()]
    if table.empty:
        raise SegueError(
            f"no list served from {start} to {end} was in experiment {experiment_id!r} "
            f"({plan.status}): start it with `segue experiments start {experiment_id}`"
        )
    table["clicked"] = (table["played"] > 0).astype(float)
    per_listener = table.groupby(["variant", "user_id"]).agg(
        lists=("clicked", "size"),
        clicked=("clicked", "sum"),
        converted=("converted", "sum"),
        minutes=("ms", lambda ms: ms.sum() / 60_000),
    )
    listeners = {v: int((per_listener.index.get_level_values(0) == v).sum()) for v in names}
    lists = {v: int((table["variant"] == v).sum()) for v in names}
    shares = [v.share for v in plan.experiment.variants]
    split = sample_ratio([listeners[v] for v in names], shares) if sum(listeners.values()) else None
    report = ExperimentReport(experiment_id, names[0], listeners, lists, split)
    if listeners[names[0]] < 2:
        return report
    control = per_listener.loc[names[0]]
    found: list[tuple[str, str, Effect]] = []
    for variant in names[1:]:
        if listeners[variant] < 2:
            continue
        mine = per_listener.loc[variant]
        found.append(
            (
                "CTR per list (delta method)",
                variant,
                delta_ratio(
                    (control["clicked"].to_numpy(), control["lists"].to_numpy()),
                    (mine["clicked"].to_numpy(), mine["lists"].to_numpy()),
                ),
            )
        )
        for metric, column in (
            ("conversions per listener", "converted"),
            ("minutes per listener", "minutes"),
        ):
            found.append(
                (
                    metric,
                    variant,
                    welch(
                        control[column].to_numpy(np.float64), mine[column].to_numpy(np.float64)
                    ),
                )
            )
    adjusted = holm([effect.p for _, _, effect in found]) if found else []
    report.metrics = [
        VariantMetric(metric, variant, effect, float(p))
        for (metric, variant, effect), p in zip(found, adjusted, strict=True)
    ]
    return report
