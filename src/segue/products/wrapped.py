"""Wrapped: a listener's year in numbers, from their own events.

What counts (the rules, once):

* **Plays** are ``play`` events of the year in the listener's time zone (``User.timezone``,
  UTC when unset). An aggregated event (``count`` > 1) counts ``count`` times.
* **Focus Mode** plays never count: listening the user asked not to shape their profile (a
  song on repeat while working, a child on the parent's account) does not shape their Wrapped.
* **Overnight loops** are noise: a run of at least ``LOOP_MIN_PLAYS`` back-to-back plays of
  the same track (nothing else in between, each starting within ``LOOP_MAX_GAP_MS`` of the
  previous one) of which at least half start between 00:00 and 06:00 local time counts as one
  play, its first: the listener fell asleep, the player did not. Loops by day are kept (that
  is a favourite song).
* A play is a **stream** (counts for top lists and play counts) when it lasted at least
  ``STREAM_MIN_MS`` (30 s) or its length is unknown; every play counts for minutes, with its
  ``ms_played`` or, when unknown, the item's duration (0 when that is unknown too).
* **Top tracks and artists** rank music tracks by streams (ties: minutes, then id); plays of
  an artist itself (a catalog of artists, as Last.fm 2K's) count for that artist; **genres**
  by their share of track streams, a track of two genres counting half for each, so the
  shares of all genres add up to 100 % and the card's top five never to more; **podcasts**
  rank shows by minutes of their episodes.
* **New discoveries**: the share of the distinct tracks streamed this year that the user had
  never played (outside Focus Mode) before the year began. In a listener's first year
  (``first_year``: nothing played before) that share is 1 by definition, so the card shows the
  artists discovered instead and the personality does not call them an explorer for it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from zoneinfo import ZoneInfo

import numpy as np
from pydantic import BaseModel

from segue.data.log import InteractionLog
from segue.data.model import EVENT_CODES, EventType, Item, ItemKind, User
from segue.errors import SegueError

LOOP_MIN_PLAYS = 8
LOOP_MAX_GAP_MS = 15 * 60_000
NIGHT_HOURS = range(0, 6)
STREAM_MIN_MS = 30_000
TOP_N = 5


class Ranked(BaseModel):
    """One entry of a top list."""

    id: str
    name: str
    subtitle: str | None = None
    plays: int
    minutes: float


class GenreShare(BaseModel):
    name: str
    plays: int
    share: float


class Personality(BaseModel):
    name: str
    description: str


class Wrapped(BaseModel):
    """A listener's year; every number follows the rules of the module docstring."""

    user_id: str
    year: int
    timezone: str
    minutes_listened: float
    streams: int
    distinct_tracks: int
    distinct_artists: int
    top_tracks: list[Ranked]
    top_artists: list[Ranked]
    top_genres: list[GenreShare]
    top_podcasts: list[Ranked]
    top_song_plays: int
    minutes_by_hour: list[float]
    minutes_by_month: list[float]
    discovery_share: float
    new_artists: int
    first_year: bool
    personality: Personality
    focus_plays_excluded: int
    loop_plays_excluded: int


def year_bounds_ms(year: int, timezone: str | None) -> tuple[int, int]:
    """[start, end) of ``year`` in the listener's time zone, as epoch milliseconds."""
    if not 1900 <= year <= 2200:
        raise SegueError(f"Wrapped needs a year between 1900 and 2200, got {year}")
    tz = ZoneInfo(timezone or "UTC")
    start = dt.datetime(year, 1, 1, tzinfo=tz)
    end = dt.datetime(year + 1, 1, 1, tzinfo=tz)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def loop_noise(log: InteractionLog, local_hour: np.ndarray) -> np.ndarray:
    """Boolean mask of plays that are overnight-loop noise (all but each loop's first play).

    ``log`` holds one user's counted plays in time order; ``local_hour`` their local hours.
    """
    n = len(log)
    noise = np.zeros(n, dtype=bool)
    start = 0
    while start < n:
        end = start + 1
        while (
            end < n
            and log.item[end] == log.item[start]
            and log.ts_ms[end] - log.ts_ms[end - 1] <= LOOP_MAX_GAP_MS
        ):
            end += 1
        length = end - start
        if length >= LOOP_MIN_PLAYS:
            at_night = np.isin(local_hour[start:end], NIGHT_HOURS).sum()
            if 2 * at_night >= length:
                noise[start + 1 : end] = True
        start = end
    return noise


def compute_wrapped(
    user: User,
    year: int,
    log: InteractionLog,
    items: Mapping[str, Item],
    heard_before: set[str],
) -> Wrapped:
    """The Wrapped of ``user`` for ``year``.

    ``log``: the user's events of the year (Focus-Mode ones included, they are counted as
    excluded); ``items``: item records by id, for the played items and their artists and
    shows; ``heard_before``: ids of items the user played (outside Focus Mode) before the year.
    """
    tz = ZoneInfo(user.timezone or "UTC")
    start_ms, end_ms = year_bounds_ms(year, user.timezone)
    in_year = (log.ts_ms >= start_ms) & (log.ts_ms < end_ms)
    plays = log.select(in_year & (log.type == EVENT_CODES[EventType.PLAY.value]))
    focus_plays = int(plays.count[plays.focus].sum())
    plays = plays.select(~plays.focus)
    local = [dt.datetime.fromtimestamp(ms / 1000, tz=tz) for ms in plays.ts_ms.tolist()]
    hour = np.array([t.hour for t in local], dtype=np.int64)
    month = np.array([t.month - 1 for t in local], dtype=np.int64)
    noise = loop_noise(plays, hour)
    loop_plays = int(plays.count[noise].sum())
    keep = ~noise
    plays, hour, month = plays.select(keep), hour[keep], month[keep]

    ids = [str(x) for x in plays.item_ids[plays.item]]
    count = plays.count.astype(np.int64)
    duration = np.array(
        [float((items[i].duration_ms or 0) if i in items else 0) for i in ids], dtype=np.float64
    )
    played_ms = np.where(plays.ms_played >= 0, plays.ms_played.astype(np.float64), duration)
    minutes = played_ms * count / 60_000.0
    stream = (plays.ms_played < 0) | (plays.ms_played >= STREAM_MIN_MS)
    streams = np.where(stream, count, 0)

    by_hour = np.bincount(hour, weights=minutes, minlength=24)
    by_month = np.bincount(month, weights=minutes, minlength=12)

    tracks: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    artists: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    genres: dict[str, float] = defaultdict(float)
    shows: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    podcast_minutes = 0.0
    for item_id, s, m in zip(ids, streams.tolist(), minutes.tolist(), strict=True):
        item = items.get(item_id)
        if item is None:
            continue
        if item.kind is ItemKind.TRACK:
            tracks[item_id][0] += s
            tracks[item_id][1] += m
            if item.artist_id:
                artists[item.artist_id][0] += s
                artists[item.artist_id][1] += m
            for genre in item.genres:  # split, so the shares add up to 100 %
                genres[genre] += s / len(item.genres)
        elif item.kind is ItemKind.ARTIST:  # a catalog of artists (Last.fm 2K): plays of one
            artists[item_id][0] += s
            artists[item_id][1] += m
        elif item.kind in (ItemKind.PODCAST_EPISODE, ItemKind.PODCAST_SHOW):
            show = item.show_id or item_id
            shows[show][0] += s
            shows[show][1] += m
            podcast_minutes += m

    def name(item_id: str) -> str:
        item = items.get(item_id)
        return item.title if item else item_id

    def ranked(table: dict[str, list[float]], by_minutes: bool = False) -> list[Ranked]:
        key = (
            (lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
            if by_minutes
            else (lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
        )
        out = []
        for item_id, (s, m) in sorted(table.items(), key=key)[:TOP_N]:
            item = items.get(item_id)
            parent = (item.artist_id or item.show_id) if item else None
            out.append(
                Ranked(
                    id=item_id,
                    name=name(item_id),
                    subtitle=name(parent) if parent and parent != item_id else None,
                    plays=int(s),
                    minutes=round(float(m), 1),
                )
            )
        return out

    track_streams = sum(int(v[0]) for v in tracks.values())
    top_tracks = ranked({k: v for k, v in tracks.items() if v[0] > 0})
    top_artists = ranked({k: v for k, v in artists.items() if v[0] > 0})
    top_genres = [
        GenreShare(name=g, plays=round(n), share=round(n / track_streams, 4))
        for g, n in sorted(genres.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_N]
        if n > 0
    ]
    streamed = {k for k, v in tracks.items() if v[0] > 0}
    new_tracks = streamed - heard_before
    artists_before = {items[i].artist_id for i in heard_before if i in items}
    year_artists = {items[i].artist_id for i in streamed if items[i].artist_id}
    year_artists |= {a for a, (n, _) in artists.items() if n > 0 and a in items}
    total_minutes = float(minutes.sum())
    discovery = len(new_tracks) / len(streamed) if streamed else 0.0
    wrapped_stats = {
        # in a first year everything is new: that says nothing about exploring
        "discovery_share": discovery if heard_before else 0.0,
        "top5_artist_share": (
            sum(a.plays for a in top_artists) / track_streams if track_streams else 0.0
        ),
        "night_share": float(by_hour[[22, 23, 0, 1, 2, 3]].sum() / total_minutes)
        if total_minutes
        else 0.0,
        "morning_share": float(by_hour[5:9].sum() / total_minutes) if total_minutes else 0.0,
        "podcast_share": podcast_minutes / total_minutes if total_minutes else 0.0,
        "n_genres": len([g for g, n in genres.items() if n > 0]),
        "top_genre_share": top_genres[0].share if top_genres else 0.0,
    }
    return Wrapped(
        user_id=user.id,
        year=year,
        timezone=user.timezone or "UTC",
        minutes_listened=round(total_minutes, 1),
        streams=int(streams.sum()),
        distinct_tracks=len(streamed),
        distinct_artists=len(year_artists),
        top_tracks=top_tracks,
        top_artists=top_artists,
        top_genres=top_genres,
        top_podcasts=ranked({k: v for k, v in shows.items() if v[1] > 0}, by_minutes=True),
        top_song_plays=top_tracks[0].plays if top_tracks else 0,
        minutes_by_hour=[round(float(x), 1) for x in by_hour],
        minutes_by_month=[round(float(x), 1) for x in by_month],
        discovery_share=round(discovery, 4),
        new_artists=len(year_artists - artists_before),
        first_year=not heard_before,
        personality=personality(wrapped_stats),
        focus_plays_excluded=focus_plays,
        loop_plays_excluded=loop_plays,
    )


#: (name, statistic, threshold, description template): the trait furthest past its threshold
#: names the listener; none past it gives "The Steady Listener".
_TRAITS: tuple[tuple[str, str, float, str], ...] = (
    ("The Explorer", "discovery_share", 0.6,
     "{pct}% of the tracks you played were new to you. You go looking."),
    ("The Loyalist", "top5_artist_share", 0.5,
     "Your top five artists made up {pct}% of your year. You know who you love."),
    ("The Night Owl", "night_share", 0.3,
     "{pct}% of your listening happened between 10 pm and 4 am."),
    ("The Early Bird", "morning_share", 0.25,
     "{pct}% of your listening happened between 5 and 9 am."),
    ("The Storyteller", "podcast_share", 0.4,
     "Podcasts took {pct}% of your listening time."),
    ("The Genre Hopper", "genre_spread", 1.0,
     "{n} genres and no single one above a third of your plays."),
)  # fmt: skip


def personality(stats: Mapping[str, float]) -> Personality:
    """A short listening personality from the year's statistics (see ``_TRAITS``)."""
    values = dict(stats)
    spread = values.get("n_genres", 0) >= 6 and values.get("top_genre_share", 1.0) < 1 / 3
    values["genre_spread"] = 1.0 + values.get("n_genres", 0) / 100 if spread else 0.0
    best, best_ratio = None, 0.0
    for trait in _TRAITS:
        ratio = values.get(trait[1], 0.0) / trait[2]
        if ratio >= 1.0 and ratio > best_ratio:
            best, best_ratio = trait, ratio
    if best is None:
        return Personality(
            name="The Steady Listener",
            description="A little of everything, all year round: music is part of your day.",
        )
    pct = round(100 * values.get(best[1], 0.0))
    return Personality(
        name=best[0], description=best[3].format(pct=pct, n=int(values.get("n_genres", 0)))
    )
