"""Genre first, then the track: a listener's genre mix times each genre's own chart.

Many listeners choose music in two steps — a genre (or mood) for the session, then something
within it — and the synthetic world draws its sessions that way (docs/synthetic-world.md §7).
The score of item i for listener u is

    Σ_g  π_u(g) · P(i | g),

``π_u`` the listener's share of played items in each genre, shrunk towards everyone's by
``prior`` pseudo-items (a listener with two plays is not all one genre), and ``P(i | g)`` the
item's share of genre g's listeners (an item with several genres is split between them,
the more specific ones weighing more: :func:`_genre_weights`). Items the
catalog gives no genre (podcast episodes, audiobooks, anything unknown) share one extra
"no genre" column, so they are ranked by the same rule among themselves.

Why a model of its own: collaborative models rank by co-occurrence, which with a dozen plays
per listener scatters over whichever neighbours those plays had; this one says only "your
genres, their most played", which is the part of a sparse history that is reliable. It is
the dot product of two small matrices (listeners × genres, items × genres), so it ranks with
the fused top-k of :meth:`~segue.models.base.Recommender._dot_factors` and retrieves through a
vector index in the staged recommender, and a listener known only by plays is scored from
them (:meth:`score_history`). Without a catalog every item has no genre: it is popularity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Self

import numpy as np
import scipy.sparse as sp

from segue.dataset.side import SideInfo
from segue.errors import SegueError
from segue.models.base import Reason, Recommender, sparse_from_state, sparse_state, top_k


class GenreMixRecommender(Recommender):
    """Scores = the listener's genre mix · each item's share of its genres' listeners."""

    name = "genremix"

    def __init__(self, prior: float = 2.0, max_genres: int = 256) -> None:
        """``max_genres``: the most carried labels kept (the rest count as no genre), so
        that a catalog with thousands of micro-genres does not make the dense item × genre
        table as large as the catalog times them."""
        if not (np.isfinite(prior) and prior > 0):
            raise SegueError(f"genremix: prior must be a positive number of items, not {prior!r}")
        if not isinstance(max_genres, int | np.integer) or max_genres < 1:
            raise SegueError(
                f"genremix: max_genres must be a whole number >= 1, not {max_genres!r}"
            )
        self.prior = float(prior)
        self.max_genres = int(max_genres)
        self.genres = sp.csr_matrix((0, 0), dtype=np.float32)  # item × genre, rows sum to 1
        self.overall = np.zeros(0, dtype=np.float32)  # everyone's genre mix
        self.user_mix = np.zeros((0, 0), dtype=np.float32)
        self.item_share = np.zeros((0, 0), dtype=np.float32)  # P(i | g), item × genre

    def params(self) -> dict[str, float | int]:
        return {"prior": self.prior, "max_genres": self.max_genres}

    def fit(self, interactions: sp.csr_matrix, side: SideInfo | None = None) -> Self:
        train = interactions.tocsr().astype(np.float32)
        self._train = train
        n_items = train.shape[1]
        catalog = None if side is None else side.catalog
        if catalog is not None and len(catalog) != n_items:
            raise SegueError(
                f"genremix: the catalog describes {len(catalog)} items but the matrix has "
                f"{n_items}; build both from the same item map"
            )
        labels = (
            catalog.genre_matrix(limit=self.max_genres)
            if catalog is not None
            else sp.csr_matrix((n_items, 0), dtype=np.float32)
        )
        self.genres = _genre_weights(labels)
        listeners = np.asarray((train != 0).sum(axis=0), dtype=np.float64).ravel()
        per_genre = self.genres.multiply(listeners[:, None]).tocsc()
        totals = np.asarray(per_genre.sum(axis=0)).ravel()
        if totals.sum() <= 0:  # nobody played anything: every genre alike
            totals = np.ones_like(totals)
        self.overall = (totals / totals.sum()).astype(np.float32)
        self.item_share = np.asarray(
            per_genre.multiply(1.0 / np.maximum(totals, 1e-12)[None, :]).todense(),
            dtype=np.float32,
        )
        self.user_mix = self.mix(train)
        return self

    def mix(self, rows: sp.csr_matrix) -> np.ndarray:
        """Each row's genre mix: its items' genres weighted by the row's values, plus
        ``prior`` items spread as everyone's mix, normalised to sum to 1."""
        rows = sp.csr_matrix(rows, dtype=np.float32)
        counts = np.asarray((rows @ self.genres).todense(), dtype=np.float64)
        counts += self.prior * self.overall[None, :]
        return (counts / counts.sum(axis=1, keepdims=True)).astype(np.float32)

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.user_mix[np.asarray(users)] @ self.item_share.T

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        return self.mix(history) @ self.item_share.T

    def _dot_factors(self) -> tuple[np.ndarray, np.ndarray] | None:
        return self.user_mix, self.item_share

    def query_space(self) -> tuple[Callable[[sp.csr_matrix], np.ndarray], np.ndarray] | None:
        return self.mix, self.item_share

    def similar_items(self, items: Sequence[int] | np.ndarray, k: int = 10) -> np.ndarray:
        """The most played items of each item's genres (weighted as the item is split
        between them), the item itself left out; -1 pads."""
        items = np.asarray(items, dtype=np.int64)
        scores = np.asarray((self.genres[items] @ self.item_share.T), dtype=np.float32)
        scores[np.arange(len(items)), items] = -np.inf
        scores[scores <= 0] = -np.inf
        top, values = top_k(scores, k)
        top[~np.isfinite(values)] = -1
        return top

    def explain(self, user: int, item: int) -> Reason:
        value = float(self.user_mix[user] @ self.item_share[item])  # one pair, not a row
        return Reason("matches_your_taste", value=value)

    def _state(self) -> dict[str, np.ndarray]:
        return {
            **sparse_state(self.genres, "genre_"),
            "overall": self.overall,
            "user_mix": self.user_mix,
            "item_share": self.item_share,
        }

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.genres = sparse_from_state(state, "genre_")
        self.overall = state["overall"]
        self.user_mix = state["user_mix"]
        self.item_share = state["item_share"]


def _genre_weights(labels: sp.csr_matrix) -> sp.csr_matrix:
    """Each item's weight in each genre, rows summing to 1, with a last column for the items
    that have no label (so every item belongs somewhere).

    A label counts in proportion to 1 / (items carrying it): catalogs label a track with its
    genre and the genre's parent ("indie rock", "rock"), and the specific label is the one
    that says which genre a listener came for — the broad one is shared by every sibling.
    Split evenly instead, an indie-rock play would count half towards all of rock (on the
    synthetic world's tuning part: NDCG@10 0.161 split evenly, 0.170 by specificity, 0.172
    with the world's true genre of each track)."""
    labels = sp.csr_matrix(labels, dtype=np.float64)  # 0/1 (ItemCatalog.genre_matrix)
    carried = np.asarray(labels.sum(axis=0)).ravel()
    labels = labels.multiply(1.0 / np.maximum(carried, 1.0)[None, :]).tocsr()
    per_item = np.asarray(labels.sum(axis=1)).ravel()
    none = sp.csr_matrix((per_item == 0).astype(np.float64)[:, None])
    both = sp.hstack([labels, none]).tocsr()
    per_row = np.asarray(both.sum(axis=1)).ravel()
    both = sp.diags(1.0 / np.maximum(per_row, 1e-300)) @ both
    return both.tocsr().astype(np.float32)
