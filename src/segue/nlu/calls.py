"""The calls a request turns into, as pydantic schemas validated before anything is returned.

Each call names the player action (``playMusic``, ``addToPlaylist`` ...) and carries what the
action needs; ``required`` fields are what the parser must ask for when the request leaves
them out ("Which playlist should I add it to?"). References to catalog items are ids that the
entity linker resolved, next to the words the listener used.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator


class _Call(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ref(BaseModel):
    """A catalog reference: the words heard and, when linked, the item id and its title."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1)
    id: str | None = None
    title: str | None = None
    #: the linked item's kind ("track", "podcast_show" ...), when linked
    kind: str | None = None


class PlayMusic(_Call):
    """Play something: a track, artist, album, genre, playlist, a decade, or a mood; or
    another kind of catalog item (``item``: a podcast show or episode, an audiobook, a
    video, an app feature)."""

    name: Literal["playMusic"] = "playMusic"
    track: Ref | None = None
    artist: Ref | None = None
    album: Ref | None = None
    item: Ref | None = None
    genre: str | None = None
    playlist: str | None = None
    year: str | None = None
    mood: str | None = None
    activity: str | None = None
    service: str | None = None
    sort: str | None = None
    #: "history" for "play my favourites": the queue comes from what the listener plays most
    source: Literal["catalog", "history", "recommendations"] = "catalog"


class AddToPlaylist(_Call):
    """Add an item (or what is playing now) to a named playlist."""

    name: Literal["addToPlaylist"] = "addToPlaylist"
    item: Ref
    playlist: str = Field(min_length=1)


class RateItem(_Call):
    """Like or dislike an item, by default the one playing now."""

    name: Literal["rateItem"] = "rateItem"
    item: Ref
    liked: bool


class ControlPlayback(_Call):
    name: Literal["controlPlayback"] = "controlPlayback"
    action: Literal["skip", "previous", "pause", "resume"]


class StartStation(_Call):
    """A radio station seeded by an artist, a track, a genre, or the Discovery station."""

    name: Literal["startStation"] = "startStation"
    seed_kind: Literal["artist", "track", "genre", "discovery", "current"]
    seed: Ref

    @model_validator(mode="after")
    def _discovery_needs_no_item(self) -> StartStation:
        if self.seed_kind in ("artist", "track") and self.seed.text == "":
            raise ValueError("an artist or track station needs a seed")
        return self


class SetFocusMode(_Call):
    name: Literal["setFocusMode"] = "setFocusMode"
    on: bool


class Recommend(_Call):
    """Suggestions like an item, for an activity, a mood, a genre or the time of day."""

    name: Literal["recommend"] = "recommend"
    like: Ref | None = None
    genre: str | None = None
    mood: str | None = None
    activity: str | None = None
    time_of_day: Literal["morning", "afternoon", "evening", "night"] | None = None


class Search(_Call):
    name: Literal["search"] = "search"
    query: str = Field(min_length=1)
    kind: str | None = None
    results: tuple[Ref, ...] = ()


Call = Annotated[
    PlayMusic
    | AddToPlaylist
    | RateItem
    | ControlPlayback
    | StartStation
    | SetFocusMode
    | Recommend
    | Search,
    Field(discriminator="name"),
]
CALL_ADAPTER: TypeAdapter[Call] = TypeAdapter(Call)


def validate_call(data: dict[str, object]) -> Call:
    """A call from plain data; pydantic's ValidationError says what is missing or wrong."""
    return CALL_ADAPTER.validate_python(data)
