"""Off-policy estimates from serving's own exposure log against the simulator's truth.

Not a test (tests/test_explore.py checks the estimator on a planted log). The whole serving
path runs: a synthetic world in a store, ALS trained, `segue serve`'s app with the top-slot
bandit exploring ``--share`` of requests; the closed-loop simulator's listeners
(``segue.simulation.listeners``) react to each list they are served, and their plays and skips
are posted back as events (the bandit learns from them). Then ``segue metrics off-policy``'s
job estimates, from the log alone, the first slot's CTR under the model's own order and under
the bandit's greedy choice; the truth is each listener's exact probability of playing that
policy's first item at position 1 — and not skipping it — at the moment the list was served
(the simulator's ``probabilities``), averaged over the same requests.

    .venv/bin/python benchmarks/bench_serving_off_policy.py --users 3000 --days 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from segue.api import create_app
from segue.config import Settings
from segue.data.synth import SynthParams, generate_world
from segue.dataset.from_store import load_interactions, load_side_info
from segue.jobs.ingest import load_synthetic_world
from segue.jobs.off_policy import off_policy
from segue.registry.trained import train_models
from segue.simulation.listeners import Listeners, ReactionParams
from segue.store import open_store

#: Attribution window (s): shorter than the real seconds between simulated days.
WINDOW_S = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=3_000)
    parser.add_argument("--tracks", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--share", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    params = SynthParams(seed=args.seed, n_users=args.users, n_tracks=args.tracks,
                         n_events=60 * args.users)  # fmt: skip
    world = generate_world(params)
    listeners = Listeners(world, ReactionParams(k=10), days=args.days, seed=args.seed)
    history = world.events()
    listeners.remember_history(history.user, history.item)
    user_ids = [str(u) for u in world.user_ids]
    item_pos = {str(i): n for n, i in enumerate(world.item_ids)}

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        with open_store(f"sqlite:///{data / 'segue.sqlite'}") as store:
            load_synthetic_world(store, params)
            interactions = load_interactions(store)
            side = load_side_info(store, interactions)
            train_models(interactions, ["als"], data / "models", side=side)
        settings = Settings(data_dir=data, explore_share=args.share)
        truth: dict[str, list[float]] = {"model order": [], "greedy bandit": []}
        started = time.perf_counter()
        with TestClient(create_app(settings, watch_s=None)) as client:
            services = client.app.state.services  # type: ignore[attr-defined]
            for day in range(args.days):
                visitors = listeners.visitors(day)
                shown = np.full((len(visitors), 10), -1, dtype=np.int64)
                request_of: list[str] = []
                for row, u in enumerate(visitors.tolist()):
                    answer = client.get(f"/v1/users/{user_ids[u]}/recommendations").json()
                    items = [item_pos[i["item_id"]] for i in answer["items"]][:10]
                    shown[row, : len(items)] = items
                    request_of.append(answer["request_id"])
                services.flush_exposures()
                with open_store(settings.resolved_database_url) as store:
                    logged = {e.request_id: e for e in store.exposures_between(0, 2**62)}
                # the truth: each policy's first item, its play probability at position 1 now
                for policy, key in (("model order", "model_top"), ("greedy bandit", "greedy_top")):
                    firsts = np.array(
                        [item_pos[logged[r].context[key]] if key in logged[r].context else -1
                         for r in request_of]
                    )  # fmt: skip
                    keep = firsts >= 0
                    examine, p_play, p_skip = listeners.probabilities(
                        visitors[keep], firsts[keep, None]
                    )  # a skip is not a play the log credits: played through
                    truth[policy] += (examine[:, 0] * p_play[:, 0] * (1 - p_skip[:, 0])).tolist()
                outcome = listeners.react(day, visitors, shown)
                events = []
                for row, u in enumerate(visitors.tolist()):
                    # a second after its list: the simulated days pass in seconds of real
                    # time, so attribution uses a window of WINDOW_S, not half an hour
                    at = logged[request_of[row]].ts_ms + 1_000
                    now = dt.datetime.fromtimestamp(at / 1000, dt.UTC)
                    for pos in np.flatnonzero(outcome.played[row]).tolist():
                        skipped = outcome.ms_played[row, pos] < listeners.duration[shown[row, pos]]
                        events.append({
                            "event_id": uuid.uuid4().hex, "user_id": user_ids[u],
                            "item_id": str(world.item_ids[shown[row, pos]]),
                            "type": "skip" if skipped else "play",
                            "ms_played": int(outcome.ms_played[row, pos]),
                            "timestamp": now.isoformat(),
                        })  # fmt: skip
                for start in range(0, len(events), 2_000):
                    client.post("/v1/events", json={"events": events[start : start + 2_000]})
                services.worker.drain()
                print(f"day {day}: {len(visitors):,} listeners served, {len(events):,} events; "
                      f"bandit weights {services.bandit.weights}")  # fmt: skip
        seconds = time.perf_counter() - started
        with open_store(settings.resolved_database_url) as store:
            today = dt.datetime.now(dt.UTC).date()
            report = off_policy(store, today, today, window_s=WINDOW_S)
    print(f"\n{report.lists:,} lists, {report.explored:,} explored ({args.share:.0%} asked), "
          f"first-slot CTR as served {report.logged_ctr:.2%}; {seconds:.0f} s")  # fmt: skip
    print("| target | lists matched | IPS ± se | SNIPS | truth | IPS error | SNIPS error |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for value in report.values:
        true = float(np.mean(truth[value.policy]))
        print(f"| {value.policy} | {value.matched:,} | {value.ctr_ips:.2%} ± {value.ctr_se:.2%} "
              f"| {value.ctr_snips:.2%} | {true:.2%} | {abs(value.ctr_ips - true) / true:.1%} "
              f"| {abs(value.ctr_snips - true) / true:.1%} |")  # fmt: skip


if __name__ == "__main__":
    main()
