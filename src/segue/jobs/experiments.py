"""An experiment's report from what serving logged: ``segue experiments report``.

The unit is the listener (assignment is per listener): each listener in the experiment's
exposures contributes their lists, the lists' attributed plays, conversions and minutes
(:func:`segue.jobs.online_metrics.attributed_lists`). Per variant against the first variant
(the control): CTR per list by the delta method, conversions and minutes per listener by
Welch, Holm across the metrics, and the sample-ratio check of listeners against the shares.

Guardrails are read beside the effects, not corrected with them — they stop a variant that
wins on its metric by hurting the service: the skip rate per listener (Welch: breached when
the whole interval is above the control's), the share of lists served by the fallback path
(Newcombe: breached likewise) and serving time's p99 (breached when more than 25 % and 2 ms
above the control's, a threshold rather than a test: tail latency has no useful CLT).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from segue.errors import SegueError
from segue.experiments.book import ExperimentBook
from segue.experiments.stats import (
    Effect,
    RatioCheck,
    delta_ratio,
    holm,
    newcombe,
    sample_ratio,
    welch,
)
from segue.jobs.online_metrics import DAY_MS, attributed_lists, day_start_ms
from segue.store import Store


@dataclass(frozen=True)
class VariantMetric:
    metric: str
    variant: str
    effect: Effect
    adjusted_p: float


@dataclass(frozen=True)
class Guardrail:
    name: str
    variant: str
    control: float
    treatment: float
    detail: str
    breached: bool


#: Serving time's p99 may grow this much (relative, and absolute ms) before it is a breach.
LATENCY_TOLERANCE = (0.25, 2.0)


@dataclass
class ExperimentReport:
    experiment: str
    control: str
    listeners: dict[str, int]
    lists: dict[str, int]
    split: RatioCheck | None
    metrics: list[VariantMetric] = field(default_factory=list)
    guardrails: list[Guardrail] = field(default_factory=list)

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
        if self.guardrails:
            lines += ["", "## Guardrails", "",
                      f"| guardrail | variant | {self.control} | variant's | test | verdict |",
                      "|---|---|---:|---:|---|---|"]  # fmt: skip
            for g in self.guardrails:
                verdict = "**BREACHED**" if g.breached else "held"
                lines.append(
                    f"| {g.name} | {g.variant} | {g.control:.4g} | {g.treatment:.4g} | "
                    f"{g.detail} | {verdict} |"
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
    report.guardrails = [g for v in names[1:] for g in _guardrails(table, names[0], v)]
    adjusted = holm([effect.p for _, _, effect in found]) if found else []
    report.metrics = [
        VariantMetric(metric, variant, effect, float(p))
        for (metric, variant, effect), p in zip(found, adjusted, strict=True)
    ]
    return report


def _guardrails(table: pd.DataFrame, control: str, variant: str) -> list[Guardrail]:
    """The variant's guardrails against the control (see the module docstring)."""
    a, b = table[table["variant"] == control], table[table["variant"] == variant]
    if a.empty or b.empty:
        return []
    out: list[Guardrail] = []
    rates = []
    for part in (a, b):
        per = part.groupby("user_id")[["played", "skips"]].sum()
        per = per[per.sum(axis=1) > 0]
        rates.append((per["skips"] / per.sum(axis=1)).to_numpy(np.float64))
    if all(len(r) >= 2 for r in rates):
        e = welch(rates[0], rates[1])
        ci = f"Welch, 95 % CI [{e.low:+.3g}, {e.high:+.3g}]"
        out.append(
            Guardrail("skip rate per listener", variant, e.control, e.treatment, ci, e.low > 0)
        )
    falls = [(int((p["path"] == "fallback").sum()), len(p)) for p in (a, b)]
    e = newcombe(falls[0], falls[1])
    ci = f"Newcombe, 95 % CI [{e.low:+.3g}, {e.high:+.3g}]"
    out.append(
        Guardrail("lists from the fallback path", variant, e.control, e.treatment, ci, e.low > 0)
    )
    times = [p["served_us"].dropna().to_numpy(np.float64) / 1000 for p in (a, b)]
    if all(len(t) for t in times):
        ca, cb = (float(np.percentile(t, 99)) for t in times)
        relative, absolute = LATENCY_TOLERANCE
        out.append(Guardrail("serving time p99 (ms)", variant, ca, cb,
                             f"limit {ca * (1 + relative):.3g} ms and +{absolute:g} ms",
                             cb > ca * (1 + relative) and cb - ca > absolute))  # fmt: skip
    return out
