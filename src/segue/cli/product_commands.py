"""Commands for what a listener sees: ``segue mixes``, ``segue station``, ``segue wrapped``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from segue.cli.console import console
from segue.cli.context import state

if TYPE_CHECKING:
    from segue.registry.trained import TrainedModel

_MODEL_HELP = "Which trained model answers (run `segue train` first)."


def register(app: typer.Typer) -> None:
    app.command()(mixes)
    app.command()(station)
    app.command()(wrapped)


def _trained(ctx: typer.Context, model: str) -> TrainedModel:
    from segue.cli.model_commands import _model_dir, _names
    from segue.registry.trained import load_trained

    st = state(ctx)
    return load_trained(_model_dir(st), _names(model)[0])


def mixes(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="The listener's id.")],
    model: Annotated[str, typer.Option(help=_MODEL_HELP)] = "itemknn",
    date: Annotated[
        str | None, typer.Option(help="Day of the mixes, YYYY-MM-DD (default: today, UTC).")
    ] = None,
    length: Annotated[int, typer.Option(help="Tracks per mix (25-50).")] = 30,
    familiar: Annotated[
        float, typer.Option(help="Share of familiar favourites (0 = all new, 1 = all known).")
    ] = 0.5,
    count: Annotated[int, typer.Option("--mixes", help="At most this many mixes.")] = 6,
    as_json: Annotated[bool, typer.Option("--json", help="Print the mixes as JSON.")] = False,
) -> None:
    """The listener's "Made for you" daily mixes: one per cluster of their taste."""
    from segue.errors import SegueError
    from segue.jobs.products import daily_mixes
    from segue.products.mixes import MixConfig

    try:
        day = dt.date.fromisoformat(date) if date else None
    except ValueError:
        raise SegueError(f"--date must be YYYY-MM-DD, got {date!r}") from None
    config = MixConfig(n_mixes=count, length=length, familiar_share=familiar)
    result = daily_mixes(state(ctx).store(), _trained(ctx, model), user, day, config=config)
    if as_json:
        console.print_json(data=[m.model_dump(mode="json") for m in result])
        return
    if not result:
        from segue.jobs.empty import why_no_mixes

        console.print(f"[yellow]no mixes for {user}:[/] {why_no_mixes(state(ctx).store(), user)}")
    for mix in result:
        table = Table("#", "track", "artist", "", title=f"{mix.title} · {mix.date}",
                      caption=mix.description)  # fmt: skip
        for rank, track in enumerate(mix.tracks, 1):
            table.add_row(str(rank), track.title, track.artist or "—",
                          "♥" if track.familiar else "new")  # fmt: skip
        console.print(table)


def station(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="The listener's id.")],
    seed: Annotated[
        str,
        typer.Option(
            help='discovery, artist:"NAME", track:"TITLE — ARTIST" (or track:"TITLE"), '
            "genre:NAME or mood:NAME; artists and tracks by id too (see `segue search`)."
        ),
    ] = "discovery",
    k: Annotated[int, typer.Option(min=1, max=100, help="Tracks in the page.")] = 10,
    model: Annotated[str, typer.Option(help=_MODEL_HELP)] = "itemknn",
    served: Annotated[
        list[str] | None, typer.Option(help="Item id already played by this station; repeat.")
    ] = None,
    all_artists: Annotated[
        bool, typer.Option(help="Discovery: allow new tracks by artists the user knows.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the page as JSON.")] = False,
) -> None:
    """The next page of a station, adapted to the session's skips and likes (online state)."""
    from segue.jobs.products import station_page
    from segue.online.factory import open_state
    from segue.products.stations import StationSeed

    parsed = StationSeed.parse(seed)  # a typo fails before anything is loaded
    st = state(ctx)
    online = open_state(st.settings.redis_url or None, st.settings.redis_prefix)
    try:
        page = station_page(
            st.store(), _trained(ctx, model), online, user, parsed, k,
            served=served or (), new_artists_only=not all_artists,
        )  # fmt: skip
    finally:
        online.close()
    if as_json:
        from segue.api.schemas import StationResponse

        console.print_json(StationResponse.model_validate(page).model_dump_json())
        return
    if not page.tracks:
        from segue.jobs.empty import why_empty_station

        reason = why_empty_station(st.store(), _trained(ctx, model), page.seed, user)
        console.print(f"[yellow]empty station:[/] {reason}")
        return
    kind = page.seed.partition(":")[0]
    seed_shown = f"{kind}: {page.seed_title}" if page.seed_title else page.seed
    table = Table("#", "track", "artist", "genre", "score", title=f"{user} · {seed_shown}")
    for rank, t in enumerate(page.tracks, 1):
        table.add_row(str(rank), t.title, t.artist or "—", t.genre or "—", f"{t.score:.2f}")
    console.print(table)


def wrapped(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="The listener's id.")],
    year: Annotated[
        int | None, typer.Option(help="The year to wrap (default: their latest year with plays).")
    ] = None,
    png: Annotated[Path | None, typer.Option(help="Write the shareable card here.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write the web page here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON.")] = False,
) -> None:
    """The listener's year: top songs, artists, genres and podcasts, minutes, personality."""
    from segue.errors import SegueError
    from segue.jobs.empty import default_wrapped_year, why_empty_wrapped
    from segue.jobs.products import wrapped as wrapped_job
    from segue.products.wrapped_render import write_html, write_png

    store = state(ctx).store()
    if year is None:
        year = default_wrapped_year(store, user)
    elif (reason := why_empty_wrapped(store, user, year)) is not None:
        raise SegueError(reason)  # a card of zeros says nothing; the years with plays do
    result = wrapped_job(store, user, year)
    if as_json:
        console.print_json(result.model_dump_json())
    else:
        # plays without durations (Last.fm's counts) have no minutes: say so, not "0 minutes"
        minutes = (
            f"{round(result.minutes_listened):,} minutes"
            if result.minutes_listened or not result.streams
            else "minutes unknown (the plays carry no durations)"
        )
        # in a first year everything is new by definition: the card counts artists instead
        new = (
            f"{result.new_artists:,} artists discovered"
            if result.first_year
            else f"{round(100 * result.discovery_share)}% new to you"
        )
        console.print(
            f"[bold]{result.year} Wrapped · {user}[/]: {minutes}, {result.streams:,} plays, "
            f"{new} · [green]{result.personality.name}[/]"
        )
        # a catalog of artists (Last.fm 2K) has no songs to rank: no empty column for them
        columns = [("top songs", result.top_tracks), ("top artists", result.top_artists)]
        columns = [(name, ranked) for name, ranked in columns if ranked] or columns
        table = Table("#", *(h for name, _ in columns for h in (name, "plays")))
        for rank in range(max(len(ranked) for _, ranked in columns)):
            cells = [str(rank + 1)]
            for _, ranked in columns:
                entry = ranked[rank] if rank < len(ranked) else None
                cells += [entry.name, str(entry.plays)] if entry else ["", ""]
            table.add_row(*cells)
        console.print(table)
    if png is not None:
        console.print(f"card written to {write_png(result, png)}")
    if html is not None:
        console.print(f"page written to {write_html(result, html)}")
