"""Commands of the event stream: publish events onto the bus, run the worker that consumes
them, and look after the dead letters (``segue events dead list | replay | drop``).

All need ``SEGUE_REDIS_URL``: the in-process bus lives inside one process, so a separate
``segue worker`` could never see what ``segue publish`` wrote to it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from segue.cli.console import console
from segue.cli.context import State, state
from segue.errors import SegueError

if TYPE_CHECKING:
    from segue.online.bus import EventBus

events_app = typer.Typer(help="The event stream: its dead letters.", no_args_is_help=True)
dead_app = typer.Typer(
    help="Messages that failed `dead_letter_after` times (or named an unknown item), set "
    "aside with their error: list, replay (publish again, e.g. after adding the item), drop.",
    no_args_is_help=True,
)
events_app.add_typer(dead_app, name="dead")


def register(app: typer.Typer) -> None:
    app.command()(publish)
    app.command()(worker)
    app.add_typer(events_app, name="events")


def _redis(st: State) -> str:
    if not st.settings.redis_url:
        raise SegueError(
            "set SEGUE_REDIS_URL (e.g. redis://localhost:6379/0): publishing, the worker and "
            "the dead letters live in Redis Streams, which separate processes share"
        )
    return st.settings.redis_url


def publish(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="CSV or Parquet file of events.")],
    map: Annotated[str, typer.Option("--map", help="Column mapping FIELD=COLUMN,...")] = "",
) -> None:
    """Publish a file of events onto the event bus (the worker persists them)."""
    from segue.data.sources.tabular import parse_mapping, read_table
    from segue.online.bus import open_bus

    st = state(ctx)
    batch = read_table(path, "events", parse_mapping(map) if map.strip() else None)
    bus = open_bus(_redis(st), st.settings.redis_prefix)
    try:
        published = bus.publish(batch.events)
    finally:
        bus.close()
    console.print(f"published {published:,} events from {path}")


def worker(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option(help="Stop when the stream is drained and nothing idle is left.")
    ] = False,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Events per batch.")] = 500,
    block_ms: Annotated[int, typer.Option(min=0, help="How long to wait for events.")] = 1000,
    consumer: Annotated[str, typer.Option(help="This worker's name in the group.")] = "worker-1",
    reclaim_idle_ms: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Take over any consumer's messages pending this long, checked every few "
            "seconds (default: the reclaim_idle_s setting, SEGUE_RECLAIM_IDLE_S, 30 s).",
        ),
    ] = None,
) -> None:
    """Consume events: persist them in the store, update the online state, acknowledge.

    The served lists' stream (exposures) is consumed too and written to the store. A message
    that keeps failing is dead-lettered after `dead_letter_after` attempts
    (SEGUE_DEAD_LETTER_AFTER, default 3); an outage of the store or state is waited out.
    """
    from segue.online.bus import BusUnavailable, DeadLetter, TransientFailure, open_bus
    from segue.online.factory import open_state
    from segue.serving.exposures import EXPOSURE_CODEC, EXPOSURES_STREAM
    from segue.serving.intake import Repeats
    from segue.serving.worker import EventWorker

    st = state(ctx)
    url = _redis(st)
    dead: list[DeadLetter] = []
    bus = open_bus(
        url,
        st.settings.redis_prefix,
        max_attempts=st.settings.dead_letter_after,
        on_dead=dead.append,
    )
    exposure_bus = open_bus(
        url,
        st.settings.redis_prefix,
        max_attempts=st.settings.dead_letter_after,
        on_dead=dead.append,
        stream=EXPOSURES_STREAM,
        codec=EXPOSURE_CODEC,
    )
    online = open_state(url, st.settings.redis_prefix)
    idle_ms = int(st.settings.reclaim_idle_s * 1000) if reclaim_idle_ms is None else reclaim_idle_ms
    events_worker = EventWorker(
        bus,
        st.store(),
        online,
        consumer=consumer,
        reclaim_idle_ms=idle_ms,
        exposures=exposure_bus,
    )
    totals = {
        "received": 0,
        "persisted": 0,
        "exposures": 0,
        "applied": 0,
        "created_users": 0,
        "rejected": 0,
        "dead_lettered": 0,
    }
    # an outage is said once, then every 30 s while it lasts, not every second
    repeats = Repeats(_console_logger(), "worker")
    # Ctrl-C or SIGTERM stops the loop between batches, never inside a Redis call or a store
    # write (an interrupt there could leave a connection's lock held, and closing the bus then
    # waits on it); a second one interrupts at once
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        stopping.set()
        signal.signal(signum, signal.default_int_handler)

    handlers = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping.is_set():
            try:
                report = events_worker.run_once(batch, block_ms=0 if once else block_ms)
                repeats.over()
            except (TransientFailure, BusUnavailable) as exc:
                if once:
                    raise SegueError(f"stopped with events left pending: {exc}") from exc
                repeats.trouble(type(exc).__name__, f"waiting: {exc}")
                stopping.wait(1.0)
                continue
            except Exception as exc:  # a bug, not a bad message (those are isolated): go on
                if once:
                    raise
                key = repr(exc)
                repeats.trouble(key, f"batch failed, retrying: {key}")
                stopping.wait(1.0)
                continue
            for key in totals:
                value = getattr(report, key, 0)
                totals[key] += len(value) if isinstance(value, list) else value
            for event_id, reason in report.rejected:
                console.print(f"[yellow]rejected[/] {escape(event_id)}: {escape(reason)}")
            for letter in dead:
                totals["dead_lettered"] += 1
                console.print(
                    f"[yellow]dead-lettered[/] {letter.id} ({letter.stream} message "
                    f"{letter.message_id}, {letter.attempts} attempt(s)): {escape(letter.error)}"
                )
            dead.clear()
            if once and report.received == 0 and events_worker.reclaim_if_due(force=True) == 0:
                break
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        bus.close()
        exposure_bus.close()
        online.close()
    console.print(", ".join(f"{key.replace('_', ' ')} {value:,}" for key, value in totals.items()))


def _dead_bus(ctx: typer.Context) -> EventBus:
    from segue.online.bus import open_bus

    st = state(ctx)
    if not st.settings.redis_url:
        raise SegueError(
            "without SEGUE_REDIS_URL the dead letters live inside the serving process "
            "(`segue serve`): ask it, with an admin key, at GET /v1/admin/dead-letters "
            "(POST …/replay or …/drop); with Redis, set SEGUE_REDIS_URL"
        )
    return open_bus(st.settings.redis_url, st.settings.redis_prefix)


def _chosen(ids: list[str] | None, all_: bool) -> list[str] | None:
    if all_ and ids:
        raise SegueError("give dead-letter ids or --all, not both")
    if not all_ and not ids:
        raise SegueError("give the dead-letter ids (see `segue events dead list`) or --all")
    return None if all_ else list(ids or [])


@dead_app.command("list")
def dead_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many, oldest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List dead letters: id, when, attempts, stream, the message's ids and the error."""
    bus = _dead_bus(ctx)
    try:
        letters = bus.dead_letters(limit)
    finally:
        bus.close()
    if as_json:
        for letter in letters:
            print(json.dumps({**vars(letter), "event": letter.fields()}, ensure_ascii=True))
        return
    if not letters:
        console.print("no dead letters")
        return
    table = Table("id", "when (UTC)", "attempts", "stream", "group", "message", "user", "error")
    for letter in letters:
        fields = letter.fields()
        when = dt.datetime.fromtimestamp(letter.dead_at_ms / 1000, tz=dt.UTC)
        table.add_row(
            letter.id,
            when.isoformat(timespec="seconds"),
            str(letter.attempts),
            letter.stream,
            letter.group,
            escape(repr(fields.get("event_id", fields.get("request_id", "?")))),
            escape(repr(fields.get("user_id", "?"))),
            escape(letter.error[:200]),
        )
    console.print(table)


@dead_app.command("replay")
def dead_replay(
    ctx: typer.Context,
    ids: Annotated[list[str] | None, typer.Argument(help="Dead-letter ids.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every dead letter.")] = False,
) -> None:
    """Publish dead letters onto the stream again (attempts start anew) and remove them."""
    chosen = _chosen(ids, all_)
    bus = _dead_bus(ctx)
    try:
        done = bus.replay_dead(chosen)
    finally:
        bus.close()
    _report("replayed", done, chosen)


@dead_app.command("drop")
def dead_drop(
    ctx: typer.Context,
    ids: Annotated[list[str] | None, typer.Argument(help="Dead-letter ids.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Drop every dead letter.")] = False,
) -> None:
    """Delete dead letters for good."""
    chosen = _chosen(ids, all_)
    bus = _dead_bus(ctx)
    try:
        done = bus.drop_dead(chosen)
    finally:
        bus.close()
    _report("dropped", done, chosen)


def _report(verb: str, done: list[str], chosen: list[str] | None) -> None:
    console.print(f"{verb} {len(done):,} dead letter(s)")
    missing = [i for i in chosen or [] if i not in set(done)]
    if missing:
        raise SegueError(f"no dead letter with id(s) {', '.join(missing[:10])}")


def _console_logger() -> logging.Logger:
    """A logger whose warnings the console prints (the worker's own output), debug dropped."""

    class _ToConsole(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            console.print(f"[yellow]{escape(record.getMessage())}[/]")

    logger = logging.getLogger("segue.cli.worker")
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(_ToConsole(logging.WARNING))
    logger.setLevel(logging.WARNING)
    return logger
