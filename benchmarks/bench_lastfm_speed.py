"""Fit and recommend times of every registered model on all of HetRec Last.fm 2K.

Bars (recommenders issue): fitting every non-neural model in under 60 s in total on 2 cores,
and top-10 for all 1,892 users in under 2 s per model. Models train on play counts under their
registry weighting, exactly as `segue train` does. Prints one table; not a test.

    .venv/bin/python benchmarks/bench_lastfm_speed.py [--data PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from segue.data.log import InteractionLog
from segue.data.sources import read_lastfm_2k
from segue.dataset import Interactions, ItemCatalog, SideInfo, UserTable, friend_matrix
from segue.models.names import MODELS

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "lastfm-2k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    batch = read_lastfm_2k(args.data)
    data = Interactions.from_log(InteractionLog.from_events(batch.events))
    side = SideInfo(
        catalog=ItemCatalog.from_items(batch.items, data.items),
        users=UserTable.from_users(batch.users, data.users),
        friends=friend_matrix([(f.user_id, f.friend_id) for f in batch.friendships], data.users),
    )
    users = np.arange(data.n_users)
    print(f"{'model':<20}{'fit s':>8}{'recommend s':>13}")
    total = 0.0
    for name, spec in MODELS.items():
        matrix = data.matrix(spec.weighting)
        started = time.perf_counter()
        model = spec.factory().fit(matrix, side)
        fitted = time.perf_counter()
        model.recommend(users, 10)
        done = time.perf_counter()
        total += fitted - started
        print(f"{name:<20}{fitted - started:>8.2f}{done - fitted:>13.2f}", flush=True)
    print(f"{'all fits':<20}{total:>8.2f}")


if __name__ == "__main__":
    main()
