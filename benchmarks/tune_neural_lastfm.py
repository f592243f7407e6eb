"""Try settings of the neural models (ncf, twotower) on Last.fm 2K's VALIDATION part only.

RecBole's random 8:1:1 per-user split (seed 0 unless ``--seeds``); each setting is fitted on
train (its own early stopping reads an inner part of train) and scored by NDCG@10 against the
validation items with train masked. The test part is never built into anything scored. Prints
one line per setting: validation NDCG@10, epochs trained, fit seconds. Not a test.

    .venv/bin/python benchmarks/tune_neural_lastfm.py ncf '{}' '{"loss": "bce"}'
    .venv/bin/python benchmarks/tune_neural_lastfm.py twotower '{"dim": 128}' --seeds 0,1
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
from segue.eval.metrics import ranking_scores
from segue.eval.protocols import make_protocol
from segue.models.names import model_spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=("ncf", "twotower"))
    parser.add_argument("settings", nargs="*", default=["{}"], help="JSON objects of settings")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--data", type=Path, default=LASTFM)
    args = parser.parse_args(argv)
    data, side = load(args.data, play_counts=False)
    protocol = make_protocol("random")
    spec = model_spec(args.model)
    seeds = [int(s) for s in args.seeds.split(",")]
    holdouts = []
    for seed in seeds:
        split = protocol.split(data, seed)
        holdouts.append(protocol.holdout(split, "valid"))  # train and valid only
    for text in args.settings:
        settings = json.loads(text)
        values, seconds, epochs, curves = [], [], [], []
        for holdout in holdouts:
            started = time.perf_counter()
            model = spec.build(**settings).fit(holdout.train.matrix(spec.weighting), side)
            seconds.append(time.perf_counter() - started)
            epochs.append(getattr(model, "trained_epochs", 0))
            curves.append(" ".join(f"{v:.3f}" for v in getattr(model, "validation_curve", [])))
            recs = model.recommend(holdout.users, 10, exclude=holdout.exclude)
            relevant = holdout.relevant[holdout.users]
            values.append(float(ranking_scores(recs.items, relevant, 10).ndcg.mean()))
        print(
            f"{args.model} {json.dumps(settings)}: valid NDCG@10 {np.mean(values):.4f} "
            f"(seeds {seeds}), epochs {epochs}, fit {np.mean(seconds):.1f}s; inner curves: "
            + " | ".join(curves),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
