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

    Plain Python on purpose: a playlist is 25-50 tracks, where a NumPy call per step costs
    more than the arithmetic (this runs for every mix of every user in the daily batch).
    """
    artist_list = [int(a) for a in np.asarray(artists, dtype=np.int64)]
    n = len(artist_list)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    strong = [float(x) for x in np.asarray(strength, dtype=np.float64)]
    costs = _cost_matrix(tempo, energy, n)
    # artists as groups 0..u-1; unknown artists each their own group
    codes: dict[int, int] = {}
    group = []
    for position, artist in enumerate(artist_list):
        key = artist if artist >= 0 else -1 - position
        group.append(codes.setdefault(key, len(codes)))
    counts = [0] * len(codes)
    for g in group:
        counts[g] += 1
    low, high = min(strong), max(strong)
    span = high - low
    pull = [STRENGTH_PULL * (x - low) / span if span > 0 else 0.0 for x in strong]

    # the opener: the strongest track whose artist leaves a repeat-free rest possible
    left = list(range(n))
    ok = _feasible(left, group, counts, -1, n - 1) or _least_repeats(left, group, counts, -1)
    best = min(ok, key=lambda c: (-strong[c], c))
    order = [best]
    left.remove(best)
    counts[group[best]] -= 1
    prev = group[best]
    for step in range(1, n):
        remaining = n - step - 1
        row = costs[best]
        best, best_value = -1, 0.0
        if max(counts) <= remaining // 2:  # the usual case: any other artist keeps it possible
            for c in left:  # in position order, so ties go to the lower position
                if group[c] != prev:
                    value = row[c] - pull[c]
                    if best < 0 or value < best_value:
                        best, best_value = c, value
        if best < 0:
            ok = _feasible(left, group, counts, prev, remaining)
            ok = ok or _least_repeats(left, group, counts, prev)
            for c in ok:
                value = row[c] - pull[c]
                if best < 0 or value < best_value:
                    best, best_value = c, value
        order.append(best)
        left.remove(best)
        counts[group[best]] -= 1
        prev = group[best]
    return np.asarray(order, dtype=np.int64)


def _cost_matrix(tempo: np.ndarray | None, energy: np.ndarray | None, n: int) -> list[list[float]]:
    """costs[a][b]: scaled tempo and energy distance of a → b (NEUTRAL_COST without audio),
    computed at once and read as lists by the walk."""
    if tempo is None or energy is None:
        return [[NEUTRAL_COST] * n for _ in range(n)]
    t = np.asarray(tempo, dtype=np.float64)
    e = np.asarray(energy, dtype=np.float64)
    cost = np.abs(t[:, None] - t[None, :]) / TEMPO_SCALE
    cost += np.abs(e[:, None] - e[None, :]) / ENERGY_SCALE
    return np.where(np.isfinite(cost), cost, NEUTRAL_COST).tolist()


def _least_repeats(left: list[int], group: list[int], counts: list[int], prev: int) -> list[int]:
    """When repeats are unavoidable the fewest come from using up the largest artist first
    (never straight after itself while another artist is left)."""
    other = [c for c in left if group[c] != prev] or left
    biggest = max(counts[group[c]] for c in other)
    return [c for c in other if counts[group[c]] == biggest]


def _feasible(
    left: list[int], group: list[int], counts: list[int], prev: int, remaining: int
) -> list[int]:
    """The candidates that keep a repeat-free arrangement of the rest possible.

    After taking a track of artist ``a``, ``m = remaining`` tracks follow, the first of which
    must not be ``a``: that works iff ``a`` has at most ``m // 2`` of them left and every other
    artist at most ``(m + 1) // 2``.
    """
    first = second = 0
    top = -1
    for g, c in enumerate(counts):
        if c > first:
            first, second, top = c, first, g
        elif c > second:
            second = c
    half_down, half_up = remaining // 2, (remaining + 1) // 2
    if first <= half_down:  # no artist near half of what is left: any other artist will do
        return [c for c in left if group[c] != prev]
    ok = []
    for c in left:
        g = group[c]
        if g == prev or counts[g] - 1 > half_down:
            continue
        if (second if g == top else first) > half_up:
            continue
        ok.append(c)
    return ok
