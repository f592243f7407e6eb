"""A new policy's CTR from an exploring policy's log, against the simulator's truth. Not a
test (tests/test_simulation.py asserts the estimate within 3 standard errors).

    .venv/bin/python benchmarks/bench_off_policy.py     # 10,000 listeners, ranks 0, 4, 9

See :mod:`segue.simulation.counterfactual`: one day, each listener shown one track drawn from
ALS's top 20 by a softmax (temperature 1.5, scores scaled per listener) with its propensity;
the target policy shows the candidate at a fixed rank.
"""

from __future__ import annotations

import argparse
import datetime as dt

from segue.data.synth import SynthParams, generate_world
from segue.simulation.counterfactual import off_policy_check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--ranks", default="0,4,9")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    world = generate_world(
        SynthParams(
            seed=args.seed,
            n_users=args.users,
            n_tracks=5_000,
            n_events=100 * args.users,
            start_date=dt.date(2024, 1, 1),
            end_date=dt.date(2024, 3, 1),
        )
    )
    history = world.events()
    print(
        "| target (rank) | logged CTR | IPS ± se | SNIPS | true CTR | logged = target "
        "| IPS error | SNIPS error |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for rank in (int(r) for r in args.ranks.split(",")):
        r = off_policy_check(world, history, target_rank=rank, seed=args.seed)
        print(
            f"| {rank} | {r.logged_ctr:.4f} | {r.ips:.4f} ± {r.ips_se:.4f} | {r.snips:.4f} | "
            f"{r.truth:.4f} | {r.matched:.1%} | {r.ips_error:.1%} | {r.snips_error:.1%} |"
        )


if __name__ == "__main__":
    main()
