"""Canonical records: items, users, events and the small social/tag records around them.

Every importer, the synthetic world and the API produce these, so validation lives here once.
Timestamps are timezone-aware UTC; a naive timestamp is taken to be UTC, because every source
we import (Last.fm, CSV logs) writes UTC without saying so.

The bounds (one rule set, used by the API's input bodies, the importers and the stream's
decoding alike, so that nothing accepted at one door is poison behind another):

* ids (:data:`Id`): 1 to :data:`MAX_ID_LENGTH` printable characters: no control characters
  (no NUL, which PostgreSQL cannot store), line separators or lone surrogates; any other
  Unicode (spaces, emoji with joiners) is fine;
* short names (:data:`Name`: session, surface, source, device, genres, tags): at most 256
  characters; they and free text (titles, descriptions) hold no control characters other
  than tab and line breaks; onboarding genres (:data:`Label`) none at all;
* ``ms_played`` from 0 to a day (:data:`MAX_MS_PLAYED`), counts within a 32-bit integer;
* event times (:data:`EventTime`) not before the Unix epoch and at most
  :func:`max_future_s` seconds ahead of the clock (``Settings.max_future_s``, default 300;
  a process applies its setting with :func:`set_max_future_s`), so an event dated 9999 cannot
  pin a listener's session;
* timezones (:data:`Timezone`) only names of the tz database (``zoneinfo.available_timezones``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

#: Longest id: within the issue's bound of 256, and the width of the store's id columns.
MAX_ID_LENGTH = 200
#: Longest short name (session, surface, source, device, genre, tag).
MAX_NAME_LENGTH = 256
#: Most milliseconds one event may have played: a day.
MAX_MS_PLAYED = 86_400_000
#: Largest count and tag id: the store keeps them as 32-bit integers.
MAX_INT32 = 2**31 - 1
#: Longest playable item: 30 days (audiobooks included).
MAX_DURATION_MS = 30 * 86_400_000
#: The earliest event time accepted: the Unix epoch (every timestamp is stored as epoch ms).
EARLIEST_EVENT = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: How far ahead of the clock an event may be dated unless a process sets otherwise.
DEFAULT_MAX_FUTURE_S = 300.0

_max_future_s = DEFAULT_MAX_FUTURE_S


def set_max_future_s(seconds: float) -> None:
    """Apply ``Settings.max_future_s`` to this process (the CLI and the API do at start)."""
    global _max_future_s
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"max_future_s must be a non-negative number of seconds, got {seconds}")
    _max_future_s = float(seconds)


def max_future_s() -> float:
    """How many seconds ahead of the clock an event may be dated in this process."""
    return _max_future_s


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _control_characters(value: str, pattern: re.Pattern[str] = _CONTROL) -> list[str]:
    return sorted(set(pattern.findall(value)))


#: What an id may not hold: control characters (C0, DEL, C1), line and paragraph separators,
#: lone surrogates (not encodable, so no store can keep them).
_NOT_IN_ID = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _printable_id(value: str) -> str:
    if _NOT_IN_ID.search(value):
        bad = sorted(set(_NOT_IN_ID.findall(value)))
        raise ValueError(
            f"ids must be printable text without control characters; found {bad[:3]!r}"
        )
    return value


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        bad = _control_characters(value)
        raise ValueError(f"must not contain control characters; found {bad[:3]!r}")
    return value


def _plain_text(value: str) -> str:
    if _CONTROL_BUT_LINES.search(value):
        bad = _control_characters(value, _CONTROL_BUT_LINES)
        raise ValueError(
            f"must not contain control characters other than tab and line breaks; found {bad[:3]!r}"
        )
    return value


def _event_time(value: dt.datetime) -> dt.datetime:
    value = as_utc(value)
    seconds = value.timestamp()
    if seconds < 0:
        raise ValueError(f"must not be before {EARLIEST_EVENT.date()} (the Unix epoch)")
    if seconds > time.time() + _max_future_s:
        raise ValueError(
            f"must not be more than {_max_future_s:g} s in the future (the clock says "
            f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}; "
            "setting max_future_s / SEGUE_MAX_FUTURE_S)"
        )
    return value


def _not_future(value: dt.datetime) -> dt.datetime:
    value = as_utc(value)
    latest = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=_max_future_s)
    if value > latest:
        raise ValueError(f"must not be more than {_max_future_s:g} s in the future")
    return value


def _tz_name(value: str) -> str:
    if not _known_timezone(value):
        raise ValueError(
            f"unknown IANA timezone {value!r}: use a tz database name (e.g. 'Europe/Berlin')"
        )
    return value


#: An id of a user, item, event or tag target: printable, 1 to 200 characters once the
#: surrounding whitespace is stripped. Stripped here, in the type, so that an API body and the
#: records behind it (which strip every string) agree: " " or "\xa0" is refused at the edge
#: instead of passing it and failing later as an empty id.
Id = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ID_LENGTH),
    AfterValidator(_printable_id),
]
#: A short name (session, surface, source, device, genre, tag): no control characters but
#: tab and line breaks (a quoted CSV cell may span lines).
Name = Annotated[str, Field(max_length=MAX_NAME_LENGTH), AfterValidator(_plain_text)]
#: A genre or tag label: a non-empty :data:`Name`.
Label = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_LENGTH),
    AfterValidator(_no_control),
]
#: Milliseconds played: 0 to a day.
MsPlayed = Annotated[int, Field(ge=0, le=MAX_MS_PLAYED)]
#: When an event happened: aware UTC, from the epoch to a few minutes ahead of the clock.
EventTime = Annotated[dt.datetime, AfterValidator(_event_time)]
#: A tz database name.
Timezone = Annotated[str, AfterValidator(_tz_name)]


class ItemKind(StrEnum):
    """What a user can be recommended; ``feature`` is an app feature such as Discovery Station."""

    TRACK = "track"
    ALBUM = "album"
    ARTIST = "artist"
    PODCAST_SHOW = "podcast_show"
    PODCAST_EPISODE = "podcast_episode"
    VIDEO = "video"
    AUDIOBOOK = "audiobook"
    FEATURE = "feature"


class EventType(StrEnum):
    """What a user did. The order is the stable integer code used in columnar logs."""

    PLAY = "play"
    SKIP = "skip"
    LIKE = "like"
    DISLIKE = "dislike"
    ADD_TO_PLAYLIST = "add_to_playlist"
    FOLLOW = "follow"
    UNFOLLOW = "unfollow"
    IMPRESSION = "impression"
    CLICK = "click"
    OPEN = "open"
    CONVERSION = "conversion"
    DISMISS = "dismiss"
    SHARE = "share"


#: What kind of listening an item belongs to, for per-kind profiles (music, podcasts, videos,
#: audiobooks): the group index of each consumable kind; features and artists have none.
KIND_GROUP: dict[ItemKind, int] = {
    ItemKind.TRACK: 0,
    ItemKind.ALBUM: 0,
    ItemKind.ARTIST: 0,
    ItemKind.PODCAST_SHOW: 1,
    ItemKind.PODCAST_EPISODE: 1,
    ItemKind.VIDEO: 2,
    ItemKind.AUDIOBOOK: 3,
}

#: Event types in code order: ``EVENT_TYPES[code]`` is the type, ``EVENT_CODES[type]`` its code.
EVENT_TYPES: tuple[EventType, ...] = tuple(EventType)
EVENT_CODES: dict[str, int] = {t.value: i for i, t in enumerate(EVENT_TYPES)}


class AgeBand(StrEnum):
    A13_17 = "13-17"
    A18_24 = "18-24"
    A25_34 = "25-34"
    A35_44 = "35-44"
    A45_54 = "45-54"
    A55_64 = "55-64"
    A65_PLUS = "65+"


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"
    NONBINARY = "nonbinary"
    OTHER = "other"


_TIMEZONES: frozenset[str] | None = None


def _known_timezone(name: str) -> bool:
    global _TIMEZONES
    if _TIMEZONES is None:
        _TIMEZONES = frozenset(available_timezones())
    if name in _TIMEZONES:
        return True
    if _TIMEZONES:  # the tz database is there and does not list it
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def as_utc(value: dt.datetime) -> dt.datetime:
    """Aware UTC datetime; naive values are read as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def to_epoch_ms(value: dt.datetime) -> int:
    """Milliseconds since the Unix epoch, the storage form of every timestamp."""
    return int(as_utc(value).timestamp() * 1000)


def from_epoch_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class AudioFeatures(_Record):
    """Spotify-style descriptors; all in [0, 1] except tempo (BPM) and loudness (dB)."""

    tempo: float = Field(ge=0, le=300)
    energy: float = Field(ge=0, le=1)
    danceability: float = Field(ge=0, le=1)
    valence: float = Field(ge=0, le=1)
    acousticness: float = Field(ge=0, le=1)
    instrumentalness: float = Field(ge=0, le=1)
    loudness: float = Field(default=-8.0, ge=-60, le=5)


class Item(_Record):
    """Anything that can be played or recommended. Links are ids of other items."""

    id: Id
    kind: ItemKind
    title: Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_plain_text)]
    artist_id: Id | None = None
    album_id: Id | None = None
    show_id: Id | None = None
    genres: tuple[Name, ...] = ()
    tags: tuple[Name, ...] = ()
    duration_ms: int | None = Field(default=None, ge=0, le=MAX_DURATION_MS)
    release_date: dt.date | None = None
    explicit: bool = False
    audio: AudioFeatures | None = None
    description: Annotated[str, Field(max_length=20_000), AfterValidator(_plain_text)] = ""

    @field_validator("genres", "tags")
    @classmethod
    def _clean_labels(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(v.strip() for v in values)
        if any(not v for v in cleaned):
            raise ValueError("labels must be non-empty strings")
        return cleaned


class User(_Record):
    """A listener. Demographics are optional; consents default to the conservative choice."""

    id: Id
    signup_at: dt.datetime
    age_band: AgeBand | None = None
    gender: Gender | None = None
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    timezone: Timezone | None = None
    consent_push: bool = False
    consent_email: bool = False
    consent_personalisation: bool = True
    kids_profile: bool = False
    focus_mode: bool = False

    @field_validator("signup_at")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        return as_utc(value)

    @field_validator("country", mode="before")
    @classmethod
    def _upper_country(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


class Event(_Record):
    """One thing a user did with an item.

    ``count`` > 1 marks an aggregated record (Last.fm's play counts); ``focus`` marks listening
    that must not count towards the profile (Focus Mode). ``surface``/``source`` name the
    recommendation or campaign that caused the event.
    """

    event_id: Id
    user_id: Id
    item_id: Id
    type: EventType
    timestamp: EventTime
    ms_played: MsPlayed | None = None
    count: int = Field(default=1, ge=1, le=MAX_INT32)
    session_id: Name | None = None
    surface: Name | None = None
    source: Name | None = None
    device: Name | None = None
    focus: bool = False
    rating: float | None = Field(default=None, ge=-1e6, le=1e6, allow_inf_nan=False)


class Friendship(_Record):
    """A directed friend link; Last.fm lists each friendship in both directions."""

    user_id: Id
    friend_id: Id


class Tag(_Record):
    id: int = Field(ge=0, le=MAX_INT32)
    name: Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_plain_text)]


class TagAssignment(_Record):
    """A user labelled an item with a tag at a time."""

    user_id: Id
    item_id: Id
    tag_id: int = Field(ge=0, le=MAX_INT32)
    timestamp: Annotated[dt.datetime, AfterValidator(_not_future)]
