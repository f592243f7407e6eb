"""How a listener picks what to play: a shortlist, then a softmax over it, without repeats.

The documented model (``docs/synthetic-world.md``, "Choosing tracks") is

    P(i | user u, genre g, time t)  ∝  p_i · exp(β · u·v_i + recency_i(t))   for i in genre g,

restricted to items released by t (and to non-explicit ones for kids profiles). Scoring all
100k tracks for each of millions of sessions is out of reach, so each session draws a
*shortlist* of M candidates from the popularity proposal p (within the genre) and plays tracks
drawn from softmax(log(multiplicity) + β·u·v + recency) over the distinct candidates, in
Plackett-Luce order (a Gumbel top-k draw: sampling without replacement). This is
sampling-importance-resampling: as M grows it converges to the formula above; at the default
M = 50 it *is* the generative model (the shortlist is what the listener came across).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY_MS = 86_400_000
_AFFINITY_BATCH = 4096


def row_categorical(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index drawn from each row of ``probs`` (rows sum to 1) with uniforms ``u`` (per row,
    or ``(rows, k)`` for k draws per row)."""
    rows, width = probs.shape
    cdf = np.cumsum(probs, axis=1, dtype=np.float64)
    cdf /= cdf[:, -1:]
    cdf[:, -1] = 1.0
    flat = (cdf + np.arange(rows)[:, None]).ravel()
    u2 = u if u.ndim == 2 else u[:, None]
    shift = np.arange(rows)[:, None]
    idx = np.searchsorted(flat, np.minimum(u2, np.nextafter(1.0, 0)) + shift, side="right")
    idx = np.minimum(idx - shift * width, width - 1)
    return idx if u.ndim == 2 else idx[:, 0]


@dataclass(frozen=True)
class Proposal:
    """Popularity proposal over groups: ``keys`` ascend, group g's keys lie in (g, g+1].

    ``order[j]`` is the item position of key j, so drawing ``g + U(0,1)`` and searching the
    keys picks an item of group g with probability proportional to its popularity.
    """

    keys: np.ndarray
    order: np.ndarray

    @classmethod
    def single(cls, items: np.ndarray, weights: np.ndarray) -> Proposal:
        cum = np.cumsum(weights, dtype=np.float64)
        keys = cum / cum[-1]
        keys[-1] = 1.0
        return cls(keys=keys, order=np.asarray(items, dtype=np.int32))

    def draw(self, groups: np.ndarray, u: np.ndarray) -> np.ndarray:
        # keep g + u strictly below g + 1 even after float rounding
        pos = np.searchsorted(self.keys, groups + np.minimum(u, 1 - 1e-9), side="right")
        return self.order[np.minimum(pos, len(self.order) - 1)]


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
            v = self.latent[items[lo:hi]]
            out[lo:hi] = np.matmul(v, user_latent[lo:hi, :, None])[..., 0]
        return out

    def choose(
        self,
        rng: np.random.Generator,
        proposal: Proposal,
        user_latent: np.ndarray,
        groups: np.ndarray,
        at_ms: np.ndarray,
        kids: np.ndarray,
        n_pick: np.ndarray,
        size: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per row, up to ``n_pick`` distinct items in play order, and how many were picked.

        ``groups`` is per row or per (row, candidate). A row with no playable candidate
        (everything unreleased, or explicit for a kid) plays the fallback track.
        """
        rows = len(at_ms)
        if rows == 0:
            return np.zeros((0, 0), dtype=np.int32), np.zeros(0, dtype=np.int64)
        g = groups if groups.ndim == 2 else groups[:, None]
        cand = proposal.draw(g, rng.random((rows, size)))
        cand.sort(axis=1)
        first = np.ones(cand.shape, dtype=bool)
        first[:, 1:] = cand[:, 1:] != cand[:, :-1]
        run = np.cumsum(first.ravel()) - 1
        multiplicity = np.bincount(run)[run].reshape(cand.shape)
        release = self.release_ms[cand]
        ok = first & (release <= at_ms[:, None])
        ok &= ~(kids[:, None] & self.explicit[cand])
        logit = np.log(multiplicity) + self.affinity_scale * self.affinity(user_latent, cand)
        age_days = (at_ms[:, None] - release) / DAY_MS
        if self.recency_boost:
            recent = np.exp(-np.clip(age_days, 0, None) / self.recency_days)
            logit = logit + self.recency_boost * recent
        keys = np.where(ok, logit + rng.gumbel(size=cand.shape), -np.inf)
        k = int(min(max(int(n_pick.max()), 1), size))
        order = np.argsort(-keys, axis=1, kind="stable")[:, :k]
        picked = np.take_along_axis(cand, order, axis=1)
        n_ok = ok.sum(axis=1)
        taken = np.minimum(np.minimum(n_pick, n_ok), k)
        empty = n_ok == 0
        picked[empty, 0] = self.fallback
        taken[empty] = 1
        picked[np.arange(k)[None, :] >= taken[:, None]] = -1
        return picked.astype(np.int32), taken.astype(np.int64)


def geometric_capped_mean(mean: float, cap: int) -> float:
    """E[min(G, cap)] for G ~ Geometric(p = 1/mean) on {1, 2, ...}."""
    p = 1.0 / mean
    if p >= 1.0:
        return 1.0
    return (1 - (1 - p) ** cap) / p
