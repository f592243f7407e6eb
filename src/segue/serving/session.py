"""Session-aware re-ranking: what the listener did seconds ago changes the very next list.

The models are retrained hourly or daily; the online state (:mod:`segue.online.state`) knows
the skips, likes and plays of the current session. This module turns both into one list:

1. the user is scored from their history row (:meth:`Recommender.score_history`), which for
   ALS is the fold-in, so plays made since the last training already move the scores;
2. :class:`SessionAdjuster` puts the scores on a common scale and subtracts (skips) or adds
   (likes) a fixed amount per session count of the item's artist and genres;
3. seen and excluded items are masked and the top ``k`` kept.

Why a common scale: each model's scores have their own units (shares of listening, cosine
sums, dot products), so a fixed penalty only means the same thing for every model once the
scores are standardised. Standardised scores are then softly bounded (see
:func:`bounded_z_scores`) so that a heavy-tailed model (popularity) cannot put one item so far
ahead that no number of skips moves it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from segue.data.dayparts import UNKNOWN
from segue.dataset.catalog import ItemCatalog
from segue.dataset.idmap import IdMap
from segue.errors import SegueError
from segue.models.base import Recommender
from segue.online.state import SessionState
from segue.ranking import kth_largest

#: Standardised scores are squashed into (−SCORE_BOUND, +SCORE_BOUND).
SCORE_BOUND = 3.0
#: Defaults: one artist skip costs 2 bounded standard units, one genre skip 2 × 0.7 = 1.4.
#: Three skips of a genre cost 4.2 > SCORE_BOUND + 1, so every item of that genre ends below
#: −1.2 and hence below every unaffected item scoring above −1 standard deviation: in a
#: bell-shaped list that is the top ~84% of items, so the whole of any usual top-k list.
DEFAULT_SKIP_PENALTY = 2.0
DEFAULT_LIKE_BOOST = 1.0
DEFAULT_GENRE_WEIGHT = 0.7


def bounded_z_scores(scores: np.ndarray) -> np.ndarray:
    """z-scores over the finite entries, squashed by ``B·(2/π)·atan(z·π/(2B))``, ``B = 3``.

    The squash has slope 1 at 0 (ordinary scores stay nearly z-scores: 1 → 0.92, 2 → 1.54)
    and is strictly increasing, so the ranking is unchanged, but it never exceeds ``B``: that
    bound is what makes "three skips push a genre below the rest" hold for every model.
    Non-finite entries (masked items at −inf) are kept as they are; if all finite scores are
    equal they all become 0.
    """
    out = np.asarray(scores, dtype=np.float64).copy()
    finite = np.isfinite(out)
    if not finite.any():
        return out
    values = out[finite]
    std = values.std()
    z = (values - values.mean()) / std if std > 0 else np.zeros_like(values)
    out[finite] = _squash(z)
    return out


def _finite_mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of a 1-D array, in float64 but without a float64 copy:
    ``np.std(..., where=...)`` costs a millisecond per request on a 100k-item catalog, a
    centred dot product a tenth of that."""
    mean = float(values.mean(dtype=np.float64))
    centred = values - values.dtype.type(mean)
    return mean, float(np.sqrt(np.dot(centred, centred) / len(values)))


def _squash(z: np.ndarray) -> np.ndarray:
    scale = 2.0 * SCORE_BOUND / np.pi
    return scale * np.arctan(z / scale)


class SessionAdjuster:
    """Moves items by the session's skips and likes of their artist and genres.

    For item ``i`` with artist ``a`` and genres ``G``, the adjusted score is::

        bounded_z(score)[i]
          − skip_penalty · skips[a] + like_boost · likes[a]
          + genre_weight · Σ_{g ∈ G} (− skip_penalty · skips[g] + like_boost · likes[g])

    Genres weigh less than artists by default because a genre is broad: one skipped jazz track
    says less about all of jazz than about that one artist. Artists and genres the catalog does
    not know count nowhere (the session may name labels from newer catalog records).
    """

    def __init__(
        self,
        catalog: ItemCatalog,
        *,
        skip_penalty: float = DEFAULT_SKIP_PENALTY,
        like_boost: float = DEFAULT_LIKE_BOOST,
        genre_weight: float = DEFAULT_GENRE_WEIGHT,
    ) -> None:
        for name, value in (
            ("skip_penalty", skip_penalty),
            ("like_boost", like_boost),
            ("genre_weight", genre_weight),
        ):
            if not np.isfinite(value) or value < 0:
                raise SegueError(
                    f"SessionAdjuster: {name} must be a finite number >= 0, got {value!r}"
                )
        self.catalog = catalog
        self.skip_penalty = float(skip_penalty)
        self.like_boost = float(like_boost)
        self.genre_weight = float(genre_weight)
        self._artist_code = {artist: code for code, artist in enumerate(catalog.artist_ids)}
        self._genre_code = {genre: code for code, genre in enumerate(catalog.genre_names)}

    def adjust(self, scores: np.ndarray, session: SessionState | None) -> np.ndarray:
        """Adjusted (n_items,) float64 scores; without a session only the standardisation.

        Standardising never changes the order, so with ``session=None`` the ranking is the
        model's own; the scale is the same either way, so callers may blend the result.
        """
        scores = np.asarray(scores)
        n = len(self.catalog)
        if scores.ndim != 1 or scores.shape[0] != n:
            raise SegueError(
                f"SessionAdjuster.adjust: expected scores of shape ({n},) for the catalog's "
                f"{n} items, got {scores.shape}"
            )
        out = bounded_z_scores(scores)
        if session is None:
            return out
        delta = self.item_deltas(session)
        finite = np.isfinite(out)
        out[finite] += delta[finite]
        return out

    def top(
        self, scores: np.ndarray, session: SessionState | None, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` (items, adjusted scores) of :meth:`adjust`, without adjusting all.

        Same result as ranking ``adjust(scores, session)`` (ties by item index), at a
        fraction of the cost on a large catalog: items the session does not move keep the
        model's order (standardising and squashing are increasing), so only their top ``k``
        and the items the session moves need their adjusted score. That matters per request:
        the squash over 100k items costs more than scoring them.
        """
        scores = np.asarray(scores)
        n = len(self.catalog)
        if scores.ndim != 1 or scores.shape[0] != n:
            raise SegueError(
                f"SessionAdjuster.top: expected scores of shape ({n},) for the catalog's "
                f"{n} items, got {scores.shape}"
            )
        finite = np.isfinite(scores)
        count = int(finite.sum())
        if k <= 0 or count == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        # float32 scores stay float32 over the whole catalog (copies of 100k+ items add up);
        # only the statistics and the few candidates are computed in float64
        mean, std = _finite_mean_std(scores if count == n else scores[finite])
        delta = self.item_deltas(session) if session is not None and _counts(session) else None
        # a working copy in which moved and masked items drop out
        unmoved = scores.copy() if count == n else np.where(finite, scores, -np.inf)
        moved = np.zeros(0, np.int64)
        if delta is not None:
            moved = np.flatnonzero((delta != 0) & finite)
            unmoved[moved] = -np.inf
        live = count - len(moved)
        if live > k:
            kept = np.flatnonzero(unmoved >= kth_largest(unmoved, k))
        else:
            kept = np.flatnonzero(np.isfinite(unmoved))
        candidates = np.concatenate([kept, moved])
        raw = scores[candidates].astype(np.float64)
        return _ranked(candidates, raw, mean, std, delta, k)

    def top_sparse(
        self,
        scores: sp.csr_matrix,
        fill: float,
        excluded: np.ndarray,
        session: SessionState | None,
        k: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`top` of a (1, n_items) row held sparsely: ``fill`` for every unstored item
        (finite), stored -inf entries and the ``excluded`` items (a boolean mask) masked.

        Why: a staged model scores a few hundred candidates, the rest of a 132,660-item row
        at one value; ranking that row densely (copies, statistics, a partition) cost more
        per request than its ranker. The statistics come from the candidates and the count
        of the rest; when the top ``k`` would reach into the unstored items the dense row is
        built and ranked as :meth:`top` ranks it, so the result is the same.
        """
        n = len(self.catalog)
        if scores.shape != (1, n) or excluded.shape != (n,):
            raise SegueError(
                f"SessionAdjuster.top_sparse: expected a (1, {n}) row and a ({n},) mask, got "
                f"{scores.shape} and {excluded.shape}"
            )
        if not scores.has_sorted_indices:  # a product's rows may come unsorted
            scores = scores.sorted_indices()
        items = scores.indices.astype(np.int64)
        values = scores.data.astype(np.float64)
        masked = excluded.copy()
        masked[items[~np.isfinite(values)]] = True
        count = n - int(np.count_nonzero(masked))
        if k <= 0 or count == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        live = ~masked[items]
        items, values = items[live], values[live]
        n_fill = count - len(items)
        mean = (fill * n_fill + values.sum()) / count
        std = float(np.sqrt((n_fill * (fill - mean) ** 2 + ((values - mean) ** 2).sum()) / count))
        delta = self.item_deltas(session) if session is not None and _counts(session) else None
        moved = np.zeros(0, np.int64)
        unmoved = np.ones(len(items), dtype=bool)
        if delta is not None:
            moved = np.flatnonzero((delta != 0) & ~masked)
            unmoved = ~np.isin(items, moved)
        kth = kth_largest(values[unmoved], k) if unmoved.sum() >= k else -np.inf
        if not kth > fill:  # the top k reaches the unstored items: rank the dense row
            dense = np.full(n, fill, dtype=np.float64)
            dense[items] = values
            dense[masked] = -np.inf
            return self.top(dense, session, k)
        kept = items[unmoved & (values >= kth)]
        candidates = np.concatenate([kept, moved])
        raw = np.full(len(candidates), fill, dtype=np.float64)
        at = np.searchsorted(items, candidates)
        found = at < len(items)
        found[found] = items[at[found]] == candidates[found]
        raw[found] = values[at[found]]
        return _ranked(candidates, raw, mean, std, delta, k)

    def item_deltas(self, session: SessionState) -> np.ndarray:
        """The (n_items,) amount each item moves by in this session (0 for unaffected items)."""
        catalog = self.catalog
        by_artist = self._label_deltas(
            session.skips_by_artist,
            session.likes_by_artist,
            self._artist_code,
            len(catalog.artist_ids),
        )
        by_genre = self._label_deltas(
            session.skips_by_genre,
            session.likes_by_genre,
            self._genre_code,
            len(catalog.genre_names),
        )
        delta = np.zeros(len(catalog), dtype=np.float64)
        has_artist = catalog.artist >= 0
        if len(by_artist):
            delta[has_artist] += by_artist[catalog.artist[has_artist]]
        if len(by_genre):
            delta += self.genre_weight * np.asarray(catalog.genres @ by_genre).ravel()
        return delta

    def _label_deltas(
        self,
        skips: Mapping[str, int],
        likes: Mapping[str, int],
        codes: Mapping[str, int],
        size: int,
    ) -> np.ndarray:
        out = np.zeros(size, dtype=np.float64)
        for label, count in skips.items():
            code = codes.get(label)
            if code is not None:
                out[code] -= self.skip_penalty * count
        for label, count in likes.items():
            code = codes.get(label)
            if code is not None:
                out[code] += self.like_boost * count
        return out


def _ranked(
    candidates: np.ndarray,
    raw: np.ndarray,
    mean: float,
    std: float,
    delta: np.ndarray | None,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of ``candidates`` by adjusted score (raw standardised and squashed,
    plus the session's ``delta``), ties by item index."""
    adjusted = _squash((raw - mean) / std) if std > 0 else np.zeros(len(candidates))
    if delta is not None:
        adjusted = adjusted + delta[candidates]
    order = np.lexsort((candidates, -adjusted))[:k]
    return candidates[order].astype(np.int64), adjusted[order]


def _counts(session: SessionState) -> bool:
    """Whether the session skipped or liked anything (else nothing moves)."""
    return bool(
        session.skips_by_artist
        or session.skips_by_genre
        or session.likes_by_artist
        or session.likes_by_genre
    )


def history_from_recent(
    item_ids: Iterable[str], item_map: IdMap, base_row: sp.csr_matrix | None
) -> sp.csr_matrix:
    """The user's training row plus 1 per recent play: a (1, n_items) float32 history row.

    Why: ``score_history`` (the ALS fold-in, the item-kNN sum) reads this row, so plays made
    since the last training move the user's scores without retraining. Plays of items the
    model was not trained on (newer than its item map) are left out: no column can hold them.
    A play counts 1 whatever the training weighting, a deliberate approximation: one fresh
    play should count about as much as one unit of the weighted matrix.
    """
    n = len(item_map)
    if base_row is None:
        base = sp.csr_matrix((1, n), dtype=np.float32)
    else:
        base = sp.csr_matrix(base_row, dtype=np.float32)
        if base.shape != (1, n):
            raise SegueError(
                f"history_from_recent: base_row must have shape (1, {n}) for the item map's "
                f"{n} items, got {base.shape}"
            )
    columns = np.asarray(item_map.to_index(list(item_ids), allow_unknown=True), dtype=np.int64)
    columns = columns[columns >= 0]
    if len(columns) == 0:
        return base.copy()
    recent = sp.csr_matrix(
        (
            np.ones(len(columns), dtype=np.float32),
            (np.zeros(len(columns), dtype=np.int64), columns),
        ),
        shape=(1, n),
    )
    row = (base + recent).tocsr()
    row.sum_duplicates()
    row.sort_indices()
    return row


def _history_scores(
    model: Recommender, history: sp.csr_matrix, user_row: int | None, daypart: int
) -> sp.csr_matrix | None:
    """``model.score_history_sparse(history)``, telling a model that weighs plays by their
    recency whose training row the history extends (its trained plays keep their weights),
    and a model that reads the context the request's daypart."""
    extra: dict[str, np.ndarray] = _context(model, daypart)
    if model.uses_pair_times and user_row is not None and user_row >= 0:
        extra["known"] = np.array([user_row], dtype=np.int64)
    return model.score_history_sparse(history, **extra)


def _context(model: Recommender, daypart: int) -> dict[str, np.ndarray]:
    """The request's context as the model's scorers take it (nothing for one without)."""
    if not model.uses_context:
        return {}
    return {"dayparts": np.array([daypart], dtype=np.int8)}


def rerank_for_session(
    model: Recommender,
    user_row: int | None,
    history_row: sp.csr_matrix | None,
    catalog: ItemCatalog,
    session: SessionState | None,
    k: int,
    exclude: Sequence[int] | np.ndarray | None = None,
    *,
    adjuster: SessionAdjuster | None = None,
    exclude_seen: bool = True,
    scores: np.ndarray | None = None,
    daypart: int = UNKNOWN,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` (item indices, adjusted scores) for one user, best first.

    The user is scored from ``history_row`` (``model.score_history``: fresh plays count
    without retraining); without one, from their training row ``user_row``
    (``model.score``). Items in ``history_row`` are masked when ``exclude_seen``, and so are
    the item indices (or the boolean item mask) in ``exclude``. The lists may be shorter than
    ``k`` when fewer items are left; ties are broken by item index, so the result is
    deterministic. ``adjuster`` defaults to a :class:`SessionAdjuster` with its defaults.
    ``scores``, if given, are the model's scores of ``history_row`` computed by the caller
    (e.g. from a fold-in vector it also stores), used instead of scoring it again.
    ``daypart``: the listener's local daypart now, for a model that reads the context.
    """
    n = len(catalog)
    if k < 0:
        raise SegueError(f"rerank_for_session: k must be >= 0, got {k}")
    if history_row is not None:
        history = sp.csr_matrix(history_row, dtype=np.float32)
        if history.shape != (1, n):
            raise SegueError(
                f"rerank_for_session: history_row must have shape (1, {n}) for the catalog's "
                f"{n} items, got {history.shape}"
            )
        sparse = _history_scores(model, history, user_row, daypart) if scores is None else None
        if sparse is not None and sparse.shape == (1, n):  # a model with few candidates
            excluded = _excluded(exclude, n).copy()
            if exclude_seen:
                excluded[history.indices] = True
            adjuster = adjuster or SessionAdjuster(catalog)
            return adjuster.top_sparse(sparse.tocsr(), model.unstored_score, excluded, session, k)
        raw = model.score_history(history, **_context(model, daypart)) if scores is None else scores
    elif user_row is not None:
        history = None
        one = np.asarray([user_row], dtype=np.int64)
        sparse = model.score_sparse(one, **_context(model, daypart))
        if sparse is not None and sparse.shape == (1, n):  # a model with few candidates
            excluded = _excluded(exclude, n)
            adjuster = adjuster or SessionAdjuster(catalog)
            return adjuster.top_sparse(sparse.tocsr(), model.unstored_score, excluded, session, k)
        raw = model.score(one, **_context(model, daypart))
    else:
        raise SegueError("rerank_for_session: give a history_row or a user_row to score")
    raw = np.asarray(raw).reshape(-1)
    if raw.dtype not in (np.float32, np.float64):
        raw = raw.astype(np.float64)
    if raw.shape[0] != n:
        raise SegueError(
            f"rerank_for_session: model {model.name!r} scores {raw.shape[0]} items, "
            f"the catalog has {n}; were they built from the same item map?"
        )
    masked = raw.copy()
    if exclude_seen and history is not None:
        masked[history.indices] = -np.inf
    if exclude is not None:
        exclude = np.asarray(exclude)
        if exclude.dtype == bool and exclude.shape == (n,):
            masked[exclude] = -np.inf  # a mask applies directly, without listing its items
        else:
            masked[_exclude_indices(exclude, n)] = -np.inf
    return (adjuster or SessionAdjuster(catalog)).top(masked, session, k)


def _excluded(exclude: Sequence[int] | np.ndarray | None, n: int) -> np.ndarray:
    """``exclude`` (item indices or a boolean mask) as a boolean mask over the n items."""
    arr = np.asarray(exclude) if exclude is not None else np.zeros(0, np.int64)
    if arr.dtype == bool and arr.shape == (n,):
        return arr
    mask = np.zeros(n, dtype=bool)
    mask[_exclude_indices(arr, n)] = True
    return mask


def _exclude_indices(exclude: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    arr = np.asarray(exclude)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise SegueError(
                f"rerank_for_session: a boolean exclude mask must have shape ({n},), "
                f"got {arr.shape}"
            )
        return np.flatnonzero(arr)
    arr = arr.astype(np.int64).reshape(-1)
    bad = arr[(arr < 0) | (arr >= n)]
    if len(bad):
        raise SegueError(
            f"rerank_for_session: exclude holds item indices outside 0..{n - 1}: {bad[:5].tolist()}"
        )
    return arr
