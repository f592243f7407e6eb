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

Everything is computed from the matrix the generators were fitted on and from the side
information captured at fit (:class:`FeatureContext`, saved with the model), so training
(inner split) and serving (full training matrix) compute the same quantities.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from segue.dataset.catalog import NO_RELEASE
from segue.dataset.side import SideInfo
from segue.models.base import sparse_from_state, sparse_state
from segue.models.staged.retrieval import Candidates

_MS_PER_DAY = 86_400_000
_SPARSE = ("tags", "genres", "artists", "friends")
#: Tags used as genres (calibration, genre share) when the catalog has no genres.
_TAG_GENRES = 50


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

    @functools.cached_property
    def artist_of(self) -> np.ndarray:
        """Each item's artist column in :attr:`artists`, -1 without one (read per pair)."""
        out = np.full(self.artists.shape[0], -1, dtype=np.int64)
        coo = self.artists.tocoo()
        out[coo.row] = coo.col
        return out

    @classmethod
    def build(cls, raw: sp.csr_matrix, side: SideInfo | None) -> FeatureContext:
        n_users, n_items = raw.shape
        played = (raw != 0).astype(np.float32).tocsr()
        listeners = np.asarray(played.sum(axis=0)).ravel()
        plays = np.asarray(raw.sum(axis=0)).ravel()
        catalog = None if side is None else side.catalog
        if catalog is not None and len(catalog) == n_items:
            tags = sp.hstack([catalog.tags, catalog.genres]).tocsr().astype(np.float32)
            tags.data[:] = 1.0
            genres = _genre_matrix(catalog.genres, catalog.tags, bool(catalog.genre_names))
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
        return cls(
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
        for key in ("item_listeners", "item_plays", "artist_listeners", "n_tags", "age_days"):
            out[f"ctx_{key}"] = getattr(self, key)
        out["ctx_audio"] = self.audio
        for key in _SPARSE:
            out.update(sparse_state(getattr(self, key), f"ctx_{key}_"))
        return out

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> FeatureContext:
        dense = ("item_listeners", "item_plays", "artist_listeners", "n_tags", "age_days", "audio")
        values = {key: state[f"ctx_{key}"] for key in dense}
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
    return names


def pair_features(
    ctx: FeatureContext,
    cands: Candidates,
    history: sp.csr_matrix,
    friend_rows: sp.csr_matrix | None,
    played_matrix: sp.csr_matrix,
) -> np.ndarray:
    """(pairs, features) float32, columns as :func:`feature_names`.

    ``history``: the block's raw rows; ``friend_rows``: the block's rows of the friend graph
    (None for listeners outside it); ``played_matrix``: every training listener's 0/1 row.
    """
    rows, items = cands.rows, cands.items
    n_rows = history.shape[0]
    columns: list[np.ndarray] = []
    # generators
    for g in range(cands.scores.shape[1]):
        score = cands.scores[:, g]
        zall = cands.zall[:, g]
        columns += [score, _group_z(score, rows, n_rows), zall, cands.ranks[:, g]]
    retrieved = cands.ranks < cands.n
    columns.append(retrieved.sum(axis=1).astype(np.float32))
    columns.append(cands.ranks.min(axis=1))
    columns.append(np.where(retrieved, 1.0 / (10.0 + cands.ranks), 0.0).sum(axis=1))
    # listener
    played = (history != 0).astype(np.float32).tocsr()
    n_items_u = np.asarray(played.sum(axis=1)).ravel()
    safe_n = np.maximum(n_items_u, 1.0)
    log_pop = np.log1p(ctx.item_listeners)
    mainstream = np.asarray(played @ log_pop).ravel() / safe_n
    artist_counts = (played @ ctx.artists).tocsr()
    diversity = np.diff(artist_counts.indptr) / safe_n
    n_friends = (
        np.zeros(n_rows) if friend_rows is None else np.asarray(friend_rows.sum(axis=1)).ravel()
    )
    user = [n_items_u, np.log1p(np.asarray(history.sum(axis=1)).ravel()), mainstream, diversity,
            n_friends]  # fmt: skip
    columns += [np.asarray(u, dtype=np.float32)[rows] for u in user]
    # item
    columns += [log_pop[items], np.log1p(ctx.item_plays[items])]
    columns += [np.log1p(ctx.artist_listeners[items]), ctx.n_tags[items], ctx.age_days[items]]
    columns += [ctx.audio[items, j] for j in range(ctx.audio.shape[1])]
    # pair
    artist_of = ctx.artist_of[items]
    has_artist = artist_of >= 0
    affinity = _gather(artist_counts, rows, np.maximum(artist_of, 0)) * (1.0 / safe_n)[rows]
    columns.append(np.where(has_artist, affinity, 0.0))
    genre_profile = np.asarray((played @ ctx.genres).todense()) / safe_n[:, None]
    columns.append(_pair_dot(ctx.genres, items, genre_profile, rows))
    tag_profile = np.asarray((played @ ctx.tags).todense())
    norms = np.linalg.norm(tag_profile, axis=1, keepdims=True)
    tag_profile /= np.where(norms > 0, norms, 1.0)
    columns.append(_pair_dot(ctx.tags, items, tag_profile, rows))
    if friend_rows is None:
        friends_played = np.zeros(len(rows))
    else:
        friends_played = _gather((friend_rows @ played_matrix).tocsr(), rows, items)
    columns.append(friends_played)
    columns.append(friends_played / np.maximum(n_friends[rows], 1.0))
    return np.column_stack([np.asarray(c, dtype=np.float32) for c in columns])


def _genre_matrix(genres: sp.csr_matrix, tags: sp.csr_matrix, has_genres: bool) -> sp.csr_matrix:
    """The catalog's genres, or its ``_TAG_GENRES`` most used tags where it has no genres
    (Last.fm 2K), as the catalog's own genre lookups do."""
    if has_genres or tags.shape[1] == 0:
        return genres.tocsr().astype(np.float32)
    used = np.asarray((tags != 0).sum(axis=0)).ravel()
    top = np.sort(np.argsort(-used, kind="stable")[:_TAG_GENRES])
    return (tags[:, top] != 0).astype(np.float32).tocsr()


def _group_z(score: np.ndarray, rows: np.ndarray, n_rows: int) -> np.ndarray:
    """Score standardised within each listener's candidates (NaN stays NaN)."""
    finite = np.isfinite(score)
    values = np.where(finite, score, 0.0).astype(np.float64)
    n = np.bincount(rows, weights=finite, minlength=n_rows)
    total = np.bincount(rows, weights=values, minlength=n_rows)
    squares = np.bincount(rows, weights=values**2, minlength=n_rows)
    mean = total / np.maximum(n, 1)
    std = np.sqrt(np.maximum(squares / np.maximum(n, 1) - mean**2, 0))
    std[std == 0] = 1.0
    return np.where(finite, (score - mean[rows]) / std[rows], np.nan)


def _gather(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``matrix[rows[j], cols[j]]`` for sparse CSR (a block's few rows), vectorised: one
    search among the stored entries' keys, where scipy's pair indexing cost a served request
    more than the arithmetic of all its pair features."""
    if len(rows) == 0 or matrix.nnz == 0:
        return np.zeros(len(rows))
    n_cols = matrix.shape[1]
    stored_rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    stored = stored_rows * n_cols + matrix.indices
    order = np.argsort(stored, kind="stable")
    stored, values = stored[order], matrix.data[order]
    wanted = np.asarray(rows, dtype=np.int64) * n_cols + np.asarray(cols, dtype=np.int64)
    at = np.minimum(np.searchsorted(stored, wanted), len(stored) - 1)
    return np.where(stored[at] == wanted, values[at], 0).astype(np.float64)


def _pair_dot(
    item_rows: sp.csr_matrix, items: np.ndarray, profiles: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """``item_rows[items[j]] · profiles[rows[j]]`` for every pair j.

    Only the candidates' rows are touched: the product of the whole catalog with the block's
    profiles, then gathered, cost a served request ~catalog × tags work (132,660 items on
    the 1M world) for the few hundred pairs it reads.
    """
    picked = item_rows[items]
    pair = np.repeat(np.arange(len(items)), np.diff(picked.indptr))
    values = picked.data * profiles[rows[pair], picked.indices]
    return np.bincount(pair, weights=values, minlength=len(items))
