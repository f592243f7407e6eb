"""``segue metrics online``: what served lists led to, per day and arm, from the exposure log."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from typing import Annotated

import typer

from segue.cli.console import console, print_table
from segue.cli.context import state
from segue.errors import SegueError

metrics_app = typer.Typer(help="Measured online: from the exposure log.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(metrics_app, name="metrics")


def parse_day(text: str, option: str) -> dt.date:
    """A YYYY-MM-DD option's day, or one line naming the option."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise SegueError(f"{option} takes a day as YYYY-MM-DD, got {text!r}") from None


FromDay = Annotated[
    str | None, typer.Option("--from", help="First day (UTC), YYYY-MM-DD; default today.")
]
ToDay = Annotated[str | None, typer.Option("--to", help="Last day (default: --from).")]
WindowS = Annotated[
    int, typer.Option(min=1, help="A play within this many seconds of a list is its doing.")
]


def day_range(start: str | None, end: str | None) -> tuple[dt.date, dt.date]:
    """``--from`` (default today, UTC) and ``--to`` (default ``--from``) as days."""
    first = parse_day(start, "--from") if start else dt.datetime.now(dt.UTC).date()
    return first, parse_day(end, "--to") if end else first


@metrics_app.command("online")
def online(
    ctx: typer.Context,
    start: FromDay = None,
    end: ToDay = None,
    window_s: WindowS = 1_800,
    conversion_s: Annotated[
        int, typer.Option(min=1, help="A play this long converts (seconds).")
    ] = 30,
    session_gap_s: Annotated[
        int, typer.Option(min=1, help="A pause this long (seconds) starts a new session.")
    ] = 1_800,
    churn_days: Annotated[
        int, typer.Option(min=1, help="Churned: no play on any of this many days after.")
    ] = 14,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per row.")] = False,
) -> None:
    """What the lists served led to (CTR, conversion, skips, minutes) and how their listeners
    fared (sessions, D1/D7/D30 retention, churn, novelty and diversity), per day and arm."""
    from segue.jobs.online_metrics import online_metrics

    first, last = day_range(start, end)
    rows = online_metrics(
        state(ctx).store(),
        first,
        last,
        window_s=window_s,
        conversion_ms=conversion_s * 1000,
        session_gap_s=session_gap_s,
        churn_days=churn_days,
    )
    if as_json:
        for row in rows:
            print(json.dumps({**asdict(row), "day": row.day.isoformat()}))
        return
    if not rows:
        console.print(
            f"no lists were served from {first} to {last}: the exposure log fills as "
            "`segue serve` answers recommendation requests"
        )
        return
    table = [
        [r.day.isoformat(), r.arm, f"{r.lists:,}", f"{r.listeners:,}", f"{r.ctr:.1%}",
         f"{r.conversion:.1%}", f"{r.skip_rate:.1%}", f"{r.minutes_per_listener:.1f}"]
        for r in rows
    ]  # fmt: skip
    print_table(
        ["day", "arm", "lists", "listeners", "CTR", "conversion", "skip rate", "min/listener"],
        table,
        legend=f"CTR: lists followed by a play of one of their items within {window_s} s; "
        f"conversion: by a play of at least {conversion_s} s; arm: model@version [experiments]",
    )
    print_table(
        ["day", "arm", "sessions/listener", "session min", "D1", "D7", "D30",
         f"churn {churn_days}d", "novelty", "diversity"],
        [
            [r.day.isoformat(), r.arm, f"{r.sessions_per_listener:.2f}",
             f"{r.session_minutes:.1f}", _share(r.d1), _share(r.d7), _share(r.d30),
             _share(r.churn), f"{r.novelty:.2f}", f"{r.diversity:.2f}"]
            for r in rows
        ],
        legend="of the listeners shown lists that day: Dn, the share who played on day n after "
        "(— until that day is in the log); churn, the share silent on every one of the days "
        "after; novelty, bits of self-information of what was shown against the 28 days "
        "before; diversity, distinct artists per list item",
    )  # fmt: skip


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


@metrics_app.command("off-policy")
def off_policy_command(
    ctx: typer.Context,
    start: FromDay = None,
    end: ToDay = None,
    window_s: WindowS = 1_800,
) -> None:
    """The first slot's CTR as served and, estimated from the logged propensities (IPS and
    SNIPS), under the model's own order and under the bandit's greedy choice."""
    from segue.jobs.off_policy import off_policy

    first, last = day_range(start, end)
    report = off_policy(state(ctx).store(), first, last, window_s=window_s)
    console.print(
        f"{report.lists:,} lists with propensities, {report.explored:,} explored; "
        f"first-slot CTR as served: {report.logged_ctr:.1%}",
        highlight=False,
    )
    print_table(
        ["policy", "lists matched", "CTR (IPS) ± se", "CTR (SNIPS)"],
        [
            [v.policy, f"{v.matched:,}", f"{v.ctr_ips:.1%} ± {v.ctr_se:.1%}", f"{v.ctr_snips:.1%}"]
            for v in report.values
        ],
        legend="what each ordering's first slot would have earned, from lists where it would "
        "have shown what was shown, weighted by 1 / the logged propensity",
    )
