"""The staged recommender (``pipeline``) on Last.fm 2K under RecBole's protocol, stage by stage.

Per split seed (random 8:1:1 per user, all artists ranked, train and validation masked, K=10,
models on play counts as in docs/benchmarks.md's Last.fm table): the pipeline fitted once on
the training part and scored three ways (retrieval only: candidates by reciprocal-rank sum;
+ ranker; + calibrated re-ranking at the weight validation chose), the registry's hybrid
(ALS + EASE + user-kNN), and the baseline the ranker must beat: a validation-tuned linear
blend of ALS and EASE scores (the hybrid's weight search over those two). Also candidate
recall@N on the test part per generator and for the union, the fit time, the ranker's most
important features, and optionally (``--ablation-seeds``) the pipeline refitted with each
generator removed. Not a test: prints figures for docs/benchmarks.md.

    .venv/bin/python benchmarks/bench_staged.py
    .venv/bin/python benchmarks/bench_staged.py --seeds 0 --ablation-seeds 0
    .venv/bin/python benchmarks/bench_staged.py --seeds 0 --ablation-seeds 0 --remove als,ease
    .venv/bin/python benchmarks/bench_staged.py --folds 1   # the ranker on one inner fold
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lastfm_quality import LASTFM, load


def _ndcg(model, holdout) -> float:
    from segue.ranking import hit_matrix, ndcg_per_user

    rec = model.recommend(holdout.users, 10, exclude=holdout.exclude)
    relevant = holdout.relevant[holdout.users]
    return float(ndcg_per_user(hit_matrix(rec.items, relevant), np.diff(relevant.indptr)).mean())


def _mean(values: list[float]) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.4f}"


def main(argv: list[str] | None = None) -> int:
    from segue.dataset import Counts
    from segue.eval.protocols import make_protocol
    from segue.models.hybrid import HybridRecommender
    from segue.models.staged.pipeline import StagedRecommender
    from segue.models.staged.retrieval import candidate_recall

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=LASTFM)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--ablation-seeds", default="", help="seeds for generator removal")
    parser.add_argument("--candidates", type=int, default=100, help="N per generator")
    parser.add_argument("--folds", type=int, default=None, help="inner folds (default: all)")
    parser.add_argument("--remove", default="", help="generators to remove (default: each)")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"Last.fm 2K not found at {args.data}", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",") if s]
    ablation_seeds = [int(s) for s in args.ablation_seeds.split(",") if s]
    data, side = load(args.data, play_counts=True)
    protocol = make_protocol("random")
    print(f"# Staged recommender on Last.fm 2K · {time.strftime('%Y-%m-%d %H:%M')} · "
          f"{platform.node()} ({platform.machine()}), seeds {seeds}\n")  # fmt: skip
    rows: dict[str, list[float]] = {}
    recalls: dict[str, list[float]] = {}
    fit_seconds: list[float] = []
    ablation: dict[str, list[float]] = {}
    for seed in seeds:
        split = protocol.split(data, seed)
        holdout = protocol.holdout(split, "test")
        raw = holdout.train.matrix(Counts())
        started = time.perf_counter()
        model = StagedRecommender(n_candidates=args.candidates, folds=args.folds, seed=seed)
        model.fit(raw, side)
        fit_seconds.append(time.perf_counter() - started)
        for stage in ("retrieval", "ranker", "full"):
            model.stage = stage
            rows.setdefault(f"pipeline: {stage}", []).append(_ndcg(model, holdout))
        users = holdout.users
        cands = model.gens.retrieve(users, raw[users], args.candidates)
        relevant = holdout.relevant[users]
        for g, name in enumerate(model.gens.active):
            recalls.setdefault(name, []).append(candidate_recall(cands, relevant, g))
        recalls.setdefault("union", []).append(candidate_recall(cands, relevant, None))
        hybrid = HybridRecommender(components=("als", "ease", "userknn"), seed=seed).fit(raw, side)
        rows.setdefault("hybrid (als, ease, userknn)", []).append(_ndcg(hybrid, holdout))
        blend = HybridRecommender(components=("als", "ease"), seed=seed).fit(raw, side)
        rows.setdefault("ALS + EASE blend (validation-tuned)", []).append(_ndcg(blend, holdout))
        print(f"seed {seed}: fit {fit_seconds[-1]:.0f}s, rerank weight {model.chosen_rerank:g}, "
              f"best trees {model.ranker.best_iteration}, {model.folds} folds, "
              f"ranker pairs {model.training_pairs}; "
              + ", ".join(f"{k} {v[-1]:.4f}" for k, v in rows.items()), flush=True)  # fmt: skip
        if seed == seeds[0]:
            top = list(model.feature_importance().items())[:12]
            print("  top features (gain): " + ", ".join(f"{n} {g:.0f}" for n, g in top))
            print("  inner validation: " + ", ".join(
                f"{k} {v:.4f}" for k, v in model.validation.items()), flush=True)  # fmt: skip
        if seed in ablation_seeds:
            removed = [g for g in args.remove.split(",") if g] or model.gens.active
            for name in removed:
                kept = tuple(g for g in model.generators if g != name)
                reduced = StagedRecommender(generators=kept, n_candidates=args.candidates,
                                            folds=args.folds, seed=seed).fit(raw, side)  # fmt: skip
                ablation.setdefault(f"without {name}", []).append(_ndcg(reduced, holdout))
                print(f"  without {name}: {ablation[f'without {name}'][-1]:.4f}", flush=True)

    print(f"\n## NDCG@10 on test, mean ± std over seeds {seeds}")
    print("| model / stage | NDCG@10 |\n|---|---|")
    for name, values in rows.items():
        print(f"| {name} | {_mean(values)} |")
    for name, values in ablation.items():
        print(f"| pipeline {name} (seeds {ablation_seeds}) | {_mean(values)} |")
    gain = np.array(rows["pipeline: full"]) - np.array(rows["ALS + EASE blend (validation-tuned)"])
    print(f"\npipeline − ALS+EASE blend: {gain.mean():+.4f} (per seed {np.round(gain, 4)})")
    print(f"\n## Candidate recall@{args.candidates} on test (share of test pairs in the set)")
    print("| generator | recall |\n|---|---|")
    for name, values in recalls.items():
        print(f"| {name} | {_mean(values)} |")
    print(f"\npipeline fit: {np.mean(fit_seconds):.0f} s mean, {max(fit_seconds):.0f} s max")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
