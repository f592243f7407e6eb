"""Tune the collaborative models' defaults on Last.fm 2K, on the VALIDATION split only.

Protocol (RecBole's, as ``segue.jobs.evaluate`` uses for test): a random per-user 8:1:1 split
(seeds 0, 1, 2), fit on train, rank every item with the user's train items masked, and score
NDCG@10 against the validation items. The test part is never looked at. Each grid point is
averaged over the seeds; the table is printed best first per model, with fit and recommend
seconds (mean over seeds, this machine). Not a test.

    .venv/bin/python benchmarks/tune_lastfm.py                    # every model, full grids
    .venv/bin/python benchmarks/tune_lastfm.py --models ease als --seeds 0
    .venv/bin/python benchmarks/tune_lastfm.py --defaults         # only the registry's defaults
    .venv/bin/python benchmarks/tune_lastfm.py --timing           # defaults fitted on all data
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from segue.data.log import InteractionLog
from segue.data.sources.lastfm import read_lastfm_2k
from segue.dataset import (
    BM25,
    Binary,
    Interactions,
    ItemCatalog,
    LogScale,
    SideInfo,
    UserTable,
    Weighting,
    friend_matrix,
    random_split,
)
from segue.eval.metrics import ranking_scores
from segue.models.base import Recommender
from segue.models.ease import EASERecommender
from segue.models.mf import ALSRecommender, BPRRecommender
from segue.models.names import DEFAULT_MODELS, MODELS
from segue.models.userknn import UserKNNRecommender

ROOT = Path(__file__).resolve().parents[1]
LASTFM = ROOT.parent / "shared" / "datasets" / "lastfm-2k"
K = 10


@dataclass(frozen=True)
class Candidate:
    model: str
    weighting: Weighting
    params: dict[str, Any]
    build: Callable[..., Recommender]

    def label(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.weighting!r} {shown}"


def grid(
    model: str, build: Callable[..., Recommender], weightings: list[Weighting], **axes: list[Any]
) -> list[Candidate]:
    names = list(axes)
    return [
        Candidate(model, w, dict(zip(names, values, strict=True)), build)
        for w in weightings
        for values in itertools.product(*(axes[n] for n in names))
    ]


def grids() -> dict[str, list[Candidate]]:
    """Each model's key knobs around the region a coarse single-seed search found best.

    Value scales differ by weighting (BM25 with k1=1.2 stays below ~15, play counts under
    ``LogScale`` below ~12, BM25 with k1=100 reaches hundreds), so ALS's ``alpha`` and EASE's
    ``regularization`` are searched per weighting.
    """
    bm25 = BM25(k1=1.2, b=0.75)
    return {
        "als": [
            *grid(
                "als",
                ALSRecommender,
                [bm25],
                alpha=[0.2, 0.3, 0.5],
                regularization=[5.0, 10.0, 15.0],
                factors=[64, 96],
                iterations=[30],
            ),
            *grid(
                "als",
                ALSRecommender,
                [BM25(k1=5.0, b=0.75)],
                alpha=[0.05, 0.1],
                regularization=[10.0, 15.0],
                factors=[64, 96],
                iterations=[30],
            ),
            *grid("als", ALSRecommender, [BM25()], alpha=[0.01], regularization=[10.0]),
            *grid("als", ALSRecommender, [LogScale()], alpha=[1.0], regularization=[10.0]),
            *grid("als", ALSRecommender, [Binary()], alpha=[5.0], regularization=[10.0]),
        ],
        "bpr": grid(
            "bpr",
            BPRRecommender,
            [Binary()],
            learning_rate=[0.005, 0.01, 0.02],
            regularization=[0.01, 0.03],
            factors=[64, 128],
            iterations=[100],
        ),
        "ease": [
            *grid("ease", EASERecommender, [Binary()], regularization=[50.0, 100.0, 200.0]),
            *grid("ease", EASERecommender, [LogScale()], regularization=[800.0, 1500.0, 3000.0]),
            *grid("ease", EASERecommender, [bm25], regularization=[1e4, 2e4, 4e4]),
            *grid(
                "ease",
                EASERecommender,
                [BM25(k1=1.2, b=0.4)],
                regularization=[2e4, 3e4, 6e4],
                min_item_count=[2, 3],
            ),
        ],
        "userknn": grid(
            "userknn",
            UserKNNRecommender,
            [BM25(), bm25],
            neighbours=[50, 100, 200],
            shrink=[0.0, 10.0],
            friends_weight=[0.0, 0.02, 0.05],
        ),
    }


def defaults() -> dict[str, list[Candidate]]:
    """The registry's own choices, to report their validation figure (the default models:
    the opt-in neural and staged ones have benchmarks of their own)."""
    out = {}
    for name in DEFAULT_MODELS:
        spec = MODELS[name]
        model = spec.factory()
        out[name] = [Candidate(name, spec.weighting, model.params(), spec.cls)]
    return out


@dataclass
class Fold:
    train: Interactions
    valid: sp.csr_matrix
    users: np.ndarray


def load() -> tuple[Interactions, SideInfo]:
    batch = read_lastfm_2k(LASTFM)
    data = Interactions.from_log(InteractionLog.from_events(batch.events))
    links = [(f.user_id, f.friend_id) for f in batch.friendships]
    side = SideInfo(
        catalog=ItemCatalog.from_items(batch.items, data.items),
        users=UserTable.from_users(batch.users, data.users),
        friends=friend_matrix(links, data.users),
    )
    return data, side


def folds(data: Interactions, seeds: list[int]) -> list[Fold]:
    out = []
    for seed in seeds:
        split = random_split(data, (0.8, 0.1, 0.1), seed=seed)
        valid = split.valid.binary_matrix()
        out.append(Fold(split.train, valid, np.flatnonzero(np.diff(valid.indptr) > 0)))
    return out


def run(candidate: Candidate, fold: Fold, side: SideInfo) -> tuple[float, float, float]:
    started = time.perf_counter()
    model = candidate.build(**candidate.params).fit(fold.train.matrix(candidate.weighting), side)
    fitted = time.perf_counter()
    recs = model.recommend(fold.users, K)  # masks the user's train items
    done = time.perf_counter()
    ranked = np.full((fold.valid.shape[0], K), -1, dtype=np.int64)
    ranked[fold.users] = recs.items
    ndcg = ranking_scores(ranked, fold.valid, K).mean()["ndcg"]
    return ndcg, fitted - started, done - fitted


def timing(data: Interactions, side: SideInfo, names: list[str], repeats: int = 3) -> None:
    """Fit each registry default on all of Last.fm and recommend 10 to every user (best of n)."""
    users = np.arange(data.n_users)
    print(f"\nall {len(data)} pairs, {data.n_users} users; best of {repeats} runs")
    print("model      fit s   recommend s")
    for name in names:
        spec = MODELS[name]
        matrix = data.matrix(spec.weighting)
        fits, recs = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            model = spec.factory().fit(matrix, side)
            fitted = time.perf_counter()
            model.recommend(users, K)
            fits.append(fitted - started)
            recs.append(time.perf_counter() - fitted)
        print(f"{name:9s} {min(fits):6.2f} {min(recs):13.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--defaults", action="store_true", help="only the registry defaults")
    parser.add_argument("--top", type=int, default=5, help="rows shown per model")
    parser.add_argument("--timing", action="store_true", help="time the defaults on all data")
    args = parser.parse_args()

    data, side = load()
    if args.timing:
        timing(
            data, side, args.models or ["popularity", "itemknn", "userknn", "als", "bpr", "ease"]
        )
        return
    print(f"Last.fm 2K: {data}; friends {side.friends.nnz // 2} links; seeds {args.seeds}")
    data_folds = folds(data, args.seeds)
    table = defaults() if args.defaults else grids()
    names = args.models or list(table)
    best: dict[str, tuple[float, Candidate, float, float]] = {}
    for name in names:
        rows = []
        for candidate in table[name]:
            results = np.array([run(candidate, fold, side) for fold in data_folds])
            ndcg, fit_s, rec_s = results.mean(axis=0)
            spread = results[:, 0].std()
            rows.append((ndcg, spread, fit_s, rec_s, candidate))
            print(
                f"  {name:8s} ndcg@10 {ndcg:.4f} ±{spread:.4f}  fit {fit_s:6.2f}s  "
                f"rec {rec_s:5.2f}s  {candidate.label()}",
                flush=True,
            )
        rows.sort(key=lambda r: -r[0])
        print(f"== {name}: best {args.top}")
        for ndcg, spread, fit_s, rec_s, candidate in rows[: args.top]:
            print(
                f"   {ndcg:.4f} ±{spread:.4f}  fit {fit_s:6.2f}s rec {rec_s:5.2f}s  "
                f"{candidate.label()}"
            )
        best[name] = (rows[0][0], rows[0][4], rows[0][2], rows[0][3])
    print("\nmodel     valid NDCG@10   fit s   rec s   chosen")
    for name, (ndcg, candidate, fit_s, rec_s) in best.items():
        print(f"{name:9s} {ndcg:13.4f} {fit_s:7.2f} {rec_s:7.2f}   {candidate.label()}")


if __name__ == "__main__":
    main()
