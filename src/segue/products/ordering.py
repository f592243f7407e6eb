"""Flow ordering of a playlist: a strong opener, no artist twice in a row, smooth transitions.

A greedy walk: the strongest track opens, then each next track is the one closest in tempo and
energy to the current one (a small pull towards stronger tracks keeps the best ones from all
sinking to the end). Two rules are hard:

* never the same artist twice in a row, whenever the artists' counts allow it: a step is only
  taken if the tracks left can still be arranged without a repeat (no artist holds more than
  half of what is left), so the walk never paints itself into a corner;
* tracks without an artist count as their own artist.

When one artist holds more than half of the tracks, repeats cannot be avoided; the walk then
places that artist's tracks first wherever it may, which leaves the fewest repeats.

Tracks without audio features get a neutral transition cost, so a catalog without audio
still gets the artist rule and the opener.
"""

from __future__ import annotations

import numba
import numpy as np

#: A tempo step of this many BPM costs as much as an energy step of ENERGY_SCALE.
TEMPO_SCALE = 20.0
ENERGY_SCALE = 0.15
#: Transition cost when either side lacks audio features (about one "typical" step).
NEUTRAL_COST = 1.0
#: Weight of a track's strength (0..1) against the transition cost when choosing the next one.
STRENGTH_PULL = 0.5


def flow_order(
    artists: np.ndarray,
    strength: np.ndarray,
    tempo: np.ndarray | None = None,
    energy: np.ndarray | None = None,
) -> np.ndarray:
    """A permutation of ``range(n)`` in flow order; see the module docstring.

    ``artists``: int artist code per track (negative: unknown, each its own artist);
    ``strength``: higher opens the list and is pulled forward (ties: lower position);
    ``tempo``/``energy``: per-track audio features, NaN where unknown. Deterministic.

    The walk is compiled (numba): it runs for every mix of every user in the daily batch, and
    a 30-track walk is ~900 tiny steps, 0.2 ms in plain Python against a few µs compiled.
    """
    if len(artists) == 0:
        return np.zeros(0, dtype=np.int64)
    if tempo is None or energy is None:
        tempo = energy = np.full(len(artists), np.nan)
    return _walk(
        np.asarray(artists, dtype=np.int64),
        np.asarray(strength, dtype=np.float64),
        np.asarray(tempo, dtype=np.float64),
        np.asarray(energy, dtype=np.float64),
    )


@numba.njit(cache=True)
def _walk(artists, strong, tempo, energy):  # pragma: no cover - compiled; tested via flow_order
    n = len(artists)
    # artists as groups 0..u-1 in order of first appearance; unknown artists each their own
    group = np.empty(n, dtype=np.int64)
    counts = np.zeros(n, dtype=np.int64)
    groups = 0
    for i in range(n):
        group[i] = -1
        if artists[i] >= 0:
            for j in range(i):
                if artists[j] == artists[i]:
                    group[i] = group[j]
                    break
        if group[i] < 0:
            group[i] = groups
            groups += 1
        counts[group[i]] += 1
    low, high = strong.min(), strong.max()
    span = high - low
    pull = np.zeros(n)
    if span > 0:
        for i in range(n):
            pull[i] = STRENGTH_PULL * (strong[i] - low) / span
    left = np.ones(n, dtype=np.bool_)
    ok = np.zeros(n, dtype=np.bool_)
    order = np.empty(n, dtype=np.int64)
    # the opener: the strongest track whose artist leaves a repeat-free rest possible
    _allowed(left, group, counts, -1, n - 1, ok)
    best = -1
    for c in range(n):
        if ok[c] and (best < 0 or strong[c] > strong[best]):
            best = c
    order[0] = best
    left[best] = False
    counts[group[best]] -= 1
    prev = group[best]
    for step in range(1, n):
        remaining = n - step - 1
        current = best
        best, best_value = -1, 0.0
        _allowed(left, group, counts, prev, remaining, ok)
        for c in range(n):  # in position order, so ties go to the lower position
            if ok[c]:
                value = _cost(tempo, energy, current, c) - pull[c]
                if best < 0 or value < best_value:
                    best, best_value = c, value
        order[step] = best
        left[best] = False
        counts[group[best]] -= 1
        prev = group[best]
    return order


@numba.njit(cache=True)
def _cost(tempo, energy, a, b):  # pragma: no cover - compiled
    """Scaled tempo and energy distance of a → b; NEUTRAL_COST without audio on either side."""
    cost = abs(tempo[a] - tempo[b]) / TEMPO_SCALE + abs(energy[a] - energy[b]) / ENERGY_SCALE
    return cost if np.isfinite(cost) else NEUTRAL_COST


@numba.njit(cache=True)
def _allowed(left, group, counts, prev, remaining, ok):  # pragma: no cover - compiled
    """Mark in ``ok`` the tracks that may come next.

    After taking a track of artist ``a``, ``m = remaining`` tracks follow, the first of which
    must not be ``a``: that works iff ``a`` has at most ``m // 2`` of them left and every other
    artist at most ``(m + 1) // 2``. When no track keeps the rest repeat-free, repeats cannot
    be avoided and the fewest come from using up the largest artist first (never straight
    after itself while another artist is left).
    """
    n = len(group)
    first = second = 0
    top = -1
    for g in range(n):
        c = counts[g]
        if c > first:
            first, second, top = c, first, g
        elif c > second:
            second = c
    half_down, half_up = remaining // 2, (remaining + 1) // 2
    found = False
    for c in range(n):
        g = group[c]
        ok[c] = left[c] and g != prev
        # with an artist near half of what is left, check that each choice keeps it possible
        crowded = counts[g] - 1 > half_down or (second if g == top else first) > half_up
        if ok[c] and first > half_down and crowded:
            ok[c] = False
        found = found or ok[c]
    if found:
        return
    other = False
    for c in range(n):
        other = other or (left[c] and group[c] != prev)
    biggest = 0
    for c in range(n):
        if left[c] and (group[c] != prev or not other):
            biggest = max(biggest, counts[group[c]])
    for c in range(n):
        ok[c] = left[c] and (group[c] != prev or not other) and counts[group[c]] == biggest
