"""``segue nba …``: simulate logged messages, train/evaluate the click model, run a campaign
into the outbox, send it, report on it, and show one user's next best action."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from segue.cli.console import console, progress_bar
from segue.cli.context import State, state

nba_app = typer.Typer(help="Next best action: click model, campaigns, outbox, delivery.")

_CF_HELP = "Collaborative-filtering model for candidates and the CF-score feature."


def register(app: typer.Typer) -> None:
    app.add_typer(nba_app, name="nba")


def _model_dir(st: State) -> Path:
    st.require_data_dir()  # a mistyped --data-dir: one line, not "no trained model"
    return st.settings.data_dir / "models"


def _truth(st: State) -> Path:
    from segue.jobs.nba import TRUTH

    return st.settings.data_dir / TRUTH


def _bar_progress(bar, task):  # type: ignore[no-untyped-def]
    def report(step: str, done: int, total: int | None) -> None:
        bar.update(task, description=step, completed=done, total=total)

    return report


@nba_app.command()
def simulate(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(min=10, help="Listeners of the synthetic world.")] = 2000,
    tracks: Annotated[int, typer.Option(min=10, help="Tracks.")] = 2000,
    events: Annotated[
        int, typer.Option(min=0, help="Target number of listening events.")
    ] = 100_000,
    impressions: Annotated[int, typer.Option(min=1, help="Logged messages to simulate.")] = 50_000,
    seed: Annotated[int, typer.Option(help="World seed.")] = 7,
) -> None:
    """Build a synthetic world with logged messages whose true click probabilities are known."""
    from segue.data.synth import SynthParams
    from segue.data.synth.nba import NBASimParams
    from segue.jobs.nba import simulate_nba

    st = state(ctx)
    params = SynthParams(seed=seed, n_users=users, n_tracks=tracks, n_events=events)
    with progress_bar() as bar:
        task = bar.add_task("synthetic world", total=None)
        result = simulate_nba(
            st.store(create=True),
            params,
            NBASimParams(n_impressions=impressions),
            _truth(st),
            progress=_bar_progress(bar, task),
        )
    console.print(
        f"[green]logged messages[/]: {result.impressions:,} impressions, {result.clicks:,} clicks "
        f"({result.events_inserted:,} new events); true probabilities in {result.truth_path}"
    )


def _metrics_table(result) -> Table:  # type: ignore[no-untyped-def]
    e = result.evaluation
    table = Table("metric", "model", *(["true probabilities"] if e.ceiling else []))
    for key in (
        "auc_roc", "pr_auc", "log_loss", "brier", "ece", "accuracy", "precision", "recall", "f1"
    ):
        row = [key, f"{getattr(e.model, key):.4f}"]
        if e.ceiling:
            row.append(f"{getattr(e.ceiling, key):.4f}")
        table.add_row(*row)
    return table


@nba_app.command()
def train(
    ctx: typer.Context,
    cf: Annotated[str, typer.Option(help=_CF_HELP)] = "als",
) -> None:
    """Train the click model on the logged messages and save it in the data directory."""
    from segue.jobs.nba import train_click_model
    from segue.nba.artifacts import click_model_path

    st = state(ctx)
    with progress_bar() as bar:
        task = bar.add_task("click model", total=None)
        result = train_click_model(
            st.store(),
            _model_dir(st),
            cf_name=cf,
            truth_path=_truth(st),
            progress=_bar_progress(bar, task),
        )
    console.print(_metrics_table(result))
    console.print(f"click model saved to {click_model_path(_model_dir(st))}")


@nba_app.command()
def evaluate(
    ctx: typer.Context,
    report: Annotated[
        Path, typer.Option(help="Folder for the Markdown report and PNG plots.")
    ] = Path("nba-report"),
    cf: Annotated[str, typer.Option(help=_CF_HELP)] = "als",
) -> None:
    """Offline metrics on held-out users: AUC, PR-AUC, log loss, calibration, confusion matrix
    (and, on synthetic data, the ceiling of the true probabilities)."""
    from segue.jobs.nba import train_click_model

    st = state(ctx)
    with progress_bar() as bar:
        task = bar.add_task("evaluating", total=None)
        result = train_click_model(
            st.store(),
            _model_dir(st),
            cf_name=cf,
            truth_path=_truth(st),
            report=report,
            save=False,
            progress=_bar_progress(bar, task),
        )
    console.print(_metrics_table(result))
    m = result.evaluation.model
    console.print(
        f"confusion matrix at {m.threshold:.4f}: TN {m.tn:,}  FP {m.fp:,}  FN {m.fn:,}  TP {m.tp:,}"
    )
    console.print(f"report written to {report}")


def _when(value: str | None) -> int | None:
    from segue.errors import SegueError

    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise SegueError(
            f"--now must be an ISO date-time, e.g. 2025-02-01T10:00Z, not {value!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


@nba_app.command()
def run(
    ctx: typer.Context,
    campaign: Annotated[str, typer.Option(help="Campaign name (also its holdout salt).")],
    now: Annotated[
        str | None, typer.Option(help="Pretend it is this UTC time (ISO); default: now.")
    ] = None,
    chunk: Annotated[
        int, typer.Option(min=100, help="Users per chunk (one transaction).")
    ] = 20_000,
    holdout: Annotated[float, typer.Option(help="Share of users kept as holdout.")] = 0.1,
    cf: Annotated[str, typer.Option(help=_CF_HELP)] = "als",
) -> None:
    """Compute every user's next best action and queue the messages in the outbox."""
    from segue.nba.campaign import run_campaign
    from segue.nba.policy import PolicySettings

    st = state(ctx)
    with progress_bar() as bar:
        task = bar.add_task("campaign", total=None)
        result = run_campaign(
            st.store(),
            _model_dir(st),
            campaign,
            _when(now),
            policy=PolicySettings(holdout_share=holdout),
            cf_name=cf,
            chunk=chunk,
            progress=_bar_progress(bar, task),
        )
    channels = ", ".join(f"{k} {v:,}" for k, v in sorted(result.by_channel.items()))
    console.print(
        f"[green]campaign {campaign}[/]: {result.users:,} users ({result.holdout:,} holdout), "
        f"{result.queued:,} messages queued ({channels or 'none'}) in {result.seconds:.1f}s"
    )


@nba_app.command()
def send(
    ctx: typer.Context,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after this many messages.")] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", help="Keep sending as messages fall due, until stopped (Ctrl-C, SIGTERM)."
        ),
    ] = False,
    poll_s: Annotated[
        float, typer.Option(min=0.1, help="With --follow: seconds between looks at the outbox.")
    ] = 1.0,
    smtp_host: Annotated[
        str | None, typer.Option(help="SMTP server (env SEGUE_SMTP_HOST).")
    ] = None,
    smtp_port: Annotated[int | None, typer.Option(help="SMTP port (env SEGUE_SMTP_PORT).")] = None,
    push_url: Annotated[
        str | None, typer.Option(help="Push gateway URL (env SEGUE_PUSH_URL).")
    ] = None,
) -> None:
    """Deliver due messages from the outbox (safe to run in several processes at once)."""
    import signal
    import threading

    from segue.jobs.nba import deliver

    st = state(ctx)
    overrides = {"smtp_host": smtp_host, "smtp_port": smtp_port, "push_url": push_url}
    settings = st.settings.with_overrides(delivery=overrides).delivery
    stop = threading.Event()
    if follow:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with progress_bar() as bar:
        task = bar.add_task("sending", total=None)
        try:
            report = deliver(
                st.store(),
                settings,
                limit=limit,
                progress=_bar_progress(bar, task),
                follow_s=poll_s if follow else None,
                stop=stop,
            )
        except KeyboardInterrupt:  # the round in flight was marked; nothing half-sent
            stop.set()
            raise typer.Exit(130) from None
    console.print(
        f"sent {report.sent:,}, retrying {report.retried:,}, failed {report.failed:,}, "
        f"taken over by another sender {report.lost_claims:,}"
    )
    for error in report.errors[:10]:
        console.print(f"[red]failed[/] {error}")


@nba_app.command()
def report(
    ctx: typer.Context,
    campaign: Annotated[str, typer.Option(help="Campaign name.")],
    window: Annotated[int, typer.Option(min=1, help="Days after the start that count.")] = 14,
    output: Annotated[Path | None, typer.Option(help="Also write the report as Markdown.")] = None,
) -> None:
    """CTR, conversion rate and reactivation of inactive users, treated vs holdout."""
    from segue.nba.report import campaign_report

    result = campaign_report(state(ctx).store(), campaign, window)
    text = result.markdown()
    console.print(text, markup=False, highlight=False)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")


@nba_app.command()
def show(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="User id.")],
    now: Annotated[str | None, typer.Option(help="Pretend it is this UTC time (ISO).")] = None,
) -> None:
    """One user's next best action right now, as JSON (what the API answers)."""
    from segue.nba.service import next_best_action

    st = state(ctx)
    moment = _when(now)
    when = None if moment is None else dt.datetime.fromtimestamp(moment / 1000, tz=dt.UTC)
    answer = next_best_action(st.store(), _model_dir(st), user, when)
    from segue.api.schemas import NextBestActionResponse

    console.print_json(NextBestActionResponse.model_validate(answer).model_dump_json())
