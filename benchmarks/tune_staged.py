"""Choose the staged recommender's settings on Last.fm 2K's VALIDATION part only.

RecBole's random 8:1:1 per-user split; everything is fitted on the training part, and each
setting is scored by NDCG@10 against the protocol's validation items (train masked). The test
part is never built into anything scored here. Per seed, the script builds the ranker's
training groups once for up to ``--max-folds`` disjoint inner folds (generators fitted per
fold, exactly as ``StagedRecommender.fit`` does), refits the generators on the whole training
part, and then trains one LambdaRank ranker per setting on the first K folds' groups, so that
comparing K = 1, 2, 4, … or ranker settings costs one ranker fit each, not a pipeline fit.
Settings are JSON objects: ``folds`` and the ranker's ``learning_rate``, ``num_leaves``,
``min_child_samples``, ``n_estimators``, plus any LightGBM parameter under ``"lgb"``. Not a
test: prints figures for docs/benchmarks.md.

    nice -n 5 .venv/bin/python benchmarks/tune_staged.py '{"folds": 1}' '{"folds": 4}'
    .venv/bin/python benchmarks/tune_staged.py --generators als,ease,itemknn,userknn,friends,\
content,trending,twotower '{"folds": 4}'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lastfm_quality import LASTFM, load


def main(argv: list[str] | None = None) -> int:
    from segue.dataset import Counts
    from segue.eval.protocols import make_protocol
    from segue.models.staged.features import FeatureContext, feature_names
    from segue.models.staged.pipeline import (
        StagedRecommender,
        _labels,
        _ndcg,
        _Part,
        _ranked_lists,
        _rrf,
        _sample_negatives,
        _stack,
        _with_positives,
    )
    from segue.models.staged.ranker import Ranker
    from segue.models.staged.rerank import genre_distribution
    from segue.models.staged.retrieval import DEFAULT_GENERATORS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="*", default=['{"folds": 1}'])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--data", type=Path, default=LASTFM)
    parser.add_argument("--generators", default=",".join(DEFAULT_GENERATORS))
    parser.add_argument("--generator-params", default="{}", help="JSON: name -> settings")
    parser.add_argument("--holdout", type=float, default=0.125)
    parser.add_argument("--max-folds", type=int, default=0, help="0: the most any setting asks")
    parser.add_argument("--threads", type=int, default=1, help="LightGBM threads")
    parser.add_argument("--blend", action="store_true", help="also the ALS + EASE blend")
    args = parser.parse_args(argv)
    settings = [json.loads(s) for s in args.settings]
    max_folds = args.max_folds or max(int(s.get("folds", 1)) for s in settings)
    data, side = load(args.data, play_counts=True)
    protocol = make_protocol("random")
    generators = tuple(g for g in args.generators.split(",") if g)
    results: dict[str, list[float]] = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        split = protocol.split(data, seed)
        holdout = protocol.holdout(split, "valid")
        raw = holdout.train.matrix(Counts())
        started = time.perf_counter()
        model = StagedRecommender(
            generators=generators,
            holdout=args.holdout,
            folds=max_folds,
            seed=seed,
            generator_params=json.loads(args.generator_params),
        )
        # the per-fold groups, kept apart so that settings can take the first K folds
        from segue.dataset.splits import inner_folds

        splits = inner_folds(raw.astype(np.float32).tocsr(), args.holdout, max_folds, seed)
        rng = np.random.default_rng(seed)
        users = np.flatnonzero(np.diff(splits[0][1].indptr) > 0)
        in_valid = rng.random(len(users)) < model.valid_share
        folds: list[dict[str, _Part]] = []
        for inner_train, inner_held in splits:
            model.gens.fit(inner_train, side)
            model.ctx = FeatureContext.build(inner_train, side)
            model._train = inner_train
            fold = {}
            for label, group in (("fit", users[~in_valid]), ("valid", users[in_valid])):
                group = group[np.diff(inner_held.indptr)[group] > 0]
                cands, features = model._features(group)
                relevant = inner_held[group]
                target = genre_distribution(inner_train[group], model.ctx.genres)
                fold[label] = _Part(cands, features, _labels(cands, relevant), relevant, target)
            folds.append(fold)
            print(f"seed {seed} fold {len(folds)}: {time.perf_counter() - started:.0f}s, "
                  f"{len(fold['fit'].labels)} pairs, {int(fold['fit'].labels.sum())} positives",
                  flush=True)  # fmt: skip
        model.gens.fit(raw, side)
        model.ctx = FeatureContext.build(raw, side)
        model._train = raw
        target_users = holdout.users
        cands, features = model._features(target_users)
        relevant = holdout.relevant[target_users]
        names = feature_names(model.gens.active, model.ctx.audio.shape[1])
        prep = time.perf_counter() - started
        retrieval, _ = _ranked_lists(cands, _rrf(cands), len(target_users), 10)
        results.setdefault("retrieval", []).append(_ndcg(retrieval, relevant))
        print(
            f"seed {seed}: prepared in {prep:.0f}s; retrieval only {results['retrieval'][-1]:.4f}"
        )
        if args.blend:
            from segue.models.hybrid import HybridRecommender
            from segue.ranking import hit_matrix, ndcg_per_user

            blend = HybridRecommender(components=("als", "ease"), seed=seed).fit(raw, side)
            rec = blend.recommend(target_users, 10, exclude=holdout.exclude)
            hits = hit_matrix(rec.items, relevant)
            value = float(ndcg_per_user(hits, np.diff(relevant.indptr)).mean())
            results.setdefault("ALS + EASE blend", []).append(value)
            print(f"seed {seed}: ALS + EASE blend {value:.4f}", flush=True)
        for setting in settings:
            k = int(setting.get("folds", 1))
            fit = _stack([f["fit"] for f in folds[:k]])
            valid = _stack([f["valid"] for f in folds[:k]])
            ranker = Ranker(
                names,
                n_estimators=int(setting.get("n_estimators", 500)),
                learning_rate=float(setting.get("learning_rate", 0.05)),
                num_leaves=int(setting.get("num_leaves", 31)),
                min_child_samples=int(setting.get("min_child_samples", 50)),
                seed=seed,
                threads=args.threads,
            )
            ranker.params.update(setting.get("lgb", {}))

            def quality(scores: np.ndarray, valid: _Part = valid) -> float:
                lists, _ = _ranked_lists(valid.cands, scores, valid.n_rows, 10)
                return _ndcg(lists, valid.relevant)

            t0 = time.perf_counter()
            train = _with_positives(fit)
            train = _sample_negatives(*train, float(setting.get("negatives", 1.0)), seed)
            ranker.fit(*train, valid=(valid.features, quality))
            lists, _ = _ranked_lists(cands, ranker.predict(features), len(target_users), 10)
            value = _ndcg(lists, relevant)
            key = json.dumps(setting, sort_keys=True)
            results.setdefault(key, []).append(value)
            print(f"seed {seed} {key}: validation NDCG@10 {value:.4f} "
                  f"(inner {ranker.valid_ndcg:.4f}, {ranker.best_iteration} trees, "
                  f"{len(train[1])} pairs, "
                  f"{int(fit.labels.sum())} positives, {time.perf_counter() - t0:.0f}s)",
                  flush=True)  # fmt: skip
            if setting.get("importance"):
                top = list(ranker.importance().items())[:15]
                print("  top features: " + ", ".join(f"{n} {g:.0f}" for n, g in top))
    print("\n| setting | validation NDCG@10 (mean over seeds) |\n|---|---|")
    for key, values in results.items():
        print(f"| {key} | {np.mean(values):.4f} (n={len(values)}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
