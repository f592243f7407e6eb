"""New releases for a listener: tracks that came out lately, by the artists and genres they play.

A release is "new" when it came out within ``window_days`` before ``as_of``. ``as_of`` is
today, or the catalog's newest release date when that is earlier: a live catalog always has
releases up to today, while an imported or demo catalog stops at its last day and should
still show what was new then rather than nothing.

The listener's own releases come first, ordered by how much they play the artist (the share of
their history), then releases in the genres they play most, then what is new and popular;
within a tier newer first. At most ``per_artist`` tracks of one artist (an album drops many
tracks on one day), nothing they have heard, and no explicit track for a kids profile.
Without a history (a new listener, or one without personalisation consent) the row is the
newest popular releases: the same for everyone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from segue.data.model import Item, ItemKind

#: What "new" means, in days before ``as_of``.
WINDOW_DAYS = 28
#: Tracks of one artist in the row.
PER_ARTIST = 2


@dataclass(frozen=True)
class Release:
    item_id: str
    title: str
    artist_id: str | None
    artist: str | None
    release_date: dt.date
    genres: tuple[str, ...]
    explicit: bool


@dataclass(frozen=True)
class NewRelease:
    item_id: str
    title: str
    artist: str | None
    release_date: dt.date
    reason: str


class ReleaseIndex:
    """The catalog's dated tracks, newest first (built once per catalog snapshot: a sort of
    the dated tracks, about 10 ms per 10k items)."""

    def __init__(self, items: Iterable[Item]) -> None:
        items = list(items)
        names = {i.id: i.title for i in items if i.kind is ItemKind.ARTIST}
        dated = [i for i in items if i.kind is ItemKind.TRACK and i.release_date is not None]
        dated.sort(key=lambda i: (i.release_date, i.id), reverse=True)
        self.releases = tuple(
            Release(
                item_id=i.id,
                title=i.title,
                artist_id=i.artist_id,
                artist=names.get(i.artist_id) if i.artist_id else None,
                release_date=i.release_date,  # type: ignore[arg-type]  # filtered above
                genres=i.genres,
                explicit=i.explicit,
            )
            for i in dated
        )

    @property
    def latest(self) -> dt.date | None:
        return self.releases[0].release_date if self.releases else None

    def as_of(self, today: dt.date) -> dt.date:
        """The day "new" is counted back from (see the module docstring)."""
        latest = self.latest
        return min(today, latest) if latest is not None else today

    def window(self, as_of: dt.date, days: int) -> list[Release]:
        """Releases dated in ``(as_of - days, as_of]``, newest first."""
        first = as_of - dt.timedelta(days=days)
        return [r for r in self.releases if first < r.release_date <= as_of]


def pick_new_releases(
    index: ReleaseIndex,
    *,
    as_of: dt.date,
    k: int,
    window_days: int = WINDOW_DAYS,
    artist_plays: Mapping[str, float] | None = None,
    genre_plays: Mapping[str, float] | None = None,
    popularity: Mapping[str, float] | None = None,
    heard: Collection[str] = (),
    allow_explicit: bool = True,
    per_artist: int = PER_ARTIST,
) -> list[NewRelease]:
    """The ``k`` new releases to show, best first, each with the reason it is there.

    ``artist_plays`` / ``genre_plays``: the listener's plays per artist id and per genre
    (empty or None: not personal); ``popularity``: listeners per item id; ``heard``: item
    ids they played already.
    """
    artists = _shares(artist_plays)
    genres = _shares(genre_plays)
    popularity = popularity or {}

    def rank(r: Release) -> tuple[float, float, float, int]:
        artist = artists.get(r.artist_id, 0.0) if r.artist_id else 0.0
        genre = max((genres.get(g, 0.0) for g in r.genres), default=0.0)
        return (-artist, -genre, -popularity.get(r.item_id, 0.0), -r.release_date.toordinal())

    candidates = [
        r
        for r in index.window(as_of, window_days)
        if (allow_explicit or not r.explicit) and r.item_id not in heard
    ]
    candidates.sort(key=rank)
    taken: dict[str | None, int] = {}
    out: list[NewRelease] = []
    for r in candidates:
        if len(out) >= k:
            break
        if r.artist_id is not None and taken.get(r.artist_id, 0) >= per_artist:
            continue
        taken[r.artist_id] = taken.get(r.artist_id, 0) + 1
        out.append(
            NewRelease(r.item_id, r.title, r.artist, r.release_date, _reason(r, artists, genres))
        )
    return out


def _shares(plays: Mapping[str, float] | None) -> dict[str, float]:
    total = sum(v for v in (plays or {}).values() if v > 0)
    return {key: v / total for key, v in (plays or {}).items() if v > 0} if total else {}


def _reason(r: Release, artists: Mapping[str, float], genres: Mapping[str, float]) -> str:
    if r.artist_id and artists.get(r.artist_id):
        return f"New from {r.artist or 'an artist you play'}, whom you play"
    liked = [g for g in r.genres if genres.get(g)]
    if liked:
        return f"New in {max(liked, key=lambda g: genres[g])}, which you play"
    return "New and popular"
