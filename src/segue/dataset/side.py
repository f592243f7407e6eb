"""Side information for models: item attributes, user demographics, the friend graph.

Collaborative models need only the interaction matrix; content, social and cold-start models
also need these. They travel together in :class:`SideInfo`, every array aligned with the same
user and item id maps as the interaction matrix, so a model never looks anything up by id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from segue.data.dayparts import local_dayparts
from segue.data.model import AgeBand, Gender, User
from segue.dataset.catalog import ItemCatalog
from segue.dataset.idmap import IdMap

AGE_BANDS: tuple[str, ...] = tuple(a.value for a in AgeBand)
GENDERS: tuple[str, ...] = tuple(g.value for g in Gender)


@dataclass(frozen=True)
class UserTable:
    """Demographics per user row: codes into AGE_BANDS / GENDERS / ``countries``, -1 unknown."""

    users: IdMap
    age_band: np.ndarray
    gender: np.ndarray
    country: np.ndarray
    countries: tuple[str, ...]
    kids_profile: np.ndarray
    #: ``User.consent_personalisation`` per row (None: everyone consents, e.g. built by hand)
    personalised: np.ndarray | None = None
    #: each row's time zone, a code into ``timezones`` (-1 unknown; None: none known), for
    #: the local daypart of their plays (:mod:`segue.data.dayparts`)
    timezone: np.ndarray | None = None
    timezones: tuple[str, ...] = ()

    @classmethod
    def from_users(cls, records: Iterable[User], users: IdMap) -> UserTable:
        n = len(users)
        age = np.full(n, -1, dtype=np.int8)
        gender = np.full(n, -1, dtype=np.int8)
        country = np.full(n, -1, dtype=np.int16)
        kids = np.zeros(n, dtype=bool)
        consent = np.ones(n, dtype=bool)
        zone = np.full(n, -1, dtype=np.int16)
        vocab: dict[str, int] = {}
        zones: dict[str, int] = {}
        records = list(records)
        rows = users.to_index([r.id for r in records], allow_unknown=True) if records else []
        for user, row in zip(records, rows, strict=True):
            if row < 0:
                continue
            if user.age_band is not None:
                age[row] = AGE_BANDS.index(user.age_band.value)
            if user.gender is not None:
                gender[row] = GENDERS.index(user.gender.value)
            if user.country is not None:
                country[row] = vocab.setdefault(user.country, len(vocab))
            if user.timezone is not None:
                zone[row] = zones.setdefault(user.timezone, len(zones))
            kids[row] = user.kids_profile
            consent[row] = user.consent_personalisation
        return cls(users, age, gender, country, tuple(vocab), kids, consent, zone, tuple(zones))

    def pair_dayparts(self, times: sp.csr_matrix) -> sp.csr_matrix | None:
        """Each stored pair's local daypart at its time (``times``: user×item days since
        the epoch, as ``Interactions.pair_times``; -1 where the listener's zone is unknown),
        in ``times``' structure; None where no listener's time zone is known."""
        zones = self.timezone
        if zones is None or len(zones) != times.shape[0] or not (zones >= 0).any():
            return None
        times = times.tocsr()
        rows = np.repeat(np.arange(times.shape[0]), np.diff(times.indptr))
        parts = local_dayparts(times.data, zones[rows], self.timezones)
        return sp.csr_matrix((parts, times.indices, times.indptr), shape=times.shape)


def friend_matrix(links: Iterable[tuple[str, str]], users: IdMap) -> sp.csr_matrix:
    """Symmetric user×user 0/1 matrix of friend links; links to unknown users are dropped."""
    pairs = list(links)
    if not pairs:
        return sp.csr_matrix((len(users), len(users)), dtype=np.float32)
    a = users.to_index([p[0] for p in pairs], allow_unknown=True)
    b = users.to_index([p[1] for p in pairs], allow_unknown=True)
    keep = (a >= 0) & (b >= 0) & (a != b)
    rows = np.concatenate([a[keep], b[keep]])
    cols = np.concatenate([b[keep], a[keep]])
    matrix = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(users), len(users))
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


@dataclass(frozen=True)
class SideInfo:
    """Everything beyond the interaction matrix; any part may be missing."""

    catalog: ItemCatalog | None = None
    users: UserTable | None = None
    friends: sp.csr_matrix | None = None
