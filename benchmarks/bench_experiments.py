"""A/A tests on the synthetic world's listening: is the analysis honest? Not a test (see
tests/test_experiments.py for the asserted properties).

    .venv/bin/python benchmarks/bench_experiments.py             # 200 A/A tests, 10,000 listeners

The world's listeners (``segue synth`` model) are split into two arms by the salted hash of
``segue.experiments.assignment`` with a new salt per run, as a real experiment would split
them, and nothing differs between the arms: every "significant" result is a false positive.
The metric is listening minutes per listener-day over the last 14 days of the world; the 14
days before are the pre-period for CUPED. Prints, over the runs:

* the false-positive rate of the fixed-horizon Welch test, and of stopping at the first day
  whose Welch p < 0.05 (naive peeking), and of the always-valid mSPRT p-value watched daily;
* CUPED's variance reduction of the metric, and its false-positive rate;
* the sample-ratio check on the listener split (A/A: false alarms) and on per-listener event
  counts with 5 % of one arm's events dropped (a logging loss: it must be flagged). There is
  no exposure log yet: the events stand in for exposures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np

from segue.data.model import EVENT_CODES, EventType
from segue.data.synth import SynthParams, generate_world
from segue.experiments.assignment import position
from segue.experiments.stats import (
    cuped,
    exposure_ratio,
    msprt_p,
    obrien_fleming_bounds,
    sample_ratio,
    welch,
)

DAY_MS = 86_400_000


def _listening(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(minutes per listener and day of the experiment, pre-period minutes per listener-day,
    events per listener in the experiment, listener ids)."""
    params = SynthParams(
        seed=args.seed,
        n_users=args.users,
        n_tracks=args.tracks,
        n_events=args.events,
        start_date=dt.date(2024, 1, 1),
        end_date=dt.date(2024, 1, 1) + dt.timedelta(days=args.days),
    )
    log = generate_world(params).events()
    plays = log.type == EVENT_CODES[EventType.PLAY]
    end = int(dt.datetime.combine(params.end_date, dt.time(), dt.UTC).timestamp() * 1000)
    day = (end - log.ts_ms) // DAY_MS  # 0: the last day
    minutes = np.nan_to_num(log.ms_played.astype(np.float64)) / 60_000
    n_users = len(log.user_ids)
    during = np.zeros((n_users, 14))
    pre = np.zeros(n_users)
    events = np.zeros((n_users, 2))  # in the experiment, in the pre-period
    inside = plays & (day < 14)
    np.add.at(during, (log.user[inside], 13 - day[inside]), minutes[inside])
    np.add.at(events[:, 0], log.user[day < 14], 1)
    np.add.at(events[:, 1], log.user[(day >= 14) & (day < 28)], 1)
    before = plays & (day >= 14) & (day < 28)
    np.add.at(pre, log.user[before], minutes[before])
    return during, pre / 14, events, [str(u) for u in log.user_ids]


def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    during, pre, events, ids = _listening(args)
    built = time.perf_counter() - started
    daily_mean = during.cumsum(axis=1) / np.arange(1, 15)  # minutes per listener-day so far
    final = daily_mean[:, -1]
    tau = args.tau * pre.std(ddof=1)  # the mixture's scale, fixed before any experiment data
    bounds = obrien_fleming_bounds(np.arange(1, 15) / 14)
    fixed = peek = valid = planned = cuped_fp = srm_split = srm_drop = srm_aa = 0
    plain_drop = 0
    reductions = []
    rng = np.random.default_rng(args.seed)
    for run_no in range(args.runs):
        arm = np.array([position(f"aa-{run_no}", u) < 0.5 for u in ids])
        a, b = ~arm, arm
        fixed += welch(final[a], final[b]).p < 0.05
        p_daily = [welch(daily_mean[a, d], daily_mean[b, d]).p for d in range(14)]
        peek += min(p_daily) < 0.05
        diffs = daily_mean[b].mean(axis=0) - daily_mean[a].mean(axis=0)
        variances = (
            daily_mean[a].var(axis=0, ddof=1) / a.sum()
            + daily_mean[b].var(axis=0, ddof=1) / b.sum()
        )
        valid += msprt_p(diffs, variances, tau)[-1] < 0.05
        planned += np.any(np.abs(diffs) / np.sqrt(variances) >= bounds)
        adjusted, _ = cuped(final, pre)
        reductions.append(1 - adjusted.var(ddof=1) / final.var(ddof=1))
        cuped_fp += welch(adjusted[a], adjusted[b]).p < 0.05
        srm_split += sample_ratio([a.sum(), b.sum()], [0.5, 0.5]).mismatch
        now, before = events[:, 0], events[:, 1]
        srm_aa += exposure_ratio(now[a], now[b], (before[a], before[b])).mismatch
        kept = rng.binomial(now.astype(np.int64), np.where(b, 0.95, 1.0))
        srm_drop += exposure_ratio(kept[a], kept[b], (before[a], before[b])).mismatch
        plain_drop += exposure_ratio(kept[a], kept[b]).mismatch
    n = args.runs
    active = (during.sum(axis=1) > 0).mean()
    print(
        f"world: {len(ids):,} listeners ({active:.0%} active in the 14 days), {args.events:,} "
        f"events over {args.days} days, seed {args.seed}; built in {built:.0f} s"
    )
    print(
        f"metric: listening minutes per listener-day, mean {final.mean():.2f}, sd {final.std():.2f}"
    )
    print(f"{n} A/A tests (a new salt each), alpha 0.05:")
    print(f"  fixed-horizon Welch, day 14:            false positives {fixed / n:.1%}")
    print(f"  naive daily peeking (first p < 0.05):   false positives {peek / n:.1%}")
    print(
        f"  mSPRT always-valid p, watched daily:    false positives {valid / n:.1%} "
        f"(tau {args.tau} sd)"
    )
    print(f"  O'Brien-Fleming bounds, 14 daily looks: false positives {planned / n:.1%}")
    print(
        f"  CUPED (pre-period minutes):             variance cut {np.mean(reductions):.1%}, "
        f"false positives {cuped_fp / n:.1%}"
    )
    print(
        f"sample-ratio checks (flag at p < 0.001): listener split false alarms {srm_split}/{n}; "
        f"events per listener (CUPED by the pre-period's) A/A {srm_aa}/{n}; with 5 % of one "
        f"arm's events dropped flagged {srm_drop}/{n} (without CUPED {plain_drop}/{n})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--tracks", type=int, default=5_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--tau", type=float, default=0.1, help="mixture sd, in pre-period sds")
    parser.add_argument("--seed", type=int, default=7)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
