"""How the synthetic world's listeners react to what segue serves them, day by day.

The world's own truth decides (``WorldTruth``: latent tastes, popularity, the calibrated skip
model), so a recommender that knows their taste better earns more plays, exactly as in the
events the world was generated from. On top of the world's one-play model, what a closed loop
needs and a log cannot show:

* **position bias**: a listener examines position ``p`` (1-based) with probability
  ``examine · p^-position_decay`` and only an examined item can be played;
* **fatigue**: every earlier showing of the same track lowers the play logit by ``fatigue``;
* **novelty seeking**: each listener has a taste for tracks they have never played
  (``novelty`` term, normal across listeners), so a list of repeats is not a free win;
* **coming back or churning**: whether a listener opens the app on a day is a Bernoulli draw
  whose logit is their base activity (the world's ``activity``) plus ``satisfaction`` times
  how their recent days went (the share of shown tracks they listened to, smoothed), so good
  lists bring listeners back and bad ones lose them.

Every random draw comes from arrays fixed by ``seed`` per (listener, day, position), so two
runs that serve different lists to the same listener use the same coins: the difference of
their outcomes is the effect of the lists alone (common random numbers), which is what the
simulator's "true effect" of a variant is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from segue.data.synth.sessions import expit
from segue.data.synth.world import World
from segue.errors import SegueError


@dataclass(frozen=True)
class ReactionParams:
    """The closed loop's behaviour; see the module docstring."""

    k: int = 10
    examine: float = 0.95
    position_decay: float = 0.5
    play_rate: float = 0.25
    play_affinity: float = 1.2
    play_popularity: float = 0.2
    fatigue: float = 0.4
    novelty_sd: float = 0.5
    visit_rate: float = 0.5
    activity_effect: float = 0.8
    satisfaction: float = 4.0
    satisfaction_ref: float = 0.15
    memory: float = 0.3
    conversion_ms: int = 30_000

    def __post_init__(self) -> None:
        if self.k < 1 or not 0 < self.visit_rate < 1 or not 0 < self.play_rate < 1:
            raise SegueError("ReactionParams: k >= 1, visit_rate and play_rate in (0, 1)")
        if not 0 < self.memory <= 1 or not 0 < self.examine <= 1:
            raise SegueError("ReactionParams: memory and examine in (0, 1]")


@dataclass
class DayOutcome:
    """One day: who visited, what they were shown and did (rows: the visitors)."""

    users: np.ndarray  # world user positions of the visitors
    shown: np.ndarray  # (visitors, k) world item positions
    played: np.ndarray  # (visitors, k) bool
    converted: np.ndarray  # (visitors, k) bool: played for at least conversion_ms
    ms_played: np.ndarray  # (visitors, k) int


class Listeners:
    """The world's listeners with the memory a closed loop needs (fatigue, satisfaction)."""

    def __init__(self, world: World, params: ReactionParams, days: int, seed: int = 0) -> None:
        truth = world.truth
        self.world, self.params, self.days = world, params, days
        self.n_users = len(world.user_ids)
        catalog = truth.catalog
        self.duration = np.asarray(catalog.duration_ms, dtype=np.int64)
        self.skip_intercept = truth.calibration.skip_intercept
        self.skip_affinity = world.params.skip_affinity
        self.skip_ms = (world.params.skip_ms_min, world.params.skip_ms_max)
        logp = np.log(np.maximum(np.asarray(catalog.popularity, dtype=np.float64), 1e-300))
        self.pop_z = (logp - logp.mean()) / (logp.std() or 1.0)
        activity = np.log(np.asarray(truth.population.activity, dtype=np.float64))
        self.base_logit = math.log(params.visit_rate / (1 - params.visit_rate)) + (
            params.activity_effect * (activity - activity.mean()) / (activity.std() or 1.0)
        )
        rng = np.random.default_rng(np.random.SeedSequence([world.params.seed, 91, seed]))
        self.novelty = rng.normal(0.0, params.novelty_sd, self.n_users)
        # the coins: one per (listener, day) for the visit, three per shown position
        self.visit_coin = rng.random((days, self.n_users))
        self.coins = rng.random((days, self.n_users, params.k, 3))
        self.satisfaction = np.full(self.n_users, params.satisfaction_ref)
        self.shown_count: dict[int, int] = {}
        self.played_before: set[int] = set()

    def remember_history(self, users: np.ndarray, items: np.ndarray) -> None:
        """Tracks each listener played before the loop starts (for the novelty term)."""
        keys = np.asarray(users, dtype=np.int64) * len(self.duration) + np.asarray(items)
        self.played_before.update(np.unique(keys).tolist())

    def visitors(self, day: int) -> np.ndarray:
        """World positions of the listeners who open the app on ``day``."""
        p = self.params
        logit = self.base_logit + p.satisfaction * (self.satisfaction - p.satisfaction_ref)
        return np.flatnonzero(self.visit_coin[day] < expit(logit))

    def probabilities(
        self, users: np.ndarray, shown: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(P(examined) per position, P(play | examined), P(skip | played)) for each listener's
        list as things stand (their fatigue and novelty now): the truth an estimator of a
        policy's outcomes is checked against."""
        p = self.params
        if shown.ndim != 2 or shown.shape[0] != len(users) or shown.shape[1] > p.k:
            raise SegueError(f"lists must be (visitors, <= {p.k}), got {shown.shape}")
        items = np.where(shown >= 0, shown, 0)
        z = self.world.truth.standardized_affinity(users[:, None], items)
        n_items = len(self.duration)
        keys = users[:, None].astype(np.int64) * n_items + items
        seen = np.vectorize(self.shown_count.get, otypes=[np.int64])(keys, 0)
        new = ~np.vectorize(self.played_before.__contains__, otypes=[bool])(keys)
        logit = (
            math.log(p.play_rate / (1 - p.play_rate))
            + p.play_affinity * z
            + p.play_popularity * self.pop_z[items]
            - p.fatigue * seen
            + self.novelty[users][:, None] * new
        )
        positions = np.arange(1, shown.shape[1] + 1, dtype=np.float64)
        examine = np.broadcast_to(p.examine * positions**-p.position_decay, shown.shape)
        p_skip = expit(self.skip_intercept - self.skip_affinity * z)
        return examine, np.where(shown >= 0, expit(logit), 0.0), p_skip

    def react(self, day: int, users: np.ndarray, shown: np.ndarray) -> DayOutcome:
        """What ``users`` do with their lists ``shown`` (world item positions; -1: empty)."""
        p = self.params
        if shown.shape != (len(users), p.k):
            raise SegueError(f"lists must be (visitors, {p.k}), got {shown.shape}")
        valid = shown >= 0
        items = np.where(valid, shown, 0)
        n_items = len(self.duration)
        keys = users[:, None].astype(np.int64) * n_items + items
        examine, p_play, p_skip = self.probabilities(users, shown)
        examined = self.coins[day, users, :, 0] < examine
        played = valid & examined & (self.coins[day, users, :, 1] < p_play)
        skipped = played & (self.coins[day, users, :, 2] < p_skip)
        lo, hi = self.skip_ms
        skip_ms = lo + (self.coins[day, users, :, 2] * (hi - lo)).astype(np.int64)
        ms = np.where(played, np.where(skipped, np.minimum(skip_ms, self.duration[items]), 0), 0)
        ms = np.where(played & ~skipped, self.duration[items], ms)
        converted = played & (ms >= p.conversion_ms)
        # memory: fatigue, what was played, how the day went
        for key in keys[valid].tolist():
            self.shown_count[key] = self.shown_count.get(key, 0) + 1
        self.played_before.update(keys[played].tolist())
        share = converted.sum(axis=1) / p.k
        self.satisfaction[users] = (1 - p.memory) * self.satisfaction[users] + p.memory * share
        return DayOutcome(users, shown, played, converted, ms)
