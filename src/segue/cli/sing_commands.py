"""Sing along from the command line: ``segue import lyrics|audio DIR``, ``segue lyrics ITEM``,
``segue sing ITEM --vocals 0.2 --out out.wav``, and ``segue songs DIR`` (synthetic songs with
their lyrics for the synthetic world's tracks, so the demo can be sung)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from segue.cli.console import console
from segue.cli.context import state
from segue.cli.data_commands import import_app
from segue.errors import SegueError
from segue.jobs.import_log import recorded_import

_SKIP_HELP = "Store the files that can be used and list the others (default: all or nothing)."


def register(app: typer.Typer) -> None:
    app.command()(sing)
    app.command()(lyrics)
    app.command()(songs)
    import_app.command("lyrics")(import_lyrics)
    import_app.command("audio")(import_audio)


def import_lyrics(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Folder of .lrc files (searched deep).")],
    skip_bad: Annotated[bool, typer.Option(help=_SKIP_HELP)] = False,
) -> None:
    """Import synced lyrics (LRC, enhanced LRC), each file matched to a track by its name:
    the item id (trk-000042.lrc), or "Artist - Title.lrc" (fuzzy; ambiguous names refused)."""
    from segue.jobs.sing import import_lyrics as run

    st = state(ctx)
    with recorded_import(st.settings.data_dir, "import lyrics", directory, "lyrics") as record:
        report = run(st.store(create=True), directory, skip_bad=skip_bad)
        record.counts(report)
    _report(report, "lyrics")


def import_audio(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Folder of WAV files (searched deep).")],
    skip_bad: Annotated[bool, typer.Option(help=_SKIP_HELP)] = False,
) -> None:
    """Attach audio files (WAV) to tracks, matched by name like lyrics; the paths are stored,
    the files stay where they are."""
    from segue.jobs.sing import import_audio as run

    st = state(ctx)
    with recorded_import(st.settings.data_dir, "import audio", directory, "audio") as record:
        report = run(st.store(create=True), directory, skip_bad=skip_bad)
        record.counts(report)
    _report(report, "audio files")


def _report(report, what: str) -> None:  # type: ignore[no-untyped-def]
    console.print(f"[green]{len(report.stored):,} {what} stored[/]")
    for line in report.failed:
        console.print(f"[yellow]skipped[/] {escape(line)}")


def _track_id(ctx: typer.Context, item: str) -> str:
    from segue.data.model import ItemKind
    from segue.jobs.catalog import CatalogNames

    store = state(ctx).store()
    found = store.get_item(item)
    if found is not None:
        return found.id
    return CatalogNames.from_store(store).resolve(item, [ItemKind.TRACK]).item_id


def sing(
    ctx: typer.Context,
    item: Annotated[str, typer.Argument(help='A track id or name ("Title — Artist").')],
    out: Annotated[Path, typer.Option("--out", help="The WAV file to write.")],
    vocals: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Lead vocal level: 0 gone, 1 as recorded.")
    ] = 0.2,
    method: Annotated[
        str, typer.Option(help="auto (chosen per track), mid-side or soft-mask.")
    ] = "auto",
) -> None:
    """Render ITEM's audio with the lead vocal at --vocals (background vocals stay)."""
    from segue.jobs.sing import sing as run

    track = _track_id(ctx, item)
    started = time.perf_counter()
    done = run(state(ctx).store(), track, vocals, out, method)
    console.print(
        f"[green]{escape(str(done.path))}[/]: {track} with the lead at {vocals:g} "
        f"({done.method}{', kept to the sung words by the lyrics' if done.lyrics_used else ''}) "
        f"in {time.perf_counter() - started:.1f}s"
    )


def lyrics(
    ctx: typer.Context,
    item: Annotated[str, typer.Argument(help='A track id or name ("Title — Artist").')],
    at: Annotated[
        int | None, typer.Option(min=0, help="Only the line being sung at this ms.")
    ] = None,
) -> None:
    """A track's synced lyrics: each line with its time and singer."""
    from segue.jobs.sing import track_lyrics

    track = _track_id(ctx, item)
    found = track_lyrics(state(ctx).store(), track)
    if found is None:
        raise SegueError(f"track {track} has no lyrics; import them with `segue import lyrics DIR`")
    if at is not None:
        pos = found.at(at)
        if pos.line is None:
            nxt = found.lines[pos.next_line].start_ms if pos.next_line is not None else None
            console.print(f"nothing sung at {at} ms" + (f"; next line at {nxt} ms" if nxt else ""))
            return
        line = found.lines[pos.line]
        word = line.words[pos.word].text if pos.word is not None else "—"
        console.print(f"{escape(line.text)}  [dim]({line.singer}; word: {escape(word)})[/]")
        return
    table = Table("start", "end", "singer", "line", title=f"lyrics of {track}")
    for line in found.lines:
        table.add_row(_clock(line.start_ms), _clock(line.end_ms), line.singer, line.text)
    console.print(table)


def _clock(ms: int) -> str:
    return f"{ms // 60000}:{ms // 1000 % 60:02d}.{ms % 1000 // 10:02d}"


def songs(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Where to write the WAV and LRC files.")],
    count: Annotated[int, typer.Option(min=1, max=1000, help="How many tracks.")] = 3,
    seconds: Annotated[float, typer.Option(min=4.0, max=600.0, help="Length of each.")] = 16.0,
) -> None:
    """Synthetic multi-stem songs (a sung lead, background vocals, bass, drums, chords) with
    their synced lyrics, for the store's first tracks: TRACK.wav and TRACK.lrc in DIRECTORY."""
    from segue.jobs.sing import write_songs

    started = time.perf_counter()
    with console.status(f"rendering {count} songs"):
        tracks = write_songs(state(ctx).store(), directory, count, seconds=seconds)
    console.print(
        f"[green]{len(tracks)} songs[/] ({tracks[0]}…) written to {escape(str(directory))} "
        f"in {time.perf_counter() - started:.1f}s: WAV and LRC for each"
    )
