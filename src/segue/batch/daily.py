"""The units of the daily batch run; ``segue.batch.flow`` orchestrates them with Metaflow.

Each function is one step's work and calls the same library code the CLI does (ingest,
``Interactions`` from the store, the evaluation runner, ``train_models``, the registry), so the
flow adds scheduling, retries and bookkeeping, not a second implementation.

Engines: ``in-process`` trains any registered model here; ``spark`` trains ALS with
``pyspark.ml`` (:mod:`segue.models.spark_als`) and scores every user with Spark.
"""

from __future__ import annotations

import datetime as dt
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segue.batch.lifecycle import data_summary, metrics_at_k
from segue.data.synth import SynthParams
from segue.dataset import Interactions, SideInfo
from segue.errors import SegueError
from segue.eval import Candidate, RandomProtocol, evaluate
from segue.jobs.ingest import import_lastfm_2k, load_synthetic_world
from segue.models.names import model_spec
from segue.registry.trained import TrainedModel, load_trained, train_models
from segue.store import Store

ENGINES = ("in-process", "spark")
SOURCES = ("none", "synthetic", "lastfm")
_DAY_MS = 86_400_000
#: Cut-off of the evaluation metrics (the gate's key metric is NDCG@10).
EVAL_K = 10
#: Held-out users the gate's metrics are taken over by default (a seeded draw; all when fewer):
#: ranking every one of a million listeners cost the 1M world's flow ~6 of its minutes, and
#: 100,000 of them put NDCG@10 within about ±0.002 (95 %), well inside the gate's margin.
EVAL_USERS = 100_000


@dataclass(frozen=True)
class DayPlan:
    """What one run computes: the day, the candidates, the engine, the batch list length."""

    date: dt.date
    models: tuple[str, ...]
    engine: str = "in-process"
    k: int = 10
    seed: int = 0
    #: held-out users ranked for the gate's metrics; 0: every one
    eval_users: int = EVAL_USERS

    def __post_init__(self) -> None:
        if isinstance(self.eval_users, bool) or self.eval_users < 0:
            raise SegueError(
                f"eval-users must be >= 0 (0: every held-out user), got {self.eval_users}"
            )
        if self.engine not in ENGINES:
            raise SegueError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if not self.models:
            raise SegueError("give at least one candidate model (--models als,itemknn)")
        for name in self.models:
            model_spec(name)
        if self.engine == "spark" and set(self.models) != {"als"}:
            raise SegueError(
                f"--engine spark trains ALS only; got --models {','.join(self.models)}"
            )

    @property
    def end_ms(self) -> int:
        """Events strictly before the end of ``date`` (UTC) are the day's training data."""
        midnight = dt.datetime.combine(self.date, dt.time(), dt.UTC)
        return int(midnight.timestamp() * 1000) + _DAY_MS


def parse_date(text: str | None) -> dt.date:
    """``YYYY-MM-DD`` or empty/``today`` (UTC)."""
    if not text or text == "today":
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise SegueError(f"--date must be YYYY-MM-DD or 'today', got {text!r}") from None


def parse_models(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    for name in names:
        model_spec(name)
    return names


def ingest_source(
    store: Store,
    source: str,
    *,
    lastfm_dir: Path | None = None,
    synth: SynthParams | None = None,
) -> dict[str, Any]:
    """Bring new data into the store; imports are idempotent, so a rerun adds nothing."""
    if source == "none":
        return {"source": "none"}
    if source == "lastfm":
        if lastfm_dir is None or not Path(lastfm_dir).is_dir():
            raise SegueError(f"--lastfm-dir {lastfm_dir} is not a folder with the Last.fm files")
        report = import_lastfm_2k(store, Path(lastfm_dir))
        return {"source": "lastfm", "dir": str(lastfm_dir), "report": repr(report)}
    if source == "synthetic":
        synth_report = load_synthetic_world(store, synth or SynthParams())
        return {"source": "synthetic", **vars(synth_report)}
    raise SegueError(f"unknown --ingest {source!r}; choose one of {', '.join(SOURCES)}")


def snapshot_dataset(store: Store, plan: DayPlan, path: Path) -> dict[str, Any]:
    """The day's interactions, saved for the later steps; returns the data summary."""
    log = store.interactions(end_ms=plan.end_ms)
    if len(log) == 0:
        raise SegueError(f"no events before the end of {plan.date} in the store; ingest first")
    data = Interactions.from_log(log)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump(data, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return data_summary(
        log.ts_ms, events=len(log), users=data.n_users, items=data.n_items, pairs=len(data)
    )


def load_snapshot(path: Path) -> Interactions:
    with Path(path).open("rb") as handle:
        data = pickle.load(handle)  # written by snapshot_dataset in this run's own folder
    if not isinstance(data, Interactions):
        raise SegueError(f"{path} does not hold a dataset snapshot")
    return data


def candidate(
    name: str, engine: str, spark: Any = None, params: Mapping[str, Any] | None = None
) -> Candidate:
    """The evaluation candidate for a model name on an engine (``params``: tuned settings)."""
    spec = model_spec(name)
    if engine == "spark":
        from segue.models.spark_als import SparkALSRecommender, SparkConfig

        config = spark or SparkConfig()
        return Candidate(f"{name}-spark", lambda: SparkALSRecommender(spark=config), spec.weighting)
    return Candidate(name, spec.build, spec.weighting, dict(params or {}))


def evaluate_candidate(
    data: Interactions,
    name: str,
    plan: DayPlan,
    *,
    side: Any = None,
    spark: Any = None,
    params: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Metrics at 10 on a held-out random 8:1:1 split (test part), keyed ``ndcg@10`` etc.,
    over at most ``plan.eval_users`` held-out users (``users`` says how many).

    Always at 10 whatever the batch list length, so the gate compares like with like.
    """
    evaluation = evaluate(
        data,
        [candidate(name, plan.engine, spark, params)],
        RandomProtocol((0.8, 0.1, 0.1)),
        seeds=[plan.seed],
        k=EVAL_K,
        side=side,
        max_users=plan.eval_users or None,
    )
    return metrics_at_k(evaluation.runs[0].metrics, EVAL_K)


def train_candidate(
    data: Interactions,
    name: str,
    plan: DayPlan,
    model_dir: Path,
    *,
    side: Any = None,
    spark: Any = None,
    params: Mapping[str, Any] | None = None,
) -> TrainedModel:
    """Fit on all the day's data and save under ``model_dir/<name>`` (``params``: tuned).

    On Spark the fitted Spark model and its ratings are kept in ``model_dir/<name>.spark`` for
    the batch step.
    """
    if plan.engine == "in-process":
        return train_models(data, [name], model_dir, side=side, params={name: params or {}})[name]
    import shutil
    import time

    from segue.models.spark_als import SparkALSRecommender, SparkConfig, save_spark_model
    from segue.registry.trained import save_trained

    config = spark or SparkConfig()
    spark_dir = model_dir / f"{name}.spark"
    spark_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    model = SparkALSRecommender(spark=config).fit(data.matrix(model_spec(name).weighting))
    trained = TrainedModel(name, model, data.users, data.items, time.perf_counter() - started)
    save_trained(trained, model_dir / name)
    save_spark_model(model, str(spark_dir / "model"))
    assert model.ratings_path is not None
    shutil.copytree(model.ratings_path, spark_dir / "ratings", dirs_exist_ok=True)
    return trained


def load_candidate(model_dir: Path, name: str) -> TrainedModel:
    return load_trained(model_dir, name)


def batch_recommendations(
    trained: TrainedModel,
    model_dir: Path,
    plan: DayPlan,
    out: Path,
    *,
    spark: Any = None,
    side: SideInfo | None = None,
) -> int:
    """Every user's top-k of ``trained`` (saved in ``model_dir``) into ``out`` (a Parquet
    file, or a folder on Spark). With ``side``, the rules every face applies: kids profiles
    get no explicit items, listeners without personalisation consent their context's list.
    Spark scores everyone else; the ruled users' lists are made here, beside Spark's files
    in the same folder (``part-segue-rules.parquet``)."""
    from segue.batch.lists import batch_recommend, ruled_users

    name = trained.name
    if plan.engine == "spark":
        from segue.models.spark_als import SparkConfig, spark_recommend

        spark_dir = model_dir / f"{name}.spark"
        ruled = ruled_users(side)
        rows = spark_recommend(
            str(spark_dir / "model"),
            str(spark_dir / "ratings"),
            trained.model._fitted(),
            trained.users,
            trained.items,
            str(out),
            k=plan.k,
            date=plan.date,
            name=name,
            config=spark or SparkConfig(),
            skip_users=ruled,
        )
        if len(ruled):
            rows += batch_recommend(
                trained,
                Path(out) / "part-segue-rules.parquet",
                k=plan.k,
                date=plan.date,
                side=side,
                rows=ruled,
            )
        return rows
    return batch_recommend(trained, out, k=plan.k, date=plan.date, side=side)


#: What the train step does for each candidate, each in a task of its own: its gate metrics on
#: a held-out split, and its fit on all the day's data. Neither needs the other, and each has
#: long single-threaded stretches, so side by side they fill two cores (the 1M world's train
#: step: 674 s one after the other, 563 s side by side, with the compiled ``rank_pairs``).
TRAINING_ROLES = ("gate", "fit")


def training_jobs(plan: DayPlan) -> list[tuple[str, str]]:
    """The train step's tasks: (candidate, role) for each candidate and each of
    :data:`TRAINING_ROLES`."""
    return [(name, role) for name in plan.models for role in TRAINING_ROLES]


def joined_results(parts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One result per candidate from its tasks' parts (each has ``name`` and ``role``; a
    "gate" part brings ``metrics``, a "fit" part the rest), in --models order.

    A candidate missing a part is an error: the flow must never gate a model by metrics it
    was not given, nor publish one that was not fitted.
    """
    joined: dict[str, dict[str, Any]] = {}
    roles: dict[str, set[str]] = {}
    for part in parts:
        name, role = part["name"], part["role"]
        if role in roles.setdefault(name, set()):
            raise SegueError(f"candidate {name!r}: two {role!r} results")
        roles[name].add(role)
        joined.setdefault(name, {}).update({k: v for k, v in part.items() if k != "role"})
    for name, have in roles.items():
        if missing := set(TRAINING_ROLES) - have:
            raise SegueError(f"candidate {name!r}: no {', '.join(sorted(missing))} result")
    return sorted(joined.values(), key=lambda r: r["order"])


def best_candidate(results: Sequence[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The candidate with the highest ``metric`` (ties: the earlier one in --models)."""
    if not results:
        raise SegueError("no candidate was trained")
    return max(results, key=lambda r: (r["metrics"].get(metric, float("-inf")), -r["order"]))


__all__ = [
    "ENGINES",
    "SOURCES",
    "DayPlan",
    "batch_recommendations",
    "best_candidate",
    "evaluate_candidate",
    "ingest_source",
    "joined_results",
    "load_snapshot",
    "parse_date",
    "parse_models",
    "snapshot_dataset",
    "train_candidate",
    "training_jobs",
]
