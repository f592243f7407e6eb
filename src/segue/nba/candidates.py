"""Candidate actions per user: collaborative filtering across kinds, plus feature education.

* The CF model's top ``k`` unseen items of every kind it was trained on (tracks, podcast
  episodes, videos, audiobooks all live in one matrix), each promoted by its kind's action.
* From the best track: its album (play the album) and its artist (follow), reason "from an
  artist you play" — the model never ranks albums or artists because nobody "plays" them.
* Every education feature (Discovery Station, create a playlist, Focus Mode) the user never
  used.
* Users the CF model does not know get each action type's best item by past click-through
  rate instead (a cold start that needs no model of the user).
* Users without personalisation consent (``personal`` False) get no CF and nothing derived
  from their history: each action type's best item by click-through (reason ``popular``) and
  every education feature whether they used it or not (``app_feature``) — the same
  candidates for all of them (:mod:`segue.data.consent`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segue.nba.actions import ACTION_TYPES, EDUCATION_FEATURES, ActionType, Reason
from segue.nba.cf import CFScorer
from segue.nba.features import CTRTable, ItemTable, Profiles

REASONS: tuple[Reason, ...] = tuple(Reason)
_TRACK_ACTION = ACTION_TYPES.index(ActionType.PLAY_TRACK)


@dataclass
class Candidates:
    """Flat (user, item) pairs with a reason code (into REASONS) and a CF score (NaN: none)."""

    user: np.ndarray
    item: np.ndarray
    reason: np.ndarray
    cf: np.ndarray

    def __len__(self) -> int:
        return len(self.user)


def generate_candidates(
    users: np.ndarray,
    items: ItemTable,
    profiles: Profiles,
    cf: CFScorer | None,
    ctr: CTRTable,
    k: int = 10,
    personal: np.ndarray | None = None,
) -> Candidates:
    """Candidates for ``users`` (positions in the store's user vocabulary); ``personal``
    (aligned with ``users``, default all True) False for users without consent."""
    users = np.asarray(users, dtype=np.int64)
    parts: list[tuple[np.ndarray, np.ndarray, int, np.ndarray]] = []
    if personal is not None and not np.all(personal):
        personal = np.asarray(personal, dtype=bool)
        _non_personal(users[~personal], items, ctr, parts)
        users = users[personal]
    known = np.zeros(len(users), dtype=bool)
    if cf is not None and len(users):
        top, scores = cf.top_items(users, k)
        promotable = (top >= 0) & (items.action[np.maximum(top, 0)] >= 0)
        known = (top >= 0).any(axis=1)
        rows, cols = np.nonzero(promotable)
        parts.append(
            (
                users[rows],
                top[rows, cols],
                REASONS.index(Reason.LIKED_BY_SIMILAR),
                scores[rows, cols],
            )
        )
        is_track = promotable & (items.action[np.maximum(top, 0)] == _TRACK_ACTION)
        has_track = is_track.any(axis=1)
        best = top[np.arange(len(users)), np.argmax(is_track, axis=1)][has_track]
        for derived in (_album_of(items, best), items.artist[best]):
            ok = derived >= 0
            who = users[has_track][ok]
            parts.append(
                (
                    who,
                    derived[ok],
                    REASONS.index(Reason.ARTIST_YOU_PLAY),
                    cf.pair_scores(who, derived[ok]),
                )
            )
    cold = users[~known]
    if len(cold):
        for item in _best_by_ctr(items, ctr):
            parts.append(
                (
                    cold,
                    np.full(len(cold), item),
                    REASONS.index(Reason.LIKED_BY_SIMILAR),
                    np.full(len(cold), np.nan),
                )
            )
    for f, feature_id in enumerate(EDUCATION_FEATURES):
        (position,) = items.index([feature_id])
        if position < 0:
            continue
        who = users[~profiles.feature_used[users, f]]
        parts.append(
            (
                who,
                np.full(len(who), position),
                REASONS.index(Reason.NEVER_TRIED),
                np.full(len(who), np.nan),
            )
        )
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return Candidates(empty, empty, empty, np.zeros(0))
    return Candidates(
        user=np.concatenate([p[0] for p in parts]).astype(np.int64),
        item=np.concatenate([p[1] for p in parts]).astype(np.int64),
        reason=np.concatenate([np.full(len(p[0]), p[2]) for p in parts]).astype(np.int64),
        cf=np.concatenate([p[3] for p in parts]).astype(np.float64),
    )


def _non_personal(
    users: np.ndarray,
    items: ItemTable,
    ctr: CTRTable,
    parts: list[tuple[np.ndarray, np.ndarray, int, np.ndarray]],
) -> None:
    """The same candidates for every user of ``users``: popular items and app features."""
    if len(users) == 0:
        return
    nan = np.full(len(users), np.nan)
    for item in _best_by_ctr(items, ctr):
        parts.append((users, np.full(len(users), item), REASONS.index(Reason.POPULAR), nan))
    for feature_id in EDUCATION_FEATURES:
        (position,) = items.index([feature_id])
        if position >= 0:
            parts.append(
                (users, np.full(len(users), position), REASONS.index(Reason.APP_FEATURE), nan)
            )


def _album_of(items: ItemTable, tracks: np.ndarray) -> np.ndarray:
    """Album position of each track (-1 when unknown)."""
    return items.album[tracks] if len(tracks) else np.zeros(0, dtype=np.int64)


def _best_by_ctr(items: ItemTable, ctr: CTRTable) -> list[int]:
    """Per action type (features aside), the catalog item with the best smoothed CTR."""
    if len(ctr.item_ids) == 0:
        return []
    positions = items.index(ctr.item_ids)
    ok = positions >= 0
    positions = positions[ok]
    rates = ctr.logit(ctr.item_ids[ok], items.action[positions])
    out = []
    for a in range(len(ACTION_TYPES)):
        if ACTION_TYPES[a] == ActionType.TRY_FEATURE:
            continue
        mask = items.action[positions] == a
        if mask.any():
            out.append(int(positions[mask][np.argmax(rates[mask])]))
    return out
