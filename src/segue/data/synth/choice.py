"""How a listener picks what to play: a shortlist, then a softmax over it, without repeats.

The documented model (``docs/synthetic-world.md``, "Choosing tracks") is

    P(i | user u, genre g, time t)  ∝  p_i · exp(β · u·v_i + recency_i(t))   for i in genre g,

restricted to items released by t (and to non-explicit ones for kids profiles). Scoring all
100k tracks for each of millions of sessions is out of reach, so each session draws a
*shortlist* of M candidates from the popularity proposal p (within the genre) and plays tracks
drawn independently from softmax(log(multiplicity) + β·u·v + recency) over the distinct
candidates. This is sampling-importance-resampling: as M grows it converges to the formula
above; at the default M = 50 it *is* the generative model (the shortlist is what the listener
came across). Favourites, which must be distinct, are a Plackett-Luce (Gumbel top-k) draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY_MS = 86_400_000
_AFFINITY_BATCH = 4096


def row_categorical(probs: np.ndarray, u: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Column drawn from rows of ``probs`` (each summing to 1) with uniforms ``u``.

    Without ``rows``, ``u`` has one uniform per row of ``probs`` (or ``(rows, k)`` for k draws
    per row); with ``rows``, draw j uses row ``rows[j]`` and uniform ``u[j]``.
    """
    n, width = probs.shape
    cdf = np.cumsum(probs, axis=1, dtype=np.float64)
    cdf /= cdf[:, -1:]
    cdf[:, -1] = 1.0
    flat = (cdf + np.arange(n)[:, None]).ravel()
    u = np.minimum(u, 1 - 1e-9)
    if rows is not None:
        idx = np.searchsorted(flat, u + rows, side="right") - rows * width
        return np.minimum(idx, width - 1)
    u2 = u if u.ndim == 2 else u[:, None]
    shift = np.arange(n)[:, None]
    idx = np.minimum(np.searchsorted(flat, u2 + shift, side="right") - shift * width, width - 1)
    return idx if u.ndim == 2 else idx[:, 0]


@dataclass(frozen=True)
class Proposal:
    """Popularity proposal over groups: ``keys`` ascend, group g's keys lie in (g, g+1].

    ``order[j]`` is the item position of key j, so drawing ``g + U(0,1)`` and finding the first
    key above it picks an item of group g with probability proportional to its popularity.
    The search uses a guide table (one cell per item of the group: the first key above the
    cell's lower end), so a draw costs about two comparisons instead of a binary search.
    """

    keys: np.ndarray
    order: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray
    guide: np.ndarray

    @classmethod
    def grouped(cls, keys: np.ndarray, order: np.ndarray, n_groups: int) -> Proposal:
        group = np.minimum(np.ceil(keys).astype(np.int64) - 1, n_groups - 1)
        sizes = np.bincount(group, minlength=n_groups)
        starts = np.r_[0, np.cumsum(sizes)[:-1]]
        cell = np.arange(len(keys)) - starts[group]
        lower = group + cell / np.maximum(sizes[group], 1)
        guide = np.searchsorted(keys, lower, side="right")
        return cls(keys, np.asarray(order, dtype=np.int32), starts, sizes, guide)

    @classmethod
    def single(cls, items: np.ndarray, weights: np.ndarray) -> Proposal:
        cum = np.cumsum(weights, dtype=np.float64)
        keys = cum / cum[-1]
        keys[-1] = 1.0
        return cls.grouped(keys, np.asarray(items), 1)

    def draw(self, groups: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Item positions for groups (broadcast against ``u``) and uniforms ``u``."""
        shape = u.shape
        g = np.broadcast_to(np.asarray(groups, dtype=np.int64), shape).ravel()
        u = np.minimum(u.ravel(), 1 - 1e-9)  # g + u stays below g + 1 after rounding
        target = g + u
        size = self.sizes[g]
        cell = self.starts[g] + np.minimum((u * size).astype(np.int64), size - 1)
        idx = self.guide[cell]
        last = len(self.keys) - 1
        active = np.flatnonzero(self.keys[np.minimum(idx, last)] <= target)
        while len(active):
            idx[active] += 1
            still = self.keys[np.minimum(idx[active], last)] <= target[active]
            active = active[still & (idx[active] < last)]
        return self.order[np.minimum(idx, last)].reshape(shape)


@dataclass
class Shortlist:
    """Item tables the sampler scores candidates with (indexed by item position)."""

    latent: np.ndarray
    release_ms: np.ndarray
    explicit: np.ndarray
    affinity_scale: float
    recency_boost: float
    recency_days: float
    fallback: int

    def affinity(self, user_latent: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``u·v`` for each user row and each of its items (``items`` is (rows, k))."""
        out = np.empty(items.shape, dtype=np.float32)
        for lo in range(0, len(items), _AFFINITY_BATCH):
            hi = lo + _AFFINITY_BATCH
            v = np.take(self.latent, items[lo:hi], axis=0)  # faster than fancy indexing
            out[lo:hi] = np.matmul(v, user_latent[lo:hi, :, None])[..., 0]
        return out

    def score(
        self,
        rng: np.random.Generator,
        proposal: Proposal,
        user_latent: np.ndarray,
        groups: np.ndarray,
        at_ms: np.ndarray,
        kids: np.ndarray,
        size: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """A shortlist of ``size`` draws per row and the log-weight of each distinct candidate.

        ``groups`` is per row or per (row, candidate). Repeated draws collapse onto their first
        copy with weight log(multiplicity); unplayable candidates (repeats, unreleased at
        ``at_ms``, explicit for a kid) get -inf. A row with nothing playable gets the fallback
        track (released before the period, not explicit) in its first column.
        """
        rows = len(at_ms)
        g = groups if groups.ndim == 2 else groups[:, None]
        cand = proposal.draw(g, rng.random((rows, size)))
        cand.sort(axis=1)
        first = np.ones(cand.shape, dtype=bool)
        first[:, 1:] = cand[:, 1:] != cand[:, :-1]
        run = np.cumsum(first.ravel()) - 1
        multiplicity = np.bincount(run)[run].reshape(cand.shape) if rows else cand
        release = self.release_ms[cand]
        ok = first & (release <= at_ms[:, None])
        ok &= ~(kids[:, None] & self.explicit[cand])
        logit = np.log(multiplicity) + self.affinity_scale * self.affinity(user_latent, cand)
        if self.recency_boost:
            age_days = np.clip((at_ms[:, None] - release) / DAY_MS, 0, None)
            logit = logit + self.recency_boost * np.exp(-age_days / self.recency_days)
        logit = np.where(ok, logit, -np.inf)
        empty = ~ok.any(axis=1)
        cand[empty, 0] = self.fallback
        logit[empty, 0] = 0.0
        return cand.astype(np.int32), logit

    @staticmethod
    def sample(
        rng: np.random.Generator, cand: np.ndarray, logit: np.ndarray, row: np.ndarray
    ) -> np.ndarray:
        """One independent softmax draw from row ``row[j]`` of the shortlist, for each j."""
        if len(row) == 0:
            return np.zeros(0, dtype=np.int32)
        weight = np.exp(logit - logit.max(axis=1, keepdims=True))
        col = row_categorical(weight / weight.sum(axis=1, keepdims=True), rng.random(len(row)), row)
        return cand[row, col]

    @staticmethod
    def top(rng: np.random.Generator, cand: np.ndarray, logit: np.ndarray, k: int) -> np.ndarray:
        """Up to ``k`` distinct candidates per row in Plackett-Luce order (-1 pads)."""
        keys = np.where(np.isfinite(logit), logit + rng.gumbel(size=logit.shape), -np.inf)
        order = np.argsort(-keys, axis=1, kind="stable")[:, :k]
        picked = np.take_along_axis(cand, order, axis=1)
        picked[~np.isfinite(np.take_along_axis(keys, order, axis=1))] = -1
        return picked
