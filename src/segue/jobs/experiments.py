"""An experiment's report from what serving logged: ``segue experiments report``.

The unit is the listener (assignment is per listener): each listener in the experiment's
exposures contributes their lists, the lists' attributed plays, conversions and minutes
(:func:`segue.jobs.online_metrics.attributed_lists`). Per variant against the first variant
(the control): CTR per list by the delta method, conversions and minutes per listener by
Welch, Holm across the metrics, and the sample-ratio check of listeners against the shares.

Each effect is also looked at on everything up to each day (the trajectory): the always-valid
mSPRT p-value over those looks, and — when the experiment has a planned duration — the
O'Brien–Fleming decision (Lan–DeMets spending over the planned days, :func:`sequential_decision`),
which spends all of alpha by the planned end and so sits near alpha under daily peeking where
the mSPRT, valid without a plan, is conservative.

Guardrails are read beside the effects, not corrected with them — they stop a variant that
wins on its metric by hurting the service: the skip rate per listener (Welch: breached when
the whole interval is above the control's), the share of lists served by the fallback path
(Newcombe: breached likewise) and serving time's p99 (breached when more than 25 % and 2 ms
above the control's, a threshold rather than a test: tail latency has no useful CLT).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from segue.data.model import EventType
from segue.errors import SegueError
from segue.experiments.book import ExperimentBook
from segue.experiments.stats import (
    Effect,
    RatioCheck,
    cuped,
    delta_ratio,
    holm,
    msprt_p,
    newcombe,
    obrien_fleming_bounds,
    obrien_fleming_spent,
    sample_ratio,
    welch,
)
from segue.jobs.listening import DAY_MS, day_start_ms
from segue.jobs.online_metrics import lists_on_days
from segue.store import Store

#: The report's significance level: the fixed-horizon tests', and the alpha the
#: group-sequential boundaries spend over a planned experiment.
ALPHA = 0.05


@dataclass(frozen=True)
class Sequential:
    """The group-sequential decision at the latest look of a planned experiment: the
    O'Brien–Fleming-like boundary (Lan–DeMets spending of ``ALPHA`` over the planned days,
    information fraction = day of the plan / planned days), the look's z, the alpha spent by
    this look, and the first day of the plan whose |z| reached its boundary (stop for
    efficacy then; None: keep going)."""

    day: int
    planned_days: int
    z: float
    bound: float
    spent: float
    crossed_day: int | None
    #: every look's (day of the plan, z, boundary), in order
    path: tuple[tuple[int, float, float], ...] = ()

    @property
    def fraction(self) -> float:
        return self.day / self.planned_days

    @property
    def crossed(self) -> bool:
        return self.crossed_day is not None

    def verdict(self) -> str:
        """One cell of the report's table."""
        if self.crossed_day is not None:
            return f"**crossed on day {self.crossed_day}: stop for efficacy**"
        return f"z {self.z:+.2f} inside ±{self.bound:.2f}: continue"


@dataclass(frozen=True)
class VariantMetric:
    metric: str
    variant: str
    effect: Effect
    adjusted_p: float
    #: the mSPRT p-value after the last daily look: safe to read every day and stop on
    always_valid_p: float = 1.0
    #: the O'Brien–Fleming decision at the latest look; None without a planned duration
    sequential: Sequential | None = None


#: Days before the report's first day whose listening is the CUPED covariate.
PRE_DAYS = 14
#: The primary ratio metric's name in the report.
CTR = "CTR per list (delta method)"
#: The always-valid test's mixture sd, in the control's per-listener sds: about the smallest
#: effect worth finding (benchmarks/bench_experiments.py measures its false-positive rate).
TAU_SDS = 0.1


@dataclass(frozen=True)
class Look:
    """One daily look at one effect, on everything served up to that day."""

    day: dt.date
    metric: str
    variant: str
    effect: Effect
    always_valid_p: float
    #: the O'Brien–Fleming boundary at this look on the effect's own scale (the difference
    #: at which |z| reaches the look's z boundary); None without a planned duration
    boundary: float | None = None


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
    trajectory: list[Look] = field(default_factory=list)
    #: per variant, the share of the minutes difference's variance CUPED removed
    cuped: dict[str, float] = field(default_factory=dict)
    #: the experiment's planned duration in days (None: no plan, read the always-valid p)
    planned_days: int | None = None

    def plot(self, folder: Path) -> Path | None:
        """``cumulative-effects.png`` in ``folder``: each metric's effect on everything up to
        each day with its 95 % interval, per variant; None without looks (needs the
        ``reports`` extra)."""
        if not self.trajectory:
            return None
        from segue.extras import require

        require("reports", "the experiment report's plots")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt

        metrics = list(dict.fromkeys(look.metric for look in self.trajectory))
        fig, axes = plt.subplots(len(metrics), 1, figsize=(7, 2.6 * len(metrics)), squeeze=False)
        for ax, metric in zip(axes[:, 0], metrics, strict=True):
            for variant in dict.fromkeys(x.variant for x in self.trajectory):
                seq = [x for x in self.trajectory if x.metric == metric and x.variant == variant]
                days = [x.day for x in seq]
                ax.plot(days, [x.effect.difference for x in seq], marker="o", label=variant)
                ax.fill_between(days, [x.effect.low for x in seq], [x.effect.high for x in seq],
                                alpha=0.2)  # fmt: skip
                edge = [(x.day, x.boundary) for x in seq if x.boundary is not None]
                if edge:  # crossing the dashed line is the O'Brien–Fleming decision
                    color = ax.get_lines()[-1].get_color()
                    label = f"{variant}: O'Brien–Fleming boundary"
                    x = [d for d, _ in edge]
                    for sign in (1, -1):
                        y = [sign * b for _, b in edge]
                        ax.plot(x, y, linestyle="--", color=color, linewidth=0.9,
                                label=label if sign > 0 else None)  # fmt: skip
            ax.axhline(0.0, color="grey", linewidth=0.8)
            ax.xaxis.set_major_locator(mdates.DayLocator())
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
            ax.set_title(f"{metric}: variant − {self.control}, cumulative", fontsize=9)
            ax.tick_params(labelsize=7)
        axes[0, 0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.autofmt_xdate()
        fig.tight_layout()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "cumulative-effects.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        return path

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
            f"| metric | variant | {self.control} | variant's | difference [95 % CI] | p (Holm) "
            "| always-valid p | O'Brien–Fleming |",
            "|---|---|---:|---:|---|---:|---:|---|",
        ]
        for m in self.metrics:
            e = m.effect
            obf = "no plan" if m.sequential is None else m.sequential.verdict()
            lines.append(
                f"| {m.metric} | {m.variant} | {e.control:.4g} | {e.treatment:.4g} | "
                f"{e.difference:+.4g} [{e.low:+.4g}, {e.high:+.4g}] | {m.adjusted_p:.2g} | "
                f"{m.always_valid_p:.2g} | {obf} |"
            )
        lines += ["", *reading_guide(self.planned_days)]
        lines += _sequential_table([(m.metric, m.variant, m.sequential) for m in self.metrics])
        for variant, cut in self.cuped.items():
            lines.append(
                f"CUPED on each listener's minutes in the {PRE_DAYS} days before cut the "
                f"variance of {variant}'s minutes difference by {cut:.0%}."
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


def reading_guide(planned_days: int | None) -> list[str]:
    """Which of the report's numbers to read when (the report's and ``segue simulate``'s)."""
    guide = [
        "Which number to read when: **peeking daily with a plan**: the O'Brien–Fleming "
        "boundary (Lan–DeMets alpha spending over the planned days: stop for efficacy once a "
        "metric's |z| reaches it); **without a plan**: the always-valid p (the mSPRT over the "
        "daily looks, safe to read every day and stop on); **at the planned end**: the "
        f"fixed-horizon p with Holm across the metrics (p (Holm) < {ALPHA:g})."
    ]
    if planned_days is None:
        guide += [
            "",
            "This experiment has no planned duration (`segue experiments create ... --days "
            "N`): while peeking, the always-valid p is the one to read.",
        ]
    else:
        guide += [
            "",
            f"Planned: {planned_days} days, one look a day; each metric's boundary spends "
            f"alpha = {ALPHA:g} by day {planned_days} (Holm across the metrics stays for the "
            "final look).",
        ]
    return guide


def _sequential_table(rows: Sequence[tuple[str, str, Sequential | None]]) -> list[str]:
    """The group-sequential details: each metric's look, z, boundary and alpha spent."""
    planned = [(metric, variant, s) for metric, variant, s in rows if s is not None]
    if not planned:
        return []
    lines = ["", "## Group-sequential test (O'Brien–Fleming, Lan–DeMets spending)", "",
             "| metric | variant | look | z | boundary | alpha spent | crossed |",
             "|---|---|---|---:|---:|---:|---|"]  # fmt: skip
    for metric, variant, s in planned:
        crossed = "no" if s.crossed_day is None else f"**day {s.crossed_day}**"
        lines.append(
            f"| {metric} | {variant} | day {s.day} of {s.planned_days} | {s.z:+.2f} | "
            f"±{s.bound:.2f} | {s.spent:.3g} | {crossed} |"
        )
    return lines


def sequential_decision(
    looks: Sequence[Effect], days: Sequence[int], planned_days: int, alpha: float = ALPHA
) -> Sequential | None:
    """The O'Brien–Fleming decision over one effect's looks (each on everything up to its
    day; ``days[k]``: look k's day of the plan, 1 = the first day): each look's z (signed,
    from its own test's p-value, so the t-based Welch and the delta method keep their own
    calibration) against the Lan–DeMets boundary at fraction ``day / planned_days``. Looks
    past the planned end are not part of the plan and are left out; None when no look is
    within it. One function so that the closed-loop A/A benchmark counts what the report
    shows."""
    if planned_days < 1:
        raise SegueError(f"a planned duration is at least 1 day, got {planned_days}")
    if len(looks) != len(days):
        raise SegueError(f"{len(looks)} looks but {len(days)} days")
    inside = [(int(d), e) for d, e in zip(days, looks, strict=True) if 1 <= d <= planned_days]
    if not inside:
        return None
    fractions = [d / planned_days for d, _ in inside]
    bounds = obrien_fleming_bounds(fractions, alpha)
    z = []
    for _, e in inside:
        p = max(e.p, 1e-300) if np.isfinite(e.p) else 1.0  # a finite z, however clear
        z.append(float(np.sign(e.difference) * sps.norm.isf(p / 2)) if p < 1 else 0.0)
    crossed = next((d for (d, _), zk, b in zip(inside, z, bounds, strict=True)
                    if abs(zk) >= b), None)  # fmt: skip
    path = tuple((d, zk, float(b)) for (d, _), zk, b in zip(inside, z, bounds, strict=True))
    return Sequential(
        day=inside[-1][0],
        planned_days=planned_days,
        z=z[-1],
        bound=float(bounds[-1]),
        spent=float(obrien_fleming_spent(fractions[-1], alpha)),
        crossed_day=crossed,
        path=path,
    )


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
    table = lists_on_days(store, start, end, window_s=window_s, conversion_ms=conversion_ms)
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
    per_listener = _per_listener(table)
    listeners = {v: int((per_listener.index.get_level_values(0) == v).sum()) for v in names}
    lists = {v: int((table["variant"] == v).sum()) for v in names}
    shares = [v.share for v in plan.experiment.variants]
    split = sample_ratio([listeners[v] for v in names], shares) if sum(listeners.values()) else None
    report = ExperimentReport(experiment_id, names[0], listeners, lists, split)
    report.planned_days = plan.days
    pre = _minutes_before(store, start, set(table["user_id"]))
    found = [
        (metric, variant, effect) for metric, variant, effect, _ in _effects(table, names, pre)
    ]
    if not found:
        return report
    plain = {v: e for m, v, e, _ in _effects(table, names) if m == "minutes per listener"}
    report.cuped = {
        v: 1 - ((e.high - e.low) / (plain[v].high - plain[v].low)) ** 2
        for m, v, e in found
        if m.endswith("(CUPED)") and plain[v].high > plain[v].low
    }
    report.trajectory = _trajectory(table, names, pre)
    report.guardrails = [g for v in names[1:] for g in _guardrails(table, names[0], v)]
    adjusted = holm([effect.p for _, _, effect in found])
    always = {(look.metric, look.variant): look.always_valid_p for look in report.trajectory}
    sequential = _sequential(report.trajectory, start, plan.days)
    report.trajectory = _with_boundaries(report.trajectory, sequential, start)
    report.metrics = [
        VariantMetric(
            metric,
            variant,
            effect,
            float(p),
            always.get((metric, variant), 1.0),
            sequential.get((metric, variant)),
        )
        for (metric, variant, effect), p in zip(found, adjusted, strict=True)
    ]
    return report


def _sequential(
    trajectory: Sequence[Look], start: dt.date, planned_days: int | None
) -> dict[tuple[str, str], Sequential | None]:
    """Each (metric, variant)'s O'Brien–Fleming decision over its daily looks, the plan's
    days counted from the report's first day (by default the day the experiment started)."""
    if planned_days is None:
        return {}
    seqs: dict[tuple[str, str], list[Look]] = {}
    for look in trajectory:
        seqs.setdefault((look.metric, look.variant), []).append(look)
    return {
        key: sequential_decision(
            [x.effect for x in seq], [(x.day - start).days + 1 for x in seq], planned_days
        )
        for key, seq in seqs.items()
    }


def _with_boundaries(
    trajectory: Sequence[Look],
    sequential: dict[tuple[str, str], Sequential | None],
    start: dt.date,
) -> list[Look]:
    """Each look with its O'Brien–Fleming boundary on the effect's scale, for the plot: the
    z boundary times the standard error the look's own test implies (|difference| / |z|, so
    the line is crossed exactly when the decision says so; from the interval when z is 0)."""
    out = []
    for look in trajectory:
        s = sequential.get((look.metric, look.variant))
        day = (look.day - start).days + 1
        step = next((entry for entry in s.path if entry[0] == day), None) if s else None
        if step is None:
            out.append(look)
            continue
        _, z, bound = step
        e = look.effect
        se = abs(e.difference / z) if z else (e.high - e.low) / (2 * sps.norm.isf(ALPHA / 2))
        out.append(replace(look, boundary=float(bound * se)))
    return out


def _minutes_before(store: Store, start: dt.date, users: set[str]) -> dict[str, float]:
    """Each listener's minutes of plays (Focus Mode left out) in the ``PRE_DAYS`` days before
    the report's first day: the CUPED covariate, untouched by the experiment."""
    end_ms = day_start_ms(start)
    log = store.interactions([EventType.PLAY], start_ms=end_ms - PRE_DAYS * DAY_MS, end_ms=end_ms)
    if not len(log):
        return {}
    ids = np.asarray(log.user_ids)[log.user].astype(str)
    ms = pd.Series(np.nan_to_num(log.ms_played.astype(np.float64)))
    minutes = ms.groupby(ids).sum() / 60_000
    return {u: float(v) for u, v in minutes.items() if u in users}


def _per_listener(table: pd.DataFrame) -> pd.DataFrame:
    return table.groupby(["variant", "user_id"]).agg(
        lists=("clicked", "size"),
        clicked=("clicked", "sum"),
        converted=("converted", "sum"),
        minutes=("ms", lambda ms: ms.sum() / 60_000),
    )


def _effects(
    table: pd.DataFrame, names: list[str], pre: dict[str, float] | None = None
) -> list[tuple[str, str, Effect, float]]:
    """(metric, variant, effect against the first variant, the control's per-listener sd).
    With ``pre`` (each listener's minutes before the experiment), minutes per listener are
    CUPED-adjusted: the same effect, a narrower interval where listening habits persist."""
    per_listener = _per_listener(table)
    present = set(per_listener.index.get_level_values(0))
    if names[0] not in present or len(per_listener.loc[names[0]]) < 2:
        return []
    control = per_listener.loc[names[0]]
    ctr = control["clicked"] / control["lists"]
    out: list[tuple[str, str, Effect, float]] = []
    for variant in names[1:]:
        if variant not in present or len(per_listener.loc[variant]) < 2:
            continue
        mine = per_listener.loc[variant]
        effect = delta_ratio(
            (control["clicked"].to_numpy(), control["lists"].to_numpy()),
            (mine["clicked"].to_numpy(), mine["lists"].to_numpy()),
        )
        out.append((CTR, variant, effect, float(ctr.std(ddof=1))))
        a = control["converted"].to_numpy(np.float64)
        b = mine["converted"].to_numpy(np.float64)
        out.append(("conversions per listener", variant, welch(a, b), float(a.std(ddof=1))))
        a = control["minutes"].to_numpy(np.float64)
        b = mine["minutes"].to_numpy(np.float64)
        metric = "minutes per listener"
        if pre is not None:
            before = np.array([pre.get(u, 0.0) for u in (*control.index, *mine.index)])
            if before.std() > 0:
                adjusted, _ = cuped(np.concatenate([a, b]), before)
                a, b = adjusted[: len(a)], adjusted[len(a) :]
                metric = "minutes per listener (CUPED)"
        out.append((metric, variant, welch(a, b), float(a.std(ddof=1))))
    return out


def _trajectory(
    table: pd.DataFrame, names: list[str], pre: dict[str, float] | None = None
) -> list[Look]:
    """Each effect on everything up to each day, with its always-valid mSPRT p-value: what
    an operator who looks every day sees, and may stop on without inflating errors."""
    days = sorted(set(table["day"]))
    looks: dict[tuple[str, str], list[tuple[dt.date, Effect, float]]] = {}
    for day in days:
        for metric, variant, effect, sd in _effects(table[table["day"] <= day], names, pre):
            looks.setdefault((metric, variant), []).append((day, effect, sd))
    out: list[Look] = []
    for (metric, variant), seq in looks.items():
        p = always_valid_p([e for _, e, _ in seq], seq[-1][2])
        out += [
            Look(day, metric, variant, e, float(pv)) for (day, e, _), pv in zip(seq, p, strict=True)
        ]
    return out


def always_valid_p(looks: Sequence[Effect], sd: float) -> np.ndarray:
    """The report's always-valid p-value after each of ``looks`` (one effect, on everything up
    to each look, in order): the mSPRT with a mixture sd of ``TAU_SDS`` times ``sd`` (the
    control's per-listener sd), each look's variance from its 95 % interval. One function so
    that the closed-loop A/A benchmark measures exactly what the report shows; all ones when a
    look has no usable variance (nothing to test)."""
    differences = np.array([e.difference for e in looks])
    # the 95 % interval's half-width over 1.96 is the estimate's standard error
    variances = np.array([((e.high - e.low) / (2 * 1.959964)) ** 2 for e in looks])
    usable = np.isfinite(variances) & (variances > 0) & np.isfinite(differences)
    if len(looks) == 0 or not usable.all() or not sd > 0:
        return np.ones(len(looks))
    return msprt_p(differences, variances, TAU_SDS * sd)


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
