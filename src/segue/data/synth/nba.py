"""Next-best-action messages in the synthetic world: logged impressions with known click odds.

A click model can only be judged against the truth if the truth is a function of what the model
may observe. So the click probability of a message is a logistic function of quantities that a
store of the world's events reveals, computed at the campaign start ``T`` (the world's end):

* the user's plays, minutes and skips per content kind (tracks, podcast episodes, videos,
  audiobooks), days since the last play and days active in the last 28 days;
* the share of the user's track plays in the action item's genre and by its artist;
* the user's age band crossed with the action's kind, the channel, the local hour and weekday;

plus three parts the model cannot see directly: a per-item *appeal* (visible only through the
item's past click-through rate), the world's latent affinity ``z`` (visible only through a
collaborative-filtering score) and per-message noise. ``docs/synthetic-world.md`` ("Next best
action") writes the formula out; :class:`NBASimParams` holds every weight.

:func:`simulate_impressions` draws a log of messages sent at random (every channel the user
consented to, every hour, items from each kind's most popular ``pool_size``), with the true
probability of each, and :meth:`NBALog.events` turns it into ordinary ``impression``, ``open``,
``click`` and ``conversion`` events (``surface`` = channel, ``source`` = action type,
``session_id`` = message id). :func:`respond` answers messages chosen by a campaign the same way
and adds the plays of users a message brought back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from segue.data.log import InteractionLog
from segue.data.model import EVENT_CODES, KIND_GROUP, EventType, ItemKind
from segue.data.synth.catalog import DAY_MS
from segue.data.synth.clock import HOUR_MS, utc_offsets_ms
from segue.data.synth.params import SynthParamError
from segue.data.synth.sessions import expit
from segue.data.synth.tables import CHANNELS, HOURLY_PROFILE, TIMEZONES
from segue.data.synth.world import World

#: Content kinds whose history describes a user; an action's kind maps onto one of them.
KIND_GROUPS: tuple[ItemKind, ...] = (
    ItemKind.TRACK,
    ItemKind.PODCAST_EPISODE,
    ItemKind.VIDEO,
    ItemKind.AUDIOBOOK,
)
#: Action type (``Event.source`` of message events) per item kind; shows are not promoted.
ACTION_OF_KIND: dict[ItemKind, str] = {
    ItemKind.TRACK: "play_track",
    ItemKind.ALBUM: "play_album",
    ItemKind.ARTIST: "follow_artist",
    ItemKind.PODCAST_EPISODE: "podcast_episode",
    ItemKind.VIDEO: "watch_video",
    ItemKind.AUDIOBOOK: "start_audiobook",
    ItemKind.FEATURE: "try_feature",
}
ACTION_TYPES: tuple[str, ...] = tuple(ACTION_OF_KIND.values())
#: App features that messages teach to users who never used them.
EDUCATION_FEATURES: tuple[str, ...] = (
    "feat-discovery-station",
    "feat-create-playlist",
    "feat-focus-mode",
)
#: Window (days before ``T``) for "days active".
ACTIVE_WINDOW_DAYS = 28
#: Recency (days) of a user without any play.
NEVER_PLAYED_DAYS = 365.0
_PLAY, _SKIP = EVENT_CODES[EventType.PLAY], EVENT_CODES[EventType.SKIP]
_OPEN, _PLAYLIST = EVENT_CODES[EventType.OPEN], EVENT_CODES[EventType.ADD_TO_PLAYLIST]
_N_BANDS = 8  # seven age bands and "not given"


def _default_base() -> dict[str, float]:
    return {
        "play_track": -3.0,
        "play_album": -3.2,
        "follow_artist": -3.4,
        "podcast_episode": -3.3,
        "watch_video": -3.3,
        "start_audiobook": -3.6,
        "try_feature": -2.6,
    }


def _default_age_kind() -> tuple[tuple[float, ...], ...]:
    # rows: age bands 13-17 ... 65+, not given; columns: tracks, podcasts, videos, books, feature
    return (
        (0.2, -0.4, 0.5, -0.3, 0.2),
        (0.2, -0.1, 0.4, -0.2, 0.2),
        (0.0, 0.1, 0.1, 0.0, 0.1),
        (-0.1, 0.3, -0.1, 0.2, 0.0),
        (-0.2, 0.3, -0.3, 0.3, -0.2),
        (-0.3, 0.2, -0.4, 0.4, -0.3),
        (-0.4, 0.1, -0.5, 0.5, -0.5),
        (0.0, 0.0, 0.0, 0.0, 0.0),
    )


@dataclass(frozen=True)
class NBASimParams:
    """Weights of the click logit and how the logged messages were chosen (see module doc)."""

    seed: int = 0
    n_impressions: int = 200_000
    n_days: int = 28
    pool_size: int = 100
    base: dict[str, float] = field(default_factory=_default_base)
    channel_effect: dict[str, float] = field(
        default_factory=lambda: {"push": 0.0, "email": -0.6, "in_app": 0.5}
    )
    hour_effect: float = 0.5
    weekend_effect: float = 0.2
    kind_plays: float = 0.35
    feature_plays: float = 0.2
    skip_share: float = -0.8
    genre_share: float = 2.0
    artist_share: float = 3.0
    recency: float = -0.3
    active_days: float = 0.04
    age_kind: tuple[tuple[float, ...], ...] = field(default_factory=_default_age_kind)
    latent: float = 0.25
    appeal_sd: float = 0.35
    noise_sd: float = 0.25
    open_rate: dict[str, float] = field(default_factory=lambda: {"push": 0.10, "email": 0.20})
    conversion_rate: float = 0.4
    #: Daily chance that an inactive user plays again without (or before) any message.
    reactivation_base: float = 0.004
    #: Chance that a click brings an inactive user back to play within the day.
    reactivation_click: float = 0.6

    def __post_init__(self) -> None:
        for name in ("n_impressions", "n_days", "pool_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SynthParamError(f"NBASimParams.{name} must be a positive integer")
        if set(self.base) != set(ACTION_TYPES):
            raise SynthParamError(f"NBASimParams.base needs exactly the actions {ACTION_TYPES}")
        if set(self.channel_effect) != set(CHANNELS):
            raise SynthParamError(f"NBASimParams.channel_effect needs exactly {CHANNELS}")
        for name in ("appeal_sd", "noise_sd"):
            if getattr(self, name) < 0:
                raise SynthParamError(f"NBASimParams.{name} must be >= 0")


@dataclass(frozen=True)
class HistoryProfile:
    """What a store of the world's events says about each user at time ``cutoff_ms``."""

    cutoff_ms: int
    plays: np.ndarray  # (n_users, 4) plays per kind group
    skips: np.ndarray  # (n_users, 4)
    minutes: np.ndarray  # (n_users, 4) minutes played (plays and skips)
    recency_days: np.ndarray  # (n_users,)
    active_days: np.ndarray  # (n_users,)
    genre_plays: sp.csr_matrix  # (n_users, n_genre_labels) track plays by first genre label
    artist_plays: sp.csr_matrix  # (n_users, n_items) track plays by artist item position
    feature_used: np.ndarray  # (n_users, len(EDUCATION_FEATURES)) bool


@dataclass(frozen=True)
class ItemAttributes:
    """Per world item: kind group (-1 feature, -2 not promotable), genre label, artist."""

    group: np.ndarray
    genre: np.ndarray  # index into ``genre_labels`` or -1
    artist: np.ndarray  # item position of the artist or -1
    action: np.ndarray  # index into ACTION_TYPES or -1
    genre_labels: tuple[str, ...]


def item_attributes(world: World) -> ItemAttributes:
    """Kind group, first genre label and artist of every item, read from its record."""
    items = world.items
    position = {item.id: i for i, item in enumerate(items)}
    labels: dict[str, int] = {}
    n = len(items)
    group = np.full(n, -2, dtype=np.int64)
    genre = np.full(n, -1, dtype=np.int64)
    artist = np.full(n, -1, dtype=np.int64)
    action = np.full(n, -1, dtype=np.int64)
    music = (ItemKind.TRACK, ItemKind.ALBUM, ItemKind.ARTIST, ItemKind.VIDEO)
    for i, item in enumerate(items):
        if item.kind == ItemKind.FEATURE:
            group[i] = -1
        elif item.kind in KIND_GROUP:
            group[i] = KIND_GROUP[item.kind]
        if item.kind in ACTION_OF_KIND:
            action[i] = ACTION_TYPES.index(ACTION_OF_KIND[item.kind])
        if item.kind in music and item.genres:
            genre[i] = labels.setdefault(item.genres[0], len(labels))
        if item.kind == ItemKind.ARTIST:
            artist[i] = i
        elif item.kind in music and item.artist_id is not None:
            artist[i] = position[item.artist_id]
    return ItemAttributes(group, genre, artist, action, tuple(labels))


def history_profile(
    log: InteractionLog, attrs: ItemAttributes, world: World, cutoff_ms: int
) -> HistoryProfile:
    """Per-user history before ``cutoff_ms`` (Focus-Mode events left out), world positions."""
    n_users, n_items = len(world.user_ids), len(world.item_ids)
    if len(log.user_ids) != n_users or len(log.item_ids) != n_items:
        raise SynthParamError("history_profile needs a log in the world's own vocabularies")
    keep = (log.ts_ms < cutoff_ms) & ~log.focus
    user, item, kind = log.user[keep], log.item[keep], log.type[keep]
    ts, ms = log.ts_ms[keep], np.maximum(log.ms_played[keep], 0)
    group = attrs.group[item]
    listened = ((kind == _PLAY) | (kind == _SKIP)) & (group >= 0)

    def per_group(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        flat = user[mask] * 4 + group[mask]
        w = None if weights is None else weights[mask]
        return np.bincount(flat, weights=w, minlength=n_users * 4).reshape(n_users, 4)

    plays = per_group(listened & (kind == _PLAY)).astype(np.float64)
    skips = per_group(listened & (kind == _SKIP)).astype(np.float64)
    minutes = per_group(listened, ms.astype(np.float64) / 60_000.0)
    last = np.full(n_users, -1, dtype=np.int64)
    np.maximum.at(last, user[listened], ts[listened])
    recency = np.where(last >= 0, (cutoff_ms - last) / DAY_MS, NEVER_PLAYED_DAYS)
    recent = listened & (kind == _PLAY) & (ts >= cutoff_ms - ACTIVE_WINDOW_DAYS * DAY_MS)
    day = (cutoff_ms - ts[recent] - 1) // DAY_MS
    pairs = np.unique(user[recent].astype(np.int64) * ACTIVE_WINDOW_DAYS + day)
    active = np.bincount(pairs // ACTIVE_WINDOW_DAYS, minlength=n_users).astype(np.float64)
    track_play = listened & (kind == _PLAY) & (group == 0) & (attrs.genre[item] >= 0)
    tu, ti = user[track_play], item[track_play]
    ones = np.ones(len(tu))
    n_labels = max(len(attrs.genre_labels), 1)
    genre_plays = sp.csr_matrix((ones, (tu, attrs.genre[ti])), shape=(n_users, n_labels))
    has_artist = attrs.artist[ti] >= 0
    artist_plays = sp.csr_matrix(
        (ones[has_artist], (tu[has_artist], attrs.artist[ti][has_artist])),
        shape=(n_users, n_items),
    )
    used = np.zeros((n_users, len(EDUCATION_FEATURES)), dtype=bool)
    for k, feature_id in enumerate(EDUCATION_FEATURES):
        position = world.item_index(feature_id)
        used[user[item == position], k] = True
        if feature_id == "feat-create-playlist":
            used[user[kind == _PLAYLIST], k] = True
    return HistoryProfile(
        cutoff_ms=cutoff_ms,
        plays=plays,
        skips=skips,
        minutes=minutes,
        recency_days=recency,
        active_days=active,
        genre_plays=genre_plays.tocsr(),
        artist_plays=artist_plays.tocsr(),
        feature_used=used,
    )


class ClickTruth:
    """The true click model of one world at one campaign start; see the module docstring."""

    def __init__(
        self,
        world: World,
        history: InteractionLog,
        params: NBASimParams | None = None,
        cutoff_ms: int | None = None,
    ) -> None:
        self.world = world
        self.params = params or NBASimParams()
        self.cutoff_ms = world.params.end_ms if cutoff_ms is None else cutoff_ms
        self.attrs = item_attributes(world)
        self.profile = history_profile(history, self.attrs, world, self.cutoff_ms)
        rng = np.random.default_rng(np.random.SeedSequence([world.params.seed, 71, 0]))
        self.appeal = rng.normal(0.0, self.params.appeal_sd, len(world.item_ids))

    @cached_property
    def _track_plays(self) -> np.ndarray:
        return self.profile.plays[:, 0]

    def observable_logit(
        self,
        users: np.ndarray,
        items: np.ndarray,
        channels: np.ndarray,
        hours: np.ndarray,
        weekdays: np.ndarray,
    ) -> np.ndarray:
        """The part of the click logit a model can learn from store data (no appeal, z, noise).

        ``channels`` index :data:`CHANNELS`; ``hours`` (0-23) and ``weekdays`` (Monday = 0) are
        the user's local time.
        """
        p, prof, a = self.params, self.profile, self.attrs
        users, items = np.asarray(users), np.asarray(items)
        action = a.action[items]
        if (action < 0).any():
            raise SynthParamError("some items cannot be promoted (podcast shows?)")
        group = a.group[items]
        feature = group < 0
        g = np.maximum(group, 0)
        base = np.array([p.base[t] for t in ACTION_TYPES])[action]
        chan = np.array([p.channel_effect[c] for c in CHANNELS])[channels]
        logit = base + chan + p.hour_effect * np.log(24 * HOURLY_PROFILE[hours])
        logit += p.weekend_effect * (np.asarray(weekdays) >= 5)
        plays, skips = prof.plays[users, g], prof.skips[users, g]
        total = prof.plays[users].sum(axis=1)
        skip_share = skips / np.maximum(plays + skips, 1.0)
        logit += np.where(
            feature,
            p.feature_plays * np.log1p(total),
            p.kind_plays * np.log1p(plays) + p.skip_share * skip_share,
        )
        logit += (
            p.recency * np.log1p(prof.recency_days[users]) + p.active_days * prof.active_days[users]
        )
        track_total = np.maximum(self._track_plays[users], 1.0)
        genre = a.genre[items]
        has_genre = genre >= 0
        genre_count = np.zeros(len(users))
        genre_count[has_genre] = _pick(prof.genre_plays, users[has_genre], genre[has_genre])
        artist = a.artist[items]
        has_artist = artist >= 0
        artist_count = np.zeros(len(users))
        artist_count[has_artist] = _pick(prof.artist_plays, users[has_artist], artist[has_artist])
        logit += p.genre_share * genre_count / track_total
        logit += p.artist_share * artist_count / track_total
        band = self.world.truth.population.age_band[users]
        band = np.where(band < 0, _N_BANDS - 1, band)
        column = np.where(feature, 4, g)
        logit += np.asarray(p.age_kind)[band, column]
        return logit

    def hidden(self, users: np.ndarray, items: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Appeal + latent·z + noise: what only past CTRs and CF scores hint at."""
        p = self.params
        users, items = np.asarray(users), np.asarray(items)
        z = np.zeros(len(users))
        content = self.attrs.group[items] >= 0
        if content.any():
            z[content] = self.world.truth.standardized_affinity(users[content], items[content])
        return self.appeal[items] + p.latent * z + rng.normal(0.0, p.noise_sd, len(users))


def _pick(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``matrix[rows[k], cols[k]]`` for every k, without a dense copy."""
    if len(rows) == 0:
        return np.zeros(0)
    return np.asarray(matrix[rows, cols]).ravel().astype(np.float64)


@dataclass
class NBALog:
    """Messages and their outcomes; user and item are world positions."""

    world: World
    seed: int
    user: np.ndarray
    item: np.ndarray
    channel: np.ndarray
    ts_ms: np.ndarray
    hour: np.ndarray
    weekday: np.ndarray
    p_click: np.ndarray
    clicked: np.ndarray
    opened: np.ndarray
    converted: np.ndarray
    message_id: np.ndarray
    attrs: ItemAttributes
    extra_plays: InteractionLog | None = None

    def __len__(self) -> int:
        return len(self.user)

    @property
    def action(self) -> np.ndarray:
        """Action type name per message."""
        return np.array(ACTION_TYPES, dtype=object)[self.attrs.action[self.item]]

    def events(self) -> InteractionLog:
        """``impression``, ``open``, ``click`` and ``conversion`` events (plus any plays)."""
        parts = [
            (np.ones(len(self), bool), EventType.IMPRESSION, 0),
            (self.opened, EventType.OPEN, 20_000),
            (self.clicked, EventType.CLICK, 40_000),
            (self.converted, EventType.CONVERSION, 300_000),
        ]
        channel = np.array(CHANNELS, dtype=object)[self.channel]
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("u", "i", "t", "ts", "ev", "ch")}
        cols["src"], cols["sess"] = [], []
        for mask, kind, delay in parts:
            idx = np.flatnonzero(mask)
            cols["u"].append(self.user[idx])
            cols["i"].append(self.item[idx])
            cols["t"].append(np.full(len(idx), EVENT_CODES[kind], dtype=np.uint8))
            cols["ts"].append(self.ts_ms[idx] + delay)
            cols["ev"].append(np.array([f"{m}-{kind.value}" for m in self.message_id[idx]], object))
            cols["ch"].append(channel[idx])
            cols["src"].append(self.action[idx])
            cols["sess"].append(self.message_id[idx])
        n = sum(len(x) for x in cols["u"])
        log = InteractionLog(
            user_ids=self.world.user_ids,
            item_ids=self.world.item_ids,
            user=np.concatenate(cols["u"]),
            item=np.concatenate(cols["i"]),
            type=np.concatenate(cols["t"]),
            ts_ms=np.concatenate(cols["ts"]),
            ms_played=np.full(n, -1, dtype=np.int64),
            count=np.ones(n, dtype=np.int32),
            focus=np.zeros(n, dtype=bool),
            rating=np.full(n, np.nan),
            event_id=np.concatenate(cols["ev"]),
            session_id=np.concatenate(cols["sess"]),
            surface=np.concatenate(cols["ch"]),
            source=np.concatenate(cols["src"]),
            device=np.full(n, None, dtype=object),
        )
        if self.extra_plays is not None and len(self.extra_plays):
            return InteractionLog.concat([log, self.extra_plays])
        return log


def local_time(world: World, users: np.ndarray, ts_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(local hour, local weekday with Monday = 0) of UTC instants for world users."""
    tz = world.truth.population.tz[np.asarray(users)]
    first = dt.datetime.fromtimestamp(int(ts_ms.min()) // 1000 - 86_400, tz=dt.UTC).date()
    n_days = int((int(ts_ms.max()) // 1000 - 86_400 - _epoch_s(first)) // 86_400) + 3
    offsets = utc_offsets_ms(TIMEZONES, first, max(n_days, 1))
    day = (ts_ms - _epoch_s(first) * 1000) // DAY_MS
    local = ts_ms + offsets[tz, np.clip(day, 0, offsets.shape[1] - 1)]
    hour = (local // HOUR_MS) % 24
    weekday = ((local // DAY_MS) + 3) % 7  # 1970-01-01 was a Thursday
    return hour.astype(np.int64), weekday.astype(np.int64)


def _epoch_s(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp())


def simulate_impressions(truth: ClickTruth, start_day: int = 0, seed: int | None = None) -> NBALog:
    """Messages sent at random after ``T`` with their true click probabilities and outcomes.

    Each message goes to a random adult user on a channel they consented to (in-app always),
    on local day ``start_day + U{0, n_days}`` after ``T`` at a uniform local hour, promoting an
    item drawn uniformly from a random action type's pool (the ``pool_size`` most popular
    items of that kind; features the user never used for ``try_feature``).
    """
    p, world = truth.params, truth.world
    seed = p.seed if seed is None else seed
    rng = np.random.default_rng(np.random.SeedSequence([world.params.seed, 72, seed, start_day]))
    pop = world.truth.population
    adults = np.flatnonzero(~pop.kids)
    n = p.n_impressions
    user = adults[rng.integers(0, len(adults), n)]
    allowed = np.stack(
        [pop.consent_push[user], pop.consent_email[user], np.ones(n, bool)], axis=1
    ).astype(np.float64)
    pick = rng.random(n)[:, None] * allowed.sum(axis=1, keepdims=True)
    channel = (np.cumsum(allowed, axis=1) < pick).sum(axis=1)
    pools = _pools(truth)
    action = rng.integers(0, len(ACTION_TYPES), n)
    item = np.empty(n, dtype=np.int64)
    feature_action = ACTION_TYPES.index("try_feature")
    for a, pool in enumerate(pools):
        idx = np.flatnonzero(action == a)
        item[idx] = pool[rng.integers(0, len(pool), len(idx))]
    idx = np.flatnonzero(action == feature_action)
    unused = ~truth.profile.feature_used[user[idx]]
    feature_pos = np.array([world.item_index(f) for f in EDUCATION_FEATURES])
    choice = np.argmax(unused * rng.random(unused.shape), axis=1)
    has = unused.any(axis=1)
    item[idx[has]] = feature_pos[choice[has]]
    fallback = idx[~has]  # users who used every feature get a track instead
    item[fallback] = pools[0][rng.integers(0, len(pools[0]), len(fallback))]
    day = start_day + rng.integers(0, p.n_days, n)
    local_ms = day * DAY_MS + rng.integers(0, DAY_MS, n)
    start = dt.datetime.fromtimestamp(truth.cutoff_ms / 1000, tz=dt.UTC).date()
    offsets = utc_offsets_ms(TIMEZONES, start, start_day + p.n_days + 1)
    ts = truth.cutoff_ms + local_ms - offsets[pop.tz[user], day]
    ts = np.maximum(ts, truth.cutoff_ms)  # never before T (a zone east of UTC, day 0)
    hour, weekday = local_time(world, user, ts)
    return _outcomes(truth, rng, user, item, channel, ts, hour, weekday, f"nba{seed}d{start_day}")


def respond(
    truth: ClickTruth,
    users: np.ndarray,
    items: np.ndarray,
    channels: np.ndarray,
    ts_ms: np.ndarray,
    seed: int = 0,
    prefix: str = "camp",
) -> NBALog:
    """Outcomes of messages a campaign chose (world positions), drawn from the same truth."""
    rng = np.random.default_rng(np.random.SeedSequence([truth.world.params.seed, 73, seed]))
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    ts_ms = np.asarray(ts_ms, np.int64)
    hour, weekday = local_time(truth.world, users, ts_ms)
    return _outcomes(
        truth, rng, users, items, np.asarray(channels, np.int64), ts_ms, hour, weekday, prefix
    )


def reactivation_plays(
    truth: ClickTruth,
    clicked_users: np.ndarray,
    click_ts: np.ndarray,
    days: int,
    seed: int = 0,
) -> InteractionLog:
    """Plays after ``T`` of users inactive before it: a small daily base rate for everyone,
    and ``reactivation_click`` for a user the day they click a message."""
    p, world = truth.params, truth.world
    rng = np.random.default_rng(np.random.SeedSequence([world.params.seed, 74, seed]))
    inactive = truth.profile.active_days == 0
    n_users = len(world.user_ids)
    base = rng.random((n_users, days)) < p.reactivation_base
    has = base.any(axis=1)
    offset = np.argmax(base, axis=1) * DAY_MS + rng.integers(0, DAY_MS, n_users)
    when = np.where(has, truth.cutoff_ms + offset, np.iinfo(np.int64).max)
    back = rng.random(len(clicked_users)) < p.reactivation_click
    cu, cts = np.asarray(clicked_users)[back], np.asarray(click_ts)[back] + 600_000
    np.minimum.at(when, cu, cts)
    who = np.flatnonzero(inactive & (when < truth.cutoff_ms + days * DAY_MS))
    track = world.item_index(str(world.item_ids[0]))
    n = len(who)
    return InteractionLog(
        user_ids=world.user_ids,
        item_ids=world.item_ids,
        user=who,
        item=np.full(n, track),
        type=np.full(n, _PLAY, dtype=np.uint8),
        ts_ms=when[who],
        ms_played=np.full(n, 180_000, dtype=np.int64),
        count=np.ones(n, dtype=np.int32),
        focus=np.zeros(n, dtype=bool),
        rating=np.full(n, np.nan),
        event_id=np.array([f"react{seed}-{u}" for u in who], dtype=object),
        session_id=np.full(n, None, dtype=object),
        surface=np.full(n, "home", dtype=object),
        source=np.full(n, None, dtype=object),
        device=np.full(n, None, dtype=object),
    )


def _pools(truth: ClickTruth) -> list[np.ndarray]:
    """Items each action type may promote: the most popular ``pool_size`` of its kind."""
    c = truth.world.truth.catalog
    out = []
    for kind in ACTION_OF_KIND:
        lo, hi = c.span(kind)
        if kind == ItemKind.FEATURE:
            out.append(np.array([truth.world.item_index(f) for f in EDUCATION_FEATURES]))
            continue
        order = lo + np.argsort(-c.popularity[lo:hi], kind="stable")
        out.append(order[: truth.params.pool_size])
    return out


def _outcomes(
    truth: ClickTruth,
    rng: np.random.Generator,
    user: np.ndarray,
    item: np.ndarray,
    channel: np.ndarray,
    ts: np.ndarray,
    hour: np.ndarray,
    weekday: np.ndarray,
    prefix: str,
) -> NBALog:
    p = truth.params
    n = len(user)
    logit = truth.observable_logit(user, item, channel, hour, weekday)
    logit = logit + truth.hidden(user, item, rng)
    prob = expit(logit)
    clicked = rng.random(n) < prob
    open_rate = np.array([p.open_rate.get(c, 0.0) for c in CHANNELS])[channel]
    in_app = channel == CHANNELS.index("in_app")
    opened = ~in_app & (clicked | (rng.random(n) < open_rate))
    converted = clicked & (rng.random(n) < p.conversion_rate)
    order = np.argsort(ts, kind="stable")
    message_id = np.array([f"{prefix}-{k}" for k in range(n)], dtype=object)
    return NBALog(
        world=truth.world,
        seed=p.seed,
        user=user[order],
        item=item[order],
        channel=channel[order],
        ts_ms=ts[order],
        hour=hour[order],
        weekday=weekday[order],
        p_click=prob[order],
        clicked=clicked[order],
        opened=opened[order],
        converted=converted[order],
        message_id=message_id,
        attrs=truth.attrs,
    )


__all__ = [
    "ACTION_OF_KIND",
    "ACTION_TYPES",
    "EDUCATION_FEATURES",
    "KIND_GROUPS",
    "ClickTruth",
    "HistoryProfile",
    "NBALog",
    "NBASimParams",
    "history_profile",
    "local_time",
    "reactivation_plays",
    "respond",
    "simulate_impressions",
]
