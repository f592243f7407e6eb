"""Commands of the event stream: publish events onto the bus, run the worker that consumes them.

Both need ``SEGUE_REDIS_URL``: the in-process bus lives inside one process, so a separate
``segue worker`` could never see what ``segue publish`` wrote to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from segue.cli.console import console
from segue.cli.context import State, state
from segue.errors import SegueError


def register(app: typer.Typer) -> None:
    app.command()(publish)
    app.command()(worker)


def _redis(st: State) -> str:
    if not st.settings.redis_url:
        raise SegueError(
            "set SEGUE_REDIS_URL (e.g. redis://localhost:6379/0): publishing and the worker "
            "talk through Redis Streams, which separate processes share"
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
    once: Annotated[bool, typer.Option(help="Stop when the stream is drained.")] = False,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Events per batch.")] = 500,
    block_ms: Annotated[int, typer.Option(min=0, help="How long to wait for events.")] = 1000,
    consumer: Annotated[str, typer.Option(help="This worker's name in the group.")] = "worker-1",
    reclaim_idle_ms: Annotated[
        int, typer.Option(min=0, help="Take over other consumers' messages pending this long.")
    ] = 60_000,
) -> None:
    """Consume events: persist them in the store, update the online state, acknowledge."""
    from segue.online.bus import open_bus
    from segue.online.factory import open_state
    from segue.serving.worker import EventWorker

    st = state(ctx)
    url = _redis(st)
    bus = open_bus(url, st.settings.redis_prefix)
    online = open_state(url, st.settings.redis_prefix)
    events_worker = EventWorker(bus, st.store(), online, consumer=consumer)
    totals = {"received": 0, "persisted": 0, "applied": 0, "created_users": 0, "rejected": 0}
    try:
        events_worker.reclaim(min_idle_ms=reclaim_idle_ms)  # what a crashed worker left
        while True:
            report = events_worker.run_once(batch, block_ms=0 if once else block_ms)
            for key in totals:
                value = getattr(report, key)
                totals[key] += len(value) if isinstance(value, list) else value
            for event_id, reason in report.rejected:
                console.print(f"[yellow]rejected[/] {event_id}: {reason}")
            if once and report.received == 0:
                break
    except KeyboardInterrupt:
        pass
    finally:
        bus.close()
        online.close()
    console.print(", ".join(f"{key.replace('_', ' ')} {value:,}" for key, value in totals.items()))
