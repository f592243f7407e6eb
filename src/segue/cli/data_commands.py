"""Commands that put data into the store or take it out: synth, import, export, stats.

No ``from __future__ import annotations`` here: Typer evaluates the annotations of the
import-command factory, which refer to its local ``fmt``.
"""

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from segue.cli.console import console, progress_bar
from segue.cli.context import state
from segue.errors import SegueError

import_app = typer.Typer(help="Import data into the store (atomically: all rows or none).")

_MAP_HELP = (
    "Column mapping FIELD=COLUMN,... from segue's field names to the file's columns, "
    "e.g. 'user_id=uid,item_id=track,timestamp=ts'. Unmapped fields use same-named columns."
)


_DEFAULT_HELP = (
    "FIELD=VALUE for a field the file has no column for (or an empty cell), e.g. "
    "'type=play' for a log of plays; repeat or separate with commas."
)
_CREATE_HELP = (
    "Events: add each user and item the store does not hold as a bare row (a user signed "
    "up at their first event, a track titled by its id) instead of refusing the file."
)


def _defaults(values: list[str]) -> dict[str, object]:
    """``["type=play", "device=web,surface=home"]`` as ``{"type": "play", ...}``: the
    ``--default`` options, whose values the importer converts by the field's type."""
    from segue.data.sources.tabular import parse_mapping

    found: dict[str, object] = {}
    for value in values:
        for name, given in parse_mapping(value).items():
            if name in found:
                raise SegueError(f"--default gives {name!r} twice")
            found[name] = given
    return found


def register(app: typer.Typer) -> None:
    app.command()(synth)
    app.command()(export)
    app.command()(stats)


def synth(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(min=1, help="Number of listeners.")] = 1000,
    tracks: Annotated[int, typer.Option(min=10, help="Number of tracks.")] = 5000,
    events: Annotated[int, typer.Option(min=0, help="Target number of events.")] = 50_000,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same world.")] = 7,
) -> None:
    """Build a synthetic music world and import it into the store."""
    from segue.data.synth import SynthParams
    from segue.jobs.ingest import load_synthetic_world

    params = SynthParams(seed=seed, n_users=users, n_tracks=tracks, n_events=events)
    store = state(ctx).store(create=True)
    started = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task("generating and importing events", total=events)

        def report(step: str, done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        result = load_synthetic_world(store, params, progress=report)
    console.print(
        f"[green]synthetic world[/] seed={seed}: {result.users:,} users, {result.items:,} items, "
        f"{result.events_inserted:,} new events ({result.events_generated:,} generated) "
        f"in {time.perf_counter() - started:.1f}s"
    )


@import_app.command("lastfm-2k")
def import_lastfm(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Folder holding the five HetRec .dat files.")],
) -> None:
    """Import the HetRec 2011 Last.fm 2K dataset (artists, plays, friends, tags)."""
    from segue.jobs.ingest import import_lastfm_2k

    if not path.is_dir():
        raise SegueError(f"{path} is not a folder; pass the folder holding user_artists.dat etc.")
    with console.status("importing Last.fm 2K"):
        report = import_lastfm_2k(state(ctx).store(create=True), path)
    _print_report(report)


def _import_table_command(fmt: str):
    def command(
        ctx: typer.Context,
        path: Annotated[Path, typer.Argument(help=f"The {fmt} file.")],
        kind: Annotated[str, typer.Option(help="What the rows are: events, items or users.")],
        map: Annotated[str, typer.Option("--map", help=_MAP_HELP)] = "",
        default: Annotated[
            list[str] | None, typer.Option("--default", help=_DEFAULT_HELP)
        ] = None,
        create_missing: Annotated[bool, typer.Option(help=_CREATE_HELP)] = False,
    ) -> None:
        from segue.data.sources.tabular import parse_mapping
        from segue.jobs.ingest import import_table

        if kind not in ("events", "items", "users"):
            raise SegueError(f"--kind must be events, items or users, not {kind!r}")
        suffixes = {"csv": (".csv", ".tsv", ".txt"), "parquet": (".parquet", ".pq")}[fmt]
        if path.suffix.lower() not in suffixes:
            raise SegueError(f"{path} does not look like a {fmt} file (expected {suffixes})")
        with console.status(f"importing {path}"):
            report = import_table(
                state(ctx).store(create=True),
                path,
                kind,  # type: ignore[arg-type]
                parse_mapping(map) if map.strip() else None,
                defaults=_defaults(default or []),
                create_missing=create_missing,
            )
        _print_report(report)

    command.__doc__ = f"Import {fmt.upper()} rows of events, items or users with a column mapping."
    return command


import_app.command("csv")(_import_table_command("csv"))
import_app.command("parquet")(_import_table_command("parquet"))


def _print_report(report) -> None:
    table = Table("table", "inserted", "already there", title="import")
    for name in sorted(set(report.inserted) | set(report.ignored)):
        table.add_row(name, f"{report.inserted.get(name, 0):,}", f"{report.ignored.get(name, 0):,}")
    console.print(table)


def export(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="items, users, events, friendships, tags, ...")],
    path: Annotated[Path, typer.Argument(help="Parquet file to write.")],
) -> None:
    """Export one table to Parquet for analysts."""
    rows = state(ctx).store().export_parquet(table, path)
    console.print(f"wrote {rows:,} rows of {table} to {path}")


def stats(ctx: typer.Context) -> None:
    """Row counts of every table in the store."""
    from segue.store import masked
    from segue.store.base import TABLES

    store = state(ctx).store()
    table = Table("table", "rows", title=masked(store.url))
    for name in TABLES:
        table.add_row(name, f"{store.count(name):,}")
    console.print(table)
