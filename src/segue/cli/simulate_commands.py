"""``segue simulate``: an A/B test on the closed-loop listener simulator, with its truth."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from segue.cli.console import console, progress_bar
from segue.cli.context import state


def register(app: typer.Typer) -> None:
    app.command()(simulate)


def simulate(
    ctx: typer.Context,
    control: Annotated[str, typer.Option(help="The control arm's model (segue.models name).")] = (
        "popularity"
    ),
    treatment: Annotated[str, typer.Option(help="The treatment arm's model.")] = "als",
    days: Annotated[int, typer.Option(min=1, max=365, help="Simulated days.")] = 14,
    users: Annotated[int, typer.Option(min=20, help="Listeners of the synthetic world.")] = 10_000,
    tracks: Annotated[int, typer.Option(min=20, help="Tracks of the synthetic world.")] = 5_000,
    events: Annotated[
        int, typer.Option(min=100, help="Events of the world's history before day 1.")
    ] = 1_000_000,
    share: Annotated[float, typer.Option(help="Share of listeners in treatment.")] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the world and of the listeners' coins.")] = 0,
    report: Annotated[Path | None, typer.Option(help="Also write the report as Markdown.")] = None,
    experiment: Annotated[
        str | None,
        typer.Option(
            help="Run this experiment of the book through segue serve's HTTP API instead "
            "(a scratch installation under <data dir>/simulations; --treatment is the model)."
        ),
    ] = None,
) -> None:
    """Serve the synthetic world's listeners from two recommenders for N days (daily retrain
    on what they played), analyse it as an A/B test, and compare with the simulator's truth;
    or, with --experiment, run one of the book's experiments through the real service."""
    from segue.data.synth import SynthParams
    from segue.jobs.simulate import simulate_experiment

    world = SynthParams(
        seed=seed,
        n_users=users,
        n_tracks=tracks,
        n_events=events,
        start_date=dt.date(2024, 1, 1),
        end_date=dt.date(2024, 3, 1),
    )
    with progress_bar() as bar:
        task = bar.add_task("simulating", total=None)

        def step(name: str, done: int, total: int | None) -> None:
            bar.update(task, description=name, completed=done, total=total)

        if experiment is not None:
            from segue.api.simulated_listeners import simulate_served

            served = simulate_served(
                state(ctx).settings, experiment, world, days, model=treatment, progress=step
            )
            result = served.report
        else:
            result = simulate_experiment(
                world, control, treatment, days, share=share, seed=seed, progress=step
            )
    text = result.markdown()
    if experiment is not None:
        text += (
            f"\n{served.lists:,} lists served over HTTP, {served.events:,} events back through "
            f"the stream; the scratch installation: {served.folder}\n"
        )
    console.print(text, markup=False, highlight=False)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(text, encoding="utf-8")
