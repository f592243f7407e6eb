"""The one protocol every recommender follows, and the helpers they share.

Models work in index space: users and items are rows and columns of the training matrix
(``segue.dataset``'s id maps translate). ``recommend`` returns a :class:`Recommendations`
batch; reasons are computed lazily per row because most callers (evaluation) never need them.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from segue.errors import SegueError
from segue.ranking import kth_largest, rank_pairs

if TYPE_CHECKING:
    from segue.dataset.interactions import Interactions
    from segue.dataset.side import SideInfo
    from segue.dataset.weighting import Weighting
    from segue.models.filters import Filters


@dataclass(frozen=True)
class Reason:
    """Why an item was recommended, as data: faces render ``code`` with the anchor's title.

    Codes: ``because_you_played`` (anchor = a played item), ``popular`` (value = listeners),
    ``listeners_like_you``, ``new_from_artist`` (label = the artist's id),
    ``matches_your_taste``, ``matches_your_picks``, ``exploration``.
    """

    code: str
    anchor_item: int | None = None
    value: float | None = None
    label: str | None = None


@dataclass
class Recommendations:
    """Top-k lists for a batch of users: ``items[r]`` ranked best first, -1 where short."""

    users: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    model: Recommender

    def reasons(self, row: int) -> list[Reason]:
        """One reason per recommended item of ``row`` (skipping padding)."""
        user = int(self.users[row])
        return [self.model.explain(user, int(i)) for i in self.items[row] if i >= 0]


class Recommender(abc.ABC):
    """fit → recommend / similar_items → save / load; scores are comparable within a model."""

    #: Registry name, used by the CLI and in saved manifests.
    name: ClassVar[str]
    #: What an entry :meth:`score_sparse` does not store scores.
    unstored_score: ClassVar[float] = 0.0
    #: Whether ``fit`` also reads when each pair was last played (``pair_times=``, the
    #: matrix's pairs in days): :func:`fit_on` passes them to the models that do. Such a
    #: model's ``score_history_sparse`` also takes ``known=`` (each history row's training
    #: listener, -1 for none), so that a served history keeps the recency it was fitted with.
    uses_pair_times: ClassVar[bool] = False
    #: Whether scoring reads the request's context: ``score``, ``score_sparse`` and the
    #: history scorers take ``dayparts=`` (each row's local daypart, an index into
    #: :data:`segue.data.dayparts.DAYPARTS`, -1 unknown), which ``recommend`` passes on.
    uses_context: ClassVar[bool] = False

    _train: sp.csr_matrix | None = None

    @abc.abstractmethod
    def fit(self, interactions: sp.csr_matrix, side: SideInfo | None = None) -> Self:
        """Learn from a user×item matrix of positive, already-weighted interactions.

        ``side`` carries item attributes, demographics and the friend graph, aligned with the
        matrix; models that need none of it ignore it.
        """

    @abc.abstractmethod
    def score(self, users: np.ndarray) -> np.ndarray:
        """Dense (len(users), n_items) scores; higher is better."""

    @abc.abstractmethod
    def explain(self, user: int, item: int) -> Reason: ...

    def explain_items(self, user: int, items: Sequence[int]) -> list[Reason]:
        """:meth:`explain` for each of one user's items; a model whose explanation shares work
        across items (ALS: one system per user) overrides it, as a page of reasons is asked
        for per request."""
        return [self.explain(user, int(i)) for i in items]

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        """Scores for users known only by a history row (onboarding picks, fresh plays).

        ``history`` is (n, n_items) in the same weighting the model was fitted on. Models that
        can answer without retraining (neighbourhood, EASE, content, fold-in MF) override this;
        it is what lets a new listener's list follow their first plays.
        """
        raise SegueError(f"model {self.name!r} cannot score users outside its training data")

    def params(self) -> dict[str, Any]:
        """Constructor arguments, saved with the model."""
        return {}

    def recommend(
        self,
        users: Sequence[int] | np.ndarray,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        exclude: sp.csr_matrix | None = None,
        filters: Filters | None = None,
        batch_size: int = 512,
        dayparts: np.ndarray | None = None,
    ) -> Recommendations:
        """Top ``k`` items per user.

        Items of the training matrix are removed unless ``exclude_seen`` is false; ``exclude``
        replaces that mask (evaluation masks train and validation items alike). ``filters``
        apply the business rules (kinds, explicit, allow/deny lists, per-artist cap).
        ``dayparts``: each row's request context, for a model that reads it
        (:attr:`uses_context`); the others rank the same whatever it is.
        """
        (recs,) = self.recommend_many(
            users, [(k, filters)], exclude_seen=exclude_seen, exclude=exclude,
            batch_size=batch_size, dayparts=dayparts,
        )  # fmt: skip
        return recs

    def recommend_many(
        self,
        users: Sequence[int] | np.ndarray,
        wants: Sequence[tuple[int, Filters | None]],
        *,
        exclude_seen: bool = True,
        exclude: sp.csr_matrix | None = None,
        batch_size: int = 512,
        dayparts: np.ndarray | None = None,
    ) -> list[Recommendations]:
        """:meth:`recommend` once per ``(k, filters)`` of ``wants``, the users scored once.

        The daily batch wants each listener's list (every kind) and their mixes' candidates
        (tracks only) from the same model: for a staged model scoring is nearly all the cost,
        so asking for both at once halves it. Each result equals its own ``recommend``.
        """
        train = self._fitted()
        mask = train if exclude is None else exclude.tocsr()
        for _, filters in wants:
            if filters is not None and len(filters.allowed) != train.shape[1]:
                raise SegueError(
                    f"filters cover {len(filters.allowed)} items but the model has "
                    f"{train.shape[1]}"
                )
        users = np.asarray(users, dtype=np.int64)
        if len(users) and (users.min() < 0 or users.max() >= train.shape[0]):
            raise SegueError(f"user index out of range 0..{train.shape[0] - 1}")
        if dayparts is not None and len(dayparts) != len(users):
            raise SegueError(f"{len(dayparts)} request dayparts for {len(users)} users")
        plans = [_ListPlan.of(k, filters, train.shape[1], len(users)) for k, filters in wants]
        for start in range(0, len(users), batch_size):
            block = users[start : start + batch_size]
            seen = mask[block] if exclude_seen else None
            context = None if dayparts is None else dayparts[start : start + batch_size]
            scored = self._block_scores(block, context)
            for i, plan in enumerate(plans):
                last = i == len(plans) - 1  # a dense batch may then be masked in place
                top, top_scores = _top_of(scored, plan.k, seen, plan.filters, plan.blocked,
                                          self.unstored_score, in_place=last)  # fmt: skip
                plan.items[start : start + len(block)] = top
                plan.scores[start : start + len(block)] = top_scores
        return [Recommendations(users, *plan.finish(), model=self) for plan in plans]

    def score_sparse(self, users: np.ndarray) -> sp.csr_matrix | None:
        """Scores as a sparse matrix, for models whose candidates are few; None: use ``score``.

        An unstored entry means a score of :attr:`unstored_score`, and no stored entry is
        lower except -inf (an item the model masks itself). ``recommend`` then ranks the
        stored entries and fills short lists with unstored items in index order, which is
        what a dense ranking does up to the order of the tie; serving ranks the row the same
        way (:meth:`~segue.serving.session.SessionAdjuster.top_sparse`).
        """
        return None

    def score_history_sparse(self, history: sp.csr_matrix) -> sp.csr_matrix | None:
        """:meth:`score_history` held as :meth:`score_sparse` holds :meth:`score`; None:
        use ``score_history``."""
        return None

    def shared_scores(self) -> np.ndarray | None:
        """The one (n_items,) score row every listener gets, when ``score`` and
        ``score_history`` do not depend on the listener; None otherwise.

        A retrieval stage then ranks it once instead of scoring the whole catalog per request.
        """
        return None

    def _dot_factors(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(user vectors, item vectors) when ``score`` is exactly their dot product, else None.

        ``recommend`` then ranks with ``implicit``'s fused multiply-and-select, which never
        holds a dense (users, items) block and uses every core.
        """
        return None

    def query_space(self) -> tuple[Callable[[sp.csr_matrix], np.ndarray], np.ndarray] | None:
        """(query, item vectors) when the scores of rows of plays (weighted as the model's
        training matrix) are the dot products of ``query(rows)`` with the item vectors,
        which a retrieval stage can then search in a vector index; None otherwise."""
        return None

    def _block_scores(self, block: np.ndarray, dayparts: np.ndarray | None = None) -> _Scored:
        """One batch of users scored the cheapest way the model allows: by factors, sparse,
        or dense (see :func:`_top_of`), in their requests' context where the model reads it."""
        context: dict[str, Any] = {}
        if dayparts is not None and self.uses_context:
            context = {"dayparts": dayparts}
        factors = self._dot_factors()
        if factors is not None and factors[0].dtype == factors[1].dtype == np.float32:
            return _Scored(factors=(factors[0][block], factors[1]))
        sparse = self.score_sparse(block, **context)
        if sparse is not None:
            return _Scored(sparse=sparse)
        return _Scored(dense=self.score(block, **context).astype(np.float32, copy=False))

    def similar_items(self, items: Sequence[int] | np.ndarray, k: int = 10) -> np.ndarray:
        """Items most like each given item; by default by co-occurrence cosine."""
        raise SegueError(f"model {self.name!r} does not provide similar items")

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write ``params.json``, ``train.npz`` and ``arrays.npz`` into a folder, atomically.

        Subclasses describe their fitted state through ``_state``/``_restore`` (arrays) and, for
        nested models, ``_save_parts``/``_load_parts`` (sub-folders) and ``_meta`` (JSON).
        """
        train = self._fitted()
        tmp = path.with_name(path.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        meta = {"name": self.name, "params": self.params(), **self._meta()}
        (tmp / "params.json").write_text(json.dumps(meta, indent=2))
        sp.save_npz(tmp / "train.npz", train)
        np.savez(tmp / "arrays.npz", **self._state())
        self._save_parts(tmp)
        _replace_dir(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Self:
        meta = json.loads((path / "params.json").read_text())
        if meta["name"] != cls.name:
            raise SegueError(f"{path} holds a {meta['name']!r} model, not {cls.name!r}")
        model = cls(**meta["params"])
        model._train = sp.load_npz(path / "train.npz").tocsr()
        with np.load(path / "arrays.npz", allow_pickle=False) as arrays:
            model._restore({key: arrays[key] for key in arrays.files})
        model._load_parts(path, meta)
        return model

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        return None

    def _meta(self) -> dict[str, Any]:
        return {}

    def _save_parts(self, folder: Path) -> None:
        return None

    def _load_parts(self, folder: Path, meta: dict[str, Any]) -> None:
        return None

    def _fitted(self) -> sp.csr_matrix:
        if self._train is None:
            raise SegueError(f"model {self.name!r} is not fitted yet; call fit() first")
        return self._train


def fit_on(
    model: Recommender,
    data: Interactions,
    weighting: Weighting | None = None,
    side: SideInfo | None = None,
) -> Recommender:
    """``model`` fitted on ``data`` under ``weighting``, with the pairs' times for a model
    that reads them: the one way every trainer and evaluator fits a model on interactions."""
    matrix = data.matrix(weighting)
    if model.uses_pair_times:
        return model.fit(matrix, side, pair_times=data.pair_times())  # type: ignore[call-arg]
    return model.fit(matrix, side)


@dataclass(frozen=True)
class _Scored:
    """A batch of users' scores, held one of three ways (exactly one is set)."""

    factors: tuple[np.ndarray, np.ndarray] | None = None
    sparse: sp.csr_matrix | None = None
    dense: np.ndarray | None = None


def _top_of(
    scored: _Scored,
    k: int,
    seen: sp.csr_matrix | None,
    filters: Filters | None,
    blocked: np.ndarray | None,
    unstored: float,
    *,
    in_place: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Top k of one scored batch, seen and filtered items at -inf; ``in_place``: a dense
    batch is masked where it lies (no other list needs it), not copied — a copy of a block
    of a large catalog's rows costs about what ranking it does."""
    if scored.factors is not None:
        return _top_k_factors(*scored.factors, k, seen, blocked)
    if scored.sparse is not None:
        allowed = None if filters is None else filters.allowed
        return _top_k_sparse(scored.sparse, k, seen, allowed, unstored=unstored)
    assert scored.dense is not None
    dense = scored.dense if in_place else scored.dense.copy()
    if seen is not None:
        rows = np.repeat(np.arange(len(dense)), np.diff(seen.indptr))
        dense[rows, seen.indices] = -np.inf
    if filters is not None:
        dense[:, ~filters.allowed] = -np.inf
    return top_k(dense, k)


@dataclass
class _ListPlan:
    """One wanted list of :meth:`Recommender.recommend_many`: its sizes, its filters and the
    arrays the batches fill."""

    k: int
    final_k: int
    filters: Filters | None
    blocked: np.ndarray | None
    items: np.ndarray
    scores: np.ndarray

    @classmethod
    def of(cls, k: int, filters: Filters | None, n_items: int, n_users: int) -> _ListPlan:
        capped = filters is not None and filters.max_per_artist is not None
        final_k = min(k, n_items)
        k = min(max(4 * k, k + 50) if capped else k, n_items)  # room for the artist cap
        blocked = None if filters is None else np.flatnonzero(~filters.allowed)
        items = np.full((n_users, k), -1, dtype=np.int64)
        scores = np.full((n_users, k), -np.inf, dtype=np.float32)
        return cls(k, final_k, filters, blocked, items, scores)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(items, scores): -1 where no finite score, the artist cap applied."""
        items, scores = self.items, self.scores
        items[~np.isfinite(scores)] = -1
        if self.filters is None or self.filters.max_per_artist is None:
            return items, scores
        positions = self.filters.cap_positions(items, self.final_k)
        kept = positions >= 0
        safe = np.where(kept, positions, 0)
        items = np.where(kept, np.take_along_axis(items, safe, axis=1), -1)
        scores = np.where(kept, np.take_along_axis(scores, safe, axis=1), -np.inf)
        return items, scores.astype(np.float32)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k largest scores per row, best first.

    Ties are ordered by item index, also a tie straddling the k-th place, so that one
    listener scored at request time gets exactly the list a batch of listeners gets.
    """
    if k <= 0:
        return np.zeros((scores.shape[0], 0), np.intp), scores[:, :0]
    if k >= scores.shape[1]:
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return order, np.take_along_axis(scores, order, axis=1)
    single = _single_row_candidates(scores, k)
    if single is not None:  # one listener at request time: no full argpartition
        part = single[None, :]  # every item at or above the k-th score, ties included
    else:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        for r in _rows_cut_inside_a_tie(scores, part):  # those take the lowest tied indices
            row = scores[r]
            at_least_kth = np.flatnonzero(row >= row[part[r]].min())
            part[r] = at_least_kth[np.lexsort((at_least_kth, -row[at_least_kth]))][:k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    # by score desc, then by item index asc
    order = np.take_along_axis(part, np.lexsort((part, -part_scores), axis=1), axis=1)[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def _single_row_candidates(scores: np.ndarray, k: int) -> np.ndarray | None:
    """For one row (a listener at request time): the items at or above the k-th largest
    score, ties included; None when that shortcut does not apply (several rows, NaN)."""
    if scores.shape[0] != 1 or not 0 < k < scores.shape[1]:
        return None
    row = scores[0]
    part = np.flatnonzero(row >= kth_largest(row, k))
    return part if len(part) >= k else None


def _rows_cut_inside_a_tie(scores: np.ndarray, part: np.ndarray) -> np.ndarray:
    """Rows whose top k (``part``, from argpartition) left out an item tied with its k-th."""
    part_scores = np.take_along_axis(scores, part, axis=1)
    kth = part_scores.min(axis=1, keepdims=True)
    return np.flatnonzero((scores == kth).sum(axis=1) > (part_scores == kth).sum(axis=1))


class _RowIndices:
    """Rows of a CSR as objects with ``.indices``: what ``implicit``'s filter reads, no copies."""

    def __init__(self, matrix: sp.csr_matrix) -> None:
        self.indptr = matrix.indptr
        self.cols = matrix.indices

    def __getitem__(self, row: int) -> _RowIndices._Row:
        return _RowIndices._Row(self.cols[self.indptr[row] : self.indptr[row + 1]])

    @dataclass(frozen=True)
    class _Row:
        indices: np.ndarray


def _top_k_factors(
    query: np.ndarray,
    item_vectors: np.ndarray,
    k: int,
    seen: sp.csr_matrix | None,
    blocked: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top k of ``query @ item_vectors.T`` with masked items at -inf, ordered as ``top_k``.

    ``implicit`` multiplies in slices of 100 users on its own threads (BLAS held to one), so the
    scores are the same float32 products as the dense path's; its selection may break a tie
    straddling the k-th place differently, and the list is re-sorted by score, then index.
    """
    from implicit.cpu.topk import topk
    from threadpoolctl import threadpool_limits

    zero = ~query.any(axis=1)
    if zero.any():
        # a user without plays has the zero vector (ALS solves to exactly 0): every score is 0,
        # so the sparse ranking's fill gives the list without multiplying anything
        allowed = None
        if blocked is not None and len(blocked):
            allowed = np.ones(item_vectors.shape[0], dtype=bool)
            allowed[blocked] = False
        empty = sp.csr_matrix((int(zero.sum()), item_vectors.shape[0]), dtype=np.float32)
        parts = [
            _top_k_sparse(empty, k, None if seen is None else seen[zero], allowed),
            _top_k_factors(query[~zero], item_vectors, k, _rows(seen, ~zero), blocked)
            if (~zero).any()
            else (np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)),
        ]
        ids = np.empty((len(query), k), dtype=np.int64)
        values = np.empty((len(query), k), dtype=np.float32)
        ids[zero], values[zero] = parts[0]
        ids[~zero], values[~zero] = parts[1]
        return ids, values
    seen_rows = None if seen is None or seen.nnz == 0 else _RowIndices(seen.tocsr())
    filter_items = None if blocked is None or len(blocked) == 0 else blocked.astype(np.int32)
    with threadpool_limits(1, "blas"):
        ids, values = topk(
            item_vectors,
            np.ascontiguousarray(query),
            k,
            filter_query_items=seen_rows,
            filter_items=filter_items,
        )
    ids = ids.astype(np.int64)
    values = values.astype(np.float32, copy=False)
    values[values <= -np.finfo(np.float32).max] = -np.inf
    order = np.lexsort((ids, -values), axis=1)
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(values, order, axis=1)


def _rows(matrix: sp.csr_matrix | None, rows: np.ndarray) -> sp.csr_matrix | None:
    return None if matrix is None else take_rows(matrix, rows)


def _top_k_sparse(
    scores: sp.csr_matrix,
    k: int,
    seen: sp.csr_matrix | None,
    allowed: np.ndarray | None,
    unstored: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``top_k`` of sparse scores whose unstored entries score ``unstored`` and none lower
    but stored -inf entries; those, seen and disallowed items at -inf.

    Entries above ``unstored`` rank by score, then index; a list they leave short is filled
    with the lowest-index ``unstored`` items (a dense ``top_k`` picks those tied items by
    ``argpartition``).
    """
    scores = scores.tocsr()
    scores.sum_duplicates()
    n_rows, n_items = scores.shape
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(scores.indptr))
    cols = scores.indices.astype(np.int64)
    values = scores.data.astype(np.float32, copy=False)
    masked = values == -np.inf  # items the model masks itself: never a fill either
    masked_rows, masked_cols = rows[masked], cols[masked]
    keep = values > unstored
    if allowed is not None:
        keep &= allowed[cols]
    if seen is not None and seen.nnz:
        seen_rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(seen.indptr))
        seen_keys = np.unique(seen_rows * n_items + seen.indices)
        keep &= ~np.isin(rows * n_items + cols, seen_keys, assume_unique=False)
    items, out = rank_pairs(rows[keep], cols[keep], values[keep], n_rows, k)
    have = (items >= 0).sum(axis=1)
    candidates = np.arange(n_items) if allowed is None else np.flatnonzero(allowed)
    for r in np.flatnonzero(have < k):
        taken = items[r, : have[r]]
        excluded = np.concatenate([taken, masked_cols[masked_rows == r]])
        if seen is not None:
            excluded = np.concatenate([excluded, seen[r].indices])
        need = k - have[r]
        head = candidates[: need + len(excluded)]
        zeros = head[~np.isin(head, excluded)][:need]
        items[r, have[r] : have[r] + len(zeros)] = zeros
        out[r, have[r] : have[r] + len(zeros)] = unstored
    return items, out


def take_rows(matrix: sp.csr_matrix, rows: np.ndarray | Sequence[int]) -> sp.csr_matrix:
    """``matrix[rows]`` for a CSR matrix and an array of row numbers (or a row mask): the
    same matrix.

    Why not scipy's indexing: a request slices a listener's row several times (the model's
    training row, its 0/1 form, the friend graph), and scipy's fancy indexing costs ~70 µs
    per call on the 1M-listener matrix, mostly in index-dtype checks; this is ~15 µs.
    """
    matrix = matrix.tocsr()  # the same object when it already is one
    rows = np.asarray(rows).reshape(-1)
    n_rows = matrix.shape[0]
    if rows.dtype == bool:  # a mask over the rows, as scipy reads one
        if len(rows) != n_rows:
            raise IndexError(f"a row mask of {len(rows)} entries for {n_rows} rows")
        rows = np.flatnonzero(rows)
    rows = rows.astype(np.int64, copy=False)
    if len(rows) and (rows.min() < -n_rows or rows.max() >= n_rows):
        raise IndexError(f"row index out of range for a matrix of {n_rows} rows")
    rows = np.where(rows < 0, rows + n_rows, rows)
    starts = matrix.indptr[rows]
    lengths = matrix.indptr[rows + 1] - starts
    indptr = np.zeros(len(rows) + 1, dtype=matrix.indptr.dtype)
    np.cumsum(lengths, out=indptr[1:])
    if len(rows) == 1:
        taken: slice | np.ndarray = slice(int(starts[0]), int(starts[0] + lengths[0]))
    else:
        taken = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
    return sp.csr_matrix(
        (matrix.data[taken].copy(), matrix.indices[taken].copy(), indptr),
        shape=(len(rows), matrix.shape[1]),
    )


def sparse_state(matrix: sp.csr_matrix, prefix: str = "") -> dict[str, np.ndarray]:
    """A CSR matrix as plain arrays for ``np.savez`` (no pickling)."""
    return {
        f"{prefix}data": matrix.data,
        f"{prefix}indices": matrix.indices,
        f"{prefix}indptr": matrix.indptr,
        f"{prefix}shape": np.asarray(matrix.shape),
    }


def sparse_from_state(state: dict[str, np.ndarray], prefix: str = "") -> sp.csr_matrix:
    return sp.csr_matrix(
        (state[f"{prefix}data"], state[f"{prefix}indices"], state[f"{prefix}indptr"]),
        shape=tuple(int(n) for n in state[f"{prefix}shape"]),
    )


def _replace_dir(tmp: Path, final: Path) -> None:
    import shutil

    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


def checked_matrix(matrix: sp.spmatrix, where: str) -> sp.csr_matrix:
    """A float32 CSR copy with summed duplicates and sorted indices; anything that is not a
    sparse matrix, or holds non-finite values, is refused in one line naming ``where``."""
    if not sp.issparse(matrix):
        raise SegueError(f"{where}: expected a scipy sparse user×item matrix, got {type(matrix)}")
    csr = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    csr.sum_duplicates()
    csr.sort_indices()
    if not np.isfinite(csr.data).all():
        raise SegueError(f"{where}: interaction values must be finite")
    return csr
