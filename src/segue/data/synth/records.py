"""Pydantic records of the world: items, users and friend links, built from its arrays.

Generating events never needs them, so the world builds them on first access. Every record
goes through its model's validation (the same as any importer's records).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from segue.data.model import AgeBand, AudioFeatures, Friendship, Gender, Item, ItemKind, User
from segue.data.synth.catalog import DAY_MS, NO_RELEASE, Catalog
from segue.data.synth.tables import (
    AGE_BANDS,
    BOOK_GENRES,
    COUNTRIES,
    FEATURES,
    GENDERS,
    GENRE_INDEX,
    GENRES,
    PODCAST_TOPICS,
    TIMEZONES,
)
from segue.data.synth.users import Population


def build_items(catalog: Catalog) -> list[Item]:
    """Validated :class:`Item` records, in item-position order."""
    return _ItemBuilder(catalog).build()


def build_users(pop: Population) -> list[User]:
    """Validated :class:`User` records, in user-position order."""
    bands = [b for b, _, _ in AGE_BANDS]
    genders = [None if g is None else Gender(g) for g, _ in GENDERS]
    out: list[User] = []
    for i in range(len(pop.ids)):
        band = int(pop.age_band[i])
        out.append(
            User(
                id=pop.ids[i],
                signup_at=dt.datetime.fromtimestamp(int(pop.signup_ms[i]) / 1000, tz=dt.UTC),
                age_band=None if band < 0 else AgeBand(bands[band]),
                gender=genders[int(pop.gender[i])],
                country=COUNTRIES[int(pop.country[i])].code,
                timezone=TIMEZONES[int(pop.tz[i])],
                consent_push=bool(pop.consent_push[i]),
                consent_email=bool(pop.consent_email[i]),
                consent_personalisation=bool(pop.consent_personalisation[i]),
                kids_profile=bool(pop.kids[i]),
            )
        )
    return out


def build_friendships(pop: Population) -> list[Friendship]:
    ids = pop.ids
    return [Friendship(user_id=ids[a], friend_id=ids[b]) for a, b in pop.friend_pairs]


_MOODS = (
    ("chill", lambda a: a[:, 1] < 0.35),
    ("energetic", lambda a: a[:, 1] > 0.8),
    ("danceable", lambda a: a[:, 2] > 0.75),
    ("happy", lambda a: a[:, 3] > 0.7),
    ("melancholic", lambda a: a[:, 3] < 0.25),
    ("acoustic", lambda a: a[:, 4] > 0.7),
    ("instrumental", lambda a: a[:, 5] > 0.7),
)


class _ItemBuilder:
    """Item records of a catalog, kind by kind, in item-position order."""

    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog
        self.p = catalog.params
        self.ids = catalog.ids

    def _date(self, ms: int) -> dt.date | None:
        if ms == NO_RELEASE:
            return None
        return self.p.start_date + dt.timedelta(days=(int(ms) - self.p.start_ms) // DAY_MS)

    def build(self) -> list[Item]:
        c = self.c
        items: list[Item] = []
        items.extend(self._tracks())
        items.extend(self._albums())
        items.extend(self._artists())
        items.extend(self._shows())
        items.extend(self._episodes())
        items.extend(self._videos())
        items.extend(self._books())
        lo, _ = c.span(ItemKind.FEATURE)
        for k, feature in enumerate(FEATURES):
            items.append(
                Item(
                    id=feature.id,
                    kind=ItemKind.FEATURE,
                    title=feature.title,
                    description=feature.description,
                    tags=("app feature",),
                )
            )
            assert items[lo + k].id == feature.id
        return items

    def _genre_labels(self, genre: int) -> tuple[str, ...]:
        g = GENRES[genre]
        if g.parent is not None and GENRE_INDEX[g.parent] < self.p.n_genres:
            return (g.name, g.parent)
        return (g.name,)

    def _artist_labels(self, artist: int) -> tuple[str, ...]:
        first, second = self.c.artist_genres[artist]
        return tuple(GENRES[g].name for g in (first, second) if g >= 0)

    def _tracks(self) -> list[Item]:
        c = self.c
        a_lo, _ = c.span(ItemKind.ARTIST)
        b_lo, _ = c.span(ItemKind.ALBUM)
        audio = c.audio.astype(np.float64)
        moods = np.stack([rule(audio) for _, rule in _MOODS], axis=1)
        mood_names = [m for m, _ in _MOODS]
        labels = [self._genre_labels(g) for g in range(self.p.n_genres)]
        out = []
        for i in range(c.count(ItemKind.TRACK)):
            row = audio[i]
            out.append(
                Item(
                    id=self.ids[i],
                    kind=ItemKind.TRACK,
                    title=c.titles[i],
                    artist_id=self.ids[a_lo + c.track_artist[i]],
                    album_id=self.ids[b_lo + c.track_album[i]],
                    genres=labels[c.track_genre[i]],
                    tags=tuple(m for m, on in zip(mood_names, moods[i], strict=True) if on),
                    duration_ms=int(c.duration_ms[i]),
                    release_date=self._date(c.release_ms[i]),
                    explicit=bool(c.explicit[i]),
                    audio=AudioFeatures(
                        tempo=round(float(row[0]), 1),
                        energy=round(float(row[1]), 3),
                        danceability=round(float(row[2]), 3),
                        valence=round(float(row[3]), 3),
                        acousticness=round(float(row[4]), 3),
                        instrumentalness=round(float(row[5]), 3),
                        loudness=round(float(row[6]), 1),
                    ),
                )
            )
        return out

    def _albums(self) -> list[Item]:
        c = self.c
        lo, hi = c.span(ItemKind.ALBUM)
        a_lo, _ = c.span(ItemKind.ARTIST)
        return [
            Item(
                id=self.ids[lo + b],
                kind=ItemKind.ALBUM,
                title=c.titles[lo + b],
                artist_id=self.ids[a_lo + c.album_artist[b]],
                genres=self._artist_labels(c.album_artist[b]),
                duration_ms=int(c.duration_ms[lo + b]),
                release_date=self._date(c.release_ms[lo + b]),
                explicit=bool(c.explicit[lo + b]),
            )
            for b in range(hi - lo)
        ]

    def _artists(self) -> list[Item]:
        c = self.c
        lo, hi = c.span(ItemKind.ARTIST)
        return [
            Item(
                id=self.ids[lo + a],
                kind=ItemKind.ARTIST,
                title=c.titles[lo + a],
                genres=self._artist_labels(a),
            )
            for a in range(hi - lo)
        ]

    def _shows(self) -> list[Item]:
        c = self.c
        lo, hi = c.span(ItemKind.PODCAST_SHOW)
        return [
            Item(
                id=self.ids[lo + s],
                kind=ItemKind.PODCAST_SHOW,
                title=c.titles[lo + s],
                genres=(PODCAST_TOPICS[c.show_topic[s]],),
                tags=("podcast",),
                release_date=self._date(c.release_ms[lo + s]),
                description=f"A {PODCAST_TOPICS[c.show_topic[s]]} podcast.",
            )
            for s in range(hi - lo)
        ]

    def _episodes(self) -> list[Item]:
        c = self.c
        lo, hi = c.span(ItemKind.PODCAST_EPISODE)
        s_lo, _ = c.span(ItemKind.PODCAST_SHOW)
        return [
            Item(
                id=self.ids[lo + e],
                kind=ItemKind.PODCAST_EPISODE,
                title=c.titles[lo + e],
                show_id=self.ids[s_lo + c.episode_show[e]],
                genres=(PODCAST_TOPICS[c.show_topic[c.episode_show[e]]],),
                tags=("podcast",),
                duration_ms=int(c.duration_ms[lo + e]),
                release_date=self._date(c.release_ms[lo + e]),
            )
            for e in range(hi - lo)
        ]

    def _videos(self) -> list[Item]:
        c = self.c
        lo, hi = c.span(ItemKind.VIDEO)
        a_lo, _ = c.span(ItemKind.ARTIST)
        labels = [self._genre_labels(g) for g in range(self.p.n_genres)]
        return [
            Item(
                id=self.ids[lo + v],
                kind=ItemKind.VIDEO,
                title=c.titles[lo + v],
                artist_id=self.ids[a_lo + c.video_artist[v]],
                genres=labels[c.track_genre[c.video_track[v]]],
                tags=("music video",),
                duration_ms=int(c.duration_ms[lo + v]),
                release_date=self._date(c.release_ms[lo + v]),
                explicit=bool(c.explicit[lo + v]),
            )
            for v in range(hi - lo)
        ]

    def _books(self) -> list[Item]:
        c = self.c
        lo, hi = c.span(ItemKind.AUDIOBOOK)
        return [
            Item(
                id=self.ids[lo + b],
                kind=ItemKind.AUDIOBOOK,
                title=c.titles[lo + b],
                genres=(BOOK_GENRES[c.book_genre[b]],),
                tags=("audiobook",),
                duration_ms=int(c.duration_ms[lo + b]),
                release_date=self._date(c.release_ms[lo + b]),
                description=f"A {BOOK_GENRES[c.book_genre[b]]} audiobook by {c.book_authors[b]}.",
            )
            for b in range(hi - lo)
        ]
