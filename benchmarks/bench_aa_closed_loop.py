"""A/A tests on the closed-loop simulator: how often does ``segue simulate``'s analysis call a
difference between two identical arms?

Not a test. Each run splits the same synthetic world's listeners by a new salt and serves
both arms the same recommender (retrained daily on its own arm's plays), with new coins for
the listeners; the analysis is ``segue simulate``'s (Welch with CUPED, the delta method,
Newcombe, Holm). Repeated-measures correlation (a listener's days are not independent) and
the feedback loop are exactly what an A/A on logged data cannot show.

    .venv/bin/python benchmarks/bench_aa_closed_loop.py --runs 100 --users 2000 --days 7
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

from segue.data.synth import SynthParams
from segue.jobs.simulate import simulate_experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--tracks", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--model", default="popularity")
    args = parser.parse_args()
    params = SynthParams(seed=11, n_users=args.users, n_tracks=args.tracks,
                         n_events=50 * args.users)  # fmt: skip
    raw: dict[str, list[float]] = defaultdict(list)
    any_holm = 0
    started = time.perf_counter()
    for run in range(args.runs):
        report = simulate_experiment(params, args.model, args.model, args.days,
                                     salt=f"aa-{run}", seed=run)  # fmt: skip
        for metric in report.metrics:
            raw[metric.name].append(metric.effect.p)
        any_holm += any(m.adjusted_p < 0.05 for m in report.metrics)
    seconds = time.perf_counter() - started
    print(f"{args.runs} A/A runs, {args.users:,} listeners × {args.days} days, "
          f"{args.model} in both arms; {seconds:.0f} s")  # fmt: skip
    print("| metric | false positives (p < 0.05) | 95 % interval of that rate |")
    print("|---|---:|---|")
    for name, ps in raw.items():
        rate = float(np.mean(np.array(ps) < 0.05))
        half = 1.96 * np.sqrt(rate * (1 - rate) / len(ps))
        print(f"| {name} | {rate:.1%} | [{max(rate - half, 0):.1%}, {rate + half:.1%}] |")
    print(f"| any metric after Holm | {any_holm / args.runs:.1%} | |")


if __name__ == "__main__":
    main()
