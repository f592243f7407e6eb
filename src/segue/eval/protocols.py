"""Evaluation protocols: how the data is split, and who is ranked against what.

A protocol turns data and a seed into a :class:`~segue.dataset.Split`, then into a
:class:`Holdout` for the validation or the test part: the matrix models fit on, the truth, the
items masked at ranking time and the users ranked. The runner computes each seed's split once
and hands the same holdout to every model, so differences between models are never differences
between splits.

* ``random`` — per user, 8:1:1 of their pairs at random (RecBole's ``RS`` + ``RO``, the
  published Last.fm 2K protocol); all items ranked with train and validation items masked.
* ``temporal`` — the time line cut at the 80th and 90th percentiles of pair times (leave the
  future out); only users with history before the cut are ranked (the rest are cold users, which
  ``cold-users`` measures). Deterministic: the seed does not change it, so it runs once.
* ``cold-users`` — a seeded 10% of users (and 10% for validation) leave training except for
  ``n_onboarding`` pairs each, what a sign-up flow would have asked. Those onboarding pairs stay
  *in the training matrix*: the id maps are shared, so a held-out user keeps their row, and a
  model that cannot fold in a new user at recommendation time still sees the onboarding items
  as the user's only history; they are masked when ranking. No held-out pair beyond them
  reaches training (``new_user_split`` guarantees it; the tests check it).
* ``cold-items`` — a seeded 10% of items (and 10% for validation) lose all their pairs to the
  held-out part; users who have history are ranked over the *whole* catalog, and recall@k says
  how many of their held-out-item pairs surface among the warm items. Collaborative models
  cannot score an item nobody played, so expect them near zero; content models should not be.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from segue.dataset import (
    Interactions,
    Split,
    global_temporal_split,
    new_item_split,
    new_user_split,
    random_split,
)
from segue.errors import DatasetError

Part = Literal["valid", "test"]


@dataclass(frozen=True, eq=False)
class Holdout:
    """One evaluation target: fit on ``train``, rank ``users`` over every item except
    ``exclude``, score against ``relevant``. Matrices are user×item, aligned with ``train``."""

    train: Interactions
    relevant: sp.csr_matrix
    exclude: sp.csr_matrix
    users: np.ndarray


class Protocol(abc.ABC):
    """A splitting rule plus the rule for which users are ranked on a held-out part."""

    name: ClassVar[str]
    #: False when the seed does not change the split (the runner then runs one seed).
    seeded: ClassVar[bool] = True
    #: Rank only users who have at least one training pair.
    warm_users_only: ClassVar[bool] = False

    @abc.abstractmethod
    def split(self, data: Interactions, seed: int) -> Split: ...

    def describe(self) -> str:
        return self.name

    def holdout(self, split: Split, part: Part) -> Holdout:
        """The test holdout masks train and validation; the validation one masks train only
        and is built from train and validation alone, never from test."""
        if part == "test":
            return self.holdout_of(split.train, split.test, also_masked=split.valid)
        if part == "valid":
            return self.holdout_of(split.train, split.valid)
        raise DatasetError(f"holdout part must be 'valid' or 'test', got {part!r}")

    def holdout_of(
        self, train: Interactions, target: Interactions, also_masked: Interactions | None = None
    ) -> Holdout:
        if not train.same_space(target):
            raise DatasetError("holdout: train and the held-out part index different users/items")
        relevant = target.binary_matrix()
        exclude = train.binary_matrix()
        if also_masked is not None:
            exclude = (exclude + also_masked.binary_matrix()).tocsr()
        has_target = np.diff(relevant.indptr) > 0
        if self.warm_users_only:
            has_target &= train.user_counts() > 0
        users = np.flatnonzero(has_target)
        if len(users) == 0:
            raise DatasetError(
                f"protocol {self.name!r}: no user has both held-out pairs and a place in the "
                "ranking; the data is too small for this protocol"
            )
        return Holdout(train=train, relevant=relevant, exclude=exclude, users=users)


@dataclass(frozen=True)
class RandomProtocol(Protocol):
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    name: ClassVar[str] = "random"

    def split(self, data: Interactions, seed: int) -> Split:
        return random_split(data, self.ratios, seed=seed)

    def describe(self) -> str:
        r = ":".join(f"{x:g}" for x in self.ratios)
        return f"random {r} per user, all items ranked, train and validation masked"


@dataclass(frozen=True)
class TemporalProtocol(Protocol):
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    name: ClassVar[str] = "temporal"
    seeded: ClassVar[bool] = False
    warm_users_only: ClassVar[bool] = True

    def split(self, data: Interactions, seed: int) -> Split:
        times = data.pairs.last_ts
        if len(times) == 0 or times.min() == times.max():
            raise DatasetError(
                f"the temporal protocol needs event times, but all {len(times)} pairs share one "
                "timestamp (Last.fm 2K, for one, records none); use the random protocol"
            )
        return global_temporal_split(data, self.ratios)

    def describe(self) -> str:
        r = ":".join(f"{x:g}" for x in self.ratios)
        return f"global temporal {r} (leave the future out), users with history ranked"


@dataclass(frozen=True)
class ColdUsersProtocol(Protocol):
    n_onboarding: int = 3
    test_fraction: float = 0.1
    valid_fraction: float = 0.1
    name: ClassVar[str] = "cold-users"

    def split(self, data: Interactions, seed: int) -> Split:
        return new_user_split(
            data,
            test_fraction=self.test_fraction,
            valid_fraction=self.valid_fraction,
            n_onboarding=self.n_onboarding,
            seed=seed,
        )

    def describe(self) -> str:
        return (
            f"cold users: {self.test_fraction:.0%} of users held out with "
            f"{self.n_onboarding} onboarding items each (in train, masked)"
        )


@dataclass(frozen=True)
class ColdItemsProtocol(Protocol):
    test_fraction: float = 0.1
    valid_fraction: float = 0.1
    name: ClassVar[str] = "cold-items"
    warm_users_only: ClassVar[bool] = True

    def split(self, data: Interactions, seed: int) -> Split:
        return new_item_split(
            data, test_fraction=self.test_fraction, valid_fraction=self.valid_fraction, seed=seed
        )

    def describe(self) -> str:
        return (
            f"cold items: {self.test_fraction:.0%} of items held out, their pairs the truth, "
            "ranked among all items"
        )


PROTOCOLS: dict[str, type[Protocol]] = {
    p.name: p for p in (RandomProtocol, TemporalProtocol, ColdUsersProtocol, ColdItemsProtocol)
}


def make_protocol(protocol: Protocol | str) -> Protocol:
    """A protocol object from itself or its name (``random``, ``temporal``, ...)."""
    if isinstance(protocol, Protocol):
        return protocol
    try:
        return PROTOCOLS[str(protocol)]()
    except KeyError:
        raise DatasetError(
            f"unknown evaluation protocol {protocol!r}; available: {', '.join(PROTOCOLS)}"
        ) from None
