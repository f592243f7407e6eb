"""The catalog: genres → artists → albums → tracks, plus podcasts, videos, audiobooks, features.

Everything is held as arrays indexed by the world's item position (the order of
``Catalog.ids``): tracks first, so a track's item position is its track number, then albums,
artists, podcast shows, episodes, videos, audiobooks and app features. Item records are only
built on request (:func:`segue.data.synth.records.build_items`), so generating events never
needs them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segue.data.model import ItemKind
from segue.data.synth import names
from segue.data.synth.params import SynthParams
from segue.data.synth.tables import BOOK_GENRES, FEATURES, GENRE_INDEX, GENRES, PODCAST_TOPICS

DAY_MS = 86_400_000
#: ``release_ms`` of items that have no release date (always available).
NO_RELEASE = np.iinfo(np.int64).min // 2
#: Item kinds in code order: ``Catalog.kind`` holds positions into this tuple.
KINDS: tuple[ItemKind, ...] = tuple(ItemKind)
KIND_CODE: dict[ItemKind, int] = {k: i for i, k in enumerate(KINDS)}
AUDIO_FIELDS = (
    "tempo",
    "energy",
    "danceability",
    "valence",
    "acousticness",
    "instrumentalness",
    "loudness",
)
#: Median track length (ms) before the genre's duration factor.
TRACK_MEDIAN_MS = 210_000
TRACK_DURATION_SIGMA = 0.28
#: Share of artists with a second genre, and of an artist's tracks filed under it.
SECOND_GENRE_SHARE = 0.35
SECOND_GENRE_TRACKS = 0.2
#: Spread (sd of the log) of a track's popularity score around its artist's.
TRACK_POPULARITY_SIGMA = 1.0
#: Mean age (years) of back-catalog albums.
BACK_CATALOG_YEARS = 6.0

# Streams of the catalog generator, so that one part's draws never shift another's.
_GENRES, _ARTISTS, _ALBUMS, _TRACKS, _SPOKEN, _NAMES = range(6)


@dataclass
class Catalog:
    """Arrays describing every item; see the module docstring for the layout."""

    params: SynthParams
    ids: np.ndarray
    kind: np.ndarray
    latent: np.ndarray
    popularity: np.ndarray
    release_ms: np.ndarray
    duration_ms: np.ndarray
    explicit: np.ndarray
    titles: list[str]
    offsets: dict[ItemKind, tuple[int, int]]
    genre_names: tuple[str, ...]
    genre_centroids: np.ndarray
    track_genre: np.ndarray
    track_artist: np.ndarray
    track_album: np.ndarray
    audio: np.ndarray
    artist_genres: np.ndarray
    artist_popularity: np.ndarray
    album_artist: np.ndarray
    genre_order: np.ndarray
    genre_keys: np.ndarray
    show_topic: np.ndarray
    show_episode_start: np.ndarray
    episode_show: np.ndarray
    video_artist: np.ndarray
    video_track: np.ndarray
    book_genre: np.ndarray
    book_authors: list[str]
    fallback_track: int

    @property
    def n_items(self) -> int:
        return len(self.ids)

    def span(self, kind: ItemKind) -> tuple[int, int]:
        """Item positions ``[start, stop)`` of one kind."""
        return self.offsets[kind]

    def count(self, kind: ItemKind) -> int:
        start, stop = self.offsets[kind]
        return stop - start


def build_catalog(params: SynthParams, demand: np.ndarray) -> Catalog:
    """Draw the whole catalog for ``params``; ``demand[g]`` is genre g's expected share of
    listening (supply follows it: artists per genre and the popularity mass of the genre)."""
    return _CatalogBuilder(params, demand).build()


def _rng(params: SynthParams, part: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([params.seed, 1, part]))


def zipf_weights(ranks: np.ndarray, exponent: float) -> np.ndarray:
    """Normalised ``rank ** -exponent`` (ranks start at 1)."""
    w = np.asarray(ranks, dtype=np.float64) ** -exponent
    return w / w.sum()


def _random_ranks(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.permutation(n) + 1


def _normal_rows(rng: np.random.Generator, n: int, d: int, scale: float) -> np.ndarray:
    """Rows of N(0, scale²/d): vectors of expected norm ``scale``."""
    return rng.standard_normal((n, d)) * (scale / np.sqrt(d))


class _CatalogBuilder:
    def __init__(self, params: SynthParams, demand: np.ndarray) -> None:
        self.p = params
        self.d = params.latent_dim
        self.genres = GENRES[: params.n_genres]
        demand = np.asarray(demand, dtype=np.float64)
        if demand.shape != (params.n_genres,) or not np.all(demand > 0):
            raise ValueError(f"demand must hold {params.n_genres} positive shares")
        self.demand = demand / demand.sum()

    def build(self) -> Catalog:
        p = self.p
        centroids = self._genre_centroids()
        artists = self._artists(centroids)
        albums = self._albums(artists)
        tracks = self._tracks(centroids, artists, albums)
        spoken = self._spoken(artists, tracks)
        return self._assemble(centroids, artists, albums, tracks, spoken, p)

    # -- genres, artists, albums, tracks ------------------------------------------------
    def _genre_centroids(self) -> np.ndarray:
        """Centroids for the whole table (not just ``n_genres``) so that n_genres only selects.

        Top-level genres are independent directions of norm ~1; a subgenre keeps 75% of its
        parent's direction, so that "techno" listeners sit near "electronic" ones.
        """
        rng = _rng(self.p, _GENRES)
        raw = _normal_rows(rng, len(GENRES), self.d, 1.0)
        centroids = np.empty_like(raw)
        for i, genre in enumerate(GENRES):
            if genre.parent is None:
                centroids[i] = raw[i]
            else:
                parent = centroids[GENRE_INDEX[genre.parent]]
                centroids[i] = 0.75 * parent + np.sqrt(1 - 0.75**2) * raw[i]
        return centroids

    def _artists(self, centroids: np.ndarray) -> dict[str, np.ndarray]:
        p, rng = self.p, _rng(self.p, _ARTISTS)
        n, g = p.n_artists, p.n_genres
        weights = self.demand
        primary = rng.choice(g, size=n, p=weights)
        primary[:g] = np.arange(g)  # every genre has at least one artist
        has_second = (rng.random(n) < SECOND_GENRE_SHARE) & (g > 1)
        second = np.full(n, -1, dtype=np.int64)
        related = _related_genres(self.genres)
        for a in np.flatnonzero(has_second):
            options = related[primary[a]]
            if options and rng.random() < 0.6:
                second[a] = options[int(rng.integers(len(options)))]
            else:
                w = weights.copy()
                w[primary[a]] = 0.0
                second[a] = rng.choice(g, p=w / w.sum())
        base = centroids[primary]
        two = second >= 0
        base[two] = 0.7 * centroids[primary[two]] + 0.3 * centroids[second[two]]
        latent = base + _normal_rows(rng, n, self.d, p.artist_spread)
        popularity = zipf_weights(_random_ranks(rng, n), p.popularity_exponent)
        return {
            "genres": np.stack([primary, second], axis=1).astype(np.int16),
            "latent": latent,
            "popularity": popularity,
        }

    def _albums(self, artists: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        p, rng = self.p, _rng(self.p, _ALBUMS)
        n_albums, n_artists = p.n_albums, p.n_artists
        album_artist = np.empty(n_albums, dtype=np.int64)
        album_artist[:n_artists] = np.arange(n_artists)
        w = np.sqrt(artists["popularity"])
        album_artist[n_artists:] = rng.choice(n_artists, size=n_albums - n_artists, p=w / w.sum())
        order = np.argsort(album_artist, kind="stable")  # an artist's albums are adjacent
        album_artist = album_artist[order]
        back = -1 - np.minimum(
            np.floor(rng.exponential(BACK_CATALOG_YEARS * 365.25, n_albums)), 60 * 365
        ).astype(np.int64)
        new = rng.random(n_albums) < p.new_release_share
        during = rng.integers(0, p.n_days, size=n_albums)
        release_day = np.where(new, during, back)
        sizes = np.ones(n_albums, dtype=np.int64)
        extra = p.n_tracks - n_albums
        if extra > 0:
            shape = rng.gamma(1.5, size=n_albums)
            sizes += rng.multinomial(extra, shape / shape.sum())
        return {"artist": album_artist, "release_day": release_day, "sizes": sizes}

    def _tracks(
        self,
        centroids: np.ndarray,
        artists: dict[str, np.ndarray],
        albums: dict[str, np.ndarray],
    ) -> dict[str, np.ndarray]:
        p, rng = self.p, _rng(self.p, _TRACKS)
        n = p.n_tracks
        album = np.repeat(np.arange(p.n_albums), albums["sizes"])
        artist = albums["artist"][album]
        primary, second = artists["genres"][artist, 0], artists["genres"][artist, 1]
        use_second = (second >= 0) & (rng.random(n) < SECOND_GENRE_TRACKS)
        first_of_artist = np.r_[True, artist[1:] != artist[:-1]]
        use_second &= ~first_of_artist  # an artist's first track is in its primary genre
        genre = np.where(use_second, second, primary).astype(np.int16)

        latent = artists["latent"][artist] + _normal_rows(rng, n, self.d, p.track_spread)
        score = np.log(artists["popularity"][artist]) + TRACK_POPULARITY_SIGMA * (
            rng.standard_normal(n)
        )
        popularity = zipf_weights(
            _interleaved_ranks(genre, score, self.demand), p.popularity_exponent
        )

        explicit_rate = np.array([x.explicit for x in self.genres])[genre]
        explicit = rng.random(n) < np.clip(explicit_rate * rng.uniform(0, 2, n), 0, 1)
        factor = np.array([x.duration for x in self.genres])[genre]
        duration = TRACK_MEDIAN_MS * factor * np.exp(TRACK_DURATION_SIGMA * rng.standard_normal(n))
        duration = np.clip(duration, 45_000, 1_800_000).astype(np.int64)
        audio = self._audio(rng, latent - centroids[genre], genre)

        top = int(np.argmax(popularity))
        explicit[top] = False  # a kids profile can always play something
        release_day = albums["release_day"].copy()
        if release_day[album[top]] >= 0:
            release_day[album[top]] = -1  # and something exists on day one
        return {
            "album": album,
            "artist": artist,
            "genre": genre,
            "latent": latent,
            "popularity": popularity,
            "explicit": explicit,
            "duration": duration,
            "audio": audio,
            "album_release_day": release_day,
            "top": np.array(top),
        }

    def _audio(self, rng: np.random.Generator, offset: np.ndarray, genre: np.ndarray) -> np.ndarray:
        """Genre-mean audio features, nudged by the track's latent offset from its genre.

        Projecting the offset on fixed random directions makes audio carry some of the taste
        signal inside a genre (so content-based models have something to find).
        """
        n = len(genre)
        directions = rng.standard_normal((len(AUDIO_FIELDS), self.d))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        spread = np.sqrt((self.p.artist_spread**2 + self.p.track_spread**2) / self.d)
        signal = (
            offset @ directions.T / spread if spread > 1e-6 else np.zeros((n, len(AUDIO_FIELDS)))
        )
        noise = rng.standard_normal((n, len(AUDIO_FIELDS)))
        means = np.array([[getattr(x, name) for name in AUDIO_FIELDS] for x in self.genres])[genre]
        out = np.empty((n, len(AUDIO_FIELDS)))
        out[:, 0] = np.clip(means[:, 0] * np.exp(0.08 * signal[:, 0] + 0.05 * noise[:, 0]), 50, 220)
        unit = np.clip(means[:, 1:6], 0.01, 0.99)
        logits = np.log(unit / (1 - unit)) + 0.5 * signal[:, 1:6] + 0.35 * noise[:, 1:6]
        out[:, 1:6] = 1 / (1 + np.exp(-logits))
        out[:, 6] = np.clip(means[:, 6] + 1.5 * signal[:, 6] + noise[:, 6], -40, -1)
        return out.astype(np.float32)

    # -- podcasts, videos, audiobooks ---------------------------------------------------
    def _spoken(
        self, artists: dict[str, np.ndarray], tracks: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        p, rng, d = self.p, _rng(self.p, _SPOKEN), self.d
        out: dict[str, np.ndarray] = {}
        # podcasts: shows with a topic; episodes at a steady cadence up to the period's end
        s = p.n_podcast_shows
        topic_centroids = _normal_rows(rng, len(PODCAST_TOPICS), d, 1.0)
        topic = rng.integers(0, len(PODCAST_TOPICS), size=s)
        out["show_topic"] = topic
        out["show_latent"] = topic_centroids[topic] + _normal_rows(rng, s, d, 0.5)
        out["show_popularity"] = zipf_weights(_random_ranks(rng, s), p.popularity_exponent)
        counts = np.ones(s, dtype=np.int64)
        if s and p.n_podcast_episodes > s:
            w = np.sqrt(out["show_popularity"])
            counts += rng.multinomial(p.n_podcast_episodes - s, w / w.sum())
        first = -rng.integers(60, 1500, size=s)
        last = p.n_days - rng.integers(0, 14, size=s)
        ep_show = np.repeat(np.arange(s), counts)
        ep_number = np.arange(len(ep_show)) - np.repeat(np.cumsum(counts) - counts, counts)
        frac = ep_number / np.maximum(counts[ep_show] - 1, 1)
        ep_day = np.floor(first[ep_show] + frac * (last[ep_show] - first[ep_show])).astype(np.int64)
        ep_day[ep_number == 0] = first[ep_show[ep_number == 0]]
        out["episode_show"] = ep_show
        out["episode_number"] = ep_number
        out["episode_day"] = ep_day
        out["episode_duration"] = np.clip(
            2_400_000 * np.exp(0.5 * rng.standard_normal(len(ep_show))), 300_000, 14_400_000
        ).astype(np.int64)
        out["show_episode_start"] = np.r_[0, np.cumsum(counts)].astype(np.int64)
        # videos: music videos of popular artists' tracks
        v = p.n_videos
        t_pop = tracks["popularity"]
        video_track = rng.choice(len(t_pop), size=v, p=t_pop, replace=v > len(t_pop))
        out["video_track"] = video_track
        out["video_artist"] = tracks["artist"][video_track]
        out["video_day"] = tracks["album_release_day"][tracks["album"][video_track]] + (
            rng.integers(0, 60, size=v)
        )
        out["video_duration"] = tracks["duration"][video_track] + rng.integers(0, 60_000, size=v)
        out["video_latent"] = tracks["latent"][video_track] + _normal_rows(rng, v, d, 0.2)
        vp = t_pop[video_track] * np.exp(0.5 * rng.standard_normal(v))
        out["video_popularity"] = vp / vp.sum() if v else vp
        # audiobooks
        b = p.n_audiobooks
        book_centroids = _normal_rows(rng, len(BOOK_GENRES), d, 1.0)
        book_genre = rng.integers(0, len(BOOK_GENRES), size=b)
        out["book_genre"] = book_genre
        out["book_latent"] = book_centroids[book_genre] + _normal_rows(rng, b, d, 0.5)
        out["book_popularity"] = zipf_weights(_random_ranks(rng, b), p.popularity_exponent)
        out["book_duration"] = np.clip(
            32_400_000 * np.exp(0.4 * rng.standard_normal(b)), 3_600_000, 144_000_000
        ).astype(np.int64)
        back = -1 - np.floor(rng.exponential(5 * 365.25, b)).astype(np.int64)
        new = rng.random(b) < p.new_release_share
        out["book_day"] = np.where(new, rng.integers(0, p.n_days, size=b), back)
        return out

    # -- putting it together -----------------------------------------------------------
    def _assemble(
        self,
        centroids: np.ndarray,
        artists: dict[str, np.ndarray],
        albums: dict[str, np.ndarray],
        tracks: dict[str, np.ndarray],
        spoken: dict[str, np.ndarray],
        p: SynthParams,
    ) -> Catalog:
        n_tracks, n_albums, n_artists = p.n_tracks, p.n_albums, p.n_artists
        sizes = {
            ItemKind.TRACK: n_tracks,
            ItemKind.ALBUM: n_albums,
            ItemKind.ARTIST: n_artists,
            ItemKind.PODCAST_SHOW: p.n_podcast_shows,
            ItemKind.PODCAST_EPISODE: len(spoken["episode_show"]),
            ItemKind.VIDEO: p.n_videos,
            ItemKind.AUDIOBOOK: p.n_audiobooks,
            ItemKind.FEATURE: len(FEATURES),
        }
        offsets: dict[ItemKind, tuple[int, int]] = {}
        start = 0
        for kind, size in sizes.items():
            offsets[kind] = (start, start + size)
            start += size
        n = start
        d = self.d
        kind_code = np.empty(n, dtype=np.uint8)
        for kind, (lo, hi) in offsets.items():
            kind_code[lo:hi] = KIND_CODE[kind]

        album, artist = tracks["album"], tracks["artist"]
        t_pop = tracks["popularity"]
        album_pop = np.bincount(album, weights=t_pop, minlength=n_albums)
        artist_pop = np.bincount(artist, weights=t_pop, minlength=n_artists)
        album_latent = (
            np.stack(
                [
                    np.bincount(album, weights=tracks["latent"][:, k], minlength=n_albums)
                    for k in range(d)
                ],
                axis=1,
            )
            / np.maximum(albums["sizes"], 1)[:, None]
        )
        album_day = tracks["album_release_day"]
        artist_day = np.full(n_artists, np.iinfo(np.int64).max)
        np.minimum.at(artist_day, albums["artist"], album_day)
        show_day = spoken["episode_day"][spoken["show_episode_start"][:-1]]

        def days_to_ms(days: np.ndarray) -> np.ndarray:
            return p.start_ms + np.asarray(days, dtype=np.int64) * DAY_MS

        parts = {
            ItemKind.TRACK: (tracks["latent"], t_pop, days_to_ms(album_day[album])),
            ItemKind.ALBUM: (album_latent, album_pop, days_to_ms(album_day)),
            ItemKind.ARTIST: (artists["latent"], artist_pop, days_to_ms(artist_day)),
            ItemKind.PODCAST_SHOW: (
                spoken["show_latent"],
                spoken["show_popularity"],
                days_to_ms(show_day),
            ),
            ItemKind.PODCAST_EPISODE: (
                spoken["show_latent"][spoken["episode_show"]],
                spoken["show_popularity"][spoken["episode_show"]],
                days_to_ms(spoken["episode_day"]),
            ),
            ItemKind.VIDEO: (
                spoken["video_latent"],
                spoken["video_popularity"],
                days_to_ms(spoken["video_day"]),
            ),
            ItemKind.AUDIOBOOK: (
                spoken["book_latent"],
                spoken["book_popularity"],
                days_to_ms(spoken["book_day"]),
            ),
            ItemKind.FEATURE: (
                np.zeros((len(FEATURES), d)),
                np.full(len(FEATURES), 1 / len(FEATURES)),
                np.full(len(FEATURES), NO_RELEASE),
            ),
        }
        latent = np.zeros((n, d), dtype=np.float32)
        popularity = np.zeros(n, dtype=np.float64)
        release_ms = np.full(n, NO_RELEASE, dtype=np.int64)
        for kind, (lat, pop, rel) in parts.items():
            lo, hi = offsets[kind]
            latent[lo:hi] = lat
            popularity[lo:hi] = pop
            release_ms[lo:hi] = rel

        duration = np.zeros(n, dtype=np.int64)
        explicit = np.zeros(n, dtype=bool)
        lo, hi = offsets[ItemKind.TRACK]
        duration[lo:hi] = tracks["duration"]
        explicit[lo:hi] = tracks["explicit"]
        lo, hi = offsets[ItemKind.ALBUM]
        duration[lo:hi] = np.bincount(album, weights=tracks["duration"], minlength=n_albums)
        explicit[lo:hi] = np.bincount(album, weights=tracks["explicit"], minlength=n_albums) > 0
        lo, hi = offsets[ItemKind.PODCAST_EPISODE]
        duration[lo:hi] = spoken["episode_duration"]
        lo, hi = offsets[ItemKind.VIDEO]
        duration[lo:hi] = spoken["video_duration"]
        explicit[lo:hi] = tracks["explicit"][spoken["video_track"]]
        lo, hi = offsets[ItemKind.AUDIOBOOK]
        duration[lo:hi] = spoken["book_duration"]

        genre = tracks["genre"]
        order = np.argsort(genre, kind="stable")
        sums = np.bincount(genre, weights=t_pop, minlength=p.n_genres)
        cum = np.cumsum(t_pop[order])
        before = np.r_[0.0, np.cumsum(sums)][genre[order]]
        keys = genre[order] + (cum - before) / sums[genre[order]]
        # float rounding must not leave a genre's last key below the next genre's range
        last = np.r_[genre[order][1:] != genre[order][:-1], True]
        keys[last] = genre[order][last] + 1.0

        titles = _Titles(p, self.genres, artists, tracks, spoken, sizes).build()
        return Catalog(
            params=p,
            ids=_item_ids(offsets),
            kind=kind_code,
            latent=latent,
            popularity=popularity,
            release_ms=release_ms,
            duration_ms=duration,
            explicit=explicit,
            titles=titles["titles"],
            offsets=offsets,
            genre_names=tuple(x.name for x in self.genres),
            genre_centroids=centroids[: p.n_genres].astype(np.float32),
            track_genre=genre,
            track_artist=artist.astype(np.int32),
            track_album=album.astype(np.int32),
            audio=tracks["audio"],
            artist_genres=artists["genres"],
            artist_popularity=artists["popularity"],
            album_artist=albums["artist"].astype(np.int32),
            genre_order=order.astype(np.int32),
            genre_keys=keys,
            show_topic=spoken["show_topic"].astype(np.int16),
            show_episode_start=spoken["show_episode_start"],
            episode_show=spoken["episode_show"].astype(np.int32),
            video_artist=spoken["video_artist"].astype(np.int32),
            video_track=spoken["video_track"].astype(np.int32),
            book_genre=spoken["book_genre"].astype(np.int16),
            book_authors=titles["authors"],
            fallback_track=int(tracks["top"]),
        )


def _interleaved_ranks(genre: np.ndarray, score: np.ndarray, demand: np.ndarray) -> np.ndarray:
    """Global popularity ranks (1 = most popular) that give each genre ranks at a density
    proportional to its demand, best-scored tracks of a genre first.

    Genre g's k-th best track sits at key (k - 1/2) / demand_g; sorting the keys interleaves
    the genres so that at every depth of the ranking genre g holds a share demand_g of the
    tracks (until it runs out), and so a share demand_g of the Zipf popularity mass.
    """
    n = len(genre)
    by_genre = np.lexsort((-score, genre))
    sizes = np.bincount(genre, minlength=len(demand))
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    k = np.empty(n, dtype=np.int64)
    k[by_genre] = np.arange(n) - starts[genre[by_genre]] + 1
    key = (k - 0.5) / demand[genre]
    ranks = np.empty(n, dtype=np.int64)
    ranks[np.lexsort((-score, key))] = np.arange(1, n + 1)
    return ranks


def _related_genres(genres: tuple) -> list[list[int]]:
    """For each genre, the selected genres of the same family (same parent, or parent/child)."""
    roots = [g.parent or g.name for g in genres]
    return [
        [j for j in range(len(genres)) if j != i and roots[j] == roots[i]]
        for i in range(len(genres))
    ]


_PREFIX = {
    ItemKind.TRACK: "trk",
    ItemKind.ALBUM: "alb",
    ItemKind.ARTIST: "art",
    ItemKind.PODCAST_SHOW: "pod",
    ItemKind.PODCAST_EPISODE: "ep",
    ItemKind.VIDEO: "vid",
    ItemKind.AUDIOBOOK: "book",
}


def _item_ids(offsets: dict[ItemKind, tuple[int, int]]) -> np.ndarray:
    ids: list[str] = []
    for kind, (lo, hi) in offsets.items():
        if kind is ItemKind.FEATURE:
            ids.extend(f.id for f in FEATURES)
            continue
        width = max(6, len(str(hi - lo)))
        prefix = _PREFIX[kind]
        ids.extend(f"{prefix}-{i:0{width}d}" for i in range(hi - lo))
    return np.array(ids, dtype=object)


class _Titles:
    """Names from their own random stream, so that they never shift the numbers."""

    def __init__(self, p, genres, artists, tracks, spoken, sizes) -> None:
        self.p, self.genres = p, genres
        self.artists, self.tracks, self.spoken, self.sizes = artists, tracks, spoken, sizes
        self.rng = _rng(p, _NAMES)

    def build(self) -> dict[str, list[str]]:
        rng, genres = self.rng, self.genres
        primary = self.artists["genres"][:, 0]
        artist_names = [names.artist_name(rng, genres[g].name) for g in primary]
        album_titles = [names.album_title(rng) for _ in range(self.sizes[ItemKind.ALBUM])]
        track_titles = [names.track_title(rng) for _ in range(self.sizes[ItemKind.TRACK])]
        show_titles = [names.show_title(rng) for _ in range(self.sizes[ItemKind.PODCAST_SHOW])]
        episode_titles = [
            f"#{int(k) + 1}: {names.track_title(rng)}" for k in self.spoken["episode_number"]
        ]
        video_titles = [f"{track_titles[t]} (Official Video)" for t in self.spoken["video_track"]]
        book_titles = [names.book_title(rng) for _ in range(self.sizes[ItemKind.AUDIOBOOK])]
        authors = [names.person_name(rng) for _ in range(self.sizes[ItemKind.AUDIOBOOK])]
        titles = (
            track_titles
            + album_titles
            + artist_names
            + show_titles
            + episode_titles
            + video_titles
            + book_titles
            + [f.title for f in FEATURES]
        )
        return {"titles": titles, "authors": authors}
