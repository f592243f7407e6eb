"""A/A tests on the closed-loop simulator: how often does ``segue simulate``'s analysis call a
difference between two identical arms — read once at the end, and read every day?

Not a test. Each run splits the same synthetic world's listeners by a new salt and serves
both arms the same recommender — one model object, retrained daily on everyone's plays, as
one deployed model serves both arms of a real A/A (``segue.simulation.loop``) — with new
coins for the listeners. The analysis is ``segue simulate``'s (Welch with CUPED, the delta
method, Newcombe, Holm). Repeated-measures correlation (a listener's days are not
independent) and the feedback loop are exactly what an A/A on logged data cannot show.

Daily peeking: each per-listener metric is also estimated on days 1..d for every d (the
report's ``looks``), and three ways of reading those looks are counted —

* naive: stop at the first day whose fixed-horizon Welch p is below 0.05;
* the report's always-valid mSPRT p-value (``segue.jobs.experiments.always_valid_p``);
* the report's O'Brien–Fleming decision: Lan–DeMets alpha spending over the planned ``days``
  looks, each look's z from its Welch p — ``segue simulate``'s own
  (``SimulatedMetric.sequential``, from ``segue.jobs.experiments.sequential_decision``, the
  experiment report's code path).

``--resplit-runs R --resplits S``: because identical arms are one policy, an A/A run's
outcomes do not depend on the split (tests/test_simulation.py checks this), so R loops
(everyone in one arm, seeds 0..R-1) re-split by S fresh salts each give R × S A/A analyses
at the cost of R loops: the analysis's own false-positive rate to a few tenths of a point, a
check on whether a rate among the 200 runs is the test or the draw.

    .venv/bin/python benchmarks/bench_aa_closed_loop.py --runs 200 --users 2000 --days 7 \\
        --resplit-runs 20 --resplits 200

``--first-run N``: salts ``aa-N`` … and coins seeded N …: a second batch independent of the
first (runs 0–199) on the same world.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections import defaultdict

import numpy as np

from segue.data.synth import SynthParams, generate_world
from segue.experiments.assignment import position
from segue.experiments.stats import wilson
from segue.jobs.simulate import metrics_of, pre_minutes, simulate_experiment
from segue.simulation.loop import run_loop

ALPHA = 0.05


def _row(name: str, hits: int, n: int) -> str:
    low, high = wilson(hits, n)
    return f"| {name} | {hits / n:.1%} ({hits}/{n}) | [{low:.1%}, {high:.1%}] |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument(
        "--first-run", type=int, default=0, help="runs first..first+runs-1: a fresh batch"
    )
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--tracks", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--model", default="popularity")
    parser.add_argument("--resplit-runs", type=int, default=0)
    parser.add_argument("--resplits", type=int, default=200)
    args = parser.parse_args()
    params = SynthParams(seed=11, n_users=args.users, n_tracks=args.tracks,
                         n_events=50 * args.users)  # fmt: skip
    once: dict[str, int] = defaultdict(int)
    peeking: dict[tuple[str, str], int] = defaultdict(int)
    stop_days: dict[str, list[int]] = defaultdict(list)
    any_holm = 0
    started = time.perf_counter()
    for run in range(args.first_run, args.first_run + args.runs):
        report = simulate_experiment(params, args.model, args.model, args.days,
                                     salt=f"aa-{run}", seed=run)  # fmt: skip
        for metric in report.metrics:
            once[metric.name] += metric.effect.p < ALPHA
            looks = report.looks.get(metric.name)
            if looks is None:
                continue
            p = np.array([e.p for e in looks])
            naive = np.flatnonzero(p < ALPHA)
            peeking[metric.name, "naive"] += len(naive) > 0
            if len(naive):
                stop_days[metric.name].append(int(naive[0]) + 1)
            peeking[metric.name, "msprt"] += metric.always_valid_p < ALPHA
            assert metric.sequential is not None and metric.sequential.planned_days == args.days
            peeking[metric.name, "obf"] += metric.sequential.crossed
            bounds = [bound for _, _, bound in metric.sequential.path]
        any_holm += any(m.adjusted_p < ALPHA for m in report.metrics)
        if (run + 1) % 20 == 0:
            print(f"  {run + 1} runs, {time.perf_counter() - started:.0f} s", flush=True)
    seconds = time.perf_counter() - started
    n = args.runs
    print(f"\n{n} A/A runs, {args.users:,} listeners × {args.days} days, {args.model} in "
          f"both arms (one model); {seconds:.0f} s")  # fmt: skip
    print(f"O'Brien–Fleming z bounds over {args.days} looks: "
          + ", ".join(f"{b:.2f}" for b in bounds))  # fmt: skip
    print("\nRead once at the end (false positives at p < 0.05, Wilson 95 % interval):\n")
    print("| metric | false positives | 95 % interval |\n|---|---:|---|")
    for name, hits in once.items():
        print(_row(name, hits, n))
    print(_row("any metric after Holm", any_holm, n))
    print(f"\nRead after every day, 1..{args.days}:\n")
    print("| metric: rule | false positives | 95 % interval |\n|---|---:|---|")
    for name in report.looks:
        for rule, label in (("naive", "naive peeking (first day Welch p < 0.05)"),
                            ("msprt", "always-valid mSPRT p (the report's)"),
                            ("obf", "O'Brien–Fleming (the report's)")):  # fmt: skip
            print(_row(f"{name}: {label}", peeking[name, rule], n))
        if stop_days[name]:
            by_day = np.bincount(stop_days[name], minlength=args.days + 1)[1:].tolist()
            print(f"|   naive stops by day | {by_day} | |")
    if args.resplit_runs:
        _resplit(params, args)


def _resplit(params: SynthParams, args: argparse.Namespace) -> None:
    """The analysis's false-positive rate on R × S re-splits of R loops (see the docstring)."""
    started = time.perf_counter()
    world = generate_world(params)
    history = world.events()
    pre = pre_minutes(history, params)
    ids = [str(u) for u in world.user_ids]
    hits: dict[str, int] = defaultdict(int)
    total = 0
    for seed in range(args.resplit_runs):
        everyone = np.zeros(len(ids), dtype=np.int64)
        run = run_loop(world, history, [args.model], everyone, args.days, seed=seed)
        for s in range(args.resplits):
            arm = np.array([position(f"resplit-{seed}-{s}", u) < 0.5 for u in ids], np.int64)
            split = dataclasses.replace(run, arm=arm, arms=(args.model, args.model))
            for metric in metrics_of(split, run, run, pre):
                hits[metric.name] += metric.effect.p < ALPHA
            total += 1
    seconds = time.perf_counter() - started
    print(f"\nRe-splits: {args.resplit_runs} loops × {args.resplits} salts = {total:,} A/A "
          f"analyses; {seconds:.0f} s\n")  # fmt: skip
    print("| metric | false positives | 95 % interval |\n|---|---:|---|")
    for name, count in hits.items():
        print(_row(name, count, total))


if __name__ == "__main__":
    main()
