"""The finer stage in serving: a contextual bandit over a list's top slots that learns from
plays and skips as they arrive, exploring a bounded share of requests with logged
propensities.

The model's list is good on average but cannot see what this installation's listeners do
with it today; the bandit re-orders the top ``slots`` of each list by LinUCB over a few
features of each item in the list (its rank in the model's order, its score relative to the
list's, its popularity) and learns the weights from what was played (reward 1) or skipped
(0) after being shown. Its prior puts all weight on the model's order, so until plays teach
it otherwise it serves the model's list unchanged.

Exploration is ε-uniform and bounded: with probability ``share`` (at most
``MAX_EXPLORE_SHARE``) a request's top slots are filled by a uniformly random draw from the
list, otherwise by the greedy (LinUCB) order. That makes each shown item's propensity exact —
``(1 − ε)·[item is the greedy choice for the slot] + ε / k`` (a uniform draw without
replacement puts every item at every slot with probability 1/k) — so the exposure log
supports unbiased off-policy estimates (IPS / SNIPS) of any other ordering.

Only lists made from a listener's own data (personalised consent) are explored or learnt
from: a listener who declined personalisation does not train the shared weights. The
weights live in the serving process (one per process; they converge on the same traffic).
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from segue.data.model import Event, EventType

#: The largest share of requests that may explore (a bound on how much listeners pay).
MAX_EXPLORE_SHARE = 0.2
#: Features per item: bias, rank prior, score z within the list, popularity z.
FEATURES = ("bias", "rank_prior", "score_z", "popularity_z")
_REWARD = {EventType.PLAY: 1.0, EventType.LIKE: 1.0, EventType.SKIP: 0.0, EventType.DISLIKE: 0.0}


@dataclass(frozen=True)
class Arranged:
    """A list's new order (positions into the model's list) and what the log needs."""

    order: list[int]
    #: per top slot: the probability the policy had of showing what it showed there
    propensities: tuple[float, ...]
    explored: bool
    greedy: tuple[int, ...]


class ShownFeatures:
    """The top slots' features waiting for the listener's reaction: each kept ``ttl_s``
    seconds, at most ``max_items`` (the oldest go first). Not thread-safe (the bandit locks).

    Why not ``cachetools.TTLCache``: it keeps a linked-list node per entry, a Python object
    the garbage collector tracks, and at 300 req/s the entries of half an hour (up to
    200,000) made every full collection of a serving process walk them all, a stall with the
    interpreter lock held that grew with the entries (6 ms after 10 s of traffic, 23 ms after
    60 s; ``benchmarks/bench_exposure_serving.py``). Here the order is an ``OrderedDict``'s
    (its links are C structs, not objects), keys are tuples of strings and values tuples of
    a float and an array, which the collector stops tracking after their first pass.
    """

    def __init__(self, ttl_s: float, max_items: int, timer: Callable[[], float]) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        self.ttl_s, self.max_items, self._timer = ttl_s, max_items, timer
        self._items: OrderedDict[tuple[str, str], tuple[float, np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: tuple[str, str], features: np.ndarray) -> None:
        now = self._timer()
        self._items[key] = (now + self.ttl_s, features)
        self._items.move_to_end(key)  # shown again: its clock starts again
        items = self._items
        while items:
            oldest = next(iter(items))
            if items[oldest][0] > now and len(items) <= self.max_items:
                break
            del items[oldest]

    def pop(self, key: tuple[str, str]) -> np.ndarray | None:
        entry = self._items.pop(key, None)
        if entry is None or entry[0] <= self._timer():
            return None
        return entry[1]


class SlotBandit:
    """LinUCB over the top ``slots`` positions with ε-uniform exploration.

    ``prior_strength`` is the ridge weight pulling the weights towards the prior (the model's
    order); ``alpha`` the width of the confidence bonus.
    """

    def __init__(
        self,
        *,
        slots: int = 3,
        alpha: float = 0.1,
        prior_strength: float = 10.0,
        feedback_ttl_s: float = 1_800.0,
        max_pending: int = 200_000,
        seed: int | None = None,
        timer=time.monotonic,
    ) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        d = len(FEATURES)
        self.slots = slots
        self.alpha = alpha
        self.prior = np.zeros(d)
        self.prior[FEATURES.index("rank_prior")] = 1.0
        self._a = prior_strength * np.eye(d)
        self._b = prior_strength * self.prior.copy()
        self._a_inv = np.linalg.inv(self._a)
        self._theta = self._a_inv @ self._b
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._pending = ShownFeatures(feedback_ttl_s, max_pending, timer)
        self.updates = 0

    @property
    def weights(self) -> dict[str, float]:
        return dict(zip(FEATURES, self._theta.tolist(), strict=True))

    @staticmethod
    def features(scores: Sequence[float], popularity: Sequence[float]) -> np.ndarray:
        """One row per item of a list in the model's order."""
        k = len(scores)
        s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
        p = np.asarray(popularity, dtype=np.float64)
        x = np.empty((k, len(FEATURES)))
        x[:, 0] = 1.0
        x[:, 1] = 1.0 - np.arange(k) / k
        x[:, 2] = (s - s.mean()) / s.std() if k > 1 and s.std() > 0 else 0.0
        x[:, 3] = (p - p.mean()) / p.std() if k > 1 and p.std() > 0 else 0.0
        return x

    def arrange(self, x: np.ndarray, share: float) -> Arranged:
        """The order to show a list whose items have features ``x`` (model order)."""
        k = len(x)
        share = min(max(share, 0.0), MAX_EXPLORE_SHARE)
        slots = min(self.slots, k)
        with self._lock:
            theta, a_inv = self._theta, self._a_inv
            explore = self._random.random() < share
            drawn = self._random.sample(range(k), slots) if explore else []
        bonus = np.sqrt(np.einsum("ij,jk,ik->i", x, a_inv, x))
        ucb = x @ theta + self.alpha * bonus
        greedy = [int(i) for i in np.argsort(-ucb, kind="stable")[:slots]]
        top = drawn if explore else greedy
        rest = [i for i in range(k) if i not in set(top)]
        propensities = tuple(
            (1.0 - share) * (item == greedy[j]) + share / k for j, item in enumerate(top)
        )
        return Arranged(top + rest, propensities, explore, tuple(greedy))

    def shown(self, user_id: str, item_ids: Sequence[str], x: np.ndarray, order: list[int]) -> None:
        """Remember the top slots' features until the listener plays or skips them."""
        with self._lock:
            for position in order[: self.slots]:
                self._pending.put((user_id, item_ids[position]), x[position])

    def observe(self, events: Iterable[Event]) -> int:
        """Learn from plays, likes, skips and dislikes of items shown in a top slot (each
        shown item once: its first reaction); returns how many updates were made."""
        done = 0
        with self._lock:
            for event in events:
                reward = _REWARD.get(event.type)
                if reward is None or event.focus:
                    continue
                x = self._pending.pop((event.user_id, event.item_id))
                if x is None:
                    continue
                self._a += np.outer(x, x)
                self._b += reward * x
                done += 1
            if done:
                self._a_inv = np.linalg.inv(self._a)
                self._theta = self._a_inv @ self._b
                self.updates += done
        return done
