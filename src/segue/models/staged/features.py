"""Features of (listener, candidate) pairs for the ranker.

Four groups, named in :func:`feature_names` order:

* **generators** — each generator's score, the score standardised over the listener's
  candidates (comparable across listeners), its rank in the generator's top N (N when it did
  not retrieve the item); how many generators retrieved it, the best rank, reciprocal-rank sum.
* **listener** — activity (items, log total plays), mainstreamness (mean log popularity of
  their items), artist diversity, number of friends.
* **item** — popularity (listeners, log plays), its artist's listeners, number of tags,
  age in days since release (NaN unknown), audio features (NaN unknown; only when the catalog
  has any).
* **pair** — artist affinity (the listener's share of items by the candidate's artist), genre
  share (how much of the listener's items share each of the candidate's genres), tag cosine
  (TF-IDF tag profile of the listener vs the candidate: content similarity to their plays),
  friends who played it and their share of the listener's friends.
* **recency** (where the pairs' times are known, NaN elsewhere) — the artist and genre shares
  again with each played item weighted by how recent it is in the listener's own time line
  (``0.5 ** (days before their newest play / half-life)``): tastes drift, and what a listener
  played lately says more about what comes next; and the item's listeners weighted by how
  recently they played it (trending).
* **context** (where the request's daypart and the listeners' time zones are known, NaN
  elsewhere; :mod:`segue.data.dayparts`) — how much more the candidate's genres and the
  candidate itself are played in the request's daypart than at other times (log lift over
  the daypart's share of all plays, the item's shrunk towards no lift), the listener's share
  of their plays in that daypart, their genre share again over those plays only (shrunk
  towards all of them), and their genre share with each genre moved by its lift in the
  daypart (share × exp(lift), renormalised over their genres): what suits the morning is
  not what suits the night, for everyone and for each listener.

Everything is computed from the matrix the generators were fitted on and from the side
information captured at fit (:class:`FeatureContext`, saved with the model), so training
(inner split) and serving (full training matrix) compute the same quantities.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp

from segue.data.dayparts import DAYPARTS, UNKNOWN
from segue.dataset.catalog import NO_RELEASE
from segue.dataset.side import SideInfo
from segue.errors import SegueError
from segue.models.base import sparse_from_state, sparse_state
from segue.models.staged.retrieval import Candidates

_MS_PER_DAY = 86_400_000
#: Half-life (days) of a listener's play in the item's "trending" count.
TRENDING_HALF_LIFE_DAYS = 14.0
_SPARSE = ("tags", "genres", "artists", "friends")
_DENSE = ("item_listeners", "item_plays", "artist_listeners", "n_tags", "age_days", "item_recent")
#: Pseudo-plays, spread as all plays are over the dayparts, that shrink an item's lift.
ITEM_DAYPART_PRIOR = 10.0
#: Pseudo-plays that shrink a listener's genre share within a daypart towards their overall.
USER_DAYPART_PRIOR = 2.0


@dataclass
class FeatureContext:
    """Item-side arrays and the friend graph, aligned with the matrix columns and rows."""

    item_listeners: np.ndarray
    item_plays: np.ndarray
    artist_listeners: np.ndarray
    n_tags: np.ndarray
    age_days: np.ndarray
    audio: np.ndarray
    tags: sp.csr_matrix  # item × tag, TF-IDF rows of unit length
    genres: sp.csr_matrix  # item × genre, 0/1
    artists: sp.csr_matrix  # item × artist, one-hot (no row for items without an artist)
    friends: sp.csr_matrix  # user × user, 0/1
    item_recent: np.ndarray  # listeners weighted by how recently they played; NaN: no times
    #: log lift of each genre and each item per daypart, (n, len(DAYPARTS)); (n, 0) where
    #: the pairs' dayparts are not known
    genre_daypart: np.ndarray | None = None
    item_daypart: np.ndarray | None = None

    @functools.cached_property
    def artist_of(self) -> np.ndarray:
        """Each item's artist column in :attr:`artists`, -1 without one (read per pair)."""
        out = np.full(self.artists.shape[0], -1, dtype=np.int64)
        coo = self.artists.tocoo()
        out[coo.row] = coo.col
        return out

    @classmethod
    def build(
        cls,
        raw: sp.csr_matrix,
        side: SideInfo | None,
        times: np.ndarray | None = None,
        dayparts: np.ndarray | None = None,
    ) -> FeatureContext:
        """``times``: each stored pair's time in days (``raw``'s order), when known;
        ``dayparts``: each stored pair's local daypart (-1 unknown), when known."""
        n_users, n_items = raw.shape
        played = (raw != 0).astype(np.float32).tocsr()
        listeners = np.asarray(played.sum(axis=0)).ravel()
        plays = np.asarray(raw.sum(axis=0)).ravel()
        catalog = None if side is None else side.catalog
        if catalog is not None and len(catalog) == n_items:
            tags = sp.hstack([catalog.tags, catalog.genres]).tocsr().astype(np.float32)
            tags.data[:] = 1.0
            genres = catalog.genre_matrix()
            has = catalog.artist >= 0
            artists = sp.csr_matrix(
                (np.ones(has.sum(), np.float32), (np.flatnonzero(has), catalog.artist[has])),
                shape=(n_items, max(len(catalog.artist_ids), 1)),
            )
            released = catalog.release_ms != NO_RELEASE
            newest = catalog.release_ms[released].max() if released.any() else 0
            age = np.where(released, (newest - catalog.release_ms) / _MS_PER_DAY, np.nan)
            audio = catalog.audio if np.isfinite(catalog.audio).any() else np.zeros((n_items, 0))
        else:
            tags = sp.csr_matrix((n_items, 1), dtype=np.float32)
            genres = sp.csr_matrix((n_items, 1), dtype=np.float32)
            artists = sp.csr_matrix((n_items, 1), dtype=np.float32)
            age = np.full(n_items, np.nan)
            audio = np.zeros((n_items, 0))
        n_tags = np.diff(tags.indptr).astype(np.float32)
        df = np.asarray(tags.sum(axis=0)).ravel()
        idf = np.log((1 + n_items) / (1 + df)) + 1
        tfidf = (tags @ sp.diags(idf.astype(np.float32))).tocsr()
        norms = np.sqrt(np.asarray(tfidf.multiply(tfidf).sum(axis=1)).ravel())
        tfidf = (sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ tfidf).tocsr()
        artist_listeners = np.asarray(artists.T @ listeners).ravel()
        per_item_artist = np.asarray(artists @ artist_listeners).ravel()
        friends = None if side is None else side.friends
        if friends is None or friends.shape != (n_users, n_users):
            friends = sp.csr_matrix((n_users, n_users), dtype=np.float32)
        if times is None:
            item_recent = np.full(n_items, np.nan, dtype=np.float32)
        else:
            since = (times.max() - times) if len(times) else times
            weight = np.exp2(-since / TRENDING_HALF_LIFE_DAYS)
            item_recent = np.bincount(raw.indices, weight, minlength=n_items).astype(np.float32)
        genre_daypart, item_daypart = daypart_lifts(raw, genres, dayparts)
        return cls(
            genre_daypart=genre_daypart,
            item_daypart=item_daypart,
            item_recent=item_recent,
            item_listeners=listeners.astype(np.float32),
            item_plays=plays.astype(np.float32),
            artist_listeners=per_item_artist.astype(np.float32),
            n_tags=n_tags,
            age_days=age.astype(np.float32),
            audio=np.asarray(audio, dtype=np.float32),
            tags=tfidf.astype(np.float32),
            genres=genres,
            artists=artists.tocsr(),
            friends=(sp.csr_matrix(friends) != 0).astype(np.float32).tocsr(),
        )

    def state(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for key in _DENSE:
            out[f"ctx_{key}"] = getattr(self, key)
        out["ctx_audio"] = self.audio
        out["ctx_genre_daypart"] = self.daypart_arrays[0]
        out["ctx_item_daypart"] = self.daypart_arrays[1]
        for key in _SPARSE:
            out.update(sparse_state(getattr(self, key), f"ctx_{key}_"))
        return out

    @property
    def daypart_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(genre, item) daypart lifts, with zero columns where they are not known."""
        g = self.genre_daypart
        i = self.item_daypart
        if g is None or i is None:
            return np.zeros((self.genres.shape[1], 0), np.float32), np.zeros(
                (len(self.n_tags), 0), np.float32
            )
        return g, i

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> FeatureContext:
        if "ctx_item_recent" not in state:  # saved before the recency features: no times
            n_items = len(state["ctx_item_listeners"])
            state = {**state, "ctx_item_recent": np.full(n_items, np.nan, np.float32)}
        values = {key: state[f"ctx_{key}"] for key in (*_DENSE, "audio")}
        for key in ("genre_daypart", "item_daypart"):  # absent: saved before, unknown
            values[key] = state.get(f"ctx_{key}")
        values.update({key: sparse_from_state(state, f"ctx_{key}_") for key in _SPARSE})
        return cls(**values)


def feature_names(generators: Sequence[str], n_audio: int) -> list[str]:
    names = [f"{g}_{kind}" for g in generators for kind in ("score", "z", "zall", "rank")]
    names += ["n_generators", "best_rank", "rrf"]
    names += ["user_items", "user_plays", "user_mainstream", "user_artist_diversity",
              "user_friends"]  # fmt: skip
    names += ["item_listeners", "item_plays", "artist_listeners", "item_tags", "item_age_days"]
    names += [f"audio_{j}" for j in range(n_audio)]
    names += ["artist_affinity", "genre_share", "tag_cosine", "friends_played",
              "friends_share"]  # fmt: skip
    names += ["recent_artist_share", "recent_genre_share", "item_recent_listeners"]
    names += ["daypart_genre_lift", "item_daypart_lift", "user_daypart_share",
              "user_daypart_genre_share", "daypart_genre_share"]  # fmt: skip
    return names


def daypart_lifts(
    raw: sp.csr_matrix, genres: sp.csr_matrix, dayparts: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(genre × daypart, item × daypart) log lifts: log(share of the genre's or the item's
    plays in the daypart / the daypart's share of all plays), each stored pair counted once
    at its daypart; an item's counts are shrunk by :data:`ITEM_DAYPART_PRIOR` pseudo-plays
    spread as all plays are, so that a rarely played item has no lift. Zero columns where
    the dayparts are not known."""
    n_items, n_genres = raw.shape[1], genres.shape[1]
    if dayparts is None or not (np.asarray(dayparts) >= 0).any():
        return np.zeros((n_genres, 0), np.float32), np.zeros((n_items, 0), np.float32)
    k = len(DAYPARTS)
    dayparts = np.asarray(dayparts, dtype=np.int64)
    known = dayparts >= 0
    cells = raw.indices[known].astype(np.int64) * k + dayparts[known]
    by_item = np.bincount(cells, minlength=n_items * k).reshape(n_items, k).astype(np.float64)
    share = (by_item.sum(axis=0) + 1.0) / (by_item.sum() + k)
    by_genre = np.asarray(genres.T @ by_item)
    genre_lift = np.log((by_genre + share) / (by_genre.sum(axis=1, keepdims=True) + 1.0))
    shrunk = by_item + ITEM_DAYPART_PRIOR * share
    item_lift = np.log(shrunk / shrunk.sum(axis=1, keepdims=True))
    return (genre_lift - np.log(share)).astype(np.float32), (
        item_lift - np.log(share)
    ).astype(np.float32)


def listener_recency(times: sp.csr_matrix, half_life_days: float) -> np.ndarray:
    """Each stored pair's weight ``0.5 ** (days before the listener's newest pair /
    half_life_days)``, in the matrix's order: recency in the listener's own time line, so
    that a listener who paused for a month weighs their last plays as fully as one who
    played yesterday."""
    times = times.tocsr()
    counts = np.diff(times.indptr)
    if times.nnz == 0:
        return np.zeros(0, dtype=np.float32)
    starts = times.indptr[:-1][counts > 0]
    newest = np.repeat(np.maximum.reduceat(times.data, starts), counts[counts > 0])
    return np.exp2(-(newest - times.data) / half_life_days).astype(np.float32)


def pair_features(
    ctx: FeatureContext,
    cands: Candidates,
    history: sp.csr_matrix,
    friend_rows: sp.csr_matrix | None,
    played_matrix: sp.csr_matrix,
    recency: np.ndarray | None = None,
    request_dayparts: np.ndarray | None = None,
    entry_dayparts: np.ndarray | None = None,
) -> np.ndarray:
    """(pairs, features) float32, columns as :func:`feature_names`.

    ``history``: the block's raw rows; ``friend_rows``: the block's rows of the friend graph
    (None for listeners outside it); ``played_matrix``: every training listener's 0/1 row;
    ``recency``: each of ``history``'s stored entries' :func:`listener_recency` (None: the
    times are not known, and the recency features are NaN); ``request_dayparts``: each block
    row's request daypart and ``entry_dayparts`` each stored history entry's (-1 unknown;
    None: all unknown, and the context features are NaN).

    One compiled pass per listener (:func:`_fill`): as ~60 NumPy and SciPy calls over a
    served request's one listener and ~150 candidates, the features cost ~0.8 ms of a
    ~3 ms request on the 1M world, almost all of it per-call overhead.
    """
    rows = np.asarray(cands.rows, dtype=np.int64)
    n_rows = history.shape[0]
    if len(rows) and (np.any(np.diff(rows) < 0) or rows[-1] >= n_rows or rows[0] < 0):
        raise SegueError("pair_features: candidate rows must be sorted block rows")
    n_generators = cands.scores.shape[1]
    n_audio = ctx.audio.shape[1]
    width = len(feature_names([""] * n_generators, n_audio))
    out = np.empty((len(rows), width), dtype=np.float32)
    if friend_rows is None:  # no friends in the model: every row empty
        friends = (np.zeros(n_rows + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    else:
        friends = _csr_arrays(friend_rows)
    starts = np.searchsorted(rows, np.arange(n_rows + 1)).astype(np.int64)
    history = history.tocsr()
    if recency is not None and len(recency) != history.nnz:
        raise SegueError("pair_features: one recency weight per stored history entry")
    requested = np.full(n_rows, UNKNOWN, np.int64)
    if request_dayparts is not None:
        requested = np.asarray(request_dayparts, dtype=np.int64).reshape(-1)
        if len(requested) != n_rows:
            raise SegueError("pair_features: one request daypart per history row")
    entries = np.full(history.nnz, UNKNOWN, np.int64)
    if entry_dayparts is not None:
        entries = np.asarray(entry_dayparts, dtype=np.int64).reshape(-1)
        if len(entries) != history.nnz:
            raise SegueError("pair_features: one daypart per stored history entry")
    genre_daypart, item_daypart = ctx.daypart_arrays
    _fill(
        out,
        starts,
        np.asarray(cands.items, dtype=np.int64),
        np.asarray(cands.scores, dtype=np.float32),
        np.asarray(cands.zall, dtype=np.float32),
        np.asarray(cands.ranks, dtype=np.float32),
        float(cands.n),
        *_csr_arrays(history),
        *friends,
        *_csr_arrays(played_matrix),
        ctx.item_listeners,
        ctx.item_plays,
        ctx.artist_listeners,
        ctx.n_tags,
        ctx.age_days,
        ctx.audio,
        ctx.artist_of,
        ctx.artists.shape[1],
        *_csr_arrays(ctx.genres),
        ctx.genres.shape[1],
        *_csr_arrays(ctx.tags),
        ctx.tags.shape[1],
        np.zeros(history.nnz, np.float32) if recency is None else recency.astype(np.float32),
        recency is not None,
        ctx.item_recent,
        requested,
        entries,
        genre_daypart,
        item_daypart,
        USER_DAYPART_PRIOR,
    )
    return out


def _csr_arrays(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A CSR matrix's index pointer, indices and values, as they are: converting the
    training matrix's (10M entries on the 1M world) would cost more than the features."""
    matrix = matrix.tocsr()
    return matrix.indptr, matrix.indices, matrix.data


@numba.njit(cache=True, nogil=True)
def _fill(
    out, starts, items, scores, zall, ranks, n,
    h_ptr, h_idx, h_val, f_ptr, f_idx, f_val, p_ptr, p_idx, p_val,
    item_listeners, item_plays, artist_listeners, n_tags, age_days, audio, artist_of, n_artists,
    g_ptr, g_idx, g_val, n_genres, t_ptr, t_idx, t_val, n_tag_columns,
    recency, has_recency, item_recent,
    requested, entry_daypart, genre_daypart, item_daypart, user_prior,
):  # fmt: skip
    """Every pair's features, one listener (block row) at a time; see :func:`feature_names`."""
    n_rows = len(starts) - 1
    n_gen = scores.shape[1]
    n_audio = audio.shape[1]
    by_artist = np.zeros(n_artists)
    recent_by_artist = np.zeros(n_artists)
    genre_profile = np.zeros(n_genres)
    recent_genre_profile = np.zeros(n_genres)
    daypart_genre_profile = np.zeros(n_genres)
    has_context = item_daypart.shape[1] > 0
    tag_profile = np.zeros(n_tag_columns)
    counted = np.zeros(n_tag_columns, np.int64)  # r + 1 once tag t is in row r's norm
    for r in range(n_rows):
        lo, hi = starts[r], starts[r + 1]
        if lo == hi:
            continue
        # generators: the score, standardised over the listener's candidates, and ranks
        for g in range(n_gen):
            count, total, squares = 0.0, 0.0, 0.0
            for j in range(lo, hi):
                s = np.float64(scores[j, g])
                if np.isfinite(s):
                    count += 1.0
                    total += s
                    squares += s * s
            mean = total / max(count, 1.0)
            std = np.sqrt(max(squares / max(count, 1.0) - mean * mean, 0.0))
            if std == 0:
                std = 1.0
            for j in range(lo, hi):
                s = scores[j, g]
                out[j, 4 * g] = s
                out[j, 4 * g + 1] = (s - mean) / std if np.isfinite(s) else np.nan
                out[j, 4 * g + 2] = zall[j, g]
                out[j, 4 * g + 3] = ranks[j, g]
        c = 4 * n_gen
        for j in range(lo, hi):
            retrieved, best, rrf = 0.0, np.inf, np.float32(0.0)
            for g in range(n_gen):
                rank = np.float32(ranks[j, g])
                best = min(best, rank)
                if rank < n:
                    retrieved += 1.0
                    rrf += np.float32(1.0) / (np.float32(10.0) + rank)
            out[j, c], out[j, c + 1], out[j, c + 2] = retrieved, best, rrf
        # the listener: their played items (stored non-zeros), and profiles over them
        # sums in float32, as the matrix products they replaced (the ranker's early stopping
        # on a small validation part turned on the last bit)
        n_played, n_distinct, recent_total, n_daypart = 0.0, 0.0, 0.0, 0.0
        d = requested[r] if has_context else -1
        plays, mainstream = np.float32(0.0), np.float32(0.0)
        for e in range(h_ptr[r], h_ptr[r + 1]):
            plays += np.float32(h_val[e])
            if h_val[e] == 0:
                continue
            i = h_idx[e]
            n_played += 1.0
            recent_total += recency[e]
            mainstream += np.log1p(np.float32(item_listeners[i]))
            a = artist_of[i]
            if a >= 0:
                if by_artist[a] == 0:
                    n_distinct += 1.0
                by_artist[a] += 1.0
                recent_by_artist[a] += recency[e]
            in_daypart = d >= 0 and entry_daypart[e] == d
            if in_daypart:
                n_daypart += 1.0
            for x in range(g_ptr[i], g_ptr[i + 1]):
                genre_profile[g_idx[x]] += g_val[x]
                recent_genre_profile[g_idx[x]] += recency[e] * g_val[x]
                if in_daypart:
                    daypart_genre_profile[g_idx[x]] += g_val[x]
            for x in range(t_ptr[i], t_ptr[i + 1]):
                tag_profile[t_idx[x]] += t_val[x]
        safe_n = max(n_played, 1.0)
        norm = 0.0
        for e in range(h_ptr[r], h_ptr[r + 1]):  # each tag once: the profile's norm
            if h_val[e] == 0:
                continue
            i = h_idx[e]
            for x in range(t_ptr[i], t_ptr[i + 1]):
                t = t_idx[x]
                if counted[t] != r + 1:
                    counted[t] = r + 1
                    norm += tag_profile[t] * tag_profile[t]
        norm = np.sqrt(norm)
        # the listener's genre mix moved to the request's daypart: each genre's share times
        # exp(its lift there), renormalised over the genres they play
        tilted = 0.0
        if d >= 0:
            for e in range(h_ptr[r], h_ptr[r + 1]):
                if h_val[e] == 0:
                    continue
                i = h_idx[e]
                for x in range(g_ptr[i], g_ptr[i + 1]):
                    tilted += g_val[x] * np.exp(genre_daypart[g_idx[x], d])
        n_friends = 0.0
        for e in range(f_ptr[r], f_ptr[r + 1]):
            n_friends += f_val[e]
        c += 3
        # what the listener's friends played, sorted by item, for the candidates' counts
        size = 0
        for e in range(f_ptr[r], f_ptr[r + 1]):
            f = f_idx[e]
            size += p_ptr[f + 1] - p_ptr[f]
        friend_items = np.empty(size, np.int64)
        friend_weights = np.empty(size)
        at = 0
        for e in range(f_ptr[r], f_ptr[r + 1]):
            f = f_idx[e]
            for x in range(p_ptr[f], p_ptr[f + 1]):
                friend_items[at] = p_idx[x]
                friend_weights[at] = f_val[e] * p_val[x]
                at += 1
        order = np.argsort(friend_items)
        friend_items = friend_items[order]
        cumulative = np.zeros(size + 1)
        for x in range(size):
            cumulative[x + 1] = cumulative[x] + friend_weights[order[x]]
        for j in range(lo, hi):
            i = items[j]
            out[j, c] = n_played
            out[j, c + 1] = np.log1p(plays)
            out[j, c + 2] = mainstream / np.float32(safe_n)
            out[j, c + 3] = n_distinct / safe_n
            out[j, c + 4] = n_friends
            out[j, c + 5] = np.log1p(item_listeners[i])
            out[j, c + 6] = np.log1p(item_plays[i])
            out[j, c + 7] = np.log1p(artist_listeners[i])
            out[j, c + 8] = n_tags[i]
            out[j, c + 9] = age_days[i]
            for k in range(n_audio):
                out[j, c + 10 + k] = audio[i, k]
            p = c + 10 + n_audio
            a = artist_of[i]
            out[j, p] = by_artist[a] / safe_n if a >= 0 else 0.0
            share = 0.0
            for x in range(g_ptr[i], g_ptr[i + 1]):
                share += g_val[x] * genre_profile[g_idx[x]]
            out[j, p + 1] = share / safe_n
            cosine = 0.0
            for x in range(t_ptr[i], t_ptr[i + 1]):
                cosine += t_val[x] * tag_profile[t_idx[x]]
            out[j, p + 2] = cosine / norm if norm > 0 else cosine
            first = np.searchsorted(friend_items, i)
            last = np.searchsorted(friend_items, i, side="right")
            played_by = cumulative[last] - cumulative[first]
            out[j, p + 3] = played_by
            out[j, p + 4] = played_by / max(n_friends, 1.0)
            if has_recency and recent_total > 0:
                out[j, p + 5] = recent_by_artist[a] / recent_total if a >= 0 else 0.0
                recent_share = 0.0
                for x in range(g_ptr[i], g_ptr[i + 1]):
                    recent_share += g_val[x] * recent_genre_profile[g_idx[x]]
                out[j, p + 6] = recent_share / recent_total
            else:
                out[j, p + 5] = np.nan
                out[j, p + 6] = np.nan
            out[j, p + 7] = np.log1p(item_recent[i])
            if d >= 0:
                lift, weight, in_part = 0.0, 0.0, 0.0
                for x in range(g_ptr[i], g_ptr[i + 1]):
                    lift += g_val[x] * genre_daypart[g_idx[x], d]
                    weight += g_val[x]
                    in_part += g_val[x] * daypart_genre_profile[g_idx[x]]
                out[j, p + 8] = lift / weight if weight > 0 else 0.0
                out[j, p + 9] = item_daypart[i, d]
                out[j, p + 10] = n_daypart / safe_n
                overall = share / safe_n
                out[j, p + 11] = (in_part + user_prior * overall) / (n_daypart + user_prior)
                moved = 0.0
                for x in range(g_ptr[i], g_ptr[i + 1]):
                    g = g_idx[x]
                    moved += g_val[x] * genre_profile[g] * np.exp(genre_daypart[g, d])
                out[j, p + 12] = moved / tilted if tilted > 0 else 0.0
            else:
                for q in range(8, 13):
                    out[j, p + q] = np.nan
        # back to zero for the next listener: only what this one touched
        for e in range(h_ptr[r], h_ptr[r + 1]):
            i = h_idx[e]
            if artist_of[i] >= 0:
                by_artist[artist_of[i]] = 0.0
                recent_by_artist[artist_of[i]] = 0.0
            for x in range(g_ptr[i], g_ptr[i + 1]):
                genre_profile[g_idx[x]] = 0.0
                recent_genre_profile[g_idx[x]] = 0.0
                daypart_genre_profile[g_idx[x]] = 0.0
            for x in range(t_ptr[i], t_ptr[i + 1]):
                tag_profile[t_idx[x]] = 0.0
