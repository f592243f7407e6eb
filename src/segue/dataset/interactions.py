"""What models train on: unique (user, item) pairs with summed counts, and their matrices.

:meth:`Interactions.from_log` reads a columnar :class:`~segue.data.log.InteractionLog` and

1. drops Focus-Mode events, always: a user who asked for focus listening not to shape their
   profile gets that promise kept by every model, whatever the caller passed in;
2. keeps the positive event types of an :class:`EventFilter` (plays, likes, ...) and, apart,
   its negative ones (skips, dislikes), so that a model can use them or ignore them;
3. weighs each event (its ``count``, optionally :class:`~segue.dataset.weighting.TimeDecay`ed)
   and sums duplicate pairs: Last.fm rows carry a play count, a raw log repeats the pair.

Pairs are kept sorted by (user, item) and unique; the CSR matrix is built straight from them.
The id maps cover the log's whole vocabulary, so users without events still own a row (the store
lists every user it knows) and every split of the same data shares rows and columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from segue.data.log import InteractionLog
from segue.data.model import EVENT_CODES, EventType
from segue.dataset.idmap import IdMap
from segue.dataset.weighting import MS_PER_DAY, Binary, Counts, Recency, TimeDecay, Weighting
from segue.errors import DatasetError

#: ``user_last_ts`` of a user without pairs.
NO_TIMESTAMP = np.iinfo(np.int64).min

DEFAULT_POSITIVE: tuple[EventType, ...] = (
    EventType.PLAY,
    EventType.LIKE,
    EventType.ADD_TO_PLAYLIST,
    EventType.FOLLOW,
)
DEFAULT_NEGATIVE: tuple[EventType, ...] = (EventType.SKIP, EventType.DISLIKE)


@dataclass(frozen=True)
class EventFilter:
    """Which event types say "the user wants this" and which say "the user does not"."""

    positive: tuple[EventType, ...] = DEFAULT_POSITIVE
    negative: tuple[EventType, ...] = DEFAULT_NEGATIVE

    def __post_init__(self) -> None:
        clean = {}
        for side in ("positive", "negative"):
            values = getattr(self, side)
            if isinstance(values, str):
                values = (values,)
            try:
                types = tuple(dict.fromkeys(EventType(str(v)) for v in values))
            except ValueError as exc:
                raise DatasetError(
                    f"EventFilter.{side}: {exc}; known types: {[t.value for t in EventType]}"
                ) from exc
            clean[side] = types
            object.__setattr__(self, side, types)
        if not clean["positive"]:
            raise DatasetError("EventFilter.positive is empty: no event would count as positive")
        both = sorted(set(clean["positive"]) & set(clean["negative"]))
        if both:
            raise DatasetError(
                f"EventFilter: {[t.value for t in both]} cannot be both positive and negative"
            )

    def codes(self, side: str) -> np.ndarray:
        return np.array([EVENT_CODES[t.value] for t in getattr(self, side)], dtype=np.uint8)


@dataclass(frozen=True, eq=False)  # arrays: compare explicitly, never by ==
class Pairs:
    """Aggregated (user, item) pairs, sorted by user then item, each pair once.

    ``count`` sums the events' counts; ``value`` sums their weights (equal to ``count`` unless
    a time decay was applied); ``last_ts`` is the newest event's epoch milliseconds.
    """

    user: np.ndarray
    item: np.ndarray
    count: np.ndarray
    value: np.ndarray
    last_ts: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    @classmethod
    def empty(cls) -> Pairs:
        return cls(
            user=np.zeros(0, np.int32),
            item=np.zeros(0, np.int32),
            count=np.zeros(0, np.int64),
            value=np.zeros(0, np.float64),
            last_ts=np.zeros(0, np.int64),
        )

    def select(self, mask: np.ndarray) -> Pairs:
        """A subset; sorting and uniqueness survive any boolean mask."""
        return Pairs(
            user=self.user[mask],
            item=self.item[mask],
            count=self.count[mask],
            value=self.value[mask],
            last_ts=self.last_ts[mask],
        )

    def keys(self, n_items: int) -> np.ndarray:
        """One int64 per pair, ordered as the pairs are: ``user * n_items + item``."""
        return self.user.astype(np.int64) * n_items + self.item

    def csr(self, values: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
        indptr = np.zeros(shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.user, minlength=shape[0]), out=indptr[1:])
        return sp.csr_matrix(
            (np.asarray(values, dtype=np.float32), self.item.astype(np.int32), indptr),
            shape=shape,
        )


@dataclass(frozen=True, eq=False)
class Interactions:
    """Positive pairs (and, apart, negative ones) over fixed user and item maps.

    Build with :meth:`from_log`; splitters return parts that share ``users`` and ``items`` with
    the whole, so that their matrices align row for row and column for column.
    """

    users: IdMap
    items: IdMap
    pairs: Pairs
    negatives: Pairs = field(default_factory=Pairs.empty)
    weighting: Weighting = field(default_factory=Counts)

    @classmethod
    def from_log(
        cls,
        log: InteractionLog,
        *,
        events: EventFilter | None = None,
        weighting: Weighting | None = None,
        decay: TimeDecay | None = None,
        values: str = "count",
    ) -> Interactions:
        """Aggregate a log; see the module docstring for what is kept and how.

        ``values="rating"``: an event weighs its rating instead of its count where it has
        one (explicit feedback: a 5 says more than a 2), so weightings that read magnitudes
        (counts, BM25, confidence, log scale) see the ratings; ``Binary`` still ignores them.
        """
        if values not in ("count", "rating"):
            raise DatasetError(f"values must be 'count' or 'rating', got {values!r}")
        events = events or EventFilter()
        weighting = weighting or Counts()
        if not isinstance(weighting, Weighting):
            raise DatasetError(
                f"weighting must be a segue.dataset weighting (e.g. BM25()), got {weighting!r}"
            )
        users = IdMap(log.user_ids, name="user")
        items = IdMap(log.item_ids, name="item")
        _check_key_space(len(users), len(items))
        personal = ~log.focus
        positive = personal & np.isin(log.type, events.codes("positive"))
        if not positive.any():
            kinds = ", ".join(t.value for t in events.positive)
            raise DatasetError(
                f"no positive interactions: the log has {len(log)} events, "
                f"{int(log.focus.sum())} of them Focus-Mode (always excluded), and none of the "
                f"rest is of a positive type ({kinds})"
            )
        negative = personal & np.isin(log.type, events.codes("negative"))
        if decay is not None and decay.reference_ms is None:
            # One reference for both sides, so a skip and a play of the same day weigh alike.
            decay = replace(decay, reference_ms=int(log.ts_ms[positive | negative].max()))
        return cls(
            users=users,
            items=items,
            pairs=_aggregate(log, positive, len(items), decay, values == "rating"),
            negatives=_aggregate(log, negative, len(items), decay),
            weighting=weighting,
        )

    # -- shape ---------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.users), len(self.items))

    def __len__(self) -> int:
        """Number of positive pairs."""
        return len(self.pairs)

    def __repr__(self) -> str:
        return (
            f"Interactions({self.n_users} users x {self.n_items} items, {len(self.pairs)} pairs, "
            f"{len(self.negatives)} negative pairs, weighting={self.weighting!r})"
        )

    # -- matrices ------------------------------------------------------------------------
    def matrix(self, weighting: Weighting | None = None) -> sp.csr_matrix:
        """User×item CSR (float32) of the pairs under ``weighting`` (default: this object's).

        A fresh matrix each call, so a model may modify it in place.
        """
        weighting = weighting or self.weighting
        if isinstance(weighting, Recency):  # weighs pairs by time, which a matrix has lost
            return self.pairs.csr(weighting.pair_values(self.pairs.last_ts), self.shape)
        raw = self.pairs.csr(self.pairs.value, self.shape)
        return weighting.apply(raw)

    def pair_times(self) -> sp.csr_matrix:
        """User×item CSR (float64) of each pair's newest event in days since the epoch: the
        pairs of :meth:`matrix`, in its order, for models that weigh plays by how recent
        they are (``Recommender.uses_pair_times``)."""
        days = self.pairs.last_ts.astype(np.float64) / MS_PER_DAY
        csr = self.pairs.csr(np.ones(len(self.pairs), np.float32), self.shape)
        return sp.csr_matrix((days, csr.indices, csr.indptr), shape=self.shape)

    def binary_matrix(self) -> sp.csr_matrix:
        """1 per positive pair: what ranking metrics and "exclude seen" need."""
        return self.matrix(Binary())

    def negative_matrix(self) -> sp.csr_matrix:
        """User×item CSR (float32) of summed negative values (skips, dislikes).

        Not weighted, but decayed like the positives when ``from_log`` was given a decay.
        """
        return self.negatives.csr(self.negatives.value, self.shape)

    def user_last_ts(self) -> np.ndarray:
        """Newest positive event per user (epoch ms); :data:`NO_TIMESTAMP` for users without."""
        out = np.full(self.n_users, NO_TIMESTAMP, dtype=np.int64)
        if len(self.pairs):
            user = self.pairs.user
            starts = np.flatnonzero(np.concatenate(([True], user[1:] != user[:-1])))
            out[user[starts]] = np.maximum.reduceat(self.pairs.last_ts, starts)
        return out

    def user_counts(self) -> np.ndarray:
        """Positive pairs per user."""
        return np.bincount(self.pairs.user, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        """Positive pairs per item (distinct users)."""
        return np.bincount(self.pairs.item, minlength=self.n_items)

    # -- derived copies ------------------------------------------------------------------
    def with_weighting(self, weighting: Weighting) -> Interactions:
        return replace(self, weighting=weighting)

    def subset(self, mask: np.ndarray, negatives_mask: np.ndarray | None = None) -> Interactions:
        """The pairs where ``mask`` holds (and negatives where ``negatives_mask`` holds, or none).

        Keeps the maps and the weighting; splitters are built on this.
        """
        negatives = (
            Pairs.empty() if negatives_mask is None else self.negatives.select(negatives_mask)
        )
        return replace(self, pairs=self.pairs.select(mask), negatives=negatives)

    def same_space(self, other: Interactions) -> bool:
        """True when both index users and items identically (matrices align)."""
        return self.users == other.users and self.items == other.items


def _check_key_space(n_users: int, n_items: int) -> None:
    if n_users * n_items >= 2**63:
        raise DatasetError(
            f"{n_users} users x {n_items} items exceed the 2**63 pair keys this layer can index"
        )


def _aggregate(
    log: InteractionLog,
    mask: np.ndarray,
    n_items: int,
    decay: TimeDecay | None,
    rated: bool = False,
) -> Pairs:
    """Sum the selected events per (user, item): one sort, then segment reductions.

    ``rated``: values sum each event's rating (its count where it has none) instead.
    """
    if not mask.any():
        return Pairs.empty()
    user = log.user[mask]
    item = log.item[mask]
    key = user.astype(np.int64) * n_items + item
    # Decayed weights are floats: a stable order makes their sums identical on every CPU.
    order = np.argsort(key, kind="stable" if decay is not None else "quicksort")
    key = key[order]
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    ts = log.ts_ms[mask][order]
    count = log.count[mask][order].astype(np.int64)
    summed_count = np.add.reduceat(count, starts)
    weight: np.ndarray = count
    if rated:
        rating = log.rating[mask][order]
        weight = np.where(np.isnan(rating), count, rating * count)
    if decay is None:
        value = np.add.reduceat(weight.astype(np.float64), starts)
    else:
        value = np.add.reduceat(decay.event_weights(ts, weight), starts)
    first_of_pair = order[starts]
    return Pairs(
        user=user[first_of_pair],
        item=item[first_of_pair],
        count=summed_count,
        value=value,
        last_ts=np.maximum.reduceat(ts, starts),
    )


def ensure_interactions(data: object, where: str) -> Interactions:
    """The argument check every splitter starts with."""
    if not isinstance(data, Interactions):
        raise DatasetError(
            f"{where} needs an Interactions (build one with Interactions.from_log), "
            f"got {type(data).__name__}"
        )
    if len(data.pairs) == 0:
        raise DatasetError(f"{where}: there are no positive pairs to split")
    return data
