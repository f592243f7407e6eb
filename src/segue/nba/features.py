"""What the click model sees: user history, demographics, the action, its past CTR, the moment.

Everything is built columnar from the store's event log, aligned with the store's user and
item vocabularies, so a campaign over 100k users never builds one Python object per user:

* :class:`ItemTable`: per item its kind group (tracks, podcast episodes, videos, audiobooks;
  albums and artists count as tracks), first genre label, artist and action type;
* :class:`Audience`: per user demographics, time zone and consents;
* :class:`Profiles`: per user plays, minutes and skips per kind group, days since the last
  play, days active in the last 28, track plays per genre and per artist, features used;
* :class:`CTRTable`: clicks and impressions per action item, shrunk towards the action
  type's rate so that an item shown ten times does not claim a CTR of 0 or 30%;
* :func:`encode`: one sparse row per (user, action, channel, moment), numeric columns
  standardised with the training means so that one regularisation strength fits all.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import scipy.sparse as sp

from segue.data.log import InteractionLog
from segue.data.model import (
    EVENT_CODES,
    KIND_GROUP,
    AgeBand,
    EventType,
    Gender,
    Item,
    ItemKind,
    User,
)
from segue.errors import SegueError
from segue.nba.actions import ACTION_OF_KIND, ACTION_TYPES, EDUCATION_FEATURES

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
#: Channels in code order (feature columns and the outbox use these names).
CHANNELS: tuple[str, ...] = ("push", "email", "in_app")
N_GROUPS = 4  # tracks, podcast episodes, videos, audiobooks
ACTIVE_WINDOW_DAYS = 28
NEVER_PLAYED_DAYS = 365.0
_MUSIC = (ItemKind.TRACK, ItemKind.ALBUM, ItemKind.ARTIST, ItemKind.VIDEO)
_KINDS: tuple[ItemKind, ...] = tuple(ItemKind)
_PLAY, _SKIP = EVENT_CODES[EventType.PLAY], EVENT_CODES[EventType.SKIP]
_PLAYLIST = EVENT_CODES[EventType.ADD_TO_PLAYLIST]
_AGE_BANDS = tuple(a.value for a in AgeBand)
_GENDERS = tuple(g.value for g in Gender)
#: Columns of ``Store.table_columns`` that :class:`ItemTable` and :class:`Audience` read.
ITEM_COLUMNS = ("id", "kind", "title", "artist_id", "album_id", "genres")
USER_COLUMNS = (
    "id",
    "age_band",
    "gender",
    "country",
    "timezone",
    "consent_push",
    "consent_email",
    "kids_profile",
)


def _first_label(genres: object) -> str | None:
    """First genre of a stored JSON list (or of a list), None when there is none."""
    if isinstance(genres, str):
        genres = json.loads(genres) if genres.startswith("[") else [genres]
    if isinstance(genres, list | tuple) and genres:
        return str(genres[0])
    return None


#: Event types the profiles read (plays/skips, feature opens, playlist additions).
HISTORY_TYPES: tuple[EventType, ...] = (
    EventType.PLAY,
    EventType.SKIP,
    EventType.OPEN,
    EventType.ADD_TO_PLAYLIST,
)


@dataclass(frozen=True)
class ItemTable:
    """Per item of a vocabulary: kind, group (-1 feature, -2 never promoted), genre, artist."""

    ids: np.ndarray
    kind: np.ndarray
    group: np.ndarray
    genre: np.ndarray
    artist: np.ndarray
    action: np.ndarray
    album: np.ndarray  # album position of a track, -1 otherwise
    titles: np.ndarray
    genre_labels: tuple[str, ...]

    @classmethod
    def from_items(cls, items: Iterable[Item], item_ids: np.ndarray) -> ItemTable:
        """From records (any order); items of the vocabulary without a record stay unknown."""
        records = list(items)
        return cls.from_columns(
            item_ids,
            {
                "id": [i.id for i in records],
                "kind": [i.kind.value for i in records],
                "title": [i.title for i in records],
                "artist_id": [i.artist_id for i in records],
                "album_id": [i.album_id for i in records],
                "genres": [list(i.genres) for i in records],
            },
        )

    @classmethod
    def from_columns(cls, item_ids: np.ndarray, columns: Mapping[str, Sequence[Any]]) -> ItemTable:
        """From :meth:`Store.table_columns` of items (genres as JSON text or lists)."""
        ids = np.asarray(item_ids, dtype=object)
        position = {item_id: i for i, item_id in enumerate(ids)}
        n = len(ids)
        kind = np.full(n, -1, dtype=np.int64)
        group = np.full(n, -2, dtype=np.int64)
        genre = np.full(n, -1, dtype=np.int64)
        artist = np.full(n, -1, dtype=np.int64)
        action = np.full(n, -1, dtype=np.int64)
        album = np.full(n, -1, dtype=np.int64)
        titles = np.array(ids, dtype=object)
        labels: dict[str, int] = {}
        kinds = {k.value: k for k in ItemKind}
        rows = zip(
            columns["id"],
            columns["kind"],
            columns["title"],
            columns["artist_id"],
            columns["album_id"],
            columns["genres"],
            strict=True,
        )
        for item_id, kind_name, title, artist_id, album_id, genres in rows:
            i = position.get(item_id)
            if i is None:
                continue
            item_kind = kinds[kind_name]
            kind[i] = _KINDS.index(item_kind)
            titles[i] = title
            if item_kind == ItemKind.FEATURE:
                group[i] = -1
            elif item_kind in KIND_GROUP:
                group[i] = KIND_GROUP[item_kind]
            if item_kind in ACTION_OF_KIND:
                action[i] = ACTION_TYPES.index(ACTION_OF_KIND[item_kind])
            if item_kind in _MUSIC:
                first = _first_label(genres)
                if first is not None:
                    genre[i] = labels.setdefault(first, len(labels))
            if item_kind == ItemKind.ARTIST:
                artist[i] = i
            elif item_kind in _MUSIC and artist_id is not None:
                artist[i] = position.get(artist_id, -1)
            if item_kind == ItemKind.TRACK and album_id is not None:
                album[i] = position.get(album_id, -1)
        return cls(ids, kind, group, genre, artist, action, album, titles, tuple(labels))

    def index(self, ids: Iterable[str]) -> np.ndarray:
        """Positions of item ids, -1 for unknown ones."""
        position = self._positions
        return np.array([position.get(i, -1) for i in ids], dtype=np.int64)

    @property
    def _positions(self) -> dict[str, int]:
        cached = self.__dict__.get("_pos")
        if cached is None:
            cached = {item_id: i for i, item_id in enumerate(self.ids)}
            object.__setattr__(self, "_pos", cached)
        return cached

    def kind_of(self, i: int) -> ItemKind:
        return _KINDS[int(self.kind[i])]


@dataclass(frozen=True)
class Audience:
    """Per user of a vocabulary: demographics (codes, -1 unknown), time zone and consents."""

    ids: np.ndarray
    age_band: np.ndarray
    gender: np.ndarray
    country: np.ndarray  # code into ``countries``
    countries: tuple[str, ...]
    tz: np.ndarray  # code into ``timezones``; 0 is UTC
    timezones: tuple[str, ...]
    consent_push: np.ndarray
    consent_email: np.ndarray
    kids: np.ndarray
    known: np.ndarray  # the user has a record

    @classmethod
    def from_users(cls, users: Iterable[User], user_ids: np.ndarray) -> Audience:
        """From records; users of the vocabulary without a record stay unknown."""
        records = list(users)
        return cls.from_columns(
            user_ids,
            {
                "id": [u.id for u in records],
                "age_band": [None if u.age_band is None else u.age_band.value for u in records],
                "gender": [None if u.gender is None else u.gender.value for u in records],
                "country": [u.country for u in records],
                "timezone": [u.timezone for u in records],
                "consent_push": [u.consent_push for u in records],
                "consent_email": [u.consent_email for u in records],
                "kids_profile": [u.kids_profile for u in records],
            },
        )

    @classmethod
    def from_columns(cls, user_ids: np.ndarray, columns: Mapping[str, Sequence[Any]]) -> Audience:
        """From :meth:`Store.table_columns` of users (see :data:`USER_COLUMNS`)."""
        ids = np.asarray(user_ids, dtype=object)
        n = len(ids)
        given = list(columns["id"])
        if len(given) == n and all(a == b for a, b in zip(given, ids, strict=True)):
            rows = np.arange(n)  # the store's own order: no lookup needed
        else:
            position = {u: i for i, u in enumerate(ids)}
            rows = np.array([position.get(u, -1) for u in given], dtype=np.int64)
        ok = rows >= 0
        rows = rows[ok]

        def codes(name: str, vocab: dict[str, int], grow: bool) -> np.ndarray:
            out = np.full(n, -1, dtype=np.int64)
            values = np.asarray(columns[name], dtype=object)[ok]
            if grow:
                out[rows] = [-1 if v is None else vocab.setdefault(v, len(vocab)) for v in values]
            else:
                out[rows] = [vocab.get(v, -1) if v is not None else -1 for v in values]
            return out

        def flags(name: str) -> np.ndarray:
            out = np.zeros(n, dtype=bool)
            out[rows] = np.asarray(columns[name], dtype=bool)[ok]
            return out

        countries: dict[str, int] = {}
        zones: dict[str, int] = {"UTC": 0}
        tz = np.maximum(codes("timezone", zones, True), 0)
        known = np.zeros(n, dtype=bool)
        known[rows] = True
        return cls(
            ids=ids,
            age_band=codes("age_band", {a: k for k, a in enumerate(_AGE_BANDS)}, False),
            gender=codes("gender", {g: k for k, g in enumerate(_GENDERS)}, False),
            country=codes("country", countries, True),
            countries=tuple(countries),
            tz=tz,
            timezones=tuple(zones),
            consent_push=flags("consent_push"),
            consent_email=flags("consent_email"),
            kids=flags("kids_profile"),
            known=known,
        )

    def local_ms(self, users: np.ndarray, ts_ms: np.ndarray) -> np.ndarray:
        """UTC instants as local wall-clock milliseconds (epoch-based) in each user's zone."""
        return local_ms(self.timezones, self.tz[np.asarray(users)], np.asarray(ts_ms))

    def local_time(self, users: np.ndarray, ts_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(local hour 0-23, local weekday with Monday = 0) of UTC instants for users."""
        local = self.local_ms(users, ts_ms)
        return (local // HOUR_MS) % 24, ((local // DAY_MS) + 3) % 7  # 1970-01-01: a Thursday


def local_ms(timezones: tuple[str, ...], tz: np.ndarray, ts_ms: np.ndarray) -> np.ndarray:
    """Local wall-clock ms per instant; offsets are looked up per zone and UTC day (at noon)."""
    ts_ms = np.asarray(ts_ms, dtype=np.int64)
    if len(ts_ms) == 0:
        return np.zeros(0, np.int64)
    first_day = int(ts_ms.min()) // DAY_MS - 1
    n_days = int(ts_ms.max()) // DAY_MS - first_day + 2
    offsets = np.zeros((len(timezones), n_days), dtype=np.int64)
    for z in np.unique(tz):
        try:
            zone = ZoneInfo(timezones[z])
        except (ZoneInfoNotFoundError, ValueError):
            continue
        for d in range(n_days):
            moment = dt.datetime.fromtimestamp((first_day + d) * 86_400 + 43_200, tz=dt.UTC)
            offset = moment.astimezone(zone).utcoffset()
            offsets[z, d] = 0 if offset is None else int(offset.total_seconds() * 1000)
    return ts_ms + offsets[tz, ts_ms // DAY_MS - first_day]


@dataclass(frozen=True)
class Profiles:
    """What the history before ``cutoff_ms`` says about each user (rows = user vocabulary)."""

    cutoff_ms: int
    plays: np.ndarray
    skips: np.ndarray
    minutes: np.ndarray
    recency_days: np.ndarray
    active_days: np.ndarray
    genre_plays: sp.csr_matrix
    artist_plays: sp.csr_matrix
    feature_used: np.ndarray  # (n_users, len(EDUCATION_FEATURES))

    @classmethod
    def build(cls, log: InteractionLog, items: ItemTable, cutoff_ms: int) -> Profiles:
        """From a log in the same item vocabulary as ``items``; later events are ignored."""
        if len(log.item_ids) != len(items.ids):
            raise SegueError("the event log and the item table use different item vocabularies")
        n_users, n_items = len(log.user_ids), len(items.ids)
        keep = (log.ts_ms < cutoff_ms) & ~log.focus
        user, item, kind = log.user[keep], log.item[keep], log.type[keep]
        ts, ms = log.ts_ms[keep], np.maximum(log.ms_played[keep], 0)
        group = items.group[item]
        listened = ((kind == _PLAY) | (kind == _SKIP)) & (group >= 0)

        def per_group(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
            flat = user[mask].astype(np.int64) * N_GROUPS + group[mask]
            w = None if weights is None else weights[mask]
            counts = np.bincount(flat, weights=w, minlength=n_users * N_GROUPS)
            return counts.reshape(n_users, N_GROUPS).astype(np.float64)

        played = listened & (kind == _PLAY)
        last = np.full(n_users, -1, dtype=np.int64)
        np.maximum.at(last, user[listened], ts[listened])
        recent = played & (ts >= cutoff_ms - ACTIVE_WINDOW_DAYS * DAY_MS)
        day = (cutoff_ms - ts[recent] - 1) // DAY_MS
        pairs = np.unique(user[recent].astype(np.int64) * ACTIVE_WINDOW_DAYS + day)
        track = played & (group == 0) & (items.genre[item] >= 0)
        tu, ti = user[track], item[track]
        ones = np.ones(len(tu))
        n_labels = max(len(items.genre_labels), 1)
        with_artist = items.artist[ti] >= 0
        used = np.zeros((n_users, len(EDUCATION_FEATURES)), dtype=bool)
        for k, feature_id in enumerate(EDUCATION_FEATURES):
            (position,) = items.index([feature_id])
            if position >= 0:
                used[user[item == position], k] = True
            if feature_id == "feat-create-playlist":
                used[user[kind == _PLAYLIST], k] = True
        return cls(
            cutoff_ms=cutoff_ms,
            plays=per_group(played),
            skips=per_group(listened & (kind == _SKIP)),
            minutes=per_group(listened, ms.astype(np.float64) / 60_000.0),
            recency_days=np.where(last >= 0, (cutoff_ms - last) / DAY_MS, NEVER_PLAYED_DAYS),
            active_days=np.bincount(pairs // ACTIVE_WINDOW_DAYS, minlength=n_users).astype(
                np.float64
            ),
            genre_plays=sp.csr_matrix(
                (ones, (tu, items.genre[ti])), shape=(n_users, n_labels)
            ).tocsr(),
            artist_plays=sp.csr_matrix(
                (ones[with_artist], (tu[with_artist], items.artist[ti][with_artist])),
                shape=(n_users, n_items),
            ).tocsr(),
            feature_used=used,
        )


@dataclass
class CTRTable:
    """Past impressions and clicks per item; :meth:`logit` gives the shrunk CTR's logit."""

    item_ids: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    action_rate: np.ndarray  # per action type
    strength: float = 50.0
    _pos: dict[str, int] = field(default_factory=dict, repr=False)

    @classmethod
    def fit(
        cls,
        item_ids: np.ndarray,
        actions: np.ndarray,
        clicked: np.ndarray,
        strength: float = 50.0,
    ) -> CTRTable:
        """From logged messages: their item ids, action type codes and click flags."""
        clicked = np.asarray(clicked, dtype=np.float64)
        overall = clicked.mean() if len(clicked) else 0.05
        rate = np.full(len(ACTION_TYPES), overall)
        for a in range(len(ACTION_TYPES)):
            mask = actions == a
            if mask.any():
                rate[a] = (clicked[mask].sum() + strength * overall) / (mask.sum() + strength)
        vocab, inverse = np.unique(np.asarray(item_ids, dtype=object), return_inverse=True)
        shown = np.bincount(inverse, minlength=len(vocab)).astype(np.float64)
        hits = np.bincount(inverse, weights=clicked, minlength=len(vocab))
        return cls(vocab, shown, hits, rate, strength)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)  # caches stay behind: they belong to one process
        state.pop("_by_table", None)
        state["_pos"] = {}
        return state

    def item_logits(self, items: ItemTable) -> np.ndarray:
        """:meth:`logit` of every item of ``items``, by position (cached per table)."""
        cached = self.__dict__.get("_by_table")
        if cached is None or cached[0] is not items:
            cached = (items, self.logit(items.ids, items.action))
            self.__dict__["_by_table"] = cached
        return cached[1]

    def logit(self, item_ids: np.ndarray, actions: np.ndarray) -> np.ndarray:
        if not self._pos:
            self._pos = {item_id: i for i, item_id in enumerate(self.item_ids)}
        pos = np.array([self._pos.get(i, -1) for i in item_ids], dtype=np.int64)
        prior = self.action_rate[np.maximum(actions, 0)]
        shown, hits = np.zeros(len(pos)), np.zeros(len(pos))
        seen = pos >= 0
        shown[seen], hits[seen] = self.impressions[pos[seen]], self.clicks[pos[seen]]
        rate = (hits + self.strength * prior) / (shown + self.strength)
        rate = np.clip(rate, 1e-4, 1 - 1e-4)
        return np.log(rate / (1 - rate))


@dataclass
class Rows:
    """Rows to score: user and item positions, channel codes, send instants, CF scores."""

    user: np.ndarray
    item: np.ndarray
    channel: np.ndarray
    ts_ms: np.ndarray
    cf: np.ndarray  # NaN where the CF model knows the user or item not

    def __len__(self) -> int:
        return len(self.user)


NUMERIC: tuple[str, ...] = (
    "kind_plays",
    "kind_minutes",
    "kind_skip_share",
    "feature_total_plays",
    "total_plays",
    "recency",
    "active_days",
    "genre_share",
    "artist_share",
    "cf_score",
    "cf_unknown",
    "ctr_logit",
    "tracks_plays",
    "podcasts_plays",
    "videos_plays",
    "audiobooks_plays",
)
_N_BANDS = len(_AGE_BANDS) + 1
_N_COLUMNS_KIND = N_GROUPS + 1  # groups plus "feature"


@dataclass
class FeatureSpace:
    """Column layout and standardisation, fitted on training rows and saved with the model."""

    countries: tuple[str, ...]
    mean: np.ndarray = field(default_factory=lambda: np.zeros(len(NUMERIC)))
    std: np.ndarray = field(default_factory=lambda: np.ones(len(NUMERIC)))

    def names(self) -> list[str]:
        out = list(NUMERIC)
        out += [f"action={a.value}" for a in ACTION_TYPES]
        out += [f"channel={c}" for c in CHANNELS]
        out += [f"hour={h}" for h in range(24)] + [f"weekday={d}" for d in range(7)]
        bands = [*_AGE_BANDS, "unknown"]
        kinds = ["tracks", "podcasts", "videos", "audiobooks", "feature"]
        out += [f"age={b}×{k}" for b in bands for k in kinds]
        out += [f"gender={g}" for g in (*_GENDERS, "unknown")]
        out += [f"country={c}" for c in (*self.countries, "other")]
        return out

    def numeric(
        self, rows: Rows, profiles: Profiles, items: ItemTable, ctr: CTRTable
    ) -> np.ndarray:
        """The raw numeric columns (before standardisation), one row per candidate."""
        u, i = rows.user, rows.item
        group = items.group[i]
        feature = group < 0
        g = np.maximum(group, 0)
        plays, skips = profiles.plays[u, g], profiles.skips[u, g]
        total = profiles.plays[u].sum(axis=1)
        track_total = np.maximum(profiles.plays[u, 0], 1.0)
        genre, artist = items.genre[i], items.artist[i]
        genre_count = _pick(profiles.genre_plays, u, genre)
        artist_count = _pick(profiles.artist_plays, u, artist)
        cf_unknown = ~np.isfinite(rows.cf)
        out = np.empty((len(rows), len(NUMERIC)))
        out[:, 0] = np.where(feature, 0.0, np.log1p(plays))
        out[:, 1] = np.where(feature, 0.0, np.log1p(profiles.minutes[u, g]))
        out[:, 2] = np.where(feature, 0.0, skips / np.maximum(plays + skips, 1.0))
        out[:, 3] = np.where(feature, np.log1p(total), 0.0)
        out[:, 4] = np.log1p(total)
        out[:, 5] = np.log1p(profiles.recency_days[u])
        out[:, 6] = profiles.active_days[u]
        out[:, 7] = genre_count / track_total
        out[:, 8] = artist_count / track_total
        out[:, 9] = np.where(cf_unknown, 0.0, rows.cf)
        out[:, 10] = cf_unknown
        out[:, 11] = ctr.item_logits(items)[i]
        out[:, 12:16] = np.log1p(profiles.plays[u])
        return out

    def fit(self, numeric: np.ndarray) -> None:
        self.mean = numeric.mean(axis=0)
        std = numeric.std(axis=0)
        self.std = np.where(std > 1e-9, std, 1.0)

    def encode(
        self,
        rows: Rows,
        profiles: Profiles,
        items: ItemTable,
        audience: Audience,
        ctr: CTRTable,
    ) -> sp.csr_matrix:
        """Sparse design matrix; see :meth:`names` for the columns."""
        n = len(rows)
        numeric = (self.numeric(rows, profiles, items, ctr) - self.mean) / self.std
        hour, weekday = audience.local_time(rows.user, rows.ts_ms)
        group = items.group[rows.item]
        kind_col = np.where(group < 0, N_GROUPS, group)
        band = audience.age_band[rows.user]
        band = np.where(band < 0, _N_BANDS - 1, band)
        gender = audience.gender[rows.user]
        gender = np.where(gender < 0, len(_GENDERS), gender)
        country_map = {c: k for k, c in enumerate(self.countries)}
        local = np.array(
            [country_map.get(c, len(self.countries)) for c in audience.countries]
            + [len(self.countries)],
            dtype=np.int64,
        )
        country = local[audience.country[rows.user]]  # -1 (unknown) picks the "other" entry
        offset = len(NUMERIC)
        blocks = []
        for codes, width in (
            (items.action[rows.item], len(ACTION_TYPES)),
            (rows.channel, len(CHANNELS)),
            (hour, 24),
            (weekday, 7),
            (band * _N_COLUMNS_KIND + kind_col, _N_BANDS * _N_COLUMNS_KIND),
            (gender, len(_GENDERS) + 1),
            (country, len(self.countries) + 1),
        ):
            blocks.append(offset + np.asarray(codes, dtype=np.int64))
            offset += width
        one_hot = np.stack(blocks, axis=1)
        n_num = len(NUMERIC)
        width = n_num + one_hot.shape[1]
        indices = np.concatenate(
            [np.broadcast_to(np.arange(n_num), (n, n_num)), one_hot], axis=1
        ).ravel()
        data = np.concatenate([numeric, np.ones(one_hot.shape)], axis=1).ravel()
        indptr = np.arange(0, n * width + 1, width)
        return sp.csr_matrix((data, indices, indptr), shape=(n, offset))


def _pick(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``matrix[rows[k], cols[k]]`` (0 where ``cols[k]`` < 0), without a dense copy."""
    out = np.zeros(len(rows))
    ok = cols >= 0
    if ok.any():
        out[ok] = np.asarray(matrix[rows[ok], cols[ok]]).ravel()
    return out
