"""Canonical records: items, users, events and the small social/tag records around them.

Every importer, the synthetic world and the API produce these, so validation lives here once.
Timestamps are timezone-aware UTC; a naive timestamp is taken to be UTC, because every source
we import (Last.fm, CSV logs) writes UTC without saying so.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator

Id = str
_ID = Field(min_length=1, max_length=200)


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

    id: Id = _ID
    kind: ItemKind
    title: str = Field(min_length=1, max_length=1000)
    artist_id: Id | None = None
    album_id: Id | None = None
    show_id: Id | None = None
    genres: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    duration_ms: int | None = Field(default=None, ge=0)
    release_date: dt.date | None = None
    explicit: bool = False
    audio: AudioFeatures | None = None
    description: str = ""

    @field_validator("genres", "tags")
    @classmethod
    def _clean_labels(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(v.strip() for v in values)
        if any(not v for v in cleaned):
            raise ValueError("labels must be non-empty strings")
        return cleaned


class User(_Record):
    """A listener. Demographics are optional; consents default to the conservative choice."""

    id: Id = _ID
    signup_at: dt.datetime
    age_band: AgeBand | None = None
    gender: Gender | None = None
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    timezone: str | None = None
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

    @field_validator("timezone")
    @classmethod
    def _known_tz(cls, value: str | None) -> str | None:
        if value is not None and not _known_timezone(value):
            raise ValueError(f"unknown IANA timezone {value!r} (e.g. 'Europe/Berlin')")
        return value


class Event(_Record):
    """One thing a user did with an item.

    ``count`` > 1 marks an aggregated record (Last.fm's play counts); ``focus`` marks listening
    that must not count towards the profile (Focus Mode). ``surface``/``source`` name the
    recommendation or campaign that caused the event.
    """

    event_id: Id = _ID
    user_id: Id = _ID
    item_id: Id = _ID
    type: EventType
    timestamp: dt.datetime
    ms_played: int | None = Field(default=None, ge=0)
    count: int = Field(default=1, ge=1)
    session_id: str | None = None
    surface: str | None = None
    source: str | None = None
    device: str | None = None
    focus: bool = False
    rating: float | None = None

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        return as_utc(value)


class Friendship(_Record):
    """A directed friend link; Last.fm lists each friendship in both directions."""

    user_id: Id = _ID
    friend_id: Id = _ID


class Tag(_Record):
    id: int
    name: str = Field(min_length=1, max_length=500)


class TagAssignment(_Record):
    """A user labelled an item with a tag at a time."""

    user_id: Id = _ID
    item_id: Id = _ID
    tag_id: int
    timestamp: dt.datetime

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        return as_utc(value)
