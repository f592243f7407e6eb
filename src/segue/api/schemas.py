"""Request and response bodies of the HTTP API; their docstrings become the OpenAPI text."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from segue.data.model import (
    AgeBand,
    Event,
    EventTime,
    EventType,
    Gender,
    Id,
    Label,
    MsPlayed,
    Name,
    Timezone,
    User,
)
from segue.jobs.ask import QueryAnswer
from segue.nba.actions import Action
from segue.nlu.parser import Understanding

#: Most events one request may carry (the body size limit applies too).
MAX_EVENTS_PER_REQUEST = 5_000


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(_Body):
    """One thing a listener did. Send an ``event_id`` to make retries safe: a repeated id is
    ignored. Without one, the server assigns a random id. Ids are 1 to 200 printable
    characters; no field may hold control characters (the rules of ``segue.data.model``,
    the same for imports and the stream)."""

    event_id: Id | None = None
    user_id: Id
    item_id: Id
    type: EventType
    timestamp: EventTime | None = Field(
        default=None,
        description="When it happened (ISO 8601); default: when received. Not before 1970 and "
        "not more than max_future_s (default 300) seconds ahead of the server's clock",
    )
    ms_played: MsPlayed | None = Field(default=None, description="0 to 86,400,000 (a day)")
    session_id: Name | None = None
    surface: Annotated[Name, Field(max_length=100)] | None = None
    device: Annotated[Name, Field(max_length=100)] | None = None
    focus: bool = Field(default=False, description="Listening in Focus Mode: not for the profile")

    def to_event(self, received: dt.datetime) -> Event:
        return Event(
            event_id=self.event_id or uuid.uuid4().hex,
            user_id=self.user_id,
            item_id=self.item_id,
            type=self.type,
            timestamp=self.timestamp or received,
            ms_played=self.ms_played,
            session_id=self.session_id,
            surface=self.surface,
            device=self.device,
            focus=self.focus,
            source="api",
        )


class EventBatch(_Body):
    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS_PER_REQUEST)


class EventsAccepted(BaseModel):
    accepted: int
    focus: int = Field(description="How many were marked Focus Mode (not for personalisation)")
    applied: int = Field(description="How many changed the live state right away")
    path: str = Field(description="'bus', or 'direct' when the bus was down and they were stored")


class RecommendedItem(BaseModel):
    item_id: str
    title: str
    score: float
    reason: str


class RecommendationList(BaseModel):
    request_id: str = Field(
        description="This answer's id in the exposure log: send it back with the plays it "
        "led to (as the events' session_id) to attribute them exactly"
    )
    user_id: str
    items: list[RecommendedItem]
    model: str
    version: str
    path: str = Field(
        description="personal, cold_start, non_personal (the listener did not consent to "
        "personalisation: the same list as every such listener in their country), fallback, or "
        "batch (the published daily list, served when the model could not score)"
    )
    surface: str
    personal_weight: float
    fresh_plays: int = Field(description="Plays since the model was trained that were folded in")
    session_id: str | None
    degraded: list[str] = Field(description="What could not be used for this answer, if anything")
    why_empty: str | None = Field(
        default=None, description="When there are no items: why, and what would fill the list"
    )


class PublishedTop(BaseModel):
    """A listener's top list as the production version's daily run published it."""

    user_id: str
    name: str
    version: str
    items: list[RecommendedItem]


class ItemPlays(BaseModel):
    item_id: str
    last_hour: int
    last_day: int


class SimilarItems(BaseModel):
    item_id: str
    items: list[RecommendedItem]
    model: str
    version: str


class UserIn(_Body):
    """A new listener. ``picks`` (item ids) and ``genres`` are their onboarding answers."""

    id: Id | None = None
    age_band: AgeBand | None = None
    gender: Gender | None = None
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    timezone: Timezone | None = Field(default=None, description="A tz database name")
    consent_push: bool = False
    consent_email: bool = False
    consent_personalisation: bool = True
    kids_profile: bool = False
    picks: list[Id] = Field(default_factory=list, max_length=50)
    genres: list[Label] = Field(default_factory=list, max_length=20)


class UserSettings(_Body):
    """Only the fields given change."""

    consent_push: bool | None = None
    consent_email: bool | None = None
    consent_personalisation: bool | None = None
    kids_profile: bool | None = None
    focus_mode: bool | None = None


class UserOut(BaseModel):
    id: str
    signup_at: dt.datetime
    age_band: AgeBand | None
    gender: Gender | None
    country: str | None
    timezone: str | None
    consent_push: bool
    consent_email: bool
    consent_personalisation: bool
    kids_profile: bool
    focus_mode: bool

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(**user.model_dump(include=set(cls.model_fields)))


class Readiness(BaseModel):
    ready: bool
    model: str | None
    version: str | None
    fallback: str | None
    state: str = Field(description="redis, in-process, or degraded (Redis down)")
    bus: str
    auth: bool


def finite_or_none(value: float) -> float | None:
    """A figure JSON can carry: NaN or infinity (no data for it) as null."""
    return None if math.isnan(value) or math.isinf(value) else float(value)


# -- answers of the jobs, as the API and ``--json`` print them ---------------------------------
class _FromJob(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class StationTrackOut(_FromJob):
    item_id: str
    title: str
    artist: str | None
    genre: str | None
    score: float


class NewReleaseOut(_FromJob):
    item_id: str
    title: str
    artist: str | None
    release_date: dt.date
    reason: str


class NewReleasesResponse(BaseModel):
    """Tracks released lately, by the artists and genres the listener plays."""

    user_id: str
    as_of: dt.date = Field(
        description="The day 'new' counts back from: today, or the catalog's newest release "
        "date when that is earlier"
    )
    window_days: int
    items: list[NewReleaseOut]


class StationResponse(_FromJob):
    """The next page of a station, with the session it was adapted to."""

    user_id: str
    seed: str
    session_id: str | None
    skips_by_genre: dict[str, int]
    tracks: list[StationTrackOut]
    seed_title: str | None = Field(
        default=None, description='The seed artist or track by name ("Title — Artist")'
    )
    why_empty: str | None = Field(
        default=None, description="When there are no tracks: why, and what would fill the page"
    )


class SuggestionOut(_FromJob):
    action: Action
    channel: str
    p_click: float
    expected_value: float
    send_at: dt.datetime


class NextBestActionResponse(_FromJob):
    """The best allowed suggestion for a listener now (or none, with why in ``note``), and
    the other allowed ones best first."""

    user_id: str
    best: SuggestionOut | None
    alternatives: list[SuggestionOut]
    note: str = ""


class QueuedTrackOut(_FromJob):
    item_id: str
    title: str
    score: float | None = None
    reason: str


class QueryResponse(Understanding):
    """What a request meant, what to do, what to ask, and what would play."""

    queue: list[QueuedTrackOut] = Field(default_factory=list)

    @classmethod
    def of(cls, answer: QueryAnswer) -> QueryResponse:
        return cls(
            **answer.understanding.understanding(),
            queue=[QueuedTrackOut.model_validate(q) for q in answer.queue],
        )


class SearchHit(_FromJob):
    """A catalog item whose name matched: ``by`` is the artist of a track or album, the show
    of a podcast episode."""

    item_id: str
    kind: str
    title: str
    by: str | None
    score: float = Field(description="Name match plus a little popularity; higher is closer")


class SearchResults(BaseModel):
    query: str
    items: list[SearchHit]


class SimilarOut(_FromJob):
    item_id: str
    kind: str
    title: str
    by: str | None
    score: float
    reasons: list[str]


class SimilarResponse(_FromJob):
    """Items like one item (``segue similar --json``), with the reasons in words."""

    item: SearchHit
    model: str
    items: list[SimilarOut]
