"""Hyper-parameter search with Optuna (TPE, median pruning) on the validation part only.

The same guarantee as :mod:`segue.eval.tuning`: :func:`search` takes a :class:`TuningData`
(train and valid, no test field), so nothing it fits or scores can see a test part. Each
trial fits the model on train and ranks the validation users in chunks; after every chunk the
running NDCG (or the chosen metric) is reported to Optuna, so the median pruner stops a trial
whose first users already score below the median of earlier trials at the same point. That
saves the ranking and scoring of bad settings, which on a large catalog costs as much as the
fit; it cannot save the fit itself, which for these models has no useful partial result.

The first trial is always the model's current defaults, so the chosen settings score at
least as well on validation as the defaults, and the report shows by how much.

Search spaces are small on purpose: the two to four settings that matter per model, over
ranges that hold a good value on Last.fm and on MovieLens-shaped data alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segue.dataset import SideInfo
from segue.errors import SegueError
from segue.eval.metrics import ranking_scores
from segue.eval.protocols import make_protocol
from segue.eval.tuning import TUNABLE, TuningData
from segue.models.base import fit_on
from segue.models.specs import component_spec

#: ``trial -> params`` per model: the settings searched, and over what.
Space = Callable[[Any], dict[str, Any]]

SPACES: dict[str, Space] = {
    "ease": lambda t: {"regularization": t.suggest_float("regularization", 1.0, 1e5, log=True)},
    "als": lambda t: {
        "factors": t.suggest_int("factors", 16, 256, log=True),
        "regularization": t.suggest_float("regularization", 1e-2, 100.0, log=True),
        "iterations": t.suggest_int("iterations", 5, 40),
        "alpha": t.suggest_float("alpha", 0.05, 50.0, log=True),
    },
    "bpr": lambda t: {
        "factors": t.suggest_int("factors", 16, 256, log=True),
        "learning_rate": t.suggest_float("learning_rate", 1e-3, 0.1, log=True),
        "regularization": t.suggest_float("regularization", 1e-4, 0.1, log=True),
        "iterations": t.suggest_int("iterations", 20, 200, log=True),
    },
    "itemknn": lambda t: {
        "neighbours": t.suggest_int("neighbours", 5, 500, log=True),
        "shrink": t.suggest_float("shrink", 0.0, 200.0),
    },
    "userknn": lambda t: {
        "neighbours": t.suggest_int("neighbours", 5, 500, log=True),
        "shrink": t.suggest_float("shrink", 0.0, 200.0),
    },
    # the neural models stop early on an inner part of train: epochs need no search
    "ncf": lambda t: {
        "factors": t.suggest_int("factors", 16, 128, log=True),
        "learning_rate": t.suggest_float("learning_rate", 5e-4, 1e-2, log=True),
        "regularization": t.suggest_float("regularization", 1e-6, 1e-2, log=True),
        "negatives": t.suggest_int("negatives", 1, 8),
    },
    "twotower": lambda t: {
        "dim": t.suggest_int("dim", 32, 128, log=True),
        "learning_rate": t.suggest_float("learning_rate", 1e-3, 1e-2, log=True),
        "regularization": t.suggest_float("regularization", 1e-7, 1e-3, log=True),
        "id_dropout": t.suggest_float("id_dropout", 0.0, 0.5),
    },
}

#: Validation users are ranked in this many chunks; the pruner sees the running mean after each.
CHUNKS = 4


@dataclass(frozen=True)
class Trial:
    """One trial: its settings, validation score (NaN if pruned early: the partial one)."""

    number: int
    params: dict[str, Any]
    score: float
    seconds: float
    state: str  # "complete" or "pruned"


@dataclass(frozen=True)
class SearchResult:
    model: str
    metric: str
    k: int
    best_params: dict[str, Any]
    best_score: float
    default_params: dict[str, Any]
    default_score: float
    seconds: float
    trials: list[Trial] = field(default_factory=list)


def tunable(name: str) -> Space:
    try:
        return SPACES[name]
    except KeyError:
        raise SegueError(
            f"segue tune has no search space for {name!r}; tunable: {', '.join(SPACES)}"
        ) from None


def search(
    name: str,
    data: TuningData,
    *,
    budget_s: float = 300.0,
    trials: int | None = None,
    seed: int = 0,
    metric: str = "ndcg",
    k: int = 10,
    side: SideInfo | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> SearchResult:
    """TPE over ``SPACES[name]`` for ``budget_s`` seconds (and at most ``trials`` trials).

    Optuna checks the budget between trials, so the last trial may run past it; a search
    always finishes its first (default) trial.
    """
    import optuna

    space = tunable(name)
    spec = component_spec(name)
    if metric not in TUNABLE:
        raise SegueError(f"cannot tune for {metric!r}; choose one of {', '.join(TUNABLE)}")
    if not isinstance(data, TuningData):
        raise SegueError(f"search needs TuningData(train, valid), got {type(data).__name__}")
    if budget_s <= 0:
        raise SegueError(f"--budget-s must be positive, got {budget_s}")
    holdout = make_protocol("random").holdout_of(data.train, data.valid)
    relevant = holdout.relevant[holdout.users]
    chunks = np.array_split(np.arange(len(holdout.users)), CHUNKS)
    defaults = spec.factory().params()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = set(space(optuna.create_study().ask()))  # which settings the space searches
    default_point = {p: defaults[p] for p in names}
    log: list[Trial] = []

    def objective(trial: optuna.Trial) -> float:
        params = space(trial)
        started = time.perf_counter()
        model = fit_on(spec.build(**params), holdout.train, spec.weighting, side)
        total, count = 0.0, 0
        for step, rows in enumerate(chunks):
            if len(rows) == 0:
                continue
            recs = model.recommend(holdout.users[rows], k, exclude=holdout.exclude)
            items = np.full((len(rows), k), -1, dtype=np.int64)
            items[:, : recs.items.shape[1]] = recs.items
            scores = ranking_scores(items, relevant[rows], k)
            values = getattr(scores, metric)
            total += float(values.sum())
            count += len(values)
            running = total / max(count, 1)
            trial.report(running, step)
            if trial.should_prune():
                log.append(Trial(trial.number, params, running,
                                 time.perf_counter() - started, "pruned"))  # fmt: skip
                raise optuna.TrialPruned()
        score = total / max(count, 1)
        log.append(Trial(trial.number, params, score, time.perf_counter() - started, "complete"))
        if progress is not None:
            progress(trial.number + 1, score)
        return score

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=5),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
    )
    study.enqueue_trial(default_point)
    started = time.perf_counter()
    study.optimize(objective, n_trials=trials, timeout=budget_s)
    complete = [t for t in log if t.state == "complete"]
    if not complete:
        raise SegueError(f"no trial of {name} completed within {budget_s} s; raise --budget-s")
    best = max(complete, key=lambda t: (t.score, -t.number))
    return SearchResult(
        model=name,
        metric=metric,
        k=k,
        best_params=_plain(best.params),
        best_score=best.score,
        default_params=_plain(default_point),
        default_score=log[0].score if log and log[0].number == 0 else math.nan,
        seconds=time.perf_counter() - started,
        trials=sorted(log, key=lambda t: t.number),
    )


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready values (numpy scalars to Python)."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in params.items()}


def render_search_markdown(results: list[SearchResult], plots: dict[str, str]) -> str:
    """The report: per model the chosen settings against the defaults, and every trial."""
    lines = ["# Hyper-parameter search (validation part only)", ""]
    for r in results:
        gain = r.best_score - r.default_score
        complete = sum(t.state == "complete" for t in r.trials)
        lines += [
            f"## {r.model}",
            "",
            f"{r.metric}@{r.k} on validation: **{r.best_score:.4f}** with the chosen settings, "
            f"{r.default_score:.4f} with the defaults ({gain:+.4f}); {len(r.trials)} trials "
            f"({complete} complete, {len(r.trials) - complete} pruned) in {r.seconds:.0f} s.",
            "",
            "| setting | chosen | default |",
            "|---|---|---|",
            *(
                f"| {p} | {_show(r.best_params[p])} | {_show(r.default_params.get(p))} |"
                for p in sorted(r.best_params)
            ),
            "",
        ]
        if r.model in plots:
            lines += [f"![{r.model}: score per trial and best so far]({plots[r.model]})", ""]
        lines += [
            f"| trial | {r.metric}@{r.k} | state | s | settings |",
            "|---|---|---|---|---|",
            *(
                f"| {t.number} | {t.score:.4f} | {t.state} | {t.seconds:.1f} | "
                + ", ".join(f"{p}={_show(v)}" for p, v in sorted(t.params.items()))
                + " |"
                for t in r.trials
            ),
            "",
        ]
    return "\n".join(lines)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def search_figure(result: SearchResult) -> Any:
    """Score per trial (pruned ones hollow, at their partial score) and the best so far."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    done = [t for t in result.trials if t.state == "complete"]
    pruned = [t for t in result.trials if t.state == "pruned"]
    ax.scatter([t.number for t in done], [t.score for t in done], s=18, label="trial")
    ax.scatter([t.number for t in pruned], [t.score for t in pruned], s=18,
               facecolors="none", edgecolors="grey", label="pruned (partial)")  # fmt: skip
    best, xs, ys = -math.inf, [], []
    for t in done:
        best = max(best, t.score)
        xs.append(t.number)
        ys.append(best)
    ax.step(xs, ys, where="post", color="black", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{result.metric}@{result.k} (validation)")
    ax.set_title(result.model)
    ax.legend(loc="lower right", fontsize="small")
    return figure


def write_search_report(results: list[SearchResult], folder: Path) -> Path:
    """``report.md`` and, with the ``reports`` extra, ``<model>.png`` per model in ``folder``.

    Without matplotlib the report is Markdown only and says so: the numbers are all in it.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SegueError(f"report path {folder} is a file; give a folder for the report")
    folder.mkdir(parents=True, exist_ok=True)
    plots: dict[str, str] = {}
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        note = "(no plots: install segue[reports] for them)\n\n"
    else:
        note = ""
        for r in results:
            search_figure(r).savefig(folder / f"{r.model}.png", bbox_inches="tight")
            plots[r.model] = f"{r.model}.png"
    path = folder / "report.md"
    path.write_text(note + render_search_markdown(results, plots), encoding="utf-8")
    return path
