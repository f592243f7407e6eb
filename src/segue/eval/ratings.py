"""Rating prediction measured: RMSE and MAE of the models of :mod:`segue.models.ratings`.

Explicit-feedback datasets are compared on k folds of their ratings, or on the folds they
ship (MovieLens: ``u1.base``/``u1.test`` … ``u5``), so :func:`kfold` makes the first from a
log's rated events and :func:`read_fold_dir` reads the second; :func:`evaluate_rating_models`
fits every named model on each fold's training part and scores it on the fold's test part,
then reports mean ± std over folds. :func:`evaluate_ratings` is the original one-split check
of the bias baseline against the global mean.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segue.data.log import InteractionLog
from segue.errors import DatasetError, SegueError
from segue.eval.metrics import mae, rmse
from segue.models.ratings import RATING_MODELS, BiasBaseline, RatingModel


@dataclass(frozen=True)
class RatingReport:
    n_train: int
    n_test: int
    rmse: float
    mae: float
    rmse_global_mean: float
    mae_global_mean: float


def evaluate_ratings(
    log: InteractionLog,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    model: BiasBaseline | None = None,
) -> RatingReport:
    """Hold out a seeded share of rated events and score the baseline and the global mean.

    Focus-Mode events are left out, as everywhere personalisation is concerned.
    """
    rated = np.isfinite(log.rating) & ~log.focus
    if rated.sum() < 10:
        raise DatasetError(
            f"rating evaluation needs rated events; the log has {int(rated.sum())} (at least 10)"
        )
    if not 0 < test_fraction < 1:
        raise DatasetError("test_fraction must lie strictly between 0 and 1")
    users, items, ratings = log.user[rated], log.item[rated], log.rating[rated]
    rng = np.random.default_rng(seed)
    test = rng.random(len(ratings)) < test_fraction
    if test.all() or not test.any():
        raise DatasetError("the rating split left one side empty; use more rated events")
    fitted = (model or BiasBaseline()).fit(
        users[~test], items[~test], ratings[~test], len(log.user_ids), len(log.item_ids)
    )
    predicted = fitted.predict(users[test], items[test])
    mean = np.full(int(test.sum()), fitted.mu)
    return RatingReport(
        n_train=int((~test).sum()),
        n_test=int(test.sum()),
        rmse=rmse(predicted, ratings[test]),
        mae=mae(predicted, ratings[test]),
        rmse_global_mean=rmse(mean, ratings[test]),
        mae_global_mean=mae(mean, ratings[test]),
    )


@dataclass(frozen=True, eq=False)
class RatingFold:
    """One fold: training and test triples over a shared index space (``n_users`` × ``n_items``)."""

    name: str
    train: tuple[np.ndarray, np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray, np.ndarray]
    n_users: int
    n_items: int


def _rated(log: InteractionLog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rated = np.isfinite(log.rating) & ~log.focus
    if rated.sum() < 10:
        raise DatasetError(
            f"rating evaluation needs rated events; the log has {int(rated.sum())} (at least 10)"
        )
    return log.user[rated].astype(np.int64), log.item[rated].astype(np.int64), log.rating[rated]


def kfold(log: InteractionLog, folds: int = 5, seed: int = 0) -> list[RatingFold]:
    """The rated events (Focus Mode left out) in ``folds`` seeded, equal, disjoint test parts."""
    if folds < 2:
        raise SegueError(f"--folds needs at least 2 folds, got {folds}")
    users, items, ratings = _rated(log)
    if len(ratings) < folds:
        raise DatasetError(f"{len(ratings)} rated events cannot make {folds} folds")
    which = np.random.default_rng(seed).permutation(len(ratings)) % folds
    out = []
    for f in range(folds):
        test = which == f
        out.append(RatingFold(
            f"fold {f + 1}",
            (users[~test], items[~test], ratings[~test]),
            (users[test], items[test], ratings[test]),
            len(log.user_ids),
            len(log.item_ids),
        ))  # fmt: skip
    return out


def _read_triples(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    users: list[str] = []
    items: list[str] = []
    ratings: list[float] = []
    with path.open(encoding="latin-1") as handle:  # MovieLens files are Latin-1; ids are ASCII
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            cells = line.rstrip("\r\n").split("\t")
            if len(cells) < 3:
                raise DatasetError(
                    f"{path}:{line_no}: expected user<TAB>item<TAB>rating[<TAB>timestamp], "
                    f"got {line.strip()[:60]!r}"
                )
            try:
                value = float(cells[2])
            except ValueError:
                raise DatasetError(
                    f"{path}:{line_no}: column 3: the rating {cells[2]!r} is not a number"
                ) from None
            users.append(cells[0].strip())
            items.append(cells[1].strip())
            ratings.append(value)
    if not ratings:
        raise DatasetError(f"{path} holds no ratings")
    return users, items, np.asarray(ratings, dtype=np.float64)


def read_fold_dir(folder: Path) -> list[RatingFold]:
    """Every ``NAME.base`` with its ``NAME.test`` in ``folder`` (tab-separated, as MovieLens).

    Users and items are indexed over the union of both files, so a test pair whose user or
    item never appears in the base file is still predicted (from what the model knows: the
    mean and the other side's bias), as the published figures count it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SegueError(f"--folds {folder}: not a number of folds nor a folder")
    bases = sorted(folder.glob("*.base"))
    if not bases:
        raise SegueError(f"{folder} holds no *.base files (with a *.test beside each)")
    out = []
    for base in bases:
        test_path = base.with_suffix(".test")
        if not test_path.is_file():
            raise SegueError(f"{base} has no {test_path.name} beside it")
        train_u, train_i, train_r = _read_triples(base)
        test_u, test_i, test_r = _read_triples(test_path)
        user_index = {u: n for n, u in enumerate(dict.fromkeys(train_u + test_u))}
        item_index = {i: n for n, i in enumerate(dict.fromkeys(train_i + test_i))}

        def encode(ids: list[str], index: dict[str, int]) -> np.ndarray:
            return np.fromiter((index[x] for x in ids), dtype=np.int64, count=len(ids))

        out.append(RatingFold(
            base.stem,
            (encode(train_u, user_index), encode(train_i, item_index), train_r),
            (encode(test_u, user_index), encode(test_i, item_index), test_r),
            len(user_index),
            len(item_index),
        ))  # fmt: skip
    return out


@dataclass(frozen=True)
class RatingRun:
    """One model on one fold."""

    model: str
    fold: str
    rmse: float
    mae: float
    fit_seconds: float


@dataclass(frozen=True)
class RatingSummary:
    """One model over every fold: mean and (population) std of each figure."""

    model: str
    rmse: float
    rmse_std: float
    mae: float
    mae_std: float
    fit_seconds: float


@dataclass(frozen=True)
class RatingEvaluation:
    folds: list[str]
    runs: list[RatingRun]
    summaries: list[RatingSummary]

    def summary(self, model: str) -> RatingSummary:
        return next(s for s in self.summaries if s.model == model)


def rating_model(name: str) -> RatingModel:
    try:
        return RATING_MODELS[name]
    except KeyError:
        raise SegueError(
            f"unknown rating model {name!r}; available: {', '.join(RATING_MODELS)}"
        ) from None


def evaluate_rating_models(
    folds: Sequence[RatingFold],
    names: Sequence[str],
    models: dict[str, RatingModel] | None = None,
) -> RatingEvaluation:
    """Fit each named model on every fold's training part; RMSE/MAE on its test part.

    ``models`` overrides or adds models by name (tests, benchmarks); the rest come from
    :data:`segue.models.ratings.RATING_MODELS`.
    """
    chosen = {n: (models or {}).get(n) or rating_model(n) for n in names}
    runs = []
    for fold in folds:
        for name, model in chosen.items():
            started = time.perf_counter()
            fitted = model.fit(*fold.train, fold.n_users, fold.n_items)
            seconds = time.perf_counter() - started
            predicted = fitted.predict(fold.test[0], fold.test[1])
            runs.append(RatingRun(name, fold.name, rmse(predicted, fold.test[2]),
                                  mae(predicted, fold.test[2]), seconds))  # fmt: skip
    summaries = []
    for name in chosen:
        mine = [r for r in runs if r.model == name]
        rmses = np.array([r.rmse for r in mine])
        maes = np.array([r.mae for r in mine])
        summaries.append(RatingSummary(name, float(rmses.mean()), float(rmses.std()),
                                       float(maes.mean()), float(maes.std()),
                                       float(np.mean([r.fit_seconds for r in mine]))))  # fmt: skip
    return RatingEvaluation([f.name for f in folds], runs, summaries)
