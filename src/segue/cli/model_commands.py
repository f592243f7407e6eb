"""Commands that train, tune, evaluate and use models: train, tune, evaluate, recommend, demo."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from segue.cli.console import console, print_heading, print_table, progress_bar
from segue.cli.context import State, state

_MODELS_HELP = (
    "Comma-separated model names (default: all but the neural ncf,twotower), "
    "e.g. popularity,itemknn."
)
_METRICS = ("precision", "recall", "ndcg", "hit_rate", "map", "mrr", "coverage", "novelty")
#: What the results tables' abbreviations mean (printed under them, for the columns shown).
_MEANINGS = {
    "P": "P precision",
    "R": "R recall",
    "NDCG": "NDCG ranking quality",
    "HR": "HR hit rate",
    "MAP": "MAP mean average precision",
    "MRR": "MRR mean reciprocal rank",
    "AUC": "AUC pairwise ranking",
    "coverage": "coverage: share of the catalog recommended",
    "novelty": "novelty: mean self-information (higher = less popular)",
    "ILD": "ILD intra-list diversity",
    "pop pct": "pop pct: popularity percentile",
    "Gini": "Gini: exposure concentration",
    "fit s": "fit s / rec s: seconds to train / recommend",
}


def legend(headers: list[str]) -> str:
    """One line saying what each abbreviated column of ``headers`` means."""
    shown = {h.split("@")[0] for h in headers}
    parts = [meaning for short, meaning in _MEANINGS.items() if short in shown]
    return "; ".join(parts) + (" (@k: in the top k)" if any("@" in h for h in headers) else "")


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command()(tune)
    app.command()(evaluate)
    app.command()(recommend)
    app.command()(demo)


def _names(models: str) -> list[str]:
    from segue.models.names import DEFAULT_MODELS, model_spec

    names = [m.strip() for m in models.split(",") if m.strip()] or list(DEFAULT_MODELS)
    for name in names:
        model_spec(name)  # raises a clear error for unknown names
    return names


def _model_dir(st: State) -> Path:
    st.require_data_dir()  # a mistyped --data-dir: one line, not "no trained model"
    return st.settings.data_dir / "models"


def _tuned(st: State, data, names: list[str]) -> dict[str, dict]:
    """``segue tune``'s settings for ``names``, said in one line (and if chosen on other data)."""
    from segue.registry.tuned import load_tuned, stale, with_hybrid

    tuned = load_tuned(st.settings.data_dir)
    params = {n: p for n, p in with_hybrid({n: e["params"] for n, e in tuned.items()}).items()
              if n in names}  # fmt: skip
    entries = {n: e for n, e in tuned.items() if n in names}
    if params:
        old = stale(entries, data)
        inside = " (and inside hybrid)" if "hybrid" in params and "hybrid" not in entries else ""
        console.print(
            f"tuned settings for {', '.join(entries) or 'components'}{inside} (segue tune)"
            + (f"; chosen on other data for {', '.join(old)}: tune again" if old else "")
        )
    return params


def train(
    ctx: typer.Context,
    models: Annotated[str, typer.Option(help=_MODELS_HELP)] = "",
    weight_by: Annotated[
        str,
        typer.Option(
            help="count, or rating: rated events weigh their rating in the models' weightings "
            "that read magnitudes (counts, BM25, confidence), as in segue evaluate."
        ),
    ] = "count",
) -> None:
    """Train models on every interaction in the store and save them in the data directory.

    Models that `segue tune` tuned for this data directory train with the chosen settings.
    """
    from segue.dataset.from_store import load_interactions, load_side_info
    from segue.errors import SegueError
    from segue.models.names import model_spec
    from segue.registry.trained import train_models

    if weight_by not in ("count", "rating"):
        raise SegueError(f"--weight-by must be count or rating, not {weight_by!r}")
    st = state(ctx)
    names = _names(models)
    with console.status("loading interactions"):
        data = load_interactions(st.store(), values=weight_by)
        side = load_side_info(st.store(), data)
    params = _tuned(st, data, names)
    with progress_bar() as bar:
        task = bar.add_task("training", total=len(names))
        trained = train_models(
            data,
            names,
            _model_dir(st),
            progress=lambda s, d, t: bar.update(task, completed=d),
            side=side,
            params=params,
            similar=True,
        )
    for name, result in trained.items():
        console.print(
            f"trained {name} on {data.n_users:,} users × {data.n_items:,} items "
            f"({len(data):,} pairs, weighting {model_spec(name).weighting.name}) "
            f"in {result.fit_seconds:.1f}s"
        )


def evaluate(
    ctx: typer.Context,
    models: Annotated[str, typer.Option(help=_MODELS_HELP)] = "",
    protocol: Annotated[
        str,
        typer.Option(
            help="random (8:1:1 per user), temporal, cold-users, cold-items, or ratings "
            "(RMSE/MAE of the rating models mean, bias, svd, svdpp, knn, blend on --folds)."
        ),
    ] = "random",
    seeds: Annotated[
        str, typer.Option(help="Comma-separated split seeds; results are mean ± std.")
    ] = "0,1,2,3,4",
    k: Annotated[int, typer.Option(min=1, help="List length for the metrics.")] = 10,
    report: Annotated[
        Path | None, typer.Option(help="Folder for a Markdown report with PNG plots.")
    ] = None,
    folds: Annotated[
        str,
        typer.Option(
            help="--protocol ratings: a number of folds of the store's rated events (split by "
            "the first seed), or a folder of *.base/*.test pairs (user, item, rating, ts; tabs)."
        ),
    ] = "5",
    positive: Annotated[
        str | None,
        typer.Option(
            help="Which held-out pairs count as relevant, e.g. 'rating>=4' for explicit "
            "ratings (default: every event)."
        ),
    ] = None,
    weight_by: Annotated[
        str,
        typer.Option(
            help="count, or rating: rated events weigh their rating in the models' weightings "
            "that read magnitudes (counts, BM25, confidence), not in binary ones."
        ),
    ] = "count",
) -> None:
    """Evaluate models on identical splits per seed and print mean ± std of the metrics.

    With ``--protocol ratings`` the models are rating predictors (bias, svd, svdpp, blend;
    default all) on k folds or given folds, with RMSE and MAE.
    """
    from segue.dataset.from_store import load_interactions, load_side_info
    from segue.errors import SegueError
    from segue.eval import make_protocol
    from segue.jobs.evaluate import evaluate_protocol

    st = state(ctx)
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise SegueError(f"--seeds must be comma-separated integers, got {seeds!r}") from None
    if protocol == "ratings":
        _evaluate_ratings(st, models, folds, seed_list[0] if seed_list else 0)
        return
    names = _names(models)
    make_protocol(protocol)  # an unknown name fails before the data is loaded
    if weight_by not in ("count", "rating"):
        raise SegueError(f"--weight-by must be count or rating, not {weight_by!r}")
    with console.status("loading interactions"):
        if positive:
            from segue.dataset import Interactions
            from segue.jobs.evaluate import positive_pairs

            log = st.store().interactions()
            data = Interactions.from_log(log, values=weight_by)  # load_interactions' data
            relevant = positive_pairs(log, positive)
            del log
        else:
            data, relevant = load_interactions(st.store(), values=weight_by), None
        side = load_side_info(st.store(), data)
    params = _tuned(st, data, names)
    with progress_bar() as bar:
        task = bar.add_task("evaluating", total=None)
        evaluation = evaluate_protocol(
            data,
            names,
            protocol=protocol,
            seeds=seed_list,
            k=k,
            side=side,
            report=report,
            progress=lambda s, d, t: bar.update(task, completed=d, total=t),
            params=params,
            positive=relevant,
        )
    print_results(evaluation, k)
    if report is not None:
        console.print(f"report written to {report}")


def tune(
    ctx: typer.Context,
    models: Annotated[
        str, typer.Option(help="Comma-separated models to tune (default: ease,als,itemknn).")
    ] = "ease,als,itemknn",
    budget_s: Annotated[
        float,
        typer.Option(min=1.0, help="Seconds of search per model (a last trial may run over)."),
    ] = 300.0,
    trials: Annotated[
        int | None, typer.Option(min=1, help="At most this many trials per model.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split and the sampler.")] = 0,
    metric: Annotated[
        str, typer.Option(help="What to maximise at k: ndcg, recall, map, ...")
    ] = "ndcg",
    k: Annotated[int, typer.Option(min=1, help="List length for the metric.")] = 10,
    report: Annotated[
        Path | None,
        typer.Option(help="Folder for the Markdown report and plots (default: DATA_DIR/tuning)."),
    ] = None,
) -> None:
    """Search each model's settings on a validation part (never the test part) with Optuna.

    The winners go to DATA_DIR/tuned.json with their validation score, date and a fingerprint
    of the data; `segue train`, `segue evaluate` and `segue flow run` then use them.
    """
    from segue.dataset.from_store import load_interactions, load_side_info
    from segue.eval.search import tunable
    from segue.jobs.tune import tune_models

    st = state(ctx)
    names = [m.strip() for m in models.split(",") if m.strip()]
    for name in names:
        tunable(name)
    st.require_data_dir()
    with console.status("loading interactions"):
        data = load_interactions(st.store())
        side = load_side_info(st.store(), data)
    with progress_bar() as bar:
        task = bar.add_task("tuning", total=len(names))
        outcome = tune_models(
            data,
            names,
            st.settings.data_dir,
            budget_s=budget_s,
            trials=trials,
            seed=seed,
            metric=metric,
            k=k,
            side=side,
            report=report,
            progress=lambda s, d, t: bar.update(task, completed=d, description=s),
        )
    rows = [
        [r.model, f"{r.default_score:.4f}", f"{r.best_score:.4f}", str(len(r.trials)),
         ", ".join(f"{p}={v:.4g}" if isinstance(v, float) else f"{p}={v}"
                   for p, v in sorted(r.best_params.items()))]
        for r in outcome.results
    ]  # fmt: skip
    print_table(["model", "default", "tuned", "trials", "settings"], rows,
                title=f"{metric}@{k} on the validation part (seed {seed})")  # fmt: skip
    console.print(f"settings saved to {outcome.saved}; report written to {outcome.report}")


def _evaluate_ratings(st: State, models: str, folds: str, seed: int) -> None:
    from segue.eval.ratings import evaluate_rating_models, kfold, rating_model, read_fold_dir
    from segue.models.ratings import RATING_MODELS

    names = [m.strip() for m in models.split(",") if m.strip()] or list(RATING_MODELS)
    for name in names:
        rating_model(name)  # an unknown name fails before any data is read
    if folds.strip().isdigit():
        fold_list = kfold(st.store().interactions(), int(folds), seed)
        where = f"{folds} folds of the store's rated events (seed {seed})"
    else:
        fold_list = read_fold_dir(Path(folds))
        where = f"{len(fold_list)} folds from {folds} ({', '.join(f.name for f in fold_list)})"
    with console.status("fitting rating models"):
        result = evaluate_rating_models(fold_list, names)
    rows = [[s.model, f"{s.rmse:.4f} ± {s.rmse_std:.4f}", f"{s.mae:.4f} ± {s.mae_std:.4f}",
             f"{s.fit_seconds:.2f}"] for s in result.summaries]  # fmt: skip
    rmse_all = [s.rmse for s in result.summaries]
    mae_all = [s.mae for s in result.summaries]
    rows.append(["mean of models", f"{sum(rmse_all) / len(rmse_all):.4f}",
                 f"{sum(mae_all) / len(mae_all):.4f}", ""])  # fmt: skip
    legend = "mean ± std over folds; lower is better; fit s: seconds to train, per fold"
    print_table(["model", "RMSE", "MAE", "fit s"], rows, title=f"rating prediction · {where}",
                legend=legend)  # fmt: skip


def print_results(results, k: int) -> None:
    """Metrics at k per model (P precision, R recall, HR hit rate), coverage, novelty, time.

    ``results`` is the demo's list of one-split ``ModelResult`` or a multi-seed ``Evaluation``
    (then mean ± std per metric, and a table per user-activity bucket).
    """
    from segue.eval import Evaluation
    from segue.eval.report import bucket_table, main_table

    if isinstance(results, Evaluation):
        seeds = ", ".join(str(s) for s in results.seeds)
        shown = ("precision", "recall", "ndcg", "hit_rate", "mrr", "auc", "coverage", "novelty")
        shown += ("diversity", "pop_percentile", "gini")
        headers, rows = main_table(results, digits=3, columns=shown, plus_minus="±")
        spread = "mean ± std over seeds; " if len(results.seeds) > 1 else ""
        print_table(headers, rows, title=f"{results.description} · seeds {seeds}",
                    legend=spread + legend(headers))  # fmt: skip
        headers, rows = bucket_table(results, digits=3)
        print_table(headers, rows, title="by training pairs per user (means over seeds)")
        return
    short = {
        "precision": "P",
        "recall": "R",
        "ndcg": "NDCG",
        "hit_rate": "HR",
        "map": "MAP",
        "mrr": "MRR",
    }
    headers = [f"{short[m]}@{k}" if m in short else m for m in _METRICS]
    rows = [
        [
            r.model,
            *(f"{r.metrics[m]:.3f}" for m in _METRICS),
            f"{r.fit_seconds:.2f}",
            f"{r.recommend_seconds:.2f}",
        ]
        for r in results
    ]
    print_table(["model", *headers, "fit s", "rec s"], rows,
                title="test split (random 8:1:1 per user)",
                legend=legend(["model", *headers, "fit s"]))  # fmt: skip


def recommend(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="The user's id (a new id tries a new listener).")],
    model: Annotated[str, typer.Option(help="Which trained model answers.")] = "itemknn",
    k: Annotated[int, typer.Option(min=1, max=500, help="How many items.")] = 10,
    pick: Annotated[
        list[str] | None,
        typer.Option(
            help='Onboarding pick: a name ("Late Kingdom", "Title — Artist") or an item id; '
            "repeat, or separate with commas."
        ),
    ] = None,
    genre: Annotated[
        list[str] | None, typer.Option(help="Onboarding genre; repeat for several.")
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(help="Only items of this kind (track, podcast_episode, ...); repeatable."),
    ] = None,
    max_per_artist: Annotated[int | None, typer.Option(min=1, help="Cap per artist.")] = None,
    new_items: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of the list reserved for new items.")
    ] = 0.0,
) -> None:
    """Recommend items to one listener with the reason for each (new listeners: cold start)."""
    from segue.jobs.recommend import recommend_for_user
    from segue.registry.trained import load_trained

    st = state(ctx)
    trained = load_trained(_model_dir(st), _names(model)[0])
    suggestions = recommend_for_user(
        st.store(),
        trained,
        user,
        k,
        picks=pick or (),
        genres=genre or (),
        kinds=kind or (),
        max_per_artist=max_per_artist,
        new_item_share=new_items,
    )
    if not suggestions:
        from segue.jobs.empty import why_no_recommendations

        reason = why_no_recommendations(st.store(), trained, user, kind or ())
        console.print(f"[yellow]nothing to recommend:[/] {reason}")
        return
    print_suggestions(suggestions, f"{user} · {model}")


def print_suggestions(suggestions, title: str) -> None:
    table = Table("#", "item", "score", "why", title=title)
    for rank, s in enumerate(suggestions, 1):
        score = "—" if s.score != s.score else f"{s.score:.3f}"  # NaN: placed by a rule
        table.add_row(str(rank), s.title, score, s.reason)
    console.print(table)


def demo(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(min=10, help="Listeners in the synthetic world.")] = 5000,
    tracks: Annotated[int, typer.Option(min=50, help="Tracks in the synthetic world.")] = 10_000,
    events: Annotated[int, typer.Option(min=1000, help="Target number of events.")] = 500_000,
    seed: Annotated[int, typer.Option(help="Seed for the world and the split.")] = 7,
    models: Annotated[str, typer.Option(help=_MODELS_HELP)] = "",
) -> None:
    """Run the main job end to end: synth, import, train, evaluate, show recommendations."""
    from segue.data.synth import SynthParams
    from segue.jobs.demo import run_demo
    from segue.store import masked

    st = state(ctx)
    params = SynthParams(seed=seed, n_users=users, n_tracks=tracks, n_events=events)
    with progress_bar() as bar:
        tasks: dict[str, int] = {}

        def report(step: str, done: int, total: int | None) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done, total=total)

        result = run_demo(
            st.store(create=True), params, _model_dir(st), models=_names(models), progress=report
        )
    w = result.world
    print_heading("1 · the world")
    console.print(
        f"[green]world[/]: {w.users:,} users, {w.items:,} items, {w.events_inserted:,} new events "
        f"in {masked(st.settings.resolved_database_url)}"
    )
    print_heading("2 · every model on one held-out split (higher is better, but for fit/rec s)")
    print_results(result.results, 10)
    print_heading("3 · sample recommendations, with the reason a listener would see")
    for user_id, by_model in result.samples.items():
        for name, suggestions in by_model.items():
            print_suggestions(suggestions, f"user {user_id} · {name}")
    console.print(
        "score: the model's score for the item (— when a rule placed it); "
        "why: the reason shown to the listener"
    )
    if result.wrapped:
        print_heading("4 · one listener's year, as a shareable card and page")
    for what, path in result.wrapped.items():
        console.print(f"[green]Wrapped {what}[/]: {path}")
    if result.live is not None:
        live = result.live
        print_heading("5 · real time: two skips change the next list, without a retrain")
        console.print(
            f"[green]real time[/]: user {live.user_id} skips {live.skipped} twice; "
            f"the next list has no {live.artist}"
        )
        for label, items in (("before", live.before), ("after the skips", live.after)):
            console.print(f"  {label}: " + "; ".join(i.title for i in items[:5]))
    if result.next_steps:
        print_heading("what to run next")
        prefix = ["segue"]
        if st.settings.data_dir.resolve() != Path("segue-data").resolve():
            prefix += ["--data-dir", str(st.settings.data_dir)]
        for args, what in result.next_steps:
            command = shlex.join([*prefix, *args])
            console.print(f"  {escape(command)}\n      [dim]{escape(what)}[/]", soft_wrap=True)
