"""``segue experiments``: create, start, stop, list and report A/B tests of the serving
pipeline (``<data_dir>/experiments.json``; serving processes pick changes up at once)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from segue.cli.console import console, print_table
from segue.cli.context import state
from segue.errors import SegueError

if TYPE_CHECKING:
    from segue.experiments.book import Plan

experiments_app = typer.Typer(
    help="A/B tests of the serving pipeline: variants, assignment, reports.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(experiments_app, name="experiments")


def _book(ctx: typer.Context):  # type: ignore[no-untyped-def]
    from segue.experiments.book import EXPERIMENTS_FILE, ExperimentBook

    return ExperimentBook(state(ctx).settings.data_dir / EXPERIMENTS_FILE)


@experiments_app.command("create")
def create(
    ctx: typer.Context,
    experiment_id: Annotated[str, typer.Argument(help="A name for it, e.g. artist-cap.")],
    variant: Annotated[
        list[str],
        typer.Option(
            help="NAME or NAME:SETTING=VALUE,... (version=v0003 serves that registry version "
            "of the model; max_per_artist, new_item_share, surface); the first is the "
            "control. Give two or more."
        ),
    ],
    share: Annotated[
        str | None, typer.Option(help="Traffic shares, e.g. 0.5,0.5 (default: equal).")
    ] = None,
    layer: Annotated[str, typer.Option(help="Experiments of one layer exclude each other.")] = (
        "default"
    ),
    part: Annotated[
        str, typer.Option(help="The part of its layer it owns, START-END in [0, 1].")
    ] = "0-1",
    days: Annotated[
        int | None,
        typer.Option(
            help="Planned duration in days: the report then tests each daily look against "
            "O'Brien–Fleming boundaries that spend alpha over these days (without it: read "
            "the always-valid p while peeking)."
        ),
    ] = None,
) -> None:
    """Define an experiment (as a draft: `segue experiments start` runs it)."""
    from segue.experiments.book import new_plan, parse_settings

    names, settings = [], {}
    for text in variant:
        name, _, rest = text.partition(":")
        names.append(name.strip())
        settings[name.strip()] = parse_settings(rest, f"--variant {text!r}")
    shares: list[float | None] = [None] * len(names)
    if share is not None:
        try:
            shares = [float(s) for s in share.split(",")]
        except ValueError:
            raise SegueError(f"--share takes numbers like 0.5,0.5, got {share!r}") from None
        if len(shares) != len(names):
            raise SegueError(f"--share has {len(shares)} values for {len(names)} variants")
    low, sep, high = part.partition("-")
    try:
        start, end = float(low), float(high)
    except ValueError:
        raise SegueError(f"--part takes START-END, e.g. 0-0.5, got {part!r}") from None
    if not sep:
        raise SegueError(f"--part takes START-END, e.g. 0-0.5, got {part!r}")
    plan = new_plan(
        experiment_id,
        [(n, s, settings[n]) for n, s in zip(names, shares, strict=True)],
        layer=layer,
        start=start,
        end=end,
        days=days,
    )
    shares = [v.share for v in plan.experiment.variants]
    _book(ctx).create(plan)
    planned = "" if plan.days is None else f", planned for {plan.days} days"
    console.print(f"experiment {experiment_id} created (draft{planned}): " + ", ".join(
        f"{n} {s:.0%}" + (f" {settings[n]}" if settings[n] else "") for n, s in zip(
            names, shares, strict=True)
    ))  # fmt: skip


@experiments_app.command("start")
def start(ctx: typer.Context, experiment_id: str) -> None:
    """Run it: serving assigns listeners from now on."""
    from segue.experiments.book import RUNNING

    _book(ctx).set_status(experiment_id, RUNNING, int(time.time() * 1000))
    console.print(f"experiment {experiment_id} running")


@experiments_app.command("stop")
def stop(ctx: typer.Context, experiment_id: str) -> None:
    """Stop it: everyone gets the default pipeline again; the report stays."""
    from segue.experiments.book import STOPPED

    _book(ctx).set_status(experiment_id, STOPPED, int(time.time() * 1000))
    console.print(f"experiment {experiment_id} stopped")


@experiments_app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every experiment: status, layer, variants with shares and settings."""
    plans = _book(ctx).plans()
    if not plans:
        console.print("no experiments yet: `segue experiments create ID --variant A --variant B`")
        return
    rows = [
        [
            p.experiment.id,
            p.status,
            f"{p.experiment.layer} [{p.experiment.start:g}, {p.experiment.end:g})",
            "; ".join(
                f"{v.name} {v.share:.0%}"
                + "".join(f" {k}={val}" for k, val in p.settings.get(v.name, {}).items())
                for v in p.experiment.variants
            ),
            _planned(p),
        ]
        for p in plans
    ]
    print_table(["experiment", "status", "layer [part)", "variants", "planned"], rows)


def _planned(plan: Plan) -> str:
    """The planned duration, and its last day (UTC) once started — day 1 is the day it
    started, as the report counts; "-" without a plan."""
    if plan.days is None:
        return "-"
    if plan.started_ms is None:
        return f"{plan.days} days"
    first = dt.datetime.fromtimestamp(plan.started_ms / 1000, dt.UTC).date()
    return f"{plan.days} days (to {first + dt.timedelta(days=plan.days - 1)})"


@experiments_app.command("report")
def report(
    ctx: typer.Context,
    experiment_id: str,
    start: Annotated[
        str | None, typer.Option("--from", help="First day (UTC), YYYY-MM-DD; default: its start.")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day (default: today).")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Write report.md and cumulative-effects.png into this folder."),
    ] = None,
) -> None:
    """Per variant against the control: CTR, conversions and minutes per listener, with
    intervals, Holm-adjusted and always-valid p-values, the O'Brien–Fleming decision when it
    has a planned duration, guardrails and the sample-ratio check."""
    from segue.cli.metrics_commands import parse_day
    from segue.jobs.experiments import experiment_report

    book = _book(ctx)
    today = dt.datetime.now(dt.UTC).date()
    if start:
        first = parse_day(start, "--from")
    else:
        began = book.get(experiment_id).started_ms
        first = today if began is None else dt.datetime.fromtimestamp(began / 1000, dt.UTC).date()
    last = parse_day(end, "--to") if end else today
    result = experiment_report(state(ctx).store(), book, experiment_id, first, last)
    text = result.markdown()
    if out is not None:
        plot = result.plot(out)
        if plot is not None:
            text += f"\n![each effect over time, cumulative]({plot.name})\n"
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(text, encoding="utf-8")
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    if out is not None:
        console.print(f"written: {out / 'report.md'}", highlight=False)
