"""Recommendation quality on HetRec Last.fm 2K under the published protocol, beside the
published numbers; then the cold-start users and cold-start items protocols.

Published protocol (RecBole's ``RS: [0.8, 0.1, 0.1]``, random order, grouped by user): the
92,834 (user, artist) pairs binarised, split at random 8:1:1 per user, every artist ranked for
every user with training (and validation) artists excluded, K = 10. We report the mean ± sample
std over split seeds 0..4 for every registered model; the cold-start protocols use seeds 0..2
by default to keep the whole run to a few minutes (EASE's fit dominates). Not a test: prints
tables; the lead records them with date and machine in docs/benchmarks.md.

    .venv/bin/python benchmarks/bench_lastfm_quality.py
    .venv/bin/python benchmarks/bench_lastfm_quality.py --models popularity,itemknn --seeds 0,1
    .venv/bin/python benchmarks/bench_lastfm_quality.py --report /tmp/lastfm-report
    .venv/bin/python benchmarks/bench_lastfm_quality.py --play-counts   # weights, not 0/1
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LASTFM = ROOT.parent / "shared" / "datasets" / "lastfm-2k"
K = 10

#: NDCG@10 (and, for LightGCN, more) as published for Last.fm 2K under this protocol.
PUBLISHED: dict[str, dict[str, float]] = {
    "BPR": {"ndcg": 0.1674},
    "NeuMF": {"ndcg": 0.1604},
    "LightGCN": {"ndcg": 0.1972, "recall": 0.2064, "hit_rate": 0.6322, "precision": 0.1009},
    "MHCN": {"ndcg": 0.2068},
}
COLUMNS = (("precision", "P@10"), ("recall", "R@10"), ("ndcg", "NDCG@10"), ("hit_rate", "HR@10"))


def load(directory: Path, play_counts: bool):
    """Interactions (binarised unless ``play_counts``) and side information, no store."""
    from segue.data.log import InteractionLog
    from segue.data.sources.lastfm import read_lastfm_2k
    from segue.dataset import (
        Binary,
        Interactions,
        ItemCatalog,
        SideInfo,
        UserTable,
        friend_matrix,
    )

    batch = read_lastfm_2k(directory)
    data = Interactions.from_log(InteractionLog.from_events(batch.events))
    if not play_counts:
        ones = np.ones(len(data.pairs))
        pairs = replace(data.pairs, count=ones.astype(np.int64), value=ones)
        data = replace(data, pairs=pairs, weighting=Binary())
    side = SideInfo(
        catalog=ItemCatalog.from_items(batch.items, data.items),
        users=UserTable.from_users(batch.users, data.users),
        friends=friend_matrix([(f.user_id, f.friend_id) for f in batch.friendships], data.users),
    )
    return data, side


def _cell(summary, key: str) -> str:
    mean, std = summary.mean.get(key, float("nan")), summary.std.get(key, float("nan"))
    return f"{mean:.4f} ± {std:.4f}" if summary.n_seeds > 1 else f"{mean:.4f}"


def _print(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print()


def main(argv: list[str] | None = None) -> int:
    from segue.eval import ColdItemsProtocol, ColdUsersProtocol, evaluate, registry_candidates
    from segue.eval.report import write_report
    from segue.models.names import DEFAULT_MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=LASTFM, help="the lastfm-2k folder")
    parser.add_argument(
        "--models", default="", help="comma-separated (default: all but ncf,twotower)"
    )
    parser.add_argument("--seeds", default="0,1,2,3,4", help="split seeds (published protocol)")
    parser.add_argument("--cold-seeds", default="0,1,2", help="split seeds (cold-start protocols)")
    parser.add_argument("--onboarding", type=int, default=3, help="cold users' revealed artists")
    parser.add_argument("--play-counts", action="store_true", help="train on play counts")
    parser.add_argument("--report", type=Path, help="write the random protocol's report here")
    parser.add_argument("--skip-cold", action="store_true", help="only the published protocol")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"Last.fm 2K not found at {args.data}", file=sys.stderr)
        return 2
    names = [m for m in args.models.split(",") if m] or list(DEFAULT_MODELS)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    cold_seeds = [int(s) for s in args.cold_seeds.split(",") if s]
    candidates = registry_candidates(names)

    started = time.perf_counter()
    data, side = load(args.data, args.play_counts)
    loaded = time.perf_counter() - started
    print(
        f"# Last.fm 2K quality · {time.strftime('%Y-%m-%d')} · {platform.node()} "
        f"({platform.processor() or platform.machine()})"
    )
    print(
        f"{data.n_users:,} users x {data.n_items:,} artists, {len(data):,} pairs "
        f"({'play counts' if args.play_counts else 'binarised'}), loaded in {loaded:.1f}s; "
        f"models: {', '.join(names)}; seeds {seeds}\n"
    )

    t0 = time.perf_counter()
    warm = evaluate(data, candidates, "random", seeds=seeds, k=K, side=side)
    print(f"## Published protocol: {warm.description}, K={K} ({time.perf_counter() - t0:.0f}s)")
    headers = ["model", *(label for _, label in COLUMNS), "MRR@10", "coverage", "fit s", "rec s"]
    rows = [
        [
            s.model,
            *(_cell(s, key) for key, _ in COLUMNS),
            _cell(s, "mrr"),
            _cell(s, "coverage"),
            f"{s.fit_seconds:.1f}",
            f"{s.recommend_seconds:.1f}",
        ]
        for s in warm.summaries
    ]
    rows += [
        [
            f"{name} (published)",
            *(f"{numbers[key]:.4f}" if key in numbers else "" for key, _ in COLUMNS),
            "",
            "",
            "",
            "",
        ]
        for name, numbers in PUBLISHED.items()
    ]
    _print(headers, rows)
    bucket_rows = [
        [s.model, label, f"{s.by_bucket[label]['users']:.0f}", f"{s.by_bucket[label]['ndcg']:.4f}"]
        for s in warm.summaries
        for label in warm.buckets
        if s.by_bucket[label]["users"] > 0
    ]
    print("by training pairs per user (means over seeds)")
    _print(["model", "train pairs", "users", "NDCG@10"], bucket_rows)
    if args.report:
        print(f"report: {write_report(warm, args.report)}\n")
    if args.skip_cold:
        return 0

    t0 = time.perf_counter()
    cold_users = ColdUsersProtocol(n_onboarding=args.onboarding)
    users = evaluate(data, candidates, cold_users, seeds=cold_seeds, k=K, side=side)
    print(f"## {users.description}, seeds {cold_seeds} ({time.perf_counter() - t0:.0f}s)")
    print(
        "held-out users keep all but their onboarding artists as truth (about 47 each), so "
        "NDCG here is not comparable with the table above; compare models with each other"
    )
    base = users.summary("popularity").mean["ndcg"] if "popularity" in names else float("nan")
    _print(
        ["model", "NDCG@10", "R@10", "HR@10", "NDCG vs popularity", "users/seed"],
        [
            [
                s.model,
                _cell(s, "ndcg"),
                _cell(s, "recall"),
                _cell(s, "hit_rate"),
                f"{s.mean['ndcg'] / base:.2f}x" if base > 0 else "",
                f"{s.mean['users']:.0f}",
            ]
            for s in users.summaries
        ],
    )

    t0 = time.perf_counter()
    items = evaluate(data, candidates, ColdItemsProtocol(), seeds=cold_seeds, k=K, side=side)
    print(f"## {items.description}, seeds {cold_seeds} ({time.perf_counter() - t0:.0f}s)")
    print(
        "recall@10 = share of each user's held-out-artist pairs ranked in the top 10 of all "
        "artists; a model that cannot score an unplayed artist only places one through ties"
    )
    _print(
        ["model", "R@10", "NDCG@10", "R@50", "users/seed"],
        [
            [
                s.model,
                _cell(s, "recall"),
                _cell(s, "ndcg"),
                f"{s.curves['recall'][50]:.4f}",
                f"{s.mean['users']:.0f}",
            ]
            for s in items.summaries
        ],
    )
    print(f"total {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
