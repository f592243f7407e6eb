"""Cold start: lists for listeners the models have not met, and for tracks nobody has played.

New listeners. What we know decides the prior:
- onboarding picks (artists, tracks, genres) → the personal model scores the picks as a
  history, and items of the picked genres are lifted;
- only demographics → what listeners of the same segment play (age band × gender × country,
  backing off to coarser segments when fewer than ``min_segment_users`` listeners share it);
- nothing → a diverse popular set (one item per artist, genres taken in turn).
As plays arrive the personal model's score of the listener's own history takes over on a fixed
schedule, ``w = n / (n + half_life_events)`` with n the number of distinct items played; no
retraining is involved, because every personal model here can score a history row.

New items. Items without plays are invisible to collaborative filtering. ``NewItemPolicy``
reserves a bounded share of each list for them: first new releases of artists the listener
plays, then items whose content matches the listener's profile, and with probability
``exploration`` a slot goes to a random new item (reason ``exploration``). Once an item has
plays it is no longer "new" and competes in collaborative filtering like any other.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from segue.dataset.side import AGE_BANDS, GENDERS, SideInfo
from segue.errors import SegueError
from segue.models.base import Reason, Recommender, top_k
from segue.models.filters import Filters
from segue.ranking import standardise

#: Answers kept per recommender (segments, diverse lists), least recently used dropped first.
CACHE_ENTRIES = 4096


@dataclass(frozen=True)
class Onboarding:
    """What a new listener told us; every part is optional."""

    items: Sequence[int] = ()
    genres: Sequence[str] = ()
    age_band: str | None = None
    gender: str | None = None
    country: str | None = None


@dataclass
class ColdStartList:
    items: np.ndarray
    scores: np.ndarray
    reasons: list[Reason] = field(default_factory=list)
    personal_weight: float = 0.0


class ColdStartRecommender:
    """Lists for users outside the training matrix; see the module docstring for the rules."""

    def __init__(
        self,
        personal: Recommender,
        train: sp.csr_matrix,
        side: SideInfo,
        *,
        half_life_events: float = 5.0,
        min_segment_users: int = 20,
        genre_boost: float = 1.0,
    ) -> None:
        if half_life_events <= 0:
            raise SegueError("half_life_events must be positive")
        self.personal = personal
        self.train = train.tocsr()
        self.side = side
        self.half_life_events = half_life_events
        self.min_segment_users = min_segment_users
        self.genre_boost = genre_boost
        binary = (self.train > 0).astype(np.float32)
        self.listeners = np.asarray(binary.sum(axis=0)).ravel()
        self._binary = binary
        self._active = np.diff(self.train.indptr) > 0
        # Serving asks the same questions again and again (one segment's popular items, the
        # diverse popular list under the same rules); each costs passes over every user or
        # item, so answers are kept: segments sparsely (a segment plays a sliver of the
        # catalog), diverse lists by (k, allowed-mask digest).
        self._segment_cache: OrderedDict[tuple[int, ...], tuple[np.ndarray, np.ndarray, str]]
        self._segment_cache = OrderedDict()
        self._diverse_cache: OrderedDict[tuple[int, bytes], np.ndarray] = OrderedDict()
        self._prior_cache: OrderedDict[tuple, tuple[np.ndarray, np.ndarray, float]]
        self._prior_cache = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- the schedule --------------------------------------------------------------------
    def personal_weight(self, n_items_played: int) -> float:
        """Share of the personal model in the blend after n distinct items were played."""
        return n_items_played / (n_items_played + self.half_life_events)

    # -- priors --------------------------------------------------------------------------
    def segment_popularity(self, onboarding: Onboarding) -> tuple[np.ndarray, str]:
        """Item listener counts within the most specific segment with enough listeners."""
        table = self.side.users
        if table is None:
            return self.listeners, "popular"
        key = self._key(onboarding)
        with self._cache_lock:
            hit = self._segment_cache.get(key)
            if hit is not None:
                self._segment_cache.move_to_end(key)
        if hit is None:
            counts, reason = self._segment_counts(key)
            columns = np.flatnonzero(counts)
            hit = (columns, counts[columns].astype(np.float32), reason)
            with self._cache_lock:
                self._segment_cache[key] = hit
                while len(self._segment_cache) > CACHE_ENTRIES:
                    self._segment_cache.popitem(last=False)
        columns, values, reason = hit
        if reason == "popular":
            return self.listeners, reason
        counts = np.zeros(len(self.listeners), dtype=np.float32)
        counts[columns] = values
        return counts, reason

    def segment_prior(self, onboarding: Onboarding) -> tuple[np.ndarray, str]:
        """The standardised log listener counts of the user's segment (the demographic prior).

        Kept per segment as its value at items the segment never played (one number) plus
        the values at the items it did: a dense prior per segment would not fit in memory for
        hundreds of segments, and this skips the log and the standardisation per request.
        """
        counts, reason = self.segment_popularity(onboarding)
        key: tuple = ("popular",) if reason == "popular" else self._key(onboarding)
        with self._cache_lock:
            hit = self._prior_cache.get(key)
        if hit is None:
            prior = standardise(np.log1p(counts)[None, :].astype(np.float32))[0]
            columns = np.flatnonzero(counts)
            rest = float(prior[counts == 0][0]) if len(columns) < len(counts) else 0.0
            hit = (columns, prior[columns], rest)
            with self._cache_lock:
                self._prior_cache[key] = hit
                while len(self._prior_cache) > CACHE_ENTRIES:
                    self._prior_cache.popitem(last=False)
        columns, values, rest = hit
        prior = np.full(len(counts), rest, dtype=np.float32)
        prior[columns] = values
        return prior, reason

    def warm_segments(self) -> int:
        """Compute every segment present among the users now (serving calls this at load, so
        no listener waits for their segment); returns how many were computed."""
        table = self.side.users
        if table is None:
            return 0
        keys = {
            (int(a), int(g), int(c))
            for a, g, c in np.unique(
                np.stack([table.age_band, table.gender, table.country], axis=1), axis=0
            )
        }
        for age_band, gender, country in sorted(keys):
            self.segment_popularity(
                Onboarding(
                    age_band=AGE_BANDS[age_band] if age_band >= 0 else None,
                    gender=GENDERS[gender] if gender >= 0 else None,
                    country=table.countries[country] if country >= 0 else None,
                )
            )
        return len(keys)

    def _key(self, onboarding: Onboarding) -> tuple[int, int, int]:
        """The segment codes (age band, gender, country; -1 when unknown)."""
        table = self.side.users
        countries = table.countries if table is not None else ()
        return (
            _code(AGE_BANDS, onboarding.age_band, "age band"),
            _code(GENDERS, onboarding.gender, "gender"),
            countries.index(onboarding.country) if onboarding.country in countries else -1,
        )

    def _segment_counts(self, key: tuple[int, ...]) -> tuple[np.ndarray, str]:
        table = self.side.users
        assert table is not None
        codes = dict(zip(("age_band", "gender", "country"), key, strict=True))
        columns = {"age_band": table.age_band, "gender": table.gender, "country": table.country}
        for keys in (
            ("age_band", "gender", "country"),
            ("age_band", "country"),
            ("country",),
            ("age_band", "gender"),
            ("age_band",),
        ):
            if any(codes[key] < 0 for key in keys):
                continue
            members = np.ones(len(table.age_band), dtype=bool)
            for key in keys:
                members &= columns[key] == codes[key]
            members = members[: self._binary.shape[0]]
            members &= self._active
            if members.sum() >= self.min_segment_users:
                counts = np.asarray(self._binary[members].sum(axis=0)).ravel()
                return counts, "listeners_like_you"
        return self.listeners, "popular"

    def diverse_popular(self, k: int, filters: Filters | None = None) -> np.ndarray:
        """Popular items, one per artist, genres taken in turn (by their own popularity)."""
        mask = b"" if filters is None else hashlib.blake2b(filters.allowed.tobytes()).digest()
        key = (k, mask)
        with self._cache_lock:
            hit = self._diverse_cache.get(key)
            if hit is not None:
                self._diverse_cache.move_to_end(key)
                return hit.copy()
        picked = self._diverse_popular(k, filters)
        with self._cache_lock:
            self._diverse_cache[key] = picked
            while len(self._diverse_cache) > CACHE_ENTRIES:
                self._diverse_cache.popitem(last=False)
        return picked.copy()

    def _diverse_popular(self, k: int, filters: Filters | None) -> np.ndarray:
        order = np.argsort(-self.listeners, kind="stable")
        order = order[self.listeners[order] > 0]
        if filters is not None:
            order = order[filters.allowed[order]]
        catalog = self.side.catalog
        if catalog is None:
            return order[:k]
        genre_of = np.full(len(self.listeners), -1, dtype=np.int64)
        g = catalog.genres.tocsr()
        has = np.diff(g.indptr) > 0
        genre_of[has] = g.indices[g.indptr[:-1][has]]  # first listed genre
        queues: dict[int, list[int]] = {}
        seen_artists: set[int] = set()
        for item in order:
            artist = int(catalog.artist[item])
            if artist >= 0 and artist in seen_artists:
                continue
            if artist >= 0:
                seen_artists.add(artist)
            queues.setdefault(int(genre_of[item]), []).append(int(item))
        picked: list[int] = []
        while len(picked) < k and any(queues.values()):
            for genre in list(queues):
                if queues[genre] and len(picked) < k:
                    picked.append(queues[genre].pop(0))
        return np.array(picked, dtype=np.int64)

    # -- recommending --------------------------------------------------------------------
    def recommend(
        self,
        onboarding: Onboarding,
        history: sp.csr_matrix | None = None,
        k: int = 10,
        filters: Filters | None = None,
    ) -> ColdStartList:
        """Top-k for one new listener given onboarding answers and plays so far (1 × items)."""
        n_items = self.train.shape[1]
        history = sp.csr_matrix((1, n_items), dtype=np.float32) if history is None else history
        history = history.tocsr()
        n_played = int(history.nnz)
        picks = np.array([int(i) for i in onboarding.items], dtype=np.int64)
        if len(picks) and (picks.min() < 0 or picks.max() >= n_items):
            raise SegueError(f"onboarding items must be item columns in 0..{n_items - 1}")

        if len(picks) or onboarding.genres:
            prior = np.zeros(n_items, dtype=np.float32)
            if len(picks):
                row = sp.csr_matrix(
                    (np.ones(len(picks), np.float32), (np.zeros(len(picks)), picks)),
                    shape=(1, n_items),
                )
                prior = standardise(self.personal.score_history(row))[0]
            if onboarding.genres:
                prior = prior + self.genre_boost * self._genre_lift(onboarding.genres)
            prior_reason = "matches_your_picks"
        elif onboarding.age_band or onboarding.gender or onboarding.country:
            prior, prior_reason = self.segment_prior(onboarding)
        else:
            prior_reason = "popular"
            prior = None

        weight = self.personal_weight(n_played)
        if prior is None and n_played == 0:
            items = self.diverse_popular(k, filters)
            return ColdStartList(
                items=items,
                scores=self.listeners[items].astype(np.float32),
                reasons=[Reason("popular", value=float(self.listeners[i])) for i in items],
                personal_weight=0.0,
            )
        if prior is None:
            prior = standardise(np.log1p(self.listeners)[None, :].astype(np.float32))[0]
        blend = (1 - weight) * prior
        if n_played:
            blend = blend + weight * standardise(self.personal.score_history(history))[0]
        blend = blend.astype(np.float32)
        blend[history.indices] = -np.inf
        if len(picks):
            blend[picks] = -np.inf
        if filters is not None:
            blend[~filters.allowed] = -np.inf
        items, scores = top_k(blend[None, :], min(k, n_items))
        keep = np.isfinite(scores[0])
        items, scores = items[0][keep], scores[0][keep]
        code = "because_you_played" if weight >= 0.5 else prior_reason
        return ColdStartList(items, scores, [Reason(code) for _ in items], weight)

    def _genre_lift(self, genres: Sequence[str]) -> np.ndarray:
        catalog = self.side.catalog
        if catalog is None:
            raise SegueError("genre picks need the item catalog (side.catalog)")
        masks = {g: catalog.genre_members(g) for g in genres}
        unknown = [g for g, mask in masks.items() if mask is None]
        if unknown:
            known = catalog.known_genres(20)
            if not known:
                raise SegueError(
                    f"unknown genre(s) {unknown}: this catalog has neither genres nor tags; "
                    "give onboarding picks (--pick) instead"
                )
            raise SegueError(
                f"unknown genre(s) {unknown}; known genres include: {', '.join(known)}"
            )
        in_genre = np.logical_or.reduce([m for m in masks.values() if m is not None])
        # within the picked genres, popular items first; outside, nothing
        lift = np.where(
            in_genre, 1.0 + np.log1p(self.listeners) / np.log1p(self.listeners.max() or 1), 0.0
        )
        return lift.astype(np.float32)


def _code(values: tuple[str, ...], value: str | None, what: str) -> int:
    if value is None:
        return -1
    if value not in values:
        raise SegueError(f"unknown {what} {value!r}; expected one of {', '.join(values)}")
    return values.index(value)


@dataclass
class NewItemPolicy:
    """Reserve up to ``max_share`` of a list for items without plays (see module docstring).

    New items are those without plays, of a kind that has plays (a new track, not an artist
    page). ``content`` must score histories (``score_history``) over all items, new ones
    included; ``min_content_score`` keeps weak content matches out.
    """

    train: sp.csr_matrix
    side: SideInfo
    content: Recommender | None = None
    max_share: float = 0.2
    exploration: float = 0.05
    min_content_score: float = 0.3
    seed: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.max_share <= 1 or not 0 <= self.exploration <= 1:
            raise SegueError("max_share and exploration must lie in [0, 1]")
        self._rng = np.random.default_rng(self.seed)
        plays = np.diff(self.train.tocsc().indptr)
        new = plays == 0
        catalog = self.side.catalog
        if catalog is not None:
            # only kinds that people actually play here: a new track, not a bare artist page
            new &= np.isin(catalog.kind, np.unique(catalog.kind[plays > 0]))
        self.new_items = np.flatnonzero(new)

    def blend(
        self,
        history: sp.csr_matrix,
        ranked: np.ndarray,
        reasons: list[Reason],
        k: int,
        filters: Filters | None = None,
    ) -> tuple[np.ndarray, list[Reason]]:
        """Mix new items into one user's ranked list (best first), keeping its length k."""
        slots = int(np.floor(self.max_share * k))
        ranked = [int(i) for i in ranked if i >= 0]
        reasons = list(reasons)
        candidates = self.new_items
        if filters is not None:
            candidates = candidates[filters.allowed[candidates]]
        candidates = np.setdiff1d(candidates, history.indices)
        chosen: list[tuple[int, Reason]] = []
        if slots and len(candidates):
            chosen = self._choose(history, candidates, slots)
        base = [
            (i, r) for i, r in zip(ranked, reasons, strict=False) if i not in {c for c, _ in chosen}
        ]
        spacing = max(1, k // max(len(chosen), 1))
        queue = list(chosen)
        cap = filters.max_per_artist if filters is not None else None
        artist = filters.artist if filters is not None else None
        per_artist: dict[int, int] = {}

        def fits(item: int) -> bool:
            if cap is None or artist is None or artist[item] < 0:
                return True
            return per_artist.get(int(artist[item]), 0) < cap

        def take(source: list[tuple[int, Reason]]) -> tuple[int, Reason] | None:
            while source:
                entry = source.pop(0)
                if fits(entry[0]):
                    if cap is not None and artist is not None and artist[entry[0]] >= 0:
                        a = int(artist[entry[0]])
                        per_artist[a] = per_artist.get(a, 0) + 1
                    return entry
            return None

        out: list[tuple[int, Reason]] = []
        position = 0
        while len(out) < k and (queue or base):
            due = queue and position % spacing == spacing - 1
            entry = take(queue) if due or not base else take(base)
            if entry is None and due:
                entry = take(base)
            if entry is not None:
                out.append(entry)
            position += 1
        return np.array([i for i, _ in out], dtype=np.int64), [r for _, r in out]

    def _choose(
        self, history: sp.csr_matrix, candidates: np.ndarray, slots: int
    ) -> list[tuple[int, Reason]]:
        chosen: list[tuple[int, Reason]] = []
        catalog = self.side.catalog
        if catalog is not None and history.nnz:
            played_artists = set(catalog.artist[history.indices].tolist()) - {-1}
            by_artist = [c for c in candidates if catalog.artist[c] in played_artists]
            newest = sorted(by_artist, key=lambda c: int(catalog.release_ms[c]), reverse=True)
            for item in newest[:slots]:
                artist = catalog.artist_ids[int(catalog.artist[item])]
                chosen.append((int(item), Reason("new_from_artist", label=artist)))
        if self.content is not None and history.nnz and len(chosen) < slots:
            scores = self.content.score_history(history)[0]
            taken = {c for c, _ in chosen}
            order = candidates[np.argsort(-scores[candidates], kind="stable")]
            for item in order:
                if len(chosen) >= slots or scores[item] < self.min_content_score:
                    break
                if int(item) not in taken:
                    chosen.append(
                        (int(item), Reason("matches_your_taste", value=float(scores[item])))
                    )
        if self._rng.random() < self.exploration and len(chosen) < slots + 1:
            taken = {c for c, _ in chosen}
            pool = [int(c) for c in candidates if int(c) not in taken]
            if pool:
                pick = int(self._rng.choice(pool))
                if len(chosen) >= slots and chosen:
                    chosen[-1] = (pick, Reason("exploration"))
                else:
                    chosen.append((pick, Reason("exploration")))
        return chosen[:slots]
