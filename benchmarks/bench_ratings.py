"""Rating prediction on synthetic explicit ratings shaped like MovieLens-100K. Not a test.

The world (:func:`segue.data.synth.ratings.low_rank_ratings`): 943 users, 1,682 items,
~100k ratings from a rank-5 model plus Gaussian noise, rounded to whole stars 1-5, users
choosing what to rate by taste, heavy-tailed activity. It is written as five MovieLens-style
folds (``u1.base``/``u1.test`` …) and evaluated through the same command a user runs:

    segue evaluate --protocol ratings --models mean,bias,svd,svdpp,knn,blend --folds DIR

The noise floor is the RMSE of the noiseless truth (clipped to 1-5) against the stars: no
model can beat it. Also timed: SVD alone on all ~100k ratings.

    .venv/bin/python benchmarks/bench_ratings.py                 # the table above, 5 folds
    .venv/bin/python benchmarks/bench_ratings.py --noise 0.9     # a noisier world
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from segue.data.synth.ratings import low_rank_ratings, write_folds
from segue.eval.metrics import rmse
from segue.models.ratings import SVD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default="mean,bias,svd,svdpp,knn,blend")
    args = parser.parse_args()
    data = low_rank_ratings(943, 1682, 100_000, noise=args.noise, stars=True, seed=args.seed)
    floor = rmse(np.clip(data.truth, 1, 5), data.ratings)
    print(f"{len(data.ratings):,} ratings, {data.n_users} users × {data.n_items} items; "
          f"noise {args.noise}; noise floor (truth vs stars) RMSE {floor:.4f}")  # fmt: skip
    SVD(epochs=1).fit(data.users[:10], data.items[:10], data.ratings[:10], 943, 1682)  # compile
    started = time.perf_counter()
    SVD().fit(data.users, data.items, data.ratings, data.n_users, data.n_items)
    print(f"SVD (50 factors, 20 epochs) on all {len(data.ratings):,} ratings: "
          f"{time.perf_counter() - started:.2f} s")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folds = Path(tmp) / "folds"
        write_folds(data, folds, folds=5, seed=args.seed)
        command = [sys.executable, "-m", "segue.cli.main", "--data-dir", tmp, "evaluate",
                   "--protocol", "ratings", "--models", args.models,
                   "--folds", str(folds)]  # fmt: skip
        print("$ segue evaluate --protocol ratings --models", args.models, "--folds DIR")
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
