"""A new policy's click-through estimated from an old policy's log, checked against the truth.

The logging policy shows each listener one track, drawn from its model's top candidates with
probabilities ``softmax(score / temperature)`` — exploration whose propensity is logged with
the exposure. The target policy shows the candidate at a fixed rank (the model's top track,
or a worse one, to see the estimate follow a policy that differs). The listeners (the
simulator's reaction model, :mod:`segue.simulation.listeners`) play or do not; inverse
propensity scoring
then estimates what the target policy's CTR would have been from the logged plays alone,
and the simulator says what it is: the mean of ``P(examined) · P(play)`` of the target's
track for every listener, computed, not drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segue.data.log import InteractionLog
from segue.data.synth.world import World
from segue.errors import SegueError
from segue.experiments.stats import ips
from segue.models.names import model_spec
from segue.simulation.listeners import Listeners, ReactionParams
from segue.simulation.loop import history_matrix, tracks_of


@dataclass(frozen=True)
class OffPolicyCheck:
    listeners: int
    logged_ctr: float  # what the exploring policy earned
    ips: float
    ips_se: float
    snips: float
    truth: float  # the target policy's expected CTR, from the simulator
    matched: float  # share of logged actions the target would also have taken

    @property
    def ips_error(self) -> float:
        return abs(self.ips - self.truth) / self.truth

    @property
    def snips_error(self) -> float:
        return abs(self.snips - self.truth) / self.truth


def off_policy_check(
    world: World,
    history: InteractionLog,
    *,
    model: str = "als",
    candidates: int = 20,
    temperature: float = 1.5,
    target_rank: int = 0,
    seed: int = 0,
) -> OffPolicyCheck:
    """Log one exploring day for every listener and estimate the CTR of the policy that
    shows each listener the candidate at ``target_rank`` (0: the model's top track)."""
    if candidates < 2 or temperature <= 0 or not 0 <= target_rank < candidates:
        raise SegueError(
            "need at least two candidates, a positive temperature, and a target rank among them"
        )
    tracks = tracks_of(world)
    matrix = history_matrix(world, history, tracks)
    spec = model_spec(model)
    fitted = spec.factory().fit(spec.weighting.apply(matrix))
    users = np.flatnonzero(np.diff(matrix.indptr) > 0)
    recs = fitted.recommend(users, candidates)
    items, scores = np.asarray(recs.items), np.asarray(recs.scores, dtype=np.float64)
    keep = (items >= 0).all(axis=1)
    users, items, scores = users[keep], items[keep], scores[keep]
    # the logging policy: softmax over each listener's candidates (scores scaled per listener)
    spread = scores.std(axis=1, keepdims=True)
    logits = (scores - scores.max(axis=1, keepdims=True)) / (
        temperature * np.where(spread > 0, spread, 1)
    )
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    rng = np.random.default_rng(np.random.SeedSequence([world.params.seed, 97, seed]))
    pick = (rng.random(len(users))[:, None] > probs.cumsum(axis=1)).sum(axis=1)
    pick = np.minimum(pick, candidates - 1)
    shown = tracks[items[np.arange(len(users)), pick]][:, None]
    listeners = Listeners(world, ReactionParams(k=1), days=1, seed=seed)
    played_users, played_columns = matrix.nonzero()
    listeners.remember_history(played_users, tracks[played_columns])
    chosen = tracks[items[:, target_rank]][:, None]
    examine, p_play, _ = listeners.probabilities(users, chosen)
    truth = float((examine[:, 0] * p_play[:, 0]).mean())
    outcome = listeners.react(0, users, shown)
    rewards = outcome.played[:, 0].astype(np.float64)
    logged = probs[np.arange(len(users)), pick]
    target = (pick == target_rank).astype(np.float64)
    estimate, se, self_normalised = ips(rewards, target, logged)
    return OffPolicyCheck(
        len(users), float(rewards.mean()), estimate, se, self_normalised, truth,
        float(target.mean()),
    )  # fmt: skip
