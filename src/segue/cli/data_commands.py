"""Commands that put data into the store or take it out: synth, import, export, stats.

No ``from __future__ import annotations`` here: Typer evaluates the annotations of the
import-command factory, which refer to its local ``fmt``.
"""

import shutil
import time
from pathlib import Path
from typing import Annotated

import typer

from segue.cli.console import console, print_table, progress_bar
from segue.cli.context import state
from segue.errors import SegueError
from segue.jobs.import_log import recorded_import

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
    "up at their first event, a track titled by its id); on by default for events, "
    "--no-create-missing refuses such a file instead."
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
    st = state(ctx)
    with (
        recorded_import(st.settings.data_dir, "import lastfm", path) as record,
        console.status("importing Last.fm 2K"),
    ):
        report = import_lastfm_2k(st.store(create=True), path)
        record.counts(report)
    _print_report(report)


_DELIMITERS = {"tab": "\t", "\\t": "\t", "pipe": "|", "comma": ",", "semicolon": ";"}


def _import_table_command(fmt: str):
    def command(
        ctx: typer.Context,
        path: Annotated[Path, typer.Argument(help=f"The {fmt} file (any name or suffix).")],
        kind: Annotated[str, typer.Option(help="What the rows are: events, items or users.")],
        map: Annotated[str, typer.Option("--map", help=_MAP_HELP)] = "",
        default: Annotated[list[str] | None, typer.Option("--default", help=_DEFAULT_HELP)] = None,
        create_missing: Annotated[
            bool | None, typer.Option("--create-missing/--no-create-missing", help=_CREATE_HELP)
        ] = None,
        format: Annotated[
            str | None,
            typer.Option(
                "--format",
                help="csv (any delimited text) or parquet; default: sniffed from the content.",
            ),
        ] = None,
        delimiter: Annotated[
            str | None,
            typer.Option(help="Force the delimiter: tab, pipe, comma, semicolon or one character."),
        ] = None,
        encoding: Annotated[
            str | None,
            typer.Option(help="Force the encoding (utf-8, cp1252, latin-1...); default: sniffed."),
        ] = None,
        header: Annotated[
            bool | None,
            typer.Option(
                "--header/--no-header",
                help="Whether line 1 names the columns (default: yes, unless --columns).",
            ),
        ] = None,
        columns: Annotated[
            str | None,
            typer.Option(
                help="Names for the columns in order, e.g. user,item,rating,ts (a headerless "
                "file; without it such columns are named 1, 2, 3...)."
            ),
        ] = None,
        date_format: Annotated[
            str | None,
            typer.Option(
                help="strptime format for dates and times, e.g. %d/%m/%Y (ISO, epoch s/ms and "
                "01-Jan-1995 are read without one)."
            ),
        ] = None,
        flags: Annotated[
            list[str] | None,
            typer.Option(
                "--flags",
                help="0/1 columns that give a label each: genre=COL,COL,... or genre=6-24 "
                "(1-based positions); a 1 gives the column's name (or its --flag-names label).",
            ),
        ] = None,
        flag_names: Annotated[
            Path | None,
            typer.Option(help="File of the flag columns' labels, one a line (like u.genre)."),
        ] = None,
        values: Annotated[
            list[str] | None,
            typer.Option(
                "--values", help="Map raw values of a field: gender=M:male,F:female (repeat)."
            ),
        ] = None,
        auto_map: Annotated[
            bool,
            typer.Option(
                help="Also read optional fields from columns named like them (off: only "
                "mapped columns, and required fields by name)."
            ),
        ] = False,
        dry_run: Annotated[
            bool,
            typer.Option(
                help="Read and check everything, print what would be imported, write nothing."
            ),
        ] = False,
    ) -> None:
        from segue.data.sources.tabular import (
            ReadOptions,
            parse_flags,
            parse_mapping,
            parse_values,
            read_flag_names,
        )
        from segue.jobs.ingest import import_table

        if kind not in ("events", "items", "users"):
            raise SegueError(f"--kind must be events, items or users, not {kind!r}")
        chosen = format or (fmt if fmt == "parquet" else None)
        if chosen not in (None, "csv", "tsv", "parquet"):
            raise SegueError(f"--format must be csv or parquet, not {chosen!r}")
        sep = None if delimiter is None else _DELIMITERS.get(delimiter.lower(), delimiter)
        if sep is not None and len(sep) != 1:
            raise SegueError(
                "--delimiter must be tab, pipe, comma, semicolon or one character, "
                f"not {delimiter!r}"
            )
        options = ReadOptions(
            format=chosen,  # type: ignore[arg-type]
            delimiter=sep,
            encoding=encoding,
            header=header,
            columns=tuple(c.strip() for c in columns.split(",")) if columns else None,
            date_format=date_format,
            flags=parse_flags(flags or []),
            flag_names=read_flag_names(flag_names) if flag_names else None,
            values=parse_values(values or []),
            auto_map=auto_map,
        )
        st = state(ctx)
        if dry_run and not st.settings.database_url and not st.settings.data_dir.is_dir():
            import tempfile

            from segue.store import open_store

            # no store yet, and a dry run makes none: check against an empty one elsewhere
            scratch = Path(tempfile.mkdtemp(prefix="segue-dry-run-"))
            ctx.call_on_close(lambda: shutil.rmtree(scratch, ignore_errors=True))
            store = open_store(f"sqlite:///{scratch / 'empty.sqlite'}")
        else:
            store = st.store(create=not dry_run)
        with (
            recorded_import(st.settings.data_dir, f"import {fmt}", path, kind) as record,
            console.status(f"{'checking' if dry_run else 'importing'} {path}"),
        ):
            result = import_table(
                store,
                path,
                kind,  # type: ignore[arg-type]
                parse_mapping(map) if map.strip() else None,
                defaults=_defaults(default or []),
                create_missing=create_missing,
                options=options,
                dry_run=dry_run,
            )
            record.rows = result.rows
            if dry_run:
                record.status = "dry run"
            else:
                record.counts(result.report)
        _print_import(result)

    command.__doc__ = (
        f"Import {fmt.upper()} rows of events, items or users, read as they come "
        "(delimiter, encoding and format sniffed) with a column mapping."
    )
    return command


import_app.command("csv")(_import_table_command("csv"))
import_app.command("parquet")(_import_table_command("parquet"))


def _print_report(report) -> None:
    names = sorted(set(report.inserted) | set(report.ignored) | set(report.updated))
    rows = [
        [
            name,
            f"{report.inserted.get(name, 0):,}",
            f"{report.updated.get(name, 0):,}",
            f"{report.ignored.get(name, 0):,}",
        ]
        for name in names
        if report.inserted.get(name) or report.updated.get(name) or report.ignored.get(name)
    ]
    print_table(["table", "inserted", "updated", "already there"], rows, title="import")


def _print_import(result) -> None:
    """The mapping used, then the counts, or for a dry run what would be imported: whole
    tables (Markdown when piped), so a mapping can be checked before a long import."""
    how = ", ".join(f"{k} {v}" for k, v in result.dialect.items())
    console.print(f"read as {how}" if how else "", markup=False, highlight=False, soft_wrap=True)
    print_table(["field", "from"], [list(s) for s in result.sources], title="mapping")
    if result.first:
        names: list[str] = []
        for row in result.first:
            names += [k for k in row if k not in names]
        cells = [[_cell(row.get(k)) for k in names] for row in result.first]
        print_table(names, cells, title="first rows parsed")
    for note in result.notes:
        console.print(note, markup=False, highlight=False, soft_wrap=True)
    if result.dry_run:
        parts = [f"{result.records:,} of {result.rows:,} rows would import as {result.kind}"]
        if result.kind == "events":
            parts.append(
                f"with {result.created_users:,} new users and {result.created_items:,} new items"
            )
        console.print(
            " ".join(parts) + "; nothing written (dry run)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        if result.error_count:
            console.print(
                f"{result.error_count:,} rows refused; the first:", markup=False, highlight=False
            )
            for line in result.errors:
                console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        return
    _print_report(result.report)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple | list):
        return "|".join(str(v) for v in value)
    return str(getattr(value, "value", value))


def export(
    ctx: typer.Context,
    table: Annotated[
        str, typer.Argument(help="items, users, events, friendships, tags, ..., exposures")
    ],
    path: Annotated[Path, typer.Argument(help="Parquet file to write.")],
) -> None:
    """Export one table to Parquet for analysts."""
    rows = state(ctx).store().export_parquet(table, path)
    console.print(f"wrote {rows:,} rows of {table} to {path}")


def stats(ctx: typer.Context) -> None:
    """Row counts of every table in the store."""
    from segue.store import masked
    from segue.store.base import READABLE_TABLES

    store = state(ctx).store()
    rows = [[name, f"{store.count(name):,}"] for name in READABLE_TABLES]
    print_table(["table", "rows"], rows, title=masked(store.url))
