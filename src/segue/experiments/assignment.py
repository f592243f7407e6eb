"""Deterministic assignment of listeners to experiment variants.

A listener's variant is a salted SHA-256 hash of their id, so every process (API workers,
the batch, the simulator) agrees without a lookup table and a listener keeps their variant
across days. Three independent hashes per decision, each with its own salt:

* the **global holdout** (salt ``holdout_salt``): a share of listeners outside every
  experiment, to measure the sum of all launched changes against nothing;
* the **layer** (salt: the layer's name): experiments in one layer own disjoint ranges of the
  layer's hash, so they are mutually exclusive; experiments in different layers are
  independent of each other, because their hashes are;
* the **experiment** (salt: its own): the ramp-up (a listener is in once the ramp fraction
  passes their hash, so raising the fraction only adds listeners, never moves one) and the
  variant by traffic shares.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from segue.errors import SegueError

#: Resolution of every hash: positions are multiples of 1 / BUCKETS.
BUCKETS = 1 << 32


def position(salt: str, user_id: str) -> float:
    """The listener's place in [0, 1) under ``salt``: uniform, stable, independent per salt."""
    digest = hashlib.sha256(salt.encode("utf-8") + b"\x00" + user_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / BUCKETS


@dataclass(frozen=True)
class Variant:
    name: str
    share: float


@dataclass(frozen=True)
class Experiment:
    """One experiment: its variants with traffic shares (summing to 1), the part of its layer
    it owns (``[start, end)`` of the layer's hash) and its ramp-up: ``(time_ms, fraction)``
    steps, the fraction of the owned listeners taking part from that time on (no steps: all).
    """

    id: str
    variants: tuple[Variant, ...]
    layer: str = "default"
    start: float = 0.0
    end: float = 1.0
    ramp: tuple[tuple[int, float], ...] = ()
    salt: str = ""

    def __post_init__(self) -> None:
        if not self.id or len(self.id) > 64:
            raise SegueError(f"an experiment id is 1 to 64 characters, got {self.id!r}")
        if len(self.variants) < 2:
            raise SegueError(f"experiment {self.id!r} needs at least two variants")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise SegueError(f"experiment {self.id!r} names a variant twice: {names}")
        if any(v.share <= 0 for v in self.variants):
            raise SegueError(f"experiment {self.id!r}: every variant needs a share > 0")
        if abs(sum(v.share for v in self.variants) - 1.0) > 1e-9:
            raise SegueError(
                f"experiment {self.id!r}: variant shares must sum to 1, got "
                f"{sum(v.share for v in self.variants):g}"
            )
        if not 0.0 <= self.start < self.end <= 1.0:
            raise SegueError(
                f"experiment {self.id!r}: its layer range must satisfy 0 <= start < end <= 1, "
                f"got [{self.start:g}, {self.end:g})"
            )
        times = [t for t, _ in self.ramp]
        if times != sorted(times) or any(not 0.0 <= f <= 1.0 for _, f in self.ramp):
            raise SegueError(
                f"experiment {self.id!r}: ramp steps go forward in time with fractions in [0, 1]"
            )
        if [f for _, f in self.ramp] != sorted(f for _, f in self.ramp):
            raise SegueError(f"experiment {self.id!r}: a ramp only goes up (listeners stay in)")

    @property
    def hash_salt(self) -> str:
        return self.salt or f"experiment:{self.id}"

    def fraction(self, now_ms: int) -> float:
        """The ramp's fraction at ``now_ms`` (before the first step: 0; no steps: 1)."""
        if not self.ramp:
            return 1.0
        current = 0.0
        for at, value in self.ramp:
            if at <= now_ms:
                current = value
        return current

    def variant(self, user_id: str, now_ms: int) -> str | None:
        """The listener's variant, or None when the ramp has not reached them yet (the layer
        range is the assigner's business)."""
        salt = self.hash_salt
        if self.ramp and position(salt + ":ramp", user_id) >= self.fraction(now_ms):
            return None
        place, cumulative = position(salt, user_id), 0.0
        for v in self.variants:
            cumulative += v.share
            if place < cumulative:
                return v.name
        return self.variants[-1].name  # float rounding at the very top


@dataclass
class Assigner:
    """Every running experiment's variant for a listener (see the module docstring)."""

    experiments: Sequence[Experiment] = ()
    holdout_share: float = 0.0
    holdout_salt: str = "segue:global-holdout"
    _by_layer: dict[str, list[Experiment]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.holdout_share < 1.0:
            raise SegueError(f"the global holdout share is in [0, 1), got {self.holdout_share}")
        self._by_layer = {}
        ids = [e.id for e in self.experiments]
        if len(set(ids)) != len(ids):
            raise SegueError(f"experiment ids must be unique, got {ids}")
        for experiment in self.experiments:
            self._by_layer.setdefault(experiment.layer, []).append(experiment)
        for layer, members in self._by_layer.items():
            _check_disjoint(layer, members)

    def in_holdout(self, user_id: str) -> bool:
        return position(self.holdout_salt, user_id) < self.holdout_share

    def assign(self, user_id: str, now_ms: int) -> dict[str, str]:
        """``{experiment id: variant}`` for the listener now; empty in the global holdout."""
        if self.in_holdout(user_id):
            return {}
        out: dict[str, str] = {}
        for layer, members in self._by_layer.items():
            place = position(f"layer:{layer}", user_id)
            for experiment in members:
                if experiment.start <= place < experiment.end:
                    chosen = experiment.variant(user_id, now_ms)
                    if chosen is not None:
                        out[experiment.id] = chosen
                    break  # ranges are disjoint: no other experiment of the layer owns them
        return out


def _check_disjoint(layer: str, members: Iterable[Experiment]) -> None:
    ordered = sorted(members, key=lambda e: e.start)
    for before, after in itertools.pairwise(ordered):
        if after.start < before.end:
            raise SegueError(
                f"experiments {before.id!r} and {after.id!r} overlap in layer {layer!r} "
                f"([{before.start:g}, {before.end:g}) and [{after.start:g}, {after.end:g})): "
                "experiments of one layer own disjoint ranges"
            )
