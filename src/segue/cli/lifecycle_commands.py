"""Model lifecycle and batch commands: ``segue models ...``, ``segue flow run``, ``segue runs``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from segue.cli.console import console
from segue.cli.context import State, state

models_app = typer.Typer(help="The model registry: list, show, promote, roll back.",
                         no_args_is_help=True)  # fmt: skip
flow_app = typer.Typer(help="Run the daily batch flow (Metaflow).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
    app.add_typer(flow_app, name="flow")
    app.command()(runs)


def _registry(st: State):
    from segue.registry import ModelRegistry, default_registry_root

    st.require_data_dir()
    return ModelRegistry(default_registry_root(st.settings))


@models_app.command("list")
def list_models(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Registry entry (default: all).")] = None,
) -> None:
    """Versions with their model, NDCG@10, data and which one serves."""
    from segue.batch.lifecycle import KEY_METRIC

    registry = _registry(state(ctx))
    names = [name] if name else registry.names()
    table = Table("name", "version", "model", KEY_METRIC, "events", "date", "created", "serving",
                  title=f"model registry · {registry.root}")  # fmt: skip
    for entry in names:
        production = registry.production(entry)
        for v in registry.versions(entry):
            m = v.manifest
            metric = m.get("metrics", {}).get(KEY_METRIC)
            table.add_row(
                entry,
                v.version,
                str(m.get("model_type", "?")),
                "—" if metric is None else f"{metric:.4f}",
                f"{m.get('training_data', {}).get('events', 0):,}",
                str(m.get("date", "")),
                str(m.get("created_at", "")),
                "[green]●[/]" if production and production.version == v.version else "",
            )
    console.print(table)


@models_app.command()
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Registry entry.")],
    version: Annotated[str | None, typer.Argument(help="Version (default: production).")] = None,
) -> None:
    """A version's manifest (default: the serving one) and the promotion history."""
    from segue.registry import RegistryError

    registry = _registry(state(ctx))
    target = registry.get(name, version) if version else registry.production(name)
    if target is None:
        raise RegistryError(f"{name!r} has no production version; give one: segue models show "
                            f"{name} v0001")  # fmt: skip
    console.print(f"[bold]{name} {target.version}[/]  {target.path}")
    console.print_json(json.dumps(target.manifest))
    for entry in registry.history(name)[-10:]:
        console.print(f"{entry['at']}  {entry['action']:<8} {entry['version']} "
                      f"(was {entry['previous']}) by {entry['user']}")  # fmt: skip


@models_app.command()
def promote(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Registry entry.")],
    version: Annotated[str, typer.Argument(help="Version to serve, e.g. v0003.")],
    force: Annotated[bool, typer.Option(help="Skip the NDCG@10 gate.")] = False,
    margin: Annotated[float, typer.Option(help="Tolerated relative NDCG@10 drop.")] = 0.05,
) -> None:
    """Make a version serve (atomically; a running API picks it up)."""
    from segue.batch.lifecycle import promote_checked

    registry = _registry(state(ctx))
    if force:
        registry.promote(name, version)
    else:
        promote_checked(registry, name, version, margin=margin)
    console.print(f"[green]{name}[/]: {version} now serves")


@models_app.command()
def rollback(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Registry entry.")]):
    """Serve the previously promoted version again (its model and its recommendations)."""
    registry = _registry(state(ctx))
    version = registry.rollback(name)
    console.print(f"[green]{name}[/]: rolled back to {version.version}")


@flow_app.command(
    "run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def flow_run(
    ctx: typer.Context,
    date: Annotated[str, typer.Option(help="Day to compute, YYYY-MM-DD (default today).")] = "",
    models: Annotated[str, typer.Option(help="Candidate models.")] = "als,itemknn",
    engine: Annotated[str, typer.Option(help="in-process or spark.")] = "in-process",
    ingest: Annotated[str, typer.Option(help="none, synthetic or lastfm.")] = "none",
    lastfm_dir: Annotated[Path | None, typer.Option(help="Last.fm 2K folder.")] = None,
    max_workers: Annotated[int, typer.Option(help="Parallel steps (Metaflow).")] = 2,
) -> None:
    """Run the daily flow locally; extra options pass to the flow (e.g. --k 20 --margin 0.1).

    Metaflow records the run under <data_dir>/metaflow; see ``segue runs``.
    """
    from segue.batch.daily import SOURCES, DayPlan, parse_date, parse_models
    from segue.batch.runs import flow_command, flow_log_path, metaflow_env, run_flow
    from segue.errors import SegueError

    st = state(ctx)
    DayPlan(parse_date(date), parse_models(models), engine)  # bad options fail here, in one line
    if ingest not in SOURCES:
        raise SegueError(f"unknown --ingest {ingest!r}; choose one of {', '.join(SOURCES)}")
    st.require_data_dir(create=ingest != "none")  # without an import the store must be there
    args = ["run", "--max-workers", str(max_workers), "--date", parse_date(date).isoformat(),
            "--models", models, "--engine", engine, "--ingest", ingest]  # fmt: skip
    if lastfm_dir is not None:
        args += ["--lastfm-dir", str(lastfm_dir.resolve())]
    args += list(ctx.args)
    command, env = flow_command(args), metaflow_env(st.settings)
    log = flow_log_path(st.settings, parse_date(date))
    console.print(f"daily flow for {parse_date(date)} (Metaflow's full output: {log})")
    status, output = run_flow(command, env, log, lambda line: console.print(escape(line)))
    if status == 0:
        return
    if output.refused_by_gate:  # an expected outcome: one line, not Metaflow's traceback
        raise SegueError(
            f"the gate refused to publish: {(output.error or '').removeprefix('refused: ')}; "
            "production is unchanged "
            f"(--force publishes anyway; full log: {log})"
        )
    where = f" at step {output.failed_step}" if output.failed_step else ""
    why = f": {output.error_type}: {output.error}" if output.error else f" (exit {status})"
    raise SegueError(
        f"the daily flow failed{where}{why}; production is unchanged (full log: {log}; "
        "past runs: segue runs)"
    )


def runs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 20,
) -> None:
    """Daily-flow runs recorded by Metaflow: parameters, metrics, artifacts."""
    from segue.batch.runs import list_runs

    found = list_runs(state(ctx).settings, limit=limit)
    table = Table("run", "status", "created", "parameters", "metrics", "artifacts",
                  title="DailyFlow runs")  # fmt: skip
    for r in found:
        colour = {"ok": "green", "failed": "red"}.get(r.status, "yellow")
        status = f"[{colour}]{r.status}[/]"
        shown = {k: v for k, v in r.parameters.items() if v not in ("", None)}
        table.add_row(
            r.run_id,
            status,
            r.created_at[:19],
            ", ".join(f"{k}={v}" for k, v in sorted(shown.items())),
            ", ".join(f"{k}={_fmt(v)}" for k, v in r.metrics.items()),
            str(len(r.artifacts)),
        )
    console.print(table)


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
