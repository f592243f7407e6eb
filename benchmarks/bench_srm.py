"""Is a logging loss in one arm caught? Lists shown per listener on the closed-loop
simulator, 5 % of one arm's exposure records dropped. Not a test (tests/test_experiments.py
asserts the checks).

    .venv/bin/python benchmarks/bench_srm.py        # 10,000 listeners, 14 days, 200 splits

The loop serves every listener from ALS for 14 days (an A/A: both arms the same policy), so
any split of the listeners by a salted hash is an A/A test of the exposure log. For each of
``--runs`` salts: the listener-count check (chi-square against 50/50), and the per-listener
exposure check (Welch, CUPED on the listener's visits in the 14 days before, from the
world's history), once on the log as it is (false alarms) and once with 5 % of one arm's
exposure records dropped at random (must be flagged). Flag: p < 0.001.
"""

from __future__ import annotations

import argparse
import datetime as dt

import numpy as np

from segue.data.model import EVENT_CODES, EventType
from segue.data.synth import SynthParams, generate_world
from segue.experiments.assignment import position
from segue.experiments.stats import exposure_ratio, sample_ratio
from segue.simulation.loop import DAY_MS, run_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--drop", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    params = SynthParams(
        seed=args.seed,
        n_users=args.users,
        n_tracks=5_000,
        n_events=100 * args.users,
        start_date=dt.date(2024, 1, 1),
        end_date=dt.date(2024, 3, 1),
    )
    world = generate_world(params)
    history = world.events()
    everyone = np.zeros(len(world.user_ids), dtype=np.int64)
    loop = run_loop(world, history, ["als"], everyone, args.days, seed=args.seed)
    shown = loop.exposures.astype(np.int64)
    # the covariate: days each listener was active in the 14 days before the loop
    plays = history.type == EVENT_CODES[EventType.PLAY]
    recent = plays & (history.ts_ms >= params.end_ms - 14 * DAY_MS)
    pairs = np.unique(np.stack([history.user[recent], history.ts_ms[recent] // DAY_MS]), axis=1)
    before = np.bincount(pairs[0], minlength=len(shown)).astype(np.float64)
    ids = [str(u) for u in world.user_ids]
    rng = np.random.default_rng(args.seed)
    split_alarms = aa_alarms = caught = caught_plain = 0
    for run in range(args.runs):
        arm = np.array([position(f"srm-{run}", u) < 0.5 for u in ids])
        a, b = ~arm, arm
        split_alarms += sample_ratio([a.sum(), b.sum()], [0.5, 0.5]).mismatch
        pre = (before[a], before[b])
        aa_alarms += exposure_ratio(shown[a], shown[b], pre).mismatch
        kept = rng.binomial(shown, np.where(b, 1 - args.drop, 1.0))
        caught += exposure_ratio(kept[a], kept[b], pre).mismatch
        caught_plain += exposure_ratio(kept[a], kept[b]).mismatch
    n = args.runs
    print(
        f"{len(ids):,} listeners, {args.days} days on the loop, {shown.sum():,} lists shown "
        f"({shown.mean():.1f} per listener, sd {shown.std():.1f}); {n} salted splits"
    )
    print(f"listener split false alarms: {split_alarms}/{n}")
    print(
        f"exposures per listener, A/A false alarms (CUPED by active days before): {aa_alarms}/{n}"
    )
    print(
        f"{args.drop:.0%} of one arm's exposure records dropped: flagged {caught}/{n} "
        f"(without CUPED {caught_plain}/{n})"
    )


if __name__ == "__main__":
    main()
