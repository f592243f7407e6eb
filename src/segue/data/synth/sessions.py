"""Listening sessions and the events inside them, generated one block of users at a time.

A block's events depend only on the seed, the block number and the world, never on what was
generated before it or on the chunk size a reader asks for; that is what lets 50M events be
streamed in constant memory and still be identical on every run.

Per user and period: ``Poisson(session_rate)`` sessions on local days after signup (weekday
weights), at local hours from the daily curve. Each session has a kind (music, podcast, video,
audiobook), a surface and a device. Music sessions pick a genre from the user's mixture (as
it is at the session's start, where taste drifts: ``SynthParams.taste_drift``; tilted
towards the genres of the session's daypart, where ``SynthParams.daypart_effect`` says) and play
tracks chosen as in :mod:`segue.data.synth.choice`, with some slots replaced by a replay of
a favourite; 3% of them are Focus-Mode sessions (one track on repeat). Every play is a skip
or a (full or partial) play, and may bring a like, an add-to-playlist, a dislike or a follow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from segue.data.dayparts import daypart_of_hour
from segue.data.model import EVENT_CODES, EventType, ItemKind
from segue.data.synth.catalog import Catalog
from segue.data.synth.choice import (
    DAY_MS,
    Proposal,
    Shortlist,
    row_categorical,
)
from segue.data.synth.clock import HOUR_MS, hour_cdf, utc_offsets_ms, weekday_acceptance
from segue.data.synth.params import SynthParams
from segue.data.synth.tables import (
    DAILY_MIX,
    DEVICES,
    DISCOVERY,
    FOCUS,
    MUSIC_SURFACES,
    PRIMARY_DEVICE_SHARE,
    SURFACE_INDEX,
    TIMEZONES,
)
from segue.data.synth.users import Population

MUSIC, PODCAST, VIDEO, AUDIOBOOK = range(4)
#: Target number of events per block of users (memory of one block, not of a chunk).
BLOCK_EVENTS = 250_000
#: A podcast session plays the newest released episode of the chosen show this often.
LATEST_EPISODE_SHARE = 0.7
#: Audiobook sessions listen for this many minutes (uniform), at most to the end.
AUDIOBOOK_MINUTES = (10, 60)
#: Pause between two plays of a session (ms, uniform).
GAP_MS = (500, 3_000)
#: Partial plays stop at this fraction of the track (uniform).
PARTIAL_FRACTION = (0.3, 0.95)
#: Number of sessions drawn to calibrate the skip and like intercepts.
CALIBRATION_SESSIONS = 3_000

_PLAY = EVENT_CODES[EventType.PLAY]
_SKIP = EVENT_CODES[EventType.SKIP]
_LIKE = EVENT_CODES[EventType.LIKE]
_DISLIKE = EVENT_CODES[EventType.DISLIKE]
_PLAYLIST = EVENT_CODES[EventType.ADD_TO_PLAYLIST]
_FOLLOW = EVENT_CODES[EventType.FOLLOW]
_OPEN = EVENT_CODES[EventType.OPEN]
_DISCOVERY_SURFACE = SURFACE_INDEX["discovery_station"]
_DAILY_MIX_SURFACE = SURFACE_INDEX["daily_mix"]
_FOCUS_SURFACE = SURFACE_INDEX["focus_mode"]
_KIND_SURFACE = {
    PODCAST: SURFACE_INDEX["podcasts"],
    VIDEO: SURFACE_INDEX["videos"],
    AUDIOBOOK: SURFACE_INDEX["audiobooks"],
}


def expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# -- planning: how many sessions each user has ------------------------------------------------
@dataclass
class Plan:
    """Expected sessions per user, and per-user kind and surface probabilities."""

    session_rate: np.ndarray
    kind_probs: np.ndarray
    surface_probs: np.ndarray
    rows_per_session: np.ndarray


def surface_probabilities(feature_affinity: np.ndarray) -> np.ndarray:
    """Music-session surfaces; feature surfaces scaled by ``exp(affinity - 1/2)``."""
    base = np.array([w for _, w in MUSIC_SURFACES])
    w = np.broadcast_to(base, (len(feature_affinity), len(base))).copy()
    w[:, _DISCOVERY_SURFACE] *= np.exp(feature_affinity[:, DISCOVERY] - 0.5)
    w[:, _DAILY_MIX_SURFACE] *= np.exp(feature_affinity[:, DAILY_MIX] - 0.5)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def kind_probabilities(params: SynthParams, pop: Population) -> np.ndarray:
    p = params
    probs = np.zeros((len(pop), 4), dtype=np.float64)
    probs[:, PODCAST] = p.podcast_session_share * pop.podcast
    probs[:, VIDEO] = p.video_session_share * pop.video
    probs[:, AUDIOBOOK] = p.audiobook_session_share * pop.audiobook
    probs[:, MUSIC] = 1.0 - probs[:, 1:].sum(axis=1)
    return probs.astype(np.float32)


def expected_rows(params: SynthParams, kind_probs: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """Expected events per session of each user, from the documented rates."""
    p = params
    s, like = p.skip_rate, p.like_prob
    music_len = p.session_length_mean
    per_play = 1 + (1 - s) * (like + p.playlist_prob + like * p.follow_prob) + s * p.dislike_prob
    music = (1 - p.focus_share) * (
        music_len * per_play + surface[:, _DISCOVERY_SURFACE]
    ) + p.focus_share * (p.focus_length_mean + 1)
    podcast = 1 + p.podcast_follow_prob
    video = p.video_length_mean * (1 + (1 - s) * like)
    return (
        kind_probs[:, MUSIC] * music
        + kind_probs[:, PODCAST] * podcast
        + kind_probs[:, VIDEO] * video
        + kind_probs[:, AUDIOBOOK] * 1.0
    )


def plan_sessions(params: SynthParams, pop: Population) -> Plan:
    """Spread ``n_events`` over users ∝ activity × active days, in sessions.

    ``session_rate_u = n_events · share_u / rows_u``, with ``share_u`` the user's share of
    activity × days active in the period and ``rows_u`` the expected events per session.
    """
    p = params
    kind_probs = kind_probabilities(p, pop)
    surface = surface_probabilities(pop.feature_affinity)
    rows = expected_rows(p, kind_probs, surface)
    first_day = np.clip((pop.signup_ms - p.start_ms) // DAY_MS, 0, p.n_days)
    days = (p.n_days - first_day).astype(np.float64)
    weight = pop.activity * days
    total = weight.sum()
    share = weight / total if total > 0 else weight
    rate = p.n_events * share / rows
    return Plan(
        session_rate=rate, kind_probs=kind_probs, surface_probs=surface, rows_per_session=rows
    )


# -- calibration: intercepts that make the marginal rates equal the parameters ---------------
@dataclass(frozen=True)
class Calibration:
    """Solved once per world: the affinity scale and the skip/like intercepts.

    ``z = (u·v - affinity_mean) / affinity_std`` over a sample of music plays;
    ``P(skip) = expit(skip_intercept - skip_affinity · z)`` and
    ``P(like | not skipped) = expit(like_intercept + like_affinity · z)``, with the
    intercepts chosen so that the sample's mean skip rate is ``skip_rate`` and its mean like
    rate among non-skipped plays is ``like_prob``.
    """

    affinity_mean: float
    affinity_std: float
    skip_intercept: float
    like_intercept: float
    sample_plays: int


def _solve(target: float, fn: Callable[[float], float]) -> float:
    """θ with fn(θ) = target for an increasing fn, by bisection."""
    lo, hi = -40.0, 40.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if fn(mid) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def solve_intercepts(params: SynthParams, z: np.ndarray) -> tuple[float, float]:
    """The (skip, like) intercepts for standardised affinities ``z`` of sampled plays."""
    p = params
    z = z.astype(np.float64)
    skip = _solve(p.skip_rate, lambda t: float(np.mean(expit(t - p.skip_affinity * z))))
    kept = 1 - expit(skip - p.skip_affinity * z)
    like = _solve(
        p.like_prob,
        lambda t: float(np.sum(kept * expit(t + p.like_affinity * z)) / np.sum(kept)),
    )
    return skip, like


# -- the engine ------------------------------------------------------------------------------
@dataclass
class Block:
    """Events of one block of users, sorted by (user, timestamp); ``session`` numbers the
    block's sessions from 0 in (user, start) order."""

    user: np.ndarray
    item: np.ndarray
    type: np.ndarray
    ts_ms: np.ndarray
    ms_played: np.ndarray
    focus: np.ndarray
    session: np.ndarray
    surface: np.ndarray
    device: np.ndarray
    n_sessions: int

    def __len__(self) -> int:
        return len(self.user)


@dataclass
class _Rows:
    session: list[np.ndarray] = field(default_factory=list)
    item: list[np.ndarray] = field(default_factory=list)
    type: list[np.ndarray] = field(default_factory=list)
    ts: list[np.ndarray] = field(default_factory=list)
    ms: list[np.ndarray] = field(default_factory=list)
    focus: list[np.ndarray] = field(default_factory=list)

    def add(
        self,
        session: np.ndarray,
        item: np.ndarray,
        code: int | np.ndarray,
        ts: np.ndarray,
        ms: np.ndarray | int = -1,
        focus: np.ndarray | bool = False,
    ) -> None:
        n = len(session)
        self.session.append(np.asarray(session, dtype=np.int64))
        self.item.append(np.asarray(item, dtype=np.int32))
        self.type.append(np.broadcast_to(np.asarray(code, dtype=np.uint8), n))
        self.ts.append(np.asarray(ts, dtype=np.int64))
        self.ms.append(np.broadcast_to(np.asarray(ms, dtype=np.int64), n))
        self.focus.append(np.broadcast_to(np.asarray(focus, dtype=bool), n))


@dataclass
class _Sessions:
    user: np.ndarray
    start: np.ndarray
    kind: np.ndarray
    focus: np.ndarray
    surface: np.ndarray
    device: np.ndarray
    #: each session's local start hour (0-23); None where not drawn (the calibration's)
    hour: np.ndarray | None = None


@dataclass
class _Plays:
    """Music plays of some sessions: session index, user, track, and whether in focus."""

    session: np.ndarray
    user: np.ndarray
    track: np.ndarray
    focus: np.ndarray


class EventEngine:
    """Generates the events of the world block by block (see the module docstring)."""

    def __init__(
        self,
        params: SynthParams,
        catalog: Catalog,
        pop: Population,
        plan: Plan,
        calibration: Calibration | None = None,
    ) -> None:
        p = params
        self.p, self.catalog, self.pop, self.plan = p, catalog, pop, plan
        self.calibration = calibration
        self.offsets = utc_offsets_ms(TIMEZONES, p.start_date, p.n_days)
        self.hour_cdf = hour_cdf()
        self.accept = weekday_acceptance(p.start_date, p.n_days)
        self.shortlist = Shortlist(
            latent=catalog.latent,
            release_ms=catalog.release_ms,
            explicit=catalog.explicit,
            affinity_scale=p.affinity_scale,
            recency_boost=p.recency_boost,
            recency_days=p.recency_days,
            fallback=catalog.fallback_track,
        )
        self.tracks = Proposal.grouped(catalog.genre_keys, catalog.genre_order, p.n_genres)
        v_lo, v_hi = catalog.span(ItemKind.VIDEO)
        self.videos = (
            Proposal.single(np.arange(v_lo, v_hi), catalog.popularity[v_lo:v_hi])
            if v_hi > v_lo
            else None
        )
        fav_w = 1.0 / np.arange(1, p.n_favourites + 1)
        self.fav_cdf = np.cumsum(fav_w) / fav_w.sum()
        self.device_cdf = np.cumsum([w for _, w in DEVICES])
        self.device_cdf /= self.device_cdf[-1]
        mean_events = p.n_events / max(p.n_users, 1)
        self.block_size = int(np.clip(BLOCK_EVENTS / max(mean_events, 1e-9), 64, 65_536))
        self.n_blocks = -(-p.n_users // self.block_size)
        self.artist_lo = catalog.span(ItemKind.ARTIST)[0]
        self.show_lo = catalog.span(ItemKind.PODCAST_SHOW)[0]
        self.episode_lo = catalog.span(ItemKind.PODCAST_EPISODE)[0]
        self.book_lo = catalog.span(ItemKind.AUDIOBOOK)[0]
        self.feature_lo = catalog.span(ItemKind.FEATURE)[0]
        ep_release = catalog.release_ms[self.episode_lo : catalog.span(ItemKind.PODCAST_EPISODE)[1]]
        self.ep_base = int(ep_release.min()) if len(ep_release) else 0
        self.ep_keys = catalog.episode_show.astype(np.int64) * (1 << 42) + (
            ep_release - self.ep_base
        )

    # -- public -------------------------------------------------------------------------
    def block_bounds(self, block: int) -> tuple[int, int]:
        lo = block * self.block_size
        return lo, min(self.p.n_users, lo + self.block_size)

    def generate_block(self, block: int) -> Block:
        if self.calibration is None:
            raise RuntimeError("EventEngine.calibrate() must run before generating events")
        rng = np.random.default_rng(np.random.SeedSequence([self.p.seed, 3, block]))
        lo, hi = self.block_bounds(block)
        sess = self._schedule(rng, np.arange(lo, hi))
        active = np.unique(sess.user)
        favs = self.favourites(rng, active)
        fav_row = np.searchsorted(active, sess.user)
        rows = _Rows()
        music = np.flatnonzero(sess.kind == MUSIC)
        plays = self.music_plays(rng, sess, music, favs, fav_row)
        self._music_rows(rng, rows, sess, plays)
        self._open_rows(rows, sess)
        self._podcast_rows(rng, rows, sess, np.flatnonzero(sess.kind == PODCAST))
        self._video_rows(rng, rows, sess, np.flatnonzero(sess.kind == VIDEO))
        self._audiobook_rows(rng, rows, sess, np.flatnonzero(sess.kind == AUDIOBOOK))
        return self._finish(rows, sess)

    def calibrate(self) -> Calibration:
        """Solve the affinity scale and the skip/like intercepts on a sample of music plays."""
        p = self.p
        rng = np.random.default_rng(np.random.SeedSequence([p.seed, 4]))
        weight = self.plan.session_rate * self.plan.kind_probs[:, MUSIC]
        if weight.sum() <= 0:
            weight = np.ones(p.n_users)
        n = CALIBRATION_SESSIONS
        users = np.sort(rng.choice(p.n_users, size=n, p=weight / weight.sum()))
        first = np.clip((self.pop.signup_ms[users] - p.start_ms) // DAY_MS, 0, p.n_days - 1)
        day = first + np.floor(rng.random(n) * (p.n_days - first)).astype(np.int64)
        start = p.start_ms + day * DAY_MS + DAY_MS // 2
        sess = _Sessions(
            user=users,
            start=start,
            kind=np.zeros(n, dtype=np.int8),
            focus=np.zeros(n, dtype=bool),
            surface=np.zeros(n, dtype=np.uint8),
            device=np.zeros(n, dtype=np.uint8),
        )
        active = np.unique(users)
        favs = self.favourites(rng, active)
        plays = self.music_plays(rng, sess, np.arange(n), favs, np.searchsorted(active, users))
        a = self._affinity(plays.user, plays.track, sess.start[plays.session])
        mean, std = float(a.mean()), float(a.std())
        std = std if std > 1e-12 else 1.0
        skip, like = solve_intercepts(p, (a - mean) / std)
        self.calibration = Calibration(mean, std, skip, like, len(a))
        return self.calibration

    # -- schedule -----------------------------------------------------------------------
    def _schedule(self, rng: np.random.Generator, users: np.ndarray) -> _Sessions:
        p, pop = self.p, self.pop
        counts = rng.poisson(self.plan.session_rate[users])
        su = np.repeat(users, counts)
        s = len(su)
        first = np.clip((pop.signup_ms[su] - p.start_ms) // DAY_MS, 0, p.n_days)
        span = p.n_days - first
        day = first + np.floor(rng.random(s) * span).astype(np.int64)
        pending = np.flatnonzero(rng.random(s) >= self.accept[np.minimum(day, p.n_days - 1)])
        while len(pending):  # rejection sampling of the weekday curve
            day[pending] = first[pending] + np.floor(rng.random(len(pending)) * span[pending])
            keep = rng.random(len(pending)) >= self.accept[np.minimum(day[pending], p.n_days - 1)]
            pending = pending[keep]
        hour = np.minimum(np.searchsorted(self.hour_cdf, rng.random(s), side="right"), 23)
        within = rng.integers(0, HOUR_MS, size=s)
        day_c = np.minimum(day, p.n_days - 1)
        local = day * DAY_MS + hour * HOUR_MS + within
        start = p.start_ms + local - self.offsets[pop.tz[su], day_c]
        kind = row_categorical(self.plan.kind_probs[su], rng.random(s)).astype(np.int8)
        focus = (kind == MUSIC) & (rng.random(s) < p.focus_share)
        surface = row_categorical(self.plan.surface_probs[su], rng.random(s)).astype(np.uint8)
        surface[focus] = _FOCUS_SURFACE
        for k, code in _KIND_SURFACE.items():
            surface[kind == k] = code
        other = np.minimum(np.searchsorted(self.device_cdf, rng.random(s), side="right"), 5)
        device = np.where(rng.random(s) < PRIMARY_DEVICE_SHARE, pop.device[su], other)
        ok = (span > 0) & (start >= pop.signup_ms[su]) & (start >= p.start_ms)
        ok &= start < p.end_ms
        idx = np.flatnonzero(ok)
        idx = idx[np.lexsort((start[idx], su[idx]))]
        return _Sessions(
            user=su[idx],
            start=start[idx],
            kind=kind[idx],
            focus=focus[idx],
            surface=surface[idx],
            device=device[idx].astype(np.uint8),
            hour=hour[idx].astype(np.int8),
        )

    # -- music --------------------------------------------------------------------------
    def favourites(self, rng: np.random.Generator, users: np.ndarray) -> np.ndarray:
        """``n_favourites`` tracks per user, best first, from a genre-mixed shortlist of 3×
        that size at the period start (so favourites exist before any session)."""
        p, pop = self.p, self.pop
        n, f = len(users), p.n_favourites
        if n == 0:
            return np.zeros((0, f), dtype=np.int32)
        size = 3 * f
        genres = row_categorical(pop.genre_weights[users], rng.random((n, size)))
        at = np.full(n, p.start_ms, dtype=np.int64)
        cand, logit = self.shortlist.score(
            rng, self.tracks, pop.latent[users], genres, at, pop.kids[users], size
        )
        out = np.full((n, f), -1, dtype=np.int32)
        picked = self.shortlist.top(rng, cand, logit, f)
        out[:, : picked.shape[1]] = picked
        return out

    def music_plays(
        self,
        rng: np.random.Generator,
        sess: _Sessions,
        idx: np.ndarray,
        favs: np.ndarray,
        fav_row: np.ndarray,
    ) -> _Plays:
        """Tracks of the music sessions ``idx``, in play order (see the module docstring)."""
        p, pop = self.p, self.pop
        n = len(idx)
        su, start, focus = sess.user[idx], sess.start[idx], sess.focus[idx]
        weights, latent = pop.taste_at(su, self.drift(start))
        if pop.genre_daypart is not None and sess.hour is not None:
            tilt = pop.genre_daypart[:, daypart_of_hour(sess.hour[idx])].T
            weights = weights * np.exp(tilt)
        genres = row_categorical(weights, rng.random(n))
        length = rng.geometric(1 / p.session_length_mean, size=n)
        focus_length = rng.geometric(1 / p.focus_length_mean, size=n)
        cand, logit = self.shortlist.score(
            rng, self.tracks, latent, genres, start, pop.kids[su], p.shortlist_size
        )
        n_plays = np.where(focus, focus_length, length)
        local = np.repeat(np.arange(n), n_plays)
        in_focus = focus[local]
        # a focus session repeats one track: one draw per session, not per play
        single = self.shortlist.sample(rng, cand, logit, np.arange(n))
        track = self.shortlist.sample(rng, cand, logit, local)
        track = np.where(in_focus, single[local], track)
        replay = ~in_focus & (rng.random(len(local)) < p.repeat_share)
        k = np.minimum(
            np.searchsorted(self.fav_cdf, rng.random(len(local)), side="right"), favs.shape[1] - 1
        )
        fav = favs[fav_row[idx][local], k] if len(local) else np.zeros(0, np.int32)
        track = np.where(replay & (fav >= 0), fav, track)
        return _Plays(session=idx[local], user=su[local], track=track, focus=in_focus)

    def drift(self, at_ms: np.ndarray) -> np.ndarray:
        """How far taste has drifted at ``at_ms``: ``taste_drift`` times the share of the
        period gone by (0 at its start)."""
        p = self.p
        gone = (np.asarray(at_ms, dtype=np.float64) - p.start_ms) / (p.end_ms - p.start_ms)
        return p.taste_drift * np.clip(gone, 0.0, 1.0)

    def _affinity(self, users: np.ndarray, items: np.ndarray, at_ms: np.ndarray) -> np.ndarray:
        """u·v of each play with the listener's taste at the play's session start."""
        out = np.empty(len(users), dtype=np.float64)
        step = 262_144
        for lo in range(0, len(users), step):
            chunk = users[lo : lo + step]
            _, u = self.pop.taste_at(chunk, self.drift(at_ms[lo : lo + step]))
            v = np.take(self.catalog.latent, items[lo : lo + step], axis=0)
            out[lo : lo + step] = np.einsum("ij,ij->i", u, v)
        return out

    def _z(self, users: np.ndarray, items: np.ndarray, at_ms: np.ndarray) -> np.ndarray:
        c = self.calibration
        assert c is not None
        return (self._affinity(users, items, at_ms) - c.affinity_mean) / c.affinity_std

    def _outcomes(
        self,
        rng: np.random.Generator,
        users: np.ndarray,
        items: np.ndarray,
        focus: np.ndarray,
        at_ms: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(skipped, ms_played, liked) of plays (sessions starting at ``at_ms``): the
        documented skip and like models."""
        p, c = self.p, self.calibration
        assert c is not None
        n = len(users)
        z = self._z(users, items, at_ms)
        skipped = ~focus & (rng.random(n) < expit(c.skip_intercept - p.skip_affinity * z))
        duration = self.catalog.duration_ms[items]
        skip_ms = np.minimum(duration, rng.integers(p.skip_ms_min, p.skip_ms_max, size=n))
        partial = ~focus & (rng.random(n) < p.partial_rate)
        frac = rng.uniform(*PARTIAL_FRACTION, size=n)
        ms = np.where(
            skipped, skip_ms, np.where(partial, (duration * frac).astype(np.int64), duration)
        )
        liked = ~skipped & ~focus & (rng.random(n) < expit(c.like_intercept + p.like_affinity * z))
        return skipped, ms, liked

    def _timeline(
        self, rng: np.random.Generator, session: np.ndarray, start: np.ndarray, ms: np.ndarray
    ) -> np.ndarray:
        """Start time of each play: back to back within its session, after a short pause.

        ``session`` must be grouped (a session's plays adjacent, in order)."""
        gap = rng.integers(*GAP_MS, size=len(session))
        step = ms + gap
        before = np.cumsum(step) - step
        first = np.r_[True, session[1:] != session[:-1]] if len(session) else np.zeros(0, bool)
        group_start = np.maximum.accumulate(np.where(first, np.arange(len(session)), 0))
        return start + (before - before[group_start]) + gap

    def _music_rows(
        self, rng: np.random.Generator, rows: _Rows, sess: _Sessions, plays: _Plays
    ) -> None:
        p = self.p
        n = len(plays.track)
        at = sess.start[plays.session]
        skipped, ms, liked = self._outcomes(rng, plays.user, plays.track, plays.focus, at)
        ts = self._timeline(rng, plays.session, at, ms)
        kept = ~skipped & ~plays.focus
        rows.add(plays.session, plays.track, np.where(skipped, _SKIP, _PLAY), ts, ms, plays.focus)
        like_ts = ts + np.maximum(1, (ms * rng.uniform(0.3, 1.0, size=n)).astype(np.int64))
        rows.add(plays.session[liked], plays.track[liked], _LIKE, like_ts[liked])
        added = kept & (rng.random(n) < p.playlist_prob)
        add_ts = ts + np.maximum(1, (ms * rng.uniform(0.3, 1.0, size=n)).astype(np.int64))
        rows.add(plays.session[added], plays.track[added], _PLAYLIST, add_ts[added])
        disliked = skipped & (rng.random(n) < p.dislike_prob)
        rows.add(plays.session[disliked], plays.track[disliked], _DISLIKE, (ts + ms)[disliked])
        follows = liked & (rng.random(n) < p.follow_prob)
        artist = self.artist_lo + self.catalog.track_artist[plays.track[follows]]
        rows.add(plays.session[follows], artist, _FOLLOW, like_ts[follows] + 1_000)

    def _open_rows(self, rows: _Rows, sess: _Sessions) -> None:
        """Opening Focus Mode or Discovery Station is itself an event (``open`` of the feature)."""
        for surface, feature in ((_FOCUS_SURFACE, FOCUS), (_DISCOVERY_SURFACE, DISCOVERY)):
            idx = np.flatnonzero(sess.surface == surface)
            item = np.full(len(idx), self.feature_lo + feature)
            rows.add(idx, item, _OPEN, sess.start[idx], -1, sess.focus[idx])

    # -- podcasts, videos, audiobooks ---------------------------------------------------
    def _podcast_rows(
        self, rng: np.random.Generator, rows: _Rows, sess: _Sessions, idx: np.ndarray
    ) -> None:
        p, c = self.p, self.catalog
        n = len(idx)
        if n == 0:
            return
        shows = self.pop.shows[sess.user[idx]]
        count = (shows >= 0).sum(axis=1)
        pick = np.floor(rng.random(n) * np.maximum(count, 1)).astype(np.int64)
        show = shows[np.arange(n), pick].astype(np.int64)
        start = sess.start[idx]
        first = c.show_episode_start[np.maximum(show, 0)]
        key = np.maximum(show, 0) * (1 << 42) + (start - self.ep_base)
        latest = np.searchsorted(self.ep_keys, key, side="right") - 1
        older = first + np.floor(rng.random(n) * (latest - first + 1)).astype(np.int64)
        episode = np.where(rng.random(n) < LATEST_EPISODE_SHARE, latest, older)
        ok = (count > 0) & (latest >= first)
        item = self.episode_lo + episode
        skipped, ms = self._spoken(rng, item)
        gap = rng.integers(*GAP_MS, size=n)
        follow = rng.random(n) < p.podcast_follow_prob
        ok_idx = idx[ok]
        rows.add(ok_idx, item[ok], np.where(skipped, _SKIP, _PLAY)[ok], (start + gap)[ok], ms[ok])
        f = ok & follow
        rows.add(idx[f], self.show_lo + show[f], _FOLLOW, (start + gap + 1_000)[f])

    def _spoken(self, rng: np.random.Generator, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.p
        n = len(items)
        duration = self.catalog.duration_ms[items]
        skipped = rng.random(n) < p.spoken_skip_rate
        skip_ms = np.minimum(duration, rng.integers(p.skip_ms_min, p.skip_ms_max, size=n))
        listened = (duration * rng.uniform(0.3, 1.0, size=n)).astype(np.int64)
        return skipped, np.where(skipped, skip_ms, listened)

    def _video_rows(
        self, rng: np.random.Generator, rows: _Rows, sess: _Sessions, idx: np.ndarray
    ) -> None:
        p = self.p
        n = len(idx)
        if n == 0 or self.videos is None:
            return
        su, start = sess.user[idx], sess.start[idx]
        length = rng.geometric(1 / p.video_length_mean, size=n)
        cand, logit = self.shortlist.score(
            rng,
            self.videos,
            self.pop.latent[su],
            np.zeros(n),
            start,
            self.pop.kids[su],
            p.shortlist_size,
        )
        local = np.repeat(np.arange(n), length)
        video = self.shortlist.sample(rng, cand, logit, local)
        unreleased = self.catalog.release_ms[video] > start[local]  # only the fallback track
        local, video = local[~unreleased], video[~unreleased]
        focus = np.zeros(len(local), dtype=bool)
        skipped, ms, liked = self._outcomes(rng, su[local], video, focus, start[local])
        listened = (self.catalog.duration_ms[video] * rng.uniform(0.5, 1.0, len(local))).astype(
            np.int64
        )
        ms = np.where(skipped, ms, listened)
        ts = self._timeline(rng, local, start[local], ms)
        session = idx[local]
        rows.add(session, video, np.where(skipped, _SKIP, _PLAY), ts, ms)
        like_ts = ts + np.maximum(1, ms // 2)
        rows.add(session[liked], video[liked], _LIKE, like_ts[liked])

    def _audiobook_rows(
        self, rng: np.random.Generator, rows: _Rows, sess: _Sessions, idx: np.ndarray
    ) -> None:
        n = len(idx)
        if n == 0:
            return
        books = self.pop.books[sess.user[idx]]
        count = (books >= 0).sum(axis=1)
        pick = np.floor(rng.random(n) * np.maximum(count, 1)).astype(np.int64)
        book = books[np.arange(n), pick].astype(np.int64)
        item = self.book_lo + np.maximum(book, 0)
        start = sess.start[idx]
        ok = (count > 0) & (self.catalog.release_ms[item] <= start)
        lo, hi = AUDIOBOOK_MINUTES
        ms = np.minimum(self.catalog.duration_ms[item], rng.integers(lo * 60_000, hi * 60_000, n))
        ts = start + rng.integers(*GAP_MS, size=n)
        rows.add(idx[ok], item[ok], _PLAY, ts[ok], ms[ok])

    # -- assembling the block -----------------------------------------------------------
    def _finish(self, rows: _Rows, sess: _Sessions) -> Block:
        p = self.p
        session = np.concatenate(rows.session)
        ts = np.concatenate(rows.ts)
        keep = ts < p.end_ms
        session, ts = session[keep], ts[keep]
        item = np.concatenate(rows.item)[keep]
        code = np.concatenate(rows.type)[keep]
        ms = np.concatenate(rows.ms)[keep]
        focus = np.concatenate(rows.focus)[keep]
        user = sess.user[session]
        order = np.lexsort((ts, user))
        user, item, code, ts = user[order], item[order], code[order], ts[order]
        ms, focus, session = ms[order], focus[order], session[order]
        follow = np.flatnonzero(code == _FOLLOW)
        if len(follow):  # a user follows an artist or show once
            key = user[follow].astype(np.int64) * self.catalog.n_items + item[follow]
            _, first = np.unique(key, return_index=True)
            drop = np.setdiff1d(follow, follow[first])
            keep = np.ones(len(user), dtype=bool)
            keep[drop] = False
            user, item, code, ts = user[keep], item[keep], code[keep], ts[keep]
            ms, focus, session = ms[keep], focus[keep], session[keep]
        used, local = np.unique(session, return_inverse=True)
        return Block(
            user=user.astype(np.int32),
            item=item,
            type=code,
            ts_ms=ts,
            ms_played=ms,
            focus=focus,
            session=local.astype(np.int64),
            surface=sess.surface[session],
            device=sess.device[session],
            n_sessions=len(used),
        )


__all__ = [
    "Block",
    "Calibration",
    "EventEngine",
    "Plan",
    "expected_rows",
    "plan_sessions",
    "solve_intercepts",
]
