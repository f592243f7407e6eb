"""Candidate generators and the candidate set they make together.

A generator is any registered recommender (ALS, EASE, item-kNN, user-kNN, content, …) plus
two of the staged recommender's own: ``friends`` (what a listener's friends play, from the
friend graph of :class:`~segue.dataset.side.SideInfo`) and ``trending`` (log-scaled listening;
the registry's ``trending`` needs pair times, which a bare matrix does not carry). Each gives
its top ``n`` unseen items per listener with score and rank (items tied at the listener's
lowest score are left out: a generator has no opinion on them); :func:`retrieve` merges them into
one candidate set per listener and keeps, for every candidate, every generator's score and its
rank there (``n`` when the generator did not retrieve it), which the ranker reads as features.

Generators whose scores are a dot product of user and item vectors (ALS's factors, the
content model's unit profiles and item vectors: ``Recommender.query_space``) retrieve through
:class:`~segue.models.staged.ann.VectorIndex` above its catalog size; below it they score
exactly. A listener known by history rows searches with the vector folded in from them.
A generator that needs side information the data lacks (``content`` without a catalog,
``friends`` without a friend graph) is left out at fit, and :attr:`Generators.active` says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from segue.dataset import Binary, LogScale
from segue.dataset.side import SideInfo
from segue.dataset.weighting import ColumnStats, weigh_beside
from segue.errors import SegueError
from segue.models.base import (
    Reason,
    Recommender,
    sparse_from_state,
    sparse_state,
    take_rows,
    top_k,
)
from segue.models.popularity import PopularityRecommender
from segue.models.specs import COMPONENTS, ModelSpec
from segue.models.staged.ann import EXACT_BELOW, VectorIndex
from segue.ranking import rank_pairs

DEFAULT_GENERATORS: tuple[str, ...] = (
    "als", "ease", "itemknn", "userknn", "friends", "content", "trending", "genremix"
)  # fmt: skip


class FriendsRecommender(Recommender):
    """Score = how many of the listener's friends played the item (0 without a friend graph)."""

    name = "friends"

    def __init__(self) -> None:
        self.friends = sp.csr_matrix((0, 0), dtype=np.float32)
        self._binary: sp.csr_matrix | None = None

    def fit(self, interactions: sp.csr_matrix, side: SideInfo | None = None) -> Self:
        train = interactions.tocsr().astype(np.float32)
        n_users = train.shape[0]
        friends = None if side is None else side.friends
        if friends is None:
            friends = sp.csr_matrix((n_users, n_users), dtype=np.float32)
        if friends.shape != (n_users, n_users):
            raise SegueError(
                f"friends: the friend graph is {friends.shape[0]}×{friends.shape[1]} but the "
                f"matrix has {n_users} users; build both from the same user map"
            )
        self.friends = (sp.csr_matrix(friends) != 0).astype(np.float32)
        self._train, self._binary = train, None
        return self

    def _played(self) -> sp.csr_matrix:
        if self._binary is None:
            self._binary = (self._fitted() != 0).astype(np.float32).tocsr()
        return self._binary

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray((self.friends[np.asarray(users)] @ self._played()).toarray())

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        """A listener known only by a history has no friends in the model: all zeros."""
        return np.zeros((history.shape[0], self._fitted().shape[1]), dtype=np.float32)

    def explain(self, user: int, item: int) -> Reason:
        played = float(self.score(np.array([user]))[0, item])
        return Reason("listeners_like_you", value=played)

    def _state(self) -> dict[str, np.ndarray]:
        return sparse_state(self.friends)

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.friends = sparse_from_state(state)
        self._binary = None


#: The staged recommender's own generators, over the registry's components.
OWN: dict[str, ModelSpec] = {
    "friends": ModelSpec(FriendsRecommender, Binary(), FriendsRecommender),
    "trending": ModelSpec(
        lambda: PopularityRecommender(measure="weight"), LogScale(), PopularityRecommender
    ),
}
#: ``<generator>_recent``: the generator fitted on each play weighted by its recency in the
#: listener's time line (where the pairs' times are known; left out elsewhere).
RECENT_SUFFIX = "_recent"


def generator_spec(name: str) -> ModelSpec:
    """The staged recommender's own generators first, then every hybrid component (which
    includes the neural ``ncf`` and ``twotower``); ``<name>_recent`` is ``<name>``'s."""
    base = name[: -len(RECENT_SUFFIX)] if name.endswith(RECENT_SUFFIX) else name
    for table in (OWN, COMPONENTS):
        if base in table:
            return table[base]
    known = sorted({*OWN, *COMPONENTS})
    raise SegueError(
        f"unknown generator {name!r}; available: {', '.join(known)} "
        f"(each also as <name>{RECENT_SUFFIX})"
    )


def _usable(name: str, side: SideInfo | None, dated: bool = False) -> bool:
    """Whether the data has what the generator needs (a catalog for content and genremix
    (without one, genremix is popularity), friends, the
    pairs' times for a ``_recent`` one)."""
    if name.endswith(RECENT_SUFFIX):
        return dated and _usable(name[: -len(RECENT_SUFFIX)], side)
    if name in ("content", "genremix"):
        return side is not None and side.catalog is not None and side.catalog.known.any()
    if name == "friends":
        return side is not None and side.friends is not None and side.friends.nnz > 0
    return True


@dataclass
class Candidates:
    """Merged candidates of a block of listeners, one row per (listener, item) pair.

    ``rows`` index the block (sorted, so each listener's pairs are contiguous); ``scores`` and
    ``ranks`` are (pairs, generators): a generator's score of the pair (NaN where it cannot
    score the item) and its rank in that generator's top ``n`` (``n`` where absent).
    """

    rows: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray
    n: int
    #: The score standardised over all the listener's items (NaN where ANN retrieved it).
    zall: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


class Generators:
    """A fitted set of generators, each trained on its own weighting of the raw matrix."""

    def __init__(
        self,
        names: Sequence[str],
        params: dict[str, dict[str, Any]] | None = None,
        exact_below: int = EXACT_BELOW,
    ) -> None:
        if not names:
            raise SegueError("the staged recommender needs at least one generator")
        for name in names:
            generator_spec(name)
            if name.removesuffix(RECENT_SUFFIX) in ("hybrid", "pipeline"):
                raise SegueError(f"{name!r} cannot be a generator")
        self.names = list(dict.fromkeys(names))
        self.params = {k: dict(v) for k, v in (params or {}).items()}
        #: Embedding generators over catalogs this large retrieve through an ANN index.
        self.exact_below = exact_below
        self.models: dict[str, Recommender] = {}
        self._indexes: dict[str, VectorIndex] = {}
        #: generators allowed an index (None: every one that can have one; see :meth:`load`)
        self._searchable: set[str] | None = None
        self._shared: dict[str, _SharedRow | None] = {}
        #: the raw training matrix and its column statistics (for :meth:`weighted`)
        self._raw_stats: tuple[sp.csr_matrix, ColumnStats] | None = None

    @property
    def active(self) -> list[str]:
        return [name for name in self.names if name in self.models]

    def fit(
        self, raw: sp.csr_matrix, side: SideInfo | None, recency: sp.csr_matrix | None = None
    ) -> Self:
        """``recency``: each of ``raw``'s entries' weight by its recency (its structure), for
        the ``_recent`` generators, which are left out without it."""
        self.models = {}
        self._indexes = {}
        self._searchable = None
        self._shared = {}
        for name in self.names:
            if not _usable(name, side, recency is not None):
                continue
            spec = generator_spec(name)
            model = spec.build(**self.params.get(name, {}))
            matrix = raw
            if name.endswith(RECENT_SUFFIX):
                assert recency is not None
                weighted = raw.data * recency.data
                matrix = sp.csr_matrix((weighted, raw.indices, raw.indptr), shape=raw.shape)
            self.models[name] = model.fit(spec.weighting.apply(matrix), side)
        if not self.models:
            raise SegueError("none of the generators can run on this data")
        return self

    def weighted(self, name: str, history: sp.csr_matrix, raw: sp.csr_matrix) -> sp.csr_matrix:
        """History rows weighted as the generator's training matrix was: as if stacked under
        the raw training matrix, so that BM25's idf and length norm come from all listeners
        (applied to a lone row, BM25 turns a newcomer's plays negative). The raw matrix's
        column statistics are kept per matrix: a listener with fresh plays is scored this
        way on every request."""
        cached = self._raw_stats
        if cached is None or cached[0] is not raw:
            cached = (raw, ColumnStats.of(raw))
            self._raw_stats = cached
        return weigh_beside(generator_spec(name).weighting, history, raw, cached[1])

    def _item_vectors(self, name: str) -> np.ndarray | None:
        """The item vectors a generator's scores are dot products with, if any."""
        model = self.models[name]
        factors = model._dot_factors()
        if factors is not None:
            return factors[1]
        space = model.query_space()
        return None if space is None else space[1]

    def searched(self) -> list[str]:
        """The generators that retrieve through a vector index (a dot product over a catalog
        at least ``exact_below`` items large); saved with the model, so that a model is
        served as its ranker was trained, whatever later code would choose."""
        return [
            name
            for name in self.active
            if (self._searchable is None or name in self._searchable)
            and self.models[name]._fitted().shape[1] >= self.exact_below
            and self._item_vectors(name) is not None
        ]

    def _index(self, name: str) -> VectorIndex | None:
        """A faiss index when the generator is a dot product over a catalog large enough."""
        if name not in self._indexes:
            if self.models[name]._fitted().shape[1] < self.exact_below:
                return None  # exact scoring: not even the item vectors are needed
            if self._searchable is not None and name not in self._searchable:
                return None  # trained without one (a model saved by earlier code)
            vectors = self._item_vectors(name)
            if vectors is None:
                return None
            self._indexes[name] = VectorIndex(vectors, exact_below=self.exact_below)
        return self._indexes[name]

    def _query(
        self,
        name: str,
        users: np.ndarray | None,
        history: sp.csr_matrix | None,
        raw: sp.csr_matrix | None,
    ) -> tuple[np.ndarray, VectorIndex] | None:
        """The generator's vector index and the user vectors to search it with (None: it
        has no index here): trained listeners' own, or those folded in from history rows, so
        that a listener with fresh plays is retrieved (and featured) as a trained one is."""
        index = self._index(name)
        if index is None:
            return None
        model = self.models[name]
        factors = model._dot_factors()
        if factors is not None and history is None:
            assert users is not None
            return factors[0][users], index
        if factors is not None:
            fold_in = getattr(model, "fold_in", None)
            if fold_in is None:
                return None
            assert raw is not None
            query = fold_in(self.weighted(name, history, raw))
            return np.asarray(query, dtype=np.float32), index
        space = model.query_space()
        assert space is not None
        if history is None:
            assert users is not None
            return space[0](take_rows(model._fitted(), users)), index
        assert raw is not None
        return space[0](self.weighted(name, history, raw)), index

    def _shared_row(self, name: str) -> _SharedRow | None:
        """The generator's one score row for every listener, ranked once (None: it has none)."""
        if name not in self._shared:
            row = self.models[name].shared_scores()
            self._shared[name] = None if row is None else _SharedRow.of(row)
        return self._shared[name]

    def retrieve(
        self,
        users: np.ndarray | None,
        seen: sp.csr_matrix,
        n: int,
        history: sp.csr_matrix | None = None,
        only: Sequence[str] | None = None,
        raw: sp.csr_matrix | None = None,
    ) -> Candidates:
        """Candidates of a block: known ``users`` (matrix rows) or ``history`` rows (new users).

        ``seen`` (block × items) is masked; ``history`` in raw values, weighted per generator
        with the statistics of ``raw``, the raw matrix the generators were fitted on.
        """
        names = [name for name in self.active if only is None or name in only]
        n_rows, n_items = seen.shape
        n = min(n, n_items)
        tops: list[tuple[np.ndarray, np.ndarray]] = []
        #: per generator scoring every item: how to read a pair's score, and its row stats
        dense_blocks: list[tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], _RowStats] | None]
        dense_blocks = []
        vectors: list[tuple[np.ndarray, np.ndarray] | None] = []
        seen_rows = np.repeat(np.arange(n_rows), np.diff(seen.indptr))
        for name in names:
            model = self.models[name]
            searched = self._query(name, users, history, raw)
            if searched is not None:
                query, index = searched
                extra = int(np.diff(seen.indptr).max(initial=0))
                ids, values = index.search(query, n, extra)
                masked = _in_rows(seen, ids)
                # a zero query scores every item alike: no opinion, nothing retrieved
                masked |= ~query.any(axis=1)[:, None]
                values = np.where(masked, -np.inf, values)
                order = np.argsort(-values, axis=1, kind="stable")[:, :n]
                ids = np.take_along_axis(ids, order, 1)
                values = np.take_along_axis(values, order, 1)
                tops.append((ids, values))
                dense_blocks.append(None)
                vectors.append((query, index.vectors))
                continue
            shared = self._shared_row(name)
            if shared is not None:
                ids, values, stats = shared.top(seen, n)
                tops.append((ids, values))
                dense_blocks.append((lambda _rows, items, row=shared.scores: row[items], stats))
                vectors.append(None)
                continue
            assert history is None or raw is not None, "history rows are weighed beside raw"
            weighted = None if history is None else self.weighted(name, history, raw)
            if weighted is None:
                assert users is not None
                sparse = model.score_sparse(users)
            else:
                sparse = model.score_history_sparse(weighted)
            if sparse is not None:  # item-kNN: a listener's few neighbours, not the catalog
                held = _SparseRows.of(sparse, seen, model.unstored_score)
                ids, values, stats = held.top(n)
                tops.append((ids, values))
                dense_blocks.append((held.read, stats))
                vectors.append(None)
                continue
            dense = model.score(users) if weighted is None else model.score_history(weighted)
            # the scores are the caller's to change, as in segue.models.base._top_of: a copy of
            # a block's (256 × 132,660) rows cost more than scoring them
            dense = np.asarray(dense).astype(np.float32, copy=False)
            stats = _unseen_stats(dense, seen_rows, seen.indices)  # also masks the seen
            ids, values = _top_above(dense, stats[0], n)
            tops.append((ids, values))
            dense_blocks.append((lambda rows, items, block=dense: block[rows, items], stats))
            vectors.append(None)
        keys = np.unique(
            np.concatenate(
                [
                    (np.arange(n_rows)[:, None] * n_items + ids)[np.isfinite(values)]
                    for ids, values in tops
                ]
                or [np.zeros(0, np.int64)]
            )
        )
        rows, items = keys // n_items, keys % n_items
        scores = np.full((len(keys), len(names)), np.nan, dtype=np.float32)
        ranks = np.full((len(keys), len(names)), n, dtype=np.float32)
        zall = np.full((len(keys), len(names)), np.nan, dtype=np.float32)
        for g, ((ids, values), dense, vec) in enumerate(
            zip(tops, dense_blocks, vectors, strict=True)
        ):
            if dense is not None:
                read, (_, mean, std) = dense
                pair = read(rows, items)
                zall[:, g] = np.where(np.isfinite(pair), (pair - mean[rows]) / std[rows], np.nan)
            else:
                assert vec is not None
                pair = np.einsum("ij,ij->i", vec[0][rows], vec[1][items])
            scores[:, g] = np.where(np.isfinite(pair), pair, np.nan)
            finite = np.isfinite(values)
            rank = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)[finite]
            own = (np.arange(n_rows)[:, None] * n_items + ids)[finite]
            ranks[np.searchsorted(keys, own), g] = rank
        return Candidates(rows, items, scores, ranks, n, zall)

    def save(self, folder: Path) -> None:
        for name, model in self.models.items():
            model.save(folder / f"generator-{name}")

    def load(
        self, folder: Path, active: Sequence[str], searched: Sequence[str] | None = None
    ) -> None:
        """``searched``: the generators that retrieved through a vector index when the ranker
        was trained (:meth:`searched`); None, from a model saved before it was recorded:
        those with factors alone, as then."""
        self.models = {
            name: generator_spec(name).cls.load(folder / f"generator-{name}") for name in active
        }
        if searched is None:
            searched = [name for name in active if self.models[name]._dot_factors() is not None]
        self._searchable = set(searched)
        self._indexes = {}
        self._shared = {}


#: Per row of a dense block: (lowest score, mean, standard deviation) over the unseen items.
_RowStats = tuple[np.ndarray, np.ndarray, np.ndarray]


def _unseen_stats(dense: np.ndarray, seen_rows: np.ndarray, seen_cols: np.ndarray) -> _RowStats:
    """Each row's lowest score, mean and standard deviation over its finite unseen entries
    (std 1 where it is 0); the seen entries are set to -inf on the way.

    A request scores one listener over the whole catalog per generator (132,660 items on
    the 1M world), so the passes over it count: the sums come from the unmasked rows with the
    few seen entries taken out, and only rows holding a non-finite score take the slow path.
    """
    n_rows, n_items = dense.shape
    seen_values = dense[seen_rows, seen_cols].astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite rows are redone below
        total = dense.sum(axis=1, dtype=np.float64)
        squares = np.einsum("ij,ij->i", dense, dense, dtype=np.float64)
        total -= np.bincount(seen_rows, weights=seen_values, minlength=n_rows)
        squares -= np.bincount(seen_rows, weights=seen_values**2, minlength=n_rows)
    count = (n_items - np.bincount(seen_rows, minlength=n_rows)).astype(np.float64)
    dense[seen_rows, seen_cols] = np.inf
    floor = dense.min(axis=1)
    dense[seen_rows, seen_cols] = -np.inf
    for r in np.flatnonzero(~(np.isfinite(total) & np.isfinite(squares))):
        finite = dense[r][np.isfinite(dense[r])].astype(np.float64)
        total[r], squares[r], count[r] = finite.sum(), (finite**2).sum(), len(finite)
        floor[r] = finite.min() if len(finite) else np.inf
    return (floor.astype(np.float32), *_mean_std(total, squares, count))


def _mean_std(
    total: np.ndarray, squares: np.ndarray, count: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean and standard deviation from sums (std 1 where it is 0)."""
    count = np.maximum(count, 1.0)
    mean = total / count
    var = np.maximum(squares / count - mean**2, 0.0)
    return mean, np.where(var > 0, np.sqrt(var), 1.0)


def _top_above(dense: np.ndarray, floor: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``n`` best items scored above its ``floor`` (ordered as :func:`top_k`
    orders them), padded with item 0 at -inf.

    Items tied at the row's lowest score are ones the generator has no opinion on (item-kNN's
    and friends' zeros, never-played items in trending): they are not retrieved. Ranking only
    the items above it matters for speed too: with fewer than ``n`` items above, the ``n``-th
    best is a tie among ~all the catalog, which :func:`top_k` would sort whole.
    """
    n_rows = dense.shape[0]
    ids = np.zeros((n_rows, n), dtype=np.int64)
    values = np.full((n_rows, n), -np.inf, dtype=np.float32)
    for r in range(n_rows):
        above = np.flatnonzero(dense[r] > floor[r])
        if len(above) == 0:
            continue
        best, best_values = top_k(dense[r, above][None, :], min(n, len(above)))
        ids[r, : best.shape[1]] = above[best[0]]
        values[r, : best.shape[1]] = best_values[0]
    return ids, values


@dataclass
class _SharedRow:
    """A score row every listener shares (trending), with what each listener's top and row
    statistics start from: the items best first (ties by index, as :func:`top_k`), and the
    sums over the whole row. A listener's part is then their few seen items taken out, where
    the dense path scored, masked, summed and ranked the whole catalog per request."""

    scores: np.ndarray
    order: np.ndarray
    total: float
    squares: float
    lowest: float
    n_lowest: int

    @classmethod
    def of(cls, row: np.ndarray) -> _SharedRow:
        scores = np.asarray(row, dtype=np.float32)
        if not np.isfinite(scores).all():
            raise SegueError("a shared score row must be finite")
        order = np.lexsort((np.arange(len(scores)), -scores))
        wide = scores.astype(np.float64)
        lowest = float(scores.min()) if len(scores) else 0.0
        return cls(
            scores, order, float(wide.sum()), float((wide**2).sum()), lowest,
            int((scores == lowest).sum()),
        )  # fmt: skip

    def top(self, seen: sp.csr_matrix, n: int) -> tuple[np.ndarray, np.ndarray, _RowStats]:
        """(ids, values, row stats) of each row of ``seen`` as :func:`_top_above` and
        :func:`_unseen_stats` give them on the dense block."""
        n_rows, n_items = seen.shape
        seen_rows = np.repeat(np.arange(n_rows), np.diff(seen.indptr))
        seen_values = self.scores[seen.indices].astype(np.float64)
        total = self.total - np.bincount(seen_rows, weights=seen_values, minlength=n_rows)
        squares = self.squares - np.bincount(seen_rows, weights=seen_values**2, minlength=n_rows)
        count = n_items - np.bincount(seen_rows, minlength=n_rows).astype(np.float64)
        ids = np.zeros((n_rows, n), dtype=np.int64)
        values = np.full((n_rows, n), -np.inf, dtype=np.float32)
        floor = np.full(n_rows, self.lowest, dtype=np.float32)
        for r in range(n_rows):
            own = seen.indices[seen.indptr[r] : seen.indptr[r + 1]]
            if np.count_nonzero(self.scores[own] == self.lowest) >= self.n_lowest:
                unseen = np.ones(n_items, dtype=bool)  # every lowest item seen: a rare row
                unseen[own] = False
                floor[r] = self.scores[unseen].min() if unseen.any() else np.inf
            head = self.order[: n + len(own)]
            head = head[~np.isin(head, own)]
            head = head[self.scores[head] > floor[r]][:n]
            ids[r, : len(head)] = head
            values[r, : len(head)] = self.scores[head]
        return ids, values, (floor, *_mean_std(total, squares, count))


@dataclass
class _SparseRows:
    """A block's scores held sparsely (``Recommender.score_sparse``: every unstored item
    scores ``unstored``, no stored one lower except -inf), with the block's seen items
    taken out. Retrieves and reads pairs as the dense path does on the filled-in rows, from
    the stored entries alone: item-kNN stores the few thousand neighbours of a listener's
    items, where the dense path summed, masked and ranked all 132,660 items of the 1M world
    per request."""

    keys: np.ndarray  # row * n_items + item of the stored unseen entries, sorted
    values: np.ndarray
    n_items: int
    unstored: float
    #: per row: how many unseen items are not stored (they score ``unstored``)
    n_unstored: np.ndarray
    n_rows: int

    @classmethod
    def of(cls, scores: sp.csr_matrix, seen: sp.csr_matrix, unstored: float) -> _SparseRows:
        scores = scores.tocsr()
        n_rows, n_items = scores.shape
        rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(scores.indptr))
        keys = rows * n_items + scores.indices
        seen_rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(seen.indptr))
        unseen = ~np.isin(keys, seen_rows * n_items + seen.indices)
        keys, values = keys[unseen], scores.data[unseen].astype(np.float32)
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], values[order]
        n_unseen = n_items - np.bincount(seen_rows, minlength=n_rows)
        n_stored = np.bincount(keys // n_items, minlength=n_rows)
        return cls(keys, values, n_items, float(unstored), n_unseen - n_stored, n_rows)

    def read(self, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Scores of (row, item) pairs of unseen items: stored or ``unstored``."""
        wanted = np.asarray(rows, dtype=np.int64) * self.n_items + items
        if len(self.keys) == 0:
            return np.full(len(wanted), self.unstored, dtype=np.float32)
        at = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        return np.where(self.keys[at] == wanted, self.values[at], self.unstored).astype(
            np.float32
        )

    def top(self, n: int) -> tuple[np.ndarray, np.ndarray, _RowStats]:
        """(ids, values, row stats) as :func:`_top_above` and :func:`_unseen_stats` give
        them on the filled-in rows: the floor is the lowest unseen score (``unstored`` when
        an unseen item is not stored), and only items above it are retrieved."""
        rows = self.keys // self.n_items
        items = self.keys % self.n_items
        finite = np.isfinite(self.values)
        wide = np.where(finite, self.values, 0.0).astype(np.float64)
        rest = self.n_unstored.astype(np.float64)

        def summed(weights: np.ndarray) -> np.ndarray:  # float also for a block without any
            return np.bincount(rows, weights=weights, minlength=self.n_rows).astype(np.float64)

        total = summed(wide) + rest * self.unstored
        squares = summed(wide**2) + rest * self.unstored**2
        count = summed(finite) + rest
        floor = np.where(self.n_unstored > 0, self.unstored, np.inf).astype(np.float32)
        np.minimum.at(floor, rows[finite], self.values[finite])
        above = self.values > floor[rows]
        ids, top = rank_pairs(rows[above], items[above], self.values[above], self.n_rows, n, 0)
        return ids, top, (floor, *_mean_std(total, squares, count))


def _in_rows(matrix: sp.csr_matrix, ids: np.ndarray) -> np.ndarray:
    """``out[r, j]``: whether ``ids[r, j]`` is stored in row r of ``matrix`` (-1: never)."""
    n_items = matrix.shape[1]
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    stored = np.sort(rows * n_items + matrix.indices)
    if len(stored) == 0:
        return np.zeros(ids.shape, dtype=bool)
    keys = np.arange(len(ids))[:, None] * n_items + ids
    at = np.minimum(np.searchsorted(stored, keys), len(stored) - 1)
    return (ids >= 0) & (stored[at] == keys)


def candidate_recall(cands: Candidates, relevant: sp.csr_matrix, generator: int | None) -> float:
    """Share of the block's relevant pairs inside the candidates (one generator's or all).

    ``relevant`` is (block × items); ``generator`` None means the union.
    """
    n_items = relevant.shape[1]
    keep = np.ones(len(cands), bool) if generator is None else cands.ranks[:, generator] < cands.n
    keys = cands.rows[keep] * n_items + cands.items[keep]
    rel = relevant.tocoo()
    truth = rel.row.astype(np.int64) * n_items + rel.col
    return float(np.isin(truth, keys).mean()) if len(truth) else float("nan")
