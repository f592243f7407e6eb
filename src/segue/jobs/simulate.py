"""An A/B test run on the closed-loop simulator, analysed as a real one, and checked against
the simulator's truth: ``segue simulate``.

The world's listeners are split by the salted hash of :mod:`segue.experiments.assignment`;
each day the visitors get their arm's list, react, and the recommenders retrain on what they
played (:mod:`segue.simulation.loop`). The analysis sees what an experiment sees — one arm per
listener — and estimates each metric's difference with its interval
(:mod:`segue.experiments.stats`: Welch with CUPED on the pre-period, the delta method for the
per-list conversion rate, Newcombe for retention, Holm across the metrics, the sample-ratio
check). The truth runs the same days twice more, everyone in control and everyone in
treatment, on the same coins: the difference of their means is the effect the estimate is
judged against.

The per-listener metrics are also looked at after every simulated day, on everything up to
that day (``SimulationReport.looks``), with the experiment report's always-valid mSPRT
p-value and its O'Brien–Fleming decision (the run's days are the plan) over those looks:
what an operator who peeks daily sees, computed from the run's daily records rather than by
running the loop again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from segue.data.log import InteractionLog
from segue.data.model import EVENT_CODES, EventType
from segue.data.synth import SynthParams, generate_world
from segue.errors import SegueError
from segue.experiments.assignment import position
from segue.experiments.stats import (
    Effect,
    RatioCheck,
    cuped,
    delta_ratio,
    holm,
    newcombe,
    sample_ratio,
    welch,
)
from segue.jobs.experiments import Sequential, always_valid_p, reading_guide, sequential_decision
from segue.progress import Progress, no_progress
from segue.simulation.listeners import ReactionParams
from segue.simulation.loop import DAY_MS, LoopResult, run_loop, true_effect

#: Days before the experiment that make the CUPED covariate.
PRE_DAYS = 14


@dataclass(frozen=True)
class SimulatedMetric:
    """One metric's estimate from the experiment, and the simulator's true difference."""

    name: str
    effect: Effect
    truth: float
    adjusted_p: float = float("nan")
    #: the report's mSPRT p-value over the daily looks (per-listener metrics; NaN otherwise)
    always_valid_p: float = float("nan")
    #: the report's O'Brien–Fleming decision over the daily looks, the run's days being the
    #: plan (per-listener metrics; None otherwise)
    sequential: Sequential | None = None

    @property
    def covered(self) -> bool:
        return self.effect.low <= self.truth <= self.effect.high


@dataclass
class SimulationReport:
    control: str
    treatment: str
    listeners: int
    days: int
    share: float
    metrics: list[SimulatedMetric] = field(default_factory=list)
    split: RatioCheck | None = None
    #: per-listener metric -> its effect on days 1..d, for d = 1..days (the last is the
    #: one-shot estimate in ``metrics``)
    looks: dict[str, list[Effect]] = field(default_factory=dict)

    def markdown(self) -> str:
        lines = [
            f"# Simulated experiment: {self.treatment} vs {self.control}",
            "",
            f"{self.listeners:,} listeners of the synthetic world, {self.days} days, "
            f"{self.share:.0%} in treatment. Estimates from the experiment (one arm per "
            "listener); *truth*: everyone in control vs everyone in treatment, same coins.",
            "",
            "| metric | control | treatment | difference [95 % CI] | p (Holm) | always-valid p "
            "| O'Brien–Fleming | true difference | covered |",
            "|---|---:|---:|---|---:|---:|---|---:|---|",
        ]
        for m in self.metrics:
            e = m.effect
            always = "" if np.isnan(m.always_valid_p) else f"{m.always_valid_p:.2g}"
            obf = "" if m.sequential is None else m.sequential.verdict()
            lines.append(
                f"| {m.name} | {e.control:.4g} | {e.treatment:.4g} | {e.difference:+.4g} "
                f"[{e.low:+.4g}, {e.high:+.4g}] | {m.adjusted_p:.2g} | {always} | {obf} | "
                f"{m.truth:+.4g} | {'yes' if m.covered else '**no**'} |"
            )
        lines += ["", *reading_guide(self.days)]
        if self.split is not None:
            verdict = "**mismatch**" if self.split.mismatch else "as designed"
            counts = " / ".join(f"{c:,.0f}" for c in self.split.observed)
            lines += ["", f"Sample ratio (control / treatment): {counts}, p = "
                      f"{self.split.p:.3g}: {verdict}."]  # fmt: skip
        return "\n".join(lines) + "\n"


def simulate_experiment(
    world_params: SynthParams,
    control: str,
    treatment: str,
    days: int = 14,
    *,
    share: float = 0.5,
    salt: str = "simulated-experiment",
    reaction: ReactionParams | None = None,
    seed: int = 0,
    progress: Progress = no_progress,
) -> SimulationReport:
    """Run the experiment and its truth; see the module docstring."""
    if days < 1:
        raise SegueError(f"simulate at least one day, got {days}")
    if not 0 < share < 1:
        raise SegueError(f"the treatment share is in (0, 1), got {share}")
    progress("generating the world", 0, None)
    world = generate_world(world_params)
    history = world.events()
    ids = [str(u) for u in world.user_ids]
    arm = np.array([position(salt, u) < share for u in ids], dtype=np.int64)
    run = run_loop(
        world, history, [control, treatment], arm, days, reaction, seed=seed, progress=progress
    )
    all_control, all_treatment = true_effect(
        world, history, control, treatment, days, reaction, seed=seed, progress=progress
    )
    pre = pre_minutes(history, world_params)
    report = SimulationReport(control, treatment, len(ids), days, share)
    report.metrics = metrics_of(run, all_control, all_treatment, pre)
    daily = _daily_looks(run, pre)
    report.looks = {name: [effect for effect, _ in seq] for name, seq in daily.items()}
    always = {
        name: float(always_valid_p(report.looks[name], seq[-1][1])[-1])
        for name, seq in daily.items()
    }
    plan = list(range(1, days + 1))  # one look a day, the run's days being the plan
    sequential = {name: sequential_decision(looks, plan, days)
                  for name, looks in report.looks.items()}  # fmt: skip
    adjusted = holm([m.effect.p for m in report.metrics])
    report.metrics = [
        SimulatedMetric(
            m.name,
            m.effect,
            m.truth,
            float(p),
            always.get(m.name, float("nan")),
            sequential.get(m.name),
        )
        for m, p in zip(report.metrics, adjusted, strict=True)
    ]
    report.split = sample_ratio([int((arm == 0).sum()), int(arm.sum())], [1 - share, share])
    return report


def pre_minutes(history: InteractionLog, params: SynthParams) -> np.ndarray:
    """Minutes each listener played in the world's last PRE_DAYS days (the CUPED covariate)."""
    end = int(dt.datetime.combine(params.end_date, dt.time(), dt.UTC).timestamp() * 1000)
    recent = (history.type == EVENT_CODES[EventType.PLAY]) & (
        history.ts_ms >= end - PRE_DAYS * DAY_MS
    )
    out = np.zeros(len(history.user_ids))
    np.add.at(out, history.user[recent], np.nan_to_num(history.ms_played[recent] / 60_000))
    return out


#: The per-listener metrics, by their name and LoopResult field (totals over the run).
PER_LISTENER = (
    ("listening minutes per listener", "minutes"),
    ("conversions per listener (plays >= 30 s)", "conversions"),
    ("active days per listener", "active_days"),
)


def _listener_effect(run: LoopResult, values: np.ndarray, pre: np.ndarray) -> tuple[Effect, float]:
    """(Welch on the CUPED-adjusted values, treatment − control; the control's adjusted sd,
    which sets the always-valid test's mixture as the report's does). Every listener of the
    world counts, visiting or not: the experiment's unit is the assigned listener."""
    control, treated = run.arm == 0, run.arm == 1
    adjusted, _ = cuped(values.astype(np.float64), pre)
    return welch(adjusted[control], adjusted[treated]), float(adjusted[control].std(ddof=1))


def _daily_looks(run: LoopResult, pre: np.ndarray) -> dict[str, list[tuple[Effect, float]]]:
    """Each per-listener metric's (effect, control sd) on days 1..d, for every d: the running
    sums of the run's daily records, so the last look is the one-shot analysis exactly."""
    if run.daily_conversions is None or run.daily_visits is None:
        raise SegueError("the daily looks need a LoopResult with its daily records")
    daily = {
        "minutes": run.daily_minutes,
        "conversions": run.daily_conversions,
        "active_days": run.daily_visits.astype(np.int64),
    }
    out: dict[str, list[tuple[Effect, float]]] = {}
    for name, attribute in PER_LISTENER:
        running = np.cumsum(daily[attribute], axis=0)
        out[name] = [_listener_effect(run, running[d], pre) for d in range(run.days)]
    return out


def metrics_of(
    run: LoopResult, a: LoopResult, b: LoopResult, pre: np.ndarray
) -> list[SimulatedMetric]:
    """The experiment's estimates from ``run`` (its ``arm``: 0 control, 1 treatment) and their
    truths from ``a`` (everyone in control) and ``b`` (everyone in treatment), Holm not yet
    applied. Public so an A/A benchmark can re-split one run's listeners many times."""
    control, treated = run.arm == 0, run.arm == 1
    out = []
    for name, attribute in PER_LISTENER:
        effect, _ = _listener_effect(run, getattr(run, attribute), pre)
        truth = float(getattr(b, attribute).mean() - getattr(a, attribute).mean())
        out.append(SimulatedMetric(name, effect, truth))
    seen = run.exposures > 0
    rate = delta_ratio(
        (run.conversions[control & seen], run.exposures[control & seen]),
        (run.conversions[treated & seen], run.exposures[treated & seen]),
    )
    true_rate = b.conversions.sum() / max(b.exposures.sum(), 1) - a.conversions.sum() / max(
        a.exposures.sum(), 1
    )
    out.append(SimulatedMetric("conversions per list shown", rate, float(true_rate)))
    last_week = max(run.days - 7, 0)
    retained = run.last_visit >= last_week
    retention = newcombe(
        (int(retained[control].sum()), int(control.sum())),
        (int(retained[treated].sum()), int(treated.sum())),
    )
    truth = float((b.last_visit >= last_week).mean() - (a.last_visit >= last_week).mean())
    out.append(SimulatedMetric("retained (visited in the last 7 days)", retention, truth))
    return out
