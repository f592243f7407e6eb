"""The staged recommender (``pipeline``) against the hybrid: synthetic world, temporal protocol.

Issue 19's bar: "Synthetic world, temporal protocol: pipeline >= 10 % relative NDCG@10 over the
hybrid". Per world seed: a synthetic world (``--users`` listeners, ``--tracks`` tracks,
``--events-per-user`` events each on average, listeners' taste drifting ``--taste-drift`` of
the way to a second taste over the year; 0 is the world without drift) generated in memory
and turned into interactions
the way the store would give them (``Interactions.from_log``: Focus-Mode events left out, all
items and users of the world in the id maps) with its catalog, demographics and friend graph;
the ``temporal`` protocol (time line cut at the 80th and 90th percentiles of pair times; only
listeners with training history ranked; train and validation masked on test); the registry's
hybrid (ALS + EASE + user-kNN) and the pipeline both fitted on the training part alone (the
pipeline with the pairs' times, as ``segue train`` and ``segue evaluate`` fit it); NDCG@10
and recall@10 of both on ``--part`` (test by default) and the pipeline's relative gain.

Tuning reads ``--part valid`` on the tuning seed's world only (seed 0 by default) and the
reported figures are ``--part test`` on other seeds' worlds. Not a test: prints figures for
docs/benchmarks.md.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_staged_temporal.py
    ... bench_staged_temporal.py --seeds 0 --part valid --pipeline '{"folds": 4}'
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def build_world(
    seed: int,
    users: int,
    tracks: int,
    events_per_user: int,
    drift: float = 0.0,
    daypart_effect: float = 0.0,
):
    """(interactions, side information) of one synthetic world, built without a store."""
    from segue.data.log import InteractionLog
    from segue.data.synth import SynthParams, generate_world
    from segue.dataset import Interactions, ItemCatalog, SideInfo, UserTable, friend_matrix

    params = SynthParams(
        seed=seed,
        n_users=users,
        n_tracks=tracks,
        n_events=events_per_user * users,
        taste_drift=drift,
        daypart_effect=daypart_effect,
    )
    world = generate_world(params)
    log = InteractionLog.concat(list(world.iter_event_chunks(chunk_size=1_000_000)))
    data = Interactions.from_log(log)
    del log
    links = [(f.user_id, f.friend_id) for f in world.friendships]
    side = SideInfo(
        catalog=ItemCatalog.from_items(world.items, data.items),
        users=UserTable.from_users(world.users, data.users),
        friends=friend_matrix(links, data.users),
    )
    return data, side


def scores(model, users, relevant, exclude, dayparts=None, k: int = 10) -> tuple[float, float]:
    """(NDCG@k, recall@k) over the requests: ``users`` (one per request), their relevant
    items (request rows), the items masked (listener rows), their dayparts where the model
    reads them."""
    from segue.eval.metrics import ranking_scores

    rec = model.recommend(users, k, exclude=exclude, dayparts=dayparts)
    result = ranking_scores(rec.items, relevant, k)
    return float(result.ndcg.mean()), float(result.recall.mean())


def daypart_requests(data, side, holdout):
    """(users, dayparts, relevant, exclude) of one request per ranked listener and local
    daypart of their held-out plays (each pair at its newest play), holding those plays."""
    from segue.dataset.splits import daypart_queries, values_at

    dayparts = side.users.pair_dayparts(data.pair_times())
    parts = values_at(dayparts, holdout.relevant, "held-out pairs")
    users, request, relevant = daypart_queries(holdout.users, holdout.relevant, parts)
    return users, request, relevant, holdout.exclude


def main(argv: list[str] | None = None) -> int:
    from segue.dataset import Counts
    from segue.eval.protocols import make_protocol
    from segue.models.base import fit_on
    from segue.models.names import model_spec
    from segue.models.staged.pipeline import StagedRecommender

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3_000)
    parser.add_argument("--tracks", type=int, default=5_000)
    parser.add_argument("--events-per-user", type=int, default=40)
    parser.add_argument("--seeds", default="1,2,3", help="world seeds (0 is the tuning seed)")
    parser.add_argument(
        "--taste-drift",
        type=float,
        default=0.5,
        help="SynthParams.taste_drift: how far listeners' taste moves over the year (0: none)",
    )
    parser.add_argument(
        "--daypart-effect",
        type=float,
        default=0.5,
        help="SynthParams.daypart_effect: how much the local daypart tilts a session's genre",
    )
    parser.add_argument("--part", choices=("test", "valid"), default="test")
    parser.add_argument("--pipeline", default="{}", help="JSON: StagedRecommender settings")
    parser.add_argument("--no-hybrid", action="store_true", help="skip the hybrid (tuning)")
    parser.add_argument(
        "--also",
        default="",
        help="registered models to score beside them, comma-separated (e.g. genremix)",
    )
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    settings = json.loads(args.pipeline)
    protocol = make_protocol("temporal")
    print(
        f"# pipeline vs hybrid, synthetic world, temporal protocol · "
        f"{time.strftime('%Y-%m-%d %H:%M')} · {platform.node()}, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{args.users:,} users × {args.tracks:,} tracks, ~{args.events_per_user} events/user, "
        f"taste drift {args.taste_drift}, daypart effect {args.daypart_effect}, "
        f"world seeds {seeds}, part {args.part}, "
        f"pipeline {settings or 'defaults'}\n"
    )
    rows: dict[str, dict[str, list[float]]] = {}
    for seed in seeds:
        started = time.perf_counter()
        data, side = build_world(seed, args.users, args.tracks, args.events_per_user,
                                 args.taste_drift, args.daypart_effect)  # fmt: skip
        split = protocol.split(data, seed)
        holdout = protocol.holdout(split, args.part)
        train = holdout.train
        users, dayparts, relevant, exclude = daypart_requests(data, side, holdout)
        per_listener = (holdout.users, holdout.relevant[holdout.users], holdout.exclude)
        raw = train.matrix(Counts())  # both models fit on counts (the pipeline with times)
        built = time.perf_counter() - started
        line = [f"seed {seed}: world {built:.0f}s, {raw.nnz:,} train pairs, "
                f"{len(holdout.users):,} listeners ranked in {len(users):,} requests"]  # fmt: skip
        models = {} if args.no_hybrid else {"hybrid": model_spec("hybrid").build()}
        for name in filter(None, args.also.split(",")):
            models[name] = model_spec(name).build()
        models["pipeline"] = StagedRecommender(seed=seed, **settings)
        for name, model in models.items():
            t0 = time.perf_counter()
            fit_on(model, train, model_spec(name).weighting, side)  # hybrid, pipeline: counts
            fit_s = time.perf_counter() - t0
            ndcg, recall = scores(model, users, relevant, exclude, dayparts)
            blind, _ = scores(model, *per_listener)  # one list per listener, no context
            row = rows.setdefault(name, {"ndcg": [], "recall": [], "fit": [], "blind": []})
            row["ndcg"].append(ndcg)
            row["recall"].append(recall)
            row["fit"].append(fit_s)
            row["blind"].append(blind)
            line.append(f"{name} NDCG@10 {ndcg:.4f} R@10 {recall:.4f} per listener "
                        f"{blind:.4f} (fit {fit_s:.0f}s)")  # fmt: skip
            if name == "pipeline":
                top = list(model.feature_importance().items())[:10]
                importance = ", ".join(f"{n} {g:.0f}" for n, g in top)
        if "hybrid" in rows:
            gain = rows["pipeline"]["ndcg"][-1] / rows["hybrid"]["ndcg"][-1] - 1
            line.append(f"gain {gain:+.1%}")
        print("; ".join(line), flush=True)
        print(f"  pipeline top features (gain): {importance}", flush=True)

    print(f"\n| model | NDCG@10 per request, seeds {seeds} | mean | recall@10 mean | "
          "per listener (no context) mean | fit s mean |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, row in rows.items():
        per_seed = ", ".join(f"{v:.4f}" for v in row["ndcg"])
        print(f"| {name} | {per_seed} | {np.mean(row['ndcg']):.4f} | "
              f"{np.mean(row['recall']):.4f} | {np.mean(row['blind']):.4f} | "
              f"{np.mean(row['fit']):.0f} |")  # fmt: skip
    if "hybrid" in rows:
        gains = np.array(rows["pipeline"]["ndcg"]) / np.array(rows["hybrid"]["ndcg"]) - 1
        mean_gain = np.mean(rows["pipeline"]["ndcg"]) / np.mean(rows["hybrid"]["ndcg"]) - 1
        print(f"\npipeline vs hybrid, relative NDCG@10: {mean_gain:+.1%} on the means "
              f"(per seed {', '.join(f'{g:+.1%}' for g in gains)}); bar +10 %")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
