"""Discovery Station and radio: an endless station, one page at a time, that hears the session.

A page is the ``k`` best tracks for the station's seed that the station has not served yet:

* **discovery**: music the user has never played, for their taste: the model's scores for the
  user with every item of their history masked and, by default, every track of an artist in
  the history too, so the station only brings artists new to the listener.
* **artist / track**: the model scores the seed (the artist's tracks, or the one track) as if
  it were a listener's history, i.e. "listeners of this also play"; the user's own taste is
  blended in at ``TASTE_WEIGHT`` and the seed's own tracks get a bonus.
* **genre / mood**: tracks of the genre, or tracks whose audio features are near the mood's
  target (:data:`MOODS`), ordered by popularity and the user's taste. The seed is a strong
  preference, not a hard filter, so the station keeps playing if the session rules out the
  seed itself.

Every station then follows the session, as :func:`segue.serving.session.rerank_for_session`
does (:class:`~segue.serving.session.SessionAdjuster`:
skipped artists and genres down, liked ones up) and two hard rules: a genre skipped
``GENRE_SKIP_LIMIT`` (3) times in the session, and an artist skipped ``ARTIST_SKIP_LIMIT`` (2)
times, are left out of the next page altogether. A page holds one track per artist (two of
the seed artist on artist radio), flow-ordered with the best track first. The top of the
ranking is found by partition, not by sorting the catalog: on 132k items a full sort costs
more than scoring.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from segue.dataset.catalog import AUDIO_FIELDS
from segue.errors import SegueError
from segue.models.base import Recommender
from segue.online.state import SessionState
from segue.products.catalog_view import ProductCatalog
from segue.products.ordering import flow_order
from segue.serving.session import SessionAdjuster, bounded_z_scores

SEED_KINDS = ("discovery", "artist", "track", "genre", "mood")
#: Session skips after which a genre / an artist is left out of the next page.
GENRE_SKIP_LIMIT = 3
ARTIST_SKIP_LIMIT = 2
#: Weight of the user's own taste next to the seed (seed weight 1), in bounded z units.
TASTE_WEIGHT = 0.5
#: Bonus for the artist's own tracks on artist radio, in bounded z units (scores are in ±3).
SEED_BONUS = 2.0
#: Genre radio: the genre's tracks rank above every other track (popularity + taste span at
#: most ±4.5) until the session bans the genre; then the station drifts to the user's taste.
GENRE_BONUS = 10.0
#: Mood radio: bonus per unit of mood fit (0..1): the mood leads, taste orders within it.
MOOD_WEIGHT = 6.0
#: Candidates looked at per page, as a multiple of k (room for the per-artist rule).
OVERFETCH = 8

#: Mood targets on audio features (tempo in BPM, the rest in [0, 1]).
MOODS: dict[str, dict[str, float]] = {
    "chill": {"energy": 0.3, "acousticness": 0.6, "tempo": 90.0},
    "energetic": {"energy": 0.85, "tempo": 130.0, "danceability": 0.7},
    "happy": {"valence": 0.8, "energy": 0.65},
    "melancholy": {"valence": 0.2, "energy": 0.35},
    "focus": {"instrumentalness": 0.7, "energy": 0.35, "valence": 0.45},
    "party": {"danceability": 0.8, "energy": 0.8},
}
#: How many BPM count as one unit of distance to a mood (the other features are in [0, 1]).
MOOD_TEMPO_SCALE = 100.0


@dataclass(frozen=True)
class StationSeed:
    """What a station plays from: ``discovery`` or ``artist|track|genre|mood`` with a value."""

    kind: str
    value: str | None = None
    #: the seed as a person named it ("Late Kingdom"), for messages; the value is the id
    label: str | None = field(default=None, compare=False)

    @classmethod
    def parse(cls, text: str) -> StationSeed:
        """``discovery``, ``artist:NAME``, ``track:TITLE``, ``genre:NAME`` or ``mood:NAME``.

        An artist or track value is a name or an id, as typed: the jobs resolve names
        (:mod:`segue.jobs.catalog`), this layer holds no name index. Quotes around a value
        (``artist:"Late Kingdom"`` arriving quoted through an API query) are dropped.
        """
        kind, _, value = text.strip().partition(":")
        kind, value = kind.strip().lower(), _unquote(value)
        if kind not in SEED_KINDS:
            raise SegueError(
                f"unknown station seed {text!r}: use discovery, artist:NAME, "
                "track:'TITLE — ARTIST', genre:NAME or mood:NAME (artists and tracks by id too)"
            )
        if kind == "discovery":
            if value:
                raise SegueError(f"the discovery station takes no value, got {text!r}")
            return cls("discovery")
        if not value:
            raise SegueError(f"station seed {kind!r} needs a value, e.g. {kind}:NAME")
        if kind == "mood" and value.lower() not in MOODS:
            raise SegueError(f"unknown mood {value!r}; moods: {', '.join(MOODS)}")
        return cls(kind, value.lower() if kind in ("mood", "genre") else value)

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value}"


def _unquote(value: str) -> str:
    """``"Late Kingdom"`` -> ``Late Kingdom``; a lone apostrophe ("'Til Tuesday") stays."""
    value = value.strip()
    while len(value) >= 2 and value[0] in "\"'“”‘’" and value[-1] in "\"'“”‘’":
        value = value[1:-1].strip()
    return value


@dataclass(frozen=True)
class StationPage:
    """Item columns of the next page in play order, with their session-adjusted scores."""

    items: np.ndarray
    scores: np.ndarray


def banned_by_session(pc: ProductCatalog, session: SessionState | None) -> np.ndarray:
    """Items of genres skipped GENRE_SKIP_LIMIT times or artists skipped ARTIST_SKIP_LIMIT
    times in the session (the hard rules above)."""
    banned = np.zeros(len(pc), dtype=bool)
    if session is None:
        return banned
    names = pc.catalog.genre_names
    for genre, skips in session.skips_by_genre.items():
        if skips >= GENRE_SKIP_LIMIT and genre in names:
            banned[pc.genre_members[names.index(genre)]] = True
    codes = [
        pc.artist_code[a]
        for a, skips in session.skips_by_artist.items()
        if skips >= ARTIST_SKIP_LIMIT and a in pc.artist_code
    ]
    if codes:
        banned |= np.isin(pc.catalog.artist, codes)
    return banned


def next_page(
    model: Recommender,
    pc: ProductCatalog,
    seed: StationSeed,
    history: sp.csr_matrix,
    session: SessionState | None,
    k: int,
    *,
    allowed: np.ndarray,
    served: np.ndarray | None = None,
    adjuster: SessionAdjuster | None = None,
    new_artists_only: bool = True,
    user_row: int | None = None,
) -> StationPage:
    """The station's next ``k`` tracks; see the module docstring.

    ``history``: the user's (1, n_items) history row (every non-focus play; it defines
    "never played"); ``allowed``: the caller's item mask (explicit content is off it for a
    kids profile); ``served``: item columns this station already played in the session;
    ``user_row``: the user's training row when ``history`` adds nothing to it, so the model
    scores the trained user (a dot product for ALS) instead of folding the history in.
    """
    if k < 1:
        raise SegueError(f"a station page needs k >= 1, got {k}")
    n = len(pc)
    adjuster = adjuster or SessionAdjuster(pc.catalog)
    blocked = ~(np.asarray(allowed, dtype=bool) & pc.is_track) | banned_by_session(pc, session)
    if served is not None and len(served):
        blocked[np.asarray(served, dtype=np.int64)] = True
    fetch = min(n, OVERFETCH * k)
    if seed.kind == "discovery":
        blocked[history.indices] = True  # never played: no track from the history
        if new_artists_only and history.nnz:
            known = np.unique(pc.catalog.artist[history.indices])
            blocked |= np.isin(pc.catalog.artist, known[known >= 0])
        raw = _score(model, history, pc, user_row)
    else:
        raw = _seed_scores(model, pc, seed, history, user_row)
    raw = np.asarray(raw, dtype=np.float64).copy()
    raw[blocked] = -np.inf
    adjusted = adjuster.adjust(raw, session)
    items = _top(adjusted, fetch)
    scores = adjusted[items]
    seed_artist = _seed_artist(pc, seed)
    chosen = _one_per_artist(pc, items, k, seed_artist)
    items, scores = items[chosen], scores[chosen]
    order = flow_order(pc.catalog.artist[items], scores, pc.tempo[items], pc.energy[items])
    return StationPage(items[order].astype(np.int64), scores[order])


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best finite scores, best first, ties by index: a partition, then
    a sort of those k only (a full sort of a large catalog costs more than the scoring)."""
    finite = np.flatnonzero(np.isfinite(scores))
    if len(finite) > k:
        values = scores[finite]
        cut = np.partition(values, len(values) - k)[len(values) - k]
        finite = finite[values >= cut]  # the k best and any ties at the cut
    order = np.lexsort((finite, -scores[finite]))[:k]
    return finite[order]


def _seed_artist(pc: ProductCatalog, seed: StationSeed) -> int:
    if seed.kind != "artist":
        return -1
    return pc.artist_code.get(str(seed.value), -1)


def _one_per_artist(pc: ProductCatalog, items: np.ndarray, k: int, seed_artist: int) -> list[int]:
    taken: dict[int, int] = {}
    chosen: list[int] = []
    for position, item in enumerate(items):
        artist = int(pc.catalog.artist[item])
        cap = 2 if artist == seed_artist and artist >= 0 else 1
        if artist >= 0:
            if taken.get(artist, 0) >= cap:
                continue
            taken[artist] = taken.get(artist, 0) + 1
        chosen.append(position)
        if len(chosen) == k:
            break
    return chosen


def _score(
    model: Recommender, row: sp.csr_matrix, pc: ProductCatalog, user_row: int | None = None
) -> np.ndarray:
    """The model's scores for a history row (or a trained user's row); popularity when the
    row is empty or the model cannot score histories."""
    if user_row is not None:
        return np.asarray(model.score(np.array([user_row])), dtype=np.float64).reshape(-1)
    factors = model._dot_factors()  # the protocol's own fast path for dot-product models
    if row.nnz and factors is not None:
        # a seed (or history) row as the weighted mean of its item vectors, scored like a
        # user: one pass over the item factors instead of a fold-in's least-squares solve
        items = factors[1]
        weights = row.data.astype(np.float64)
        vector = (weights[:, None] * items[row.indices]).sum(axis=0) / weights.sum()
        return np.asarray(items @ vector.astype(items.dtype), dtype=np.float64)
    if row.nnz:
        try:
            return np.asarray(model.score_history(row), dtype=np.float64).reshape(-1)
        except SegueError:
            pass
    return pc.popularity.astype(np.float64)


def _seed_scores(
    model: Recommender,
    pc: ProductCatalog,
    seed: StationSeed,
    history: sp.csr_matrix,
    user_row: int | None,
) -> np.ndarray:
    """Raw scores (n_items,) for a radio seed, before the session: seed + taste + bonus."""
    n = len(pc)
    catalog = pc.catalog
    taste = bounded_z_scores(_score(model, history, pc, user_row))
    bonus = np.zeros(n, dtype=np.float64)
    if seed.kind == "artist":
        code = _seed_artist(pc, seed)
        named = f"{seed.label} ({seed.value})" if seed.label else repr(seed.value)
        if code < 0:
            raise SegueError(f"unknown artist {named} for artist radio")
        own = np.flatnonzero((catalog.artist == code) & pc.is_track)
        if len(own) == 0:
            raise SegueError(
                f"artist {named} has no tracks in this catalog, so no artist radio (a catalog "
                "of artists, as Last.fm 2K's, has none; `segue similar` finds artists like it)"
            )
        weights = 1.0 + pc.popularity[own]
        seed_row = sp.csr_matrix((weights, (np.zeros(len(own)), own)), shape=(1, n))
        base = bounded_z_scores(_score(model, seed_row, pc))
        bonus[own] = SEED_BONUS
    elif seed.kind == "track":
        column = int(catalog.items.to_index([str(seed.value)], allow_unknown=True)[0])
        if column < 0:
            raise SegueError(f"unknown track {seed.value!r} for track radio")
        seed_row = sp.csr_matrix(([1.0], ([0], [column])), shape=(1, n))
        base = bounded_z_scores(_score(model, seed_row, pc))
        bonus[column] = 4 * SEED_BONUS  # above any other score: the seed opens its radio
    elif seed.kind == "genre":
        names = [g.lower() for g in catalog.genre_names]
        if seed.value not in names:
            raise SegueError(
                f"unknown genre {seed.value!r}; genres: {', '.join(catalog.genre_names[:20])}"
            )
        base = pc.popularity_z
        bonus[pc.genre_members[names.index(str(seed.value))]] = GENRE_BONUS
    else:  # mood
        fit = mood_fit(pc, str(seed.value))
        base = pc.popularity_z
        bonus = np.where(np.isfinite(fit), MOOD_WEIGHT * fit, -np.inf)
    return base + TASTE_WEIGHT * taste + bonus


def mood_fit(pc: ProductCatalog, mood: str) -> np.ndarray:
    """How well each item's audio fits a mood, in [0, 1] (1 = on target); NaN without audio."""
    cached = pc.cache.get(f"mood:{mood}")
    if cached is not None:
        return cached
    target = MOODS[mood]
    audio = pc.catalog.audio
    distance = np.zeros(len(pc), dtype=np.float64)
    for name, value in target.items():
        column = audio[:, AUDIO_FIELDS.index(name)].astype(np.float64)
        scale = MOOD_TEMPO_SCALE if name == "tempo" else 1.0
        distance += ((column - value) / scale) ** 2
    distance = np.sqrt(distance / len(target))
    fit = np.clip(1.0 - 2.0 * distance, 0.0, 1.0)
    pc.cache[f"mood:{mood}"] = fit
    return fit
