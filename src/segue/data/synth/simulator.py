"""The world's users as a simulator: known probabilities of playing, skipping, liking, clicking.

Evaluation and the next-best-action code ask "what would this user do with this item?" and get
an answer drawn from the *same* model that generated the world's events, together with the
probabilities behind it. The formulas are in ``docs/synthetic-world.md`` ("The simulator"):

* ``z`` is the standardised affinity ``(u·v - mean) / sd`` (the calibration of the world);
  for an app feature it is the user's feature affinity;
* ``P(play) = expit(logit(play_rate) + play_affinity·z + play_popularity·popz + recency + hour)``,
  zero for an item not yet released at the context's time or explicit for a kids profile;
* ``P(skip | play)`` and ``P(like | play, no skip)`` are the event generator's own formulas;
* ``P(click) = expit(logit(message_click_rate) + message_affinity·z + channel + hour)``,
  zero where the channel needs a consent the user has not given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np

from segue.data.model import ItemKind
from segue.data.synth.catalog import DAY_MS, KIND_CODE
from segue.data.synth.sessions import PARTIAL_FRACTION, expit
from segue.data.synth.tables import CHANNELS, FEATURE_INDEX, HOURLY_PROFILE
from segue.data.synth.world import World
from segue.errors import SegueError

_FEATURE = KIND_CODE[ItemKind.FEATURE]
_SPOKEN = (KIND_CODE[ItemKind.PODCAST_EPISODE], KIND_CODE[ItemKind.AUDIOBOOK])


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def hour_term(hour: int | None, weight: float) -> float:
    """``weight · log(24 · HOURLY_PROFILE[hour])``: positive at busy hours, 0 when unknown."""
    if hour is None:
        return 0.0
    return weight * math.log(24 * HOURLY_PROFILE[hour])


@dataclass(frozen=True)
class Context:
    """When and how an item is shown. ``hour`` is the user's local hour (0-23);
    ``timestamp_ms`` decides release and recency; ``focus`` means Focus-Mode listening."""

    timestamp_ms: int | None = None
    hour: int | None = None
    focus: bool = False


@dataclass(frozen=True)
class Response:
    """One simulated reaction and the probabilities it was drawn from."""

    played: bool
    skipped: bool
    liked: bool
    prob_play: float
    prob_skip: float
    prob_like: float
    ms_played: int
    affinity: float


class UserSimulator:
    """Draws users' reactions from the world's model; ``seed`` fixes the sequence of draws."""

    def __init__(self, world: World, seed: int = 0) -> None:
        self.world = world
        self.truth = world.truth
        self.params = world.params
        self.rng = np.random.default_rng(np.random.SeedSequence([world.params.seed, 6, seed]))
        self._pop_z = _popularity_z(world)

    # -- probabilities ------------------------------------------------------------------
    def affinity(self, user_id: str, item_id: str) -> float:
        """The standardised affinity z of a user for an item (feature affinity for features)."""
        u, i = self.world.user_index(user_id), self.world.item_index(item_id)
        return self._z(u, i)

    def _z(self, u: int, i: int) -> float:
        t = self.truth
        if t.catalog.kind[i] == _FEATURE:
            feature = FEATURE_INDEX[t.catalog.ids[i]]
            return float(t.population.feature_affinity[u, feature])
        return float(t.standardized_affinity(np.array(u), np.array(i)))

    def probabilities(
        self, user_id: str, item_id: str, context: Context | Mapping[str, object] | None = None
    ) -> tuple[float, float, float]:
        """(P(play), P(skip | play), P(like | play and not skipped))."""
        u, i = self.world.user_index(user_id), self.world.item_index(item_id)
        return self._probabilities(u, i, as_context(context))[:3]

    def _probabilities(self, u: int, i: int, context: Context) -> tuple[float, float, float, float]:
        p, t = self.params, self.truth
        c = t.catalog
        if c.kind[i] == _FEATURE:
            raise SegueError(
                f"item {c.ids[i]!r} is an app feature; use respond_to_message for features"
            )
        _check_hour(context.hour)
        z = self._z(u, i)
        logit = _logit(p.play_rate) + p.play_affinity * z + p.play_popularity * self._pop_z[i]
        logit += hour_term(context.hour, p.hour_effect)
        playable = not (t.population.kids[u] and c.explicit[i])
        if context.timestamp_ms is not None:
            age_days = (context.timestamp_ms - int(c.release_ms[i])) / DAY_MS
            if age_days < 0:
                playable = False
            elif p.recency_boost:
                logit += p.recency_boost * math.exp(-age_days / p.recency_days)
        p_play = float(expit(logit)) if playable else 0.0
        cal = t.calibration
        if context.focus:
            p_skip = p_like = 0.0
        else:
            if c.kind[i] in _SPOKEN:
                p_skip = p.spoken_skip_rate
            else:
                p_skip = float(expit(cal.skip_intercept - p.skip_affinity * z))
            p_like = float(expit(cal.like_intercept + p.like_affinity * z))
        return p_play, p_skip, p_like, z

    # -- reactions ----------------------------------------------------------------------
    def respond(
        self, user_id: str, item_id: str, context: Context | Mapping[str, object] | None = None
    ) -> Response:
        """Would the user play the item, skip it, like it? Drawn from the stated probabilities."""
        context = as_context(context)
        u, i = self.world.user_index(user_id), self.world.item_index(item_id)
        p_play, p_skip, p_like, z = self._probabilities(u, i, context)
        draws = self.rng.random(4)
        played = bool(draws[0] < p_play)
        skipped = played and bool(draws[1] < p_skip)
        liked = played and not skipped and bool(draws[2] < p_like)
        duration = int(self.truth.catalog.duration_ms[i])
        p = self.params
        if not played:
            ms = 0
        elif skipped:
            span = p.skip_ms_max - p.skip_ms_min
            ms = min(duration, p.skip_ms_min + int(draws[3] * span))
        elif not context.focus and draws[3] < p.partial_rate:
            lo, hi = PARTIAL_FRACTION
            ms = int(duration * (lo + (hi - lo) * draws[3] / p.partial_rate))
        else:
            ms = duration
        return Response(played, skipped, liked, p_play, p_skip, p_like, ms, z)

    def click_probability(
        self, user_id: str, action_item_id: str, channel: str, hour: int
    ) -> float:
        """P(click) of a message about ``action_item_id`` sent on ``channel`` at local ``hour``."""
        p, t = self.params, self.truth
        if channel not in CHANNELS:
            raise SegueError(f"unknown message channel {channel!r}; known: {list(CHANNELS)}")
        _check_hour(hour, required=True)
        u, i = self.world.user_index(user_id), self.world.item_index(action_item_id)
        pop = t.population
        if (channel == "push" and not pop.consent_push[u]) or (
            channel == "email" and not pop.consent_email[u]
        ):
            return 0.0
        effect = {"push": 0.0, "email": p.email_effect, "in_app": p.in_app_effect}[channel]
        logit = _logit(p.message_click_rate) + p.message_affinity * self._z(u, i) + effect
        logit += hour_term(hour, p.hour_effect)
        return float(expit(logit))

    def respond_to_message(
        self, user_id: str, action_item_id: str, channel: str, hour: int
    ) -> tuple[bool, float]:
        """(clicked, P(click)) for one message; see :meth:`click_probability`."""
        prob = self.click_probability(user_id, action_item_id, channel, hour)
        return bool(self.rng.random() < prob), prob


def as_context(context: Context | Mapping[str, object] | None) -> Context:
    """A :class:`Context` from itself, a mapping of its fields, or ``None`` (nothing known)."""
    if context is None:
        return Context()
    if isinstance(context, Context):
        return context
    if isinstance(context, Mapping):
        known = {f.name for f in fields(Context)}
        unknown = sorted(set(context) - known)
        if unknown:
            raise SegueError(f"unknown context field(s) {unknown}; known: {sorted(known)}")
        return Context(**context)  # type: ignore[arg-type]
    raise SegueError(f"context must be a Context or a mapping, not {type(context).__name__}")


def _check_hour(hour: int | None, required: bool = False) -> None:
    if hour is None and not required:
        return
    if isinstance(hour, bool) or not isinstance(hour, int | np.integer) or not 0 <= hour <= 23:
        raise SegueError(f"hour must be a local hour 0-23, not {hour!r}")


def _popularity_z(world: World) -> np.ndarray:
    """log popularity standardised within each item kind (0 where a kind has one item)."""
    c = world.truth.catalog
    out = np.zeros(c.n_items)
    logp = np.log(np.maximum(c.popularity, 1e-300))
    for lo, hi in c.offsets.values():
        if hi - lo < 2:
            continue
        part = logp[lo:hi]
        sd = part.std()
        out[lo:hi] = (part - part.mean()) / sd if sd > 0 else 0.0
    return out


__all__ = ["Context", "Response", "UserSimulator", "as_context", "hour_term"]
