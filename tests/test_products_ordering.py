"""Flow ordering: a strong opener, never one artist twice in a row, smooth tempo and energy."""

from __future__ import annotations

import numpy as np
import pytest

from segue.products.ordering import flow_order


def _repeats(order: np.ndarray, artists: np.ndarray) -> int:
    seq = artists[order]
    return int(np.sum((seq[1:] == seq[:-1]) & (seq[1:] >= 0)))


@pytest.mark.parametrize("seed", range(30))
def test_no_artist_twice_in_a_row_whenever_possible(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 40))
    # skewed artist counts, but no artist above half the list: a repeat-free order exists
    artists = rng.zipf(1.6, size=n) % 7
    while np.bincount(artists).max() > (n + 1) // 2:
        artists[np.argmax(artists == np.bincount(artists).argmax())] = rng.integers(7, 100)
    strength = rng.random(n)
    tempo = rng.uniform(70, 170, n)
    energy = rng.random(n)
    order = flow_order(artists, strength, tempo, energy)
    assert sorted(order.tolist()) == list(range(n))
    assert _repeats(order, artists) == 0


def test_exactly_half_one_artist_still_alternates() -> None:
    # 5 of 9 tracks by artist 0: only 0 x 0 x 0 x 0 x 0 works, and the strongest is not a 0
    artists = np.array([0, 0, 0, 0, 0, 1, 2, 3, 4])
    strength = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.9, 0.6, 0.7, 0.8])
    order = flow_order(artists, strength)
    assert _repeats(order, artists) == 0
    assert artists[order].tolist()[::2] == [0] * 5


def test_the_strongest_track_opens() -> None:
    rng = np.random.default_rng(3)
    artists = np.arange(20)
    strength = rng.random(20)
    order = flow_order(artists, strength, rng.uniform(60, 180, 20), rng.random(20))
    assert order[0] == int(np.argmax(strength))


def test_transitions_are_smoother_than_the_given_order() -> None:
    rng = np.random.default_rng(5)
    n = 30
    tempo = rng.uniform(60, 180, n)
    energy = rng.random(n)
    artists = np.arange(n)  # no artist constraint: pure flow
    order = flow_order(artists, np.zeros(n), tempo, energy)
    flow_jumps = np.abs(np.diff(tempo[order])).mean()
    given_jumps = np.abs(np.diff(tempo)).mean()
    # random order: mean |Δtempo| ≈ (180-60)/3 = 40 BPM; nearest-neighbour walk: a few BPM
    assert flow_jumps < given_jumps / 3
    assert np.abs(np.diff(energy[order])).mean() < np.abs(np.diff(energy)).mean()


def test_without_audio_only_the_rules_apply_and_unknown_artists_are_distinct() -> None:
    artists = np.array([-1, -1, -1, 5, 5])
    order = flow_order(artists, np.array([0.0, 0.0, 0.0, 1.0, 0.5]))
    assert order[0] == 3
    assert _repeats(order, artists) == 0
    assert sorted(order.tolist()) == [0, 1, 2, 3, 4]


def test_impossible_lists_are_still_complete() -> None:
    artists = np.array([1, 1, 1, 2])
    order = flow_order(artists, np.arange(4.0))
    assert sorted(order.tolist()) == [0, 1, 2, 3]
    assert _repeats(order, artists) == 1  # the least possible: 1 x 1 1 or 1 1 x 1
