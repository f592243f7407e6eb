"""The evaluation runner: every model on the identical split of each seed, then mean ± std.

For each seed the protocol splits the data once; that one split (and one test holdout built
from it) is handed to every candidate in turn, so two models are never compared on different
data. A candidate with a ``grid`` is tuned first on that seed's validation part (train and
validation only, see :mod:`segue.eval.tuning`), then fitted on train with the winning parameters
and scored on test, like the others.

Reported per run: the ranking metrics at ``k``, coverage, novelty, popularity bias (ARP and
percentile), exposure Gini, intra-list diversity, optionally full-ranking AUC; the same top-k
metrics per user-activity bucket (training pairs per user); NDCG and recall at each of ``ks``;
and the seconds spent fitting and recommending. Per model: the mean and the sample standard
deviation (ddof=1; 0 for one seed) over seeds.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from segue.dataset import Binary, Interactions, SideInfo, Weighting
from segue.errors import SegueError
from segue.eval.beyond import catalog_vectors
from segue.eval.protocols import Holdout, Protocol, make_protocol
from segue.eval.scoring import (
    DEFAULT_BUCKETS,
    Factory,
    bucket_labels,
    fit_and_rank,
    holdout_auc,
    list_metrics,
)
from segue.eval.tuning import TuningData, tune_on
from segue.models.names import model_spec

#: ``(step, done, total)``, the shape of ``segue.progress.Progress``.
ProgressFn = Callable[[str, int, int | None], None]
DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 20, 50)


def _silent(step: str, done: int, total: int | None) -> None:
    """No progress reporting."""


@dataclass(frozen=True)
class Candidate:
    """A model to evaluate: how to build it, what it trains on, what to tune.

    ``params`` are fixed constructor arguments; ``grid`` (name -> values) is searched on the
    validation part of every seed, maximising ``metric`` at the run's k.
    """

    name: str
    factory: Factory
    weighting: Weighting = field(default_factory=Binary)
    params: Mapping[str, Any] = field(default_factory=dict)
    grid: Mapping[str, Sequence[Any]] | None = None
    metric: str = "ndcg"


def registry_candidates(
    names: Sequence[str], params: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Candidate]:
    """Candidates for registered models (``segue.models.MODELS``), with their weighting.

    ``params`` are settings per name (tuned ones); the others get their defaults.
    """
    out = []
    for name in names:
        spec = model_spec(name)
        out.append(Candidate(name, spec.build, spec.weighting, dict((params or {}).get(name, {}))))
    return out


@dataclass(frozen=True)
class RunResult:
    """One model on one seed's test holdout."""

    model: str
    seed: int
    metrics: dict[str, float]
    by_bucket: dict[str, dict[str, float]]
    curves: dict[str, dict[int, float]]
    fit_seconds: float
    recommend_seconds: float
    tune_seconds: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSummary:
    """One model over all seeds: means, standard deviations, mean buckets and curves."""

    model: str
    mean: dict[str, float]
    std: dict[str, float]
    by_bucket: dict[str, dict[str, float]]
    curves: dict[str, dict[int, float]]
    fit_seconds: float
    recommend_seconds: float
    n_seeds: int


@dataclass(frozen=True)
class Evaluation:
    """Everything one evaluation measured; ``summaries`` keep the candidates' order."""

    protocol: str
    description: str
    k: int
    ks: tuple[int, ...]
    seeds: tuple[int, ...]
    buckets: tuple[str, ...]
    runs: list[RunResult]
    summaries: list[ModelSummary]
    split_sizes: dict[int, tuple[int, int, int]]
    diversity_basis: str | None

    def summary(self, model: str) -> ModelSummary:
        for s in self.summaries:
            if s.model == model:
                return s
        raise SegueError(f"no model {model!r} in this evaluation")


def only_positive(holdout: Holdout, positive: Interactions) -> Holdout:
    """``holdout`` scored against its positive pairs only; users left without one drop out.

    Training and masking are untouched: a low rating is still something the user did, only
    not something a list should be rewarded for finding.
    """
    if not holdout.train.same_space(positive):
        raise SegueError("positive pairs index different users or items than the evaluated data")
    relevant = holdout.relevant.multiply(positive.binary_matrix()).tocsr()
    relevant.eliminate_zeros()
    users = holdout.users[np.diff(relevant.indptr)[holdout.users] > 0]
    if len(users) == 0:
        raise SegueError("no test user has a positive held-out pair; loosen --positive")
    return Holdout(train=holdout.train, relevant=relevant, exclude=holdout.exclude, users=users)


def evaluate(
    data: Interactions,
    candidates: Sequence[Candidate],
    protocol: Protocol | str = "random",
    *,
    seeds: Sequence[int] = (0,),
    k: int = 10,
    ks: Sequence[int] = DEFAULT_KS,
    side: SideInfo | None = None,
    item_vectors: sp.spmatrix | np.ndarray | None = None,
    buckets: Sequence[int] = DEFAULT_BUCKETS,
    auc: bool = False,
    progress: ProgressFn = _silent,
    positive: Interactions | None = None,
    max_users: int | None = None,
) -> Evaluation:
    """Run every candidate on each seed's split; see the module docstring.

    ``max_users``: rank at most this many test users, drawn with the split's seed (all when
    None). The daily flow's gate needs one figure, not every listener's: on a million
    listeners ranking each held-out user costs more than the fit, and 100,000 of them give
    NDCG@10 within about ±0.002 (95 %).

    ``positive``: the pairs that count as relevant in the test part (explicit ratings: those
    rated 4 or more); the others stay held out (not in training, not masked) but a model
    ranking them gains nothing. None: every held-out pair is relevant.

    ``item_vectors`` (items × features) drive intra-list diversity; by default the catalog's
    genre and tag indicators when ``side`` labels any item, else each split's training columns.
    """
    proto = make_protocol(protocol)
    seeds = _check_seeds(seeds)
    if not proto.seeded:
        seeds = seeds[:1]  # the split ignores the seed: more runs would repeat the first
    _check_candidates(candidates)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SegueError(f"k must be an integer >= 1, got {k!r}")
    ks = tuple(sorted({int(c) for c in ks} | {k}))
    if ks[0] < 1:
        raise SegueError(f"every cut-off in ks must be >= 1, got {ks}")
    labels = tuple(bucket_labels(buckets))
    _check_max_users(max_users)
    fixed_vectors = item_vectors
    basis = "given vectors" if item_vectors is not None else None
    if fixed_vectors is None:
        fixed_vectors = catalog_vectors(side.catalog if side is not None else None)
        basis = "catalog genres and tags" if fixed_vectors is not None else "training columns"
    if fixed_vectors is not None and fixed_vectors.shape[0] != data.n_items:
        raise SegueError(
            f"item_vectors has {fixed_vectors.shape[0]} rows but the data has {data.n_items} items"
        )

    runs: list[RunResult] = []
    sizes: dict[int, tuple[int, int, int]] = {}
    total = len(seeds) * len(candidates)
    for seed_index, seed in enumerate(seeds):
        split = proto.split(data, seed)
        sizes[seed] = split.sizes
        test = proto.holdout(split, "test")
        if positive is not None:
            test = only_positive(test, positive)
        test = sample_users(test, max_users, seed)
        popularity = split.train.item_counts()
        vectors = fixed_vectors
        if vectors is None:
            vectors = split.train.binary_matrix().T.tocsr()
        for index, candidate in enumerate(candidates):
            progress("evaluating", seed_index * len(candidates) + index, total)
            params = dict(candidate.params)
            tune_seconds = 0.0
            if candidate.grid:
                tuned = tune_on(
                    functools.partial(candidate.factory, **params),
                    candidate.grid,
                    TuningData(split.train, split.valid),
                    weighting=candidate.weighting,
                    protocol=proto,
                    k=k,
                    metric=candidate.metric,
                    side=side,
                )
                params.update(tuned.best_params)
                tune_seconds = sum(row.fit_seconds for row in tuned.table)
            ranked = fit_and_rank(
                candidate.factory, params, candidate.weighting, test, max(ks), side
            )
            metrics, by_bucket, curves = list_metrics(
                ranked.items,
                test,
                k,
                ks,
                popularity=popularity,
                n_users=data.n_users,
                item_vectors=vectors,
                buckets=buckets,
            )
            if auc:
                metrics["auc"] = holdout_auc(ranked.model, test)
            runs.append(
                RunResult(
                    model=candidate.name,
                    seed=seed,
                    metrics=metrics,
                    by_bucket=by_bucket,
                    curves=curves,
                    fit_seconds=ranked.fit_seconds,
                    recommend_seconds=ranked.recommend_seconds,
                    tune_seconds=tune_seconds,
                    params=params,
                )
            )
    progress("evaluating", total, total)
    return Evaluation(
        protocol=proto.name,
        description=proto.describe(),
        k=k,
        ks=ks,
        seeds=tuple(seeds),
        buckets=labels,
        runs=runs,
        summaries=[_summarise(c.name, [r for r in runs if r.model == c.name]) for c in candidates],
        split_sizes=sizes,
        diversity_basis=basis,
    )


def sample_users(holdout: Holdout, max_users: int | None, seed: int) -> Holdout:
    """``holdout`` with at most ``max_users`` of its users, a uniform draw fixed by ``seed``
    (kept in index order); the holdout itself when it has no more."""
    _check_max_users(max_users)
    if max_users is None or len(holdout.users) <= max_users:
        return holdout
    rng = np.random.default_rng(seed)
    kept = np.sort(rng.choice(holdout.users, size=max_users, replace=False))
    return replace(holdout, users=kept)


def _check_max_users(max_users: int | None) -> None:
    if max_users is not None and (
        isinstance(max_users, bool) or not isinstance(max_users, int | np.integer) or max_users < 1
    ):
        raise SegueError(f"max_users must be an integer >= 1 (or None for all), got {max_users!r}")


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    values = list(seeds)
    if not values:
        raise SegueError("give at least one split seed")
    for s in values:
        if isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 0:
            raise SegueError(f"split seeds must be integers >= 0, got {s!r}")
    if len(set(values)) != len(values):
        raise SegueError(f"split seeds repeat: {values}")
    return [int(s) for s in values]


def _check_candidates(candidates: Sequence[Candidate]) -> None:
    if not candidates:
        raise SegueError("give at least one model to evaluate")
    names = [c.name for c in candidates]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SegueError(f"model names must be unique in one evaluation, repeated: {repeated}")


def _nan_stats(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    known = arr[~np.isnan(arr)]
    if len(known) == 0:
        return math.nan, math.nan
    std = float(np.std(known, ddof=1)) if len(known) > 1 else 0.0
    return float(np.mean(known)), std


def _summarise(model: str, runs: list[RunResult]) -> ModelSummary:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        keys = list(dict.fromkeys(key for r in runs for key in r.metrics))
        stats = {key: _nan_stats([r.metrics.get(key, math.nan) for r in runs]) for key in keys}
        by_bucket = {
            label: {
                name: _nan_stats([r.by_bucket[label][name] for r in runs])[0]
                for name in runs[0].by_bucket[label]
            }
            for label in runs[0].by_bucket
        }
        curves = {
            curve: {cut: _nan_stats([r.curves[curve][cut] for r in runs])[0] for cut in cuts}
            for curve, cuts in runs[0].curves.items()
        }
    return ModelSummary(
        model=model,
        mean={key: value[0] for key, value in stats.items()},
        std={key: value[1] for key, value in stats.items()},
        by_bucket=by_bucket,
        curves=curves,
        fit_seconds=float(np.mean([r.fit_seconds for r in runs])),
        recommend_seconds=float(np.mean([r.recommend_seconds for r in runs])),
        n_seeds=len(runs),
    )
