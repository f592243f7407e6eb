"""Decision logic: which candidate, on which channel, when — or nothing at all.

For every candidate and every channel the user consented to (push needs ``consent_push``,
e-mail ``consent_email``; in-app cards need none), the click model predicts the click
probability at the moment the message would go out, and the expected value is
``p × business value``. Rules then remove what must not be sent:

* kids profiles get no marketing messages at all; holdout users (a stable hash of campaign and
  user, ``holdout_share`` of them) get nothing, so that the campaign report can compare;
* push and e-mail are never sent in quiet hours of the user's time zone: they are scheduled
  for the end of the quiet hours instead (in-app cards wait for the app, so they are not held);
* at most ``daily_caps[channel]`` messages per user, channel and local day (counting what the
  outbox already holds for that day);
* the same item is not suggested again within ``no_repeat_days``;
* ``p ≥ min_probability`` and ``p × value ≥ min_expected_value``.

Of what is left, each user gets the one message with the highest expected value; the channel
choice falls out of that comparison, because the model scores each channel separately.

Users without personalisation consent are scored as nobody in particular
(:func:`neutral_view`): no history, no age band or gender — only their context (country, time
zone) and the channels they allow — so that what they get depends on nothing they did.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from segue.errors import SegueError
from segue.nba.actions import ACTION_TYPES, CATALOGUE
from segue.nba.candidates import Candidates
from segue.nba.clickmodel import ClickModel
from segue.nba.features import (
    CHANNELS,
    DAY_MS,
    HOUR_MS,
    NEVER_PLAYED_DAYS,
    Audience,
    ItemTable,
    Profiles,
    Rows,
)

VALUES = np.array([CATALOGUE[a].value for a in ACTION_TYPES])


@dataclass(frozen=True)
class PolicySettings:
    min_probability: float = 0.01
    min_expected_value: float = 0.02
    daily_caps: dict[str, int] = field(default_factory=lambda: {"push": 1, "email": 1, "in_app": 2})
    quiet_start: int = 21  # local hour quiet hours begin
    quiet_end: int = 9  # local hour they end
    no_repeat_days: int = 14
    holdout_share: float = 0.1
    channels: tuple[str, ...] = CHANNELS

    def __post_init__(self) -> None:
        if not 0 <= self.holdout_share < 1:
            raise SegueError("holdout_share must be in [0, 1)")
        for hour in (self.quiet_start, self.quiet_end):
            if not 0 <= hour <= 23:
                raise SegueError(f"quiet hours must be local hours 0-23, not {hour}")
        unknown = set(self.channels) - set(CHANNELS)
        if unknown:
            raise SegueError(f"unknown channel(s) {sorted(unknown)}; known: {list(CHANNELS)}")
        if self.no_repeat_days < 0:
            raise SegueError("no_repeat_days must be >= 0")


def neutral_view(
    profiles: Profiles, audience: Audience, mask: np.ndarray
) -> tuple[Profiles, Audience]:
    """Copies in which the users of ``mask`` (by position) have no history (no plays, skips,
    minutes, genres, artists or features used; never played) and no age band or gender.
    Country, time zone, channel consents and the kids flag stay: they are the context."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return profiles, audience
    keep = (~mask).astype(np.float64)

    def zero_rows(values: np.ndarray) -> np.ndarray:
        out = values.copy()
        out[mask] = 0
        return out

    neutral = replace(
        profiles,
        plays=zero_rows(profiles.plays),
        skips=zero_rows(profiles.skips),
        minutes=zero_rows(profiles.minutes),
        recency_days=np.where(mask, NEVER_PLAYED_DAYS, profiles.recency_days),
        active_days=zero_rows(profiles.active_days),
        genre_plays=sp.csr_matrix(sp.diags(keep) @ profiles.genre_plays),
        artist_plays=sp.csr_matrix(sp.diags(keep) @ profiles.artist_plays),
        feature_used=zero_rows(profiles.feature_used),
    )
    anonymous = replace(
        audience,
        age_band=np.where(mask, -1, audience.age_band),
        gender=np.where(mask, -1, audience.gender),
    )
    return neutral, anonymous


def in_holdout(user_ids: Sequence[str], campaign: str, share: float) -> np.ndarray:
    """Stable assignment: the same user is in the same group of a campaign on every run."""
    if share <= 0:
        return np.zeros(len(user_ids), dtype=bool)
    salt = campaign.encode() + b"\x00"
    draws = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(salt + str(u).encode(), digest_size=8).digest())
            for u in user_ids
        ),
        dtype=np.uint64,
        count=len(user_ids),
    )
    return draws / float(2**64) < share


def quiet(hour: np.ndarray, settings: PolicySettings) -> np.ndarray:
    start, end = settings.quiet_start, settings.quiet_end
    if start == end:
        return np.zeros(len(hour), dtype=bool)
    if start < end:
        return (hour >= start) & (hour < end)
    return (hour >= start) | (hour < end)


def send_times(
    audience: Audience,
    users: np.ndarray,
    channels: np.ndarray,
    now_ms: int,
    settings: PolicySettings,
) -> np.ndarray:
    """``now``, or for push/e-mail in quiet hours the next local ``quiet_end`` o'clock."""
    now = np.full(len(users), now_ms, dtype=np.int64)
    local = audience.local_ms(users, now)
    hour = (local // HOUR_MS) % 24
    held = quiet(hour, settings) & (channels != CHANNELS.index("in_app"))
    target = local - local % DAY_MS + settings.quiet_end * HOUR_MS
    target = np.where(target <= local, target + DAY_MS, target)
    return np.where(held, now + (target - local), now)


@dataclass
class Scored:
    """Candidates × consented channels with predictions; ``chosen`` marks the messages."""

    user: np.ndarray
    item: np.ndarray
    channel: np.ndarray
    reason: np.ndarray
    p: np.ndarray
    ev: np.ndarray
    scheduled_ms: np.ndarray
    allowed: np.ndarray
    chosen: np.ndarray

    def __len__(self) -> int:
        return len(self.user)


def decide(
    cands: Candidates,
    audience: Audience,
    items: ItemTable,
    profiles: Profiles,
    model: ClickModel,
    now_ms: int,
    recent: dict[str, np.ndarray],
    settings: PolicySettings,
    holdout: np.ndarray | None = None,
) -> Scored:
    """Score, filter and choose (see the module docstring).

    ``recent`` is :meth:`Store.outbox_recent` since ``now - no_repeat_days`` (at least a day);
    ``holdout`` flags users (by position) who must get nothing.
    """
    n_ch = len(CHANNELS)
    user = np.repeat(cands.user, n_ch)
    item = np.repeat(cands.item, n_ch)
    reason = np.repeat(cands.reason, n_ch)
    cf = np.repeat(cands.cf, n_ch)
    channel = np.tile(np.arange(n_ch), len(cands))
    consent = np.stack(
        [audience.consent_push[user], audience.consent_email[user], np.ones(len(user), bool)],
        axis=1,
    )[np.arange(len(user)), channel]
    wanted = np.isin(channel, [CHANNELS.index(c) for c in settings.channels])
    keep = consent & wanted & ~audience.kids[user] & audience.known[user]
    if holdout is not None:
        keep &= ~holdout[user]
    user, item, reason, cf, channel = user[keep], item[keep], reason[keep], cf[keep], channel[keep]
    scheduled = send_times(audience, user, channel, now_ms, settings)
    rows = Rows(user, item, channel, scheduled, cf)
    p = np.zeros(len(user))
    step = 200_000
    for start in range(0, len(user), step):
        part = slice(start, start + step)
        chunk = Rows(user[part], item[part], channel[part], scheduled[part], cf[part])
        X = model.space.encode(chunk, profiles, items, audience, model.ctr)
        p[part] = model.predict(X)
    ev = p * VALUES[items.action[item]]
    allowed = (p >= settings.min_probability) & (ev >= settings.min_expected_value)
    allowed &= _rules(rows, audience, items, recent, now_ms, settings)
    chosen = _best_per_user(user, ev, allowed)
    return Scored(user, item, channel, reason, p, ev, scheduled, allowed, chosen)


def _rules(
    rows: Rows,
    audience: Audience,
    items: ItemTable,
    recent: dict[str, np.ndarray],
    now_ms: int,
    settings: PolicySettings,
) -> np.ndarray:
    """No repeat within ``no_repeat_days``; daily caps per user, channel and local day."""
    ok = np.ones(len(rows), dtype=bool)
    if len(recent["user_id"]) == 0 or len(rows) == 0:
        return ok
    position = audience.__dict__.get("_pos")
    if position is None:
        position = {u: i for i, u in enumerate(audience.ids)}
        object.__setattr__(audience, "_pos", position)
    r_user = np.array([position.get(u, -1) for u in recent["user_id"]], dtype=np.int64)
    r_item = items.index(recent["item_id"])
    r_channel = np.array([CHANNELS.index(c) for c in recent["channel"]], dtype=np.int64)
    known = r_user >= 0
    n_items = len(items.ids) + 1
    window = recent["created_ms"] >= now_ms - settings.no_repeat_days * DAY_MS
    sent_pairs = np.unique(r_user[known & window] * n_items + r_item[known & window])
    ok &= ~np.isin(rows.user * n_items + rows.item, sent_pairs)
    r_day = audience.local_ms(r_user[known], recent["scheduled_ms"][known]) // DAY_MS
    c_day = audience.local_ms(rows.user, rows.ts_ms) // DAY_MS
    n_ch = len(CHANNELS)
    base = int(min(r_day.min(initial=c_day.min(initial=0)), c_day.min(initial=0)))
    span = int(max(r_day.max(initial=0), c_day.max(initial=0))) - base + 1
    r_key = (r_user[known] * n_ch + r_channel[known]) * span + (r_day - base)
    keys, counts = np.unique(r_key, return_counts=True)
    c_key = (rows.user * n_ch + rows.channel) * span + (c_day - base)
    used = np.zeros(len(rows), dtype=np.int64)
    if len(keys):
        found = np.minimum(np.searchsorted(keys, c_key), len(keys) - 1)
        used = np.where(keys[found] == c_key, counts[found], 0)
    caps = np.array([settings.daily_caps.get(c, 0) for c in CHANNELS])[rows.channel]
    return ok & (used < caps)


def _best_per_user(user: np.ndarray, ev: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """One True per user: the allowed row with the highest expected value."""
    chosen = np.zeros(len(user), dtype=bool)
    idx = np.flatnonzero(allowed)
    if len(idx) == 0:
        return chosen
    order = idx[np.lexsort((-ev[idx], user[idx]))]
    first = np.r_[True, user[order][1:] != user[order][:-1]]
    chosen[order[first]] = True
    return chosen
