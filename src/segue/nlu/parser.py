"""From a request in words to a validated call, or to the question that must come first.

Steps: normalise the words, tag them (intent + BIO slots, calibrated confidences), read the
slot spans, link names to catalog items, fill in context (the listener's history for "my
favourites", the local time for "something for this morning"), build the call and validate
it against its pydantic schema. A call that misses required information becomes a
clarification question; a call built on an unsure reading (low calibrated confidence, or a
name matched only loosely) comes with a confirmation question.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from segue.errors import SegueError
from segue.nlu.calls import Call, Ref, validate_call
from segue.nlu.evaluate import spans
from segue.nlu.linking import Candidate, EntityIndex
from segue.nlu.tagged import Tagged, frame_confidence
from segue.nlu.words import words_of

if TYPE_CHECKING:
    from segue.nlu.tagger import Tagger

#: model intent label -> segue intent
INTENTS = {
    "PlayMusic": "play_music",
    "AddToPlaylist": "add_to_playlist",
    "LikeTrack": "like",
    "DislikeTrack": "dislike",
    "SkipTrack": "skip",
    "PreviousTrack": "previous",
    "PauseMusic": "pause",
    "ResumeMusic": "resume",
    "StartStation": "start_station",
    "FocusModeOn": "focus_mode_on",
    "FocusModeOff": "focus_mode_off",
    "Recommend": "recommend",
    "SearchCreativeWork": "search",
}
#: below this calibrated confidence the parser asks before acting
CONFIRM_BELOW = 0.6
#: a linked name matching less than this (0-1) is confirmed with the listener
LOOSE_MATCH = 0.8
FAVOURITE_WORDS = ("favourite", "favorite", "liked", "my music", "my songs")
OUT_OF_SCOPE_MESSAGE = (
    "I can help with music: playing, playlists, likes, stations, Focus Mode and suggestions."
)


class Slot(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    value: str
    start: int
    end: int
    confidence: float


class LinkedEntity(BaseModel):
    model_config = ConfigDict(frozen=True)

    slot: str
    text: str
    candidates: list[Candidate]  # the linker's own records, with the parts of their score


class Understanding(BaseModel):
    """What a request meant and what to do or ask: the part every face shows."""

    text: str
    intent: str
    confidence: float
    slots: list[Slot]
    entities: list[LinkedEntity]
    call: Call | None
    question: str | None = None
    question_kind: Literal["clarify", "confirm"] | None = None
    message: str | None = None
    context: dict[str, Any] = {}

    def understanding(self) -> dict[str, Any]:
        """The :class:`Understanding` fields, as keyword arguments for a richer answer."""
        return {name: getattr(self, name) for name in Understanding.model_fields}


class ParseResult(Understanding):
    """Everything the parser understood, JSON-serialisable for the API."""

    words: list[str]
    model_intent: str

    def slot(self, name: str) -> str | None:
        for s in self.slots:
            if s.name == name:
                return s.value
        return None


class Parser:
    """Tagger + entity index + the rules that turn a frame into a call."""

    def __init__(
        self,
        tagger: Tagger,
        index: EntityIndex | None = None,
        *,
        confirm_below: float = CONFIRM_BELOW,
        histories: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.tagger = tagger
        self.index = index
        self.confirm_below = confirm_below
        #: per user id, the item ids they played, most played first (filled by the jobs layer)
        self.histories: Mapping[str, Sequence[str]] = histories or {}

    def parse(
        self,
        text: str,
        *,
        history: Sequence[str] = (),
        now: dt.datetime | None = None,
    ) -> ParseResult:
        """Parse one request. ``history``: the listener's item ids, most played first;
        ``now``: the listener's local time."""
        words = words_of(text)
        if not words:
            raise SegueError("the request is empty: say what to play or do")
        tagged = self.tagger.tag([words])[0]
        return self.interpret(text, tagged, history=history, now=now)

    def interpret(
        self,
        text: str,
        tagged: Tagged,
        *,
        history: Sequence[str] = (),
        now: dt.datetime | None = None,
    ) -> ParseResult:
        words = list(tagged.words)
        slots = _slots(tagged)
        intent = INTENTS.get(tagged.intent, "out_of_scope")
        confidence = frame_confidence(tagged)
        build = _Builder(self.index, slots, set(history), now)
        result = ParseResult(
            text=text,
            words=words,
            intent=intent,
            model_intent=tagged.intent,
            confidence=round(confidence, 6),
            slots=slots,
            entities=[],
            call=None,
        )
        if intent == "out_of_scope":
            return result.model_copy(update={"message": OUT_OF_SCOPE_MESSAGE})
        data, question = build.call_data(intent, words)
        update: dict[str, Any] = {"entities": build.entities, "context": build.context}
        if question is None:
            try:
                update["call"] = validate_call(data)
            except ValidationError as exc:
                question = _question_for(exc)
        if question is not None:
            update.update(question=question, question_kind="clarify")
        elif confidence < self.confirm_below or build.loose:
            update.update(question=_confirmation(update["call"], build), question_kind="confirm")
        return result.model_copy(update=update)


def _slots(tagged: Tagged) -> list[Slot]:
    out = []
    for start, end, name in sorted(spans(tagged.tags)):
        out.append(
            Slot(
                name=name,
                value=" ".join(tagged.words[start:end]),
                start=start,
                end=end,
                confidence=round(min(tagged.tag_confidence[start:end]), 6),
            )
        )
    return out


class _Builder:
    """Links the slots of one request and assembles the call's data."""

    def __init__(
        self,
        index: EntityIndex | None,
        slots: list[Slot],
        history: set[str],
        now: dt.datetime | None,
    ) -> None:
        self.index = index
        self.values: dict[str, str] = {}
        for s in slots:
            self.values.setdefault(s.name, s.value)
        self.history = history
        self.now = now
        self.entities: list[LinkedEntity] = []
        self.context: dict[str, Any] = {}
        self.loose = False
        self._linked_artist: Candidate | None = None

    # -- linking ------------------------------------------------------------------------
    def ref(self, slot: str, kinds: Sequence[str]) -> Ref | None:
        linked = self._link(slot, kinds)
        return None if linked is None else linked[0]

    def _link(
        self, slot: str, kinds: Sequence[str], prefer: str | None = None
    ) -> tuple[Ref, Candidate | None] | None:
        """The slot's words linked to the catalog (recorded in :attr:`entities`): the best
        candidate, or the best of kind ``prefer`` when it matches the words as well."""
        text = self.values.get(slot)
        if text is None:
            return None
        if self.index is None:
            return Ref(text=text), None
        artist = self.artist() if slot != "artist" else None
        found: list[Candidate] = []
        if artist is not None and set(kinds) & {"track", "album"}:
            found = self.index.link_artist_work(text, kinds, artist.item_id)
        if not found:
            found = self.index.link(
                text,
                kinds,
                history=self.history,
                artist_id=artist.item_id if artist else None,
            )
        self.entities.append(LinkedEntity(slot=slot, text=text, candidates=list(found)))
        if not found:
            self.loose = True
            return Ref(text=text), None
        self.loose = self.loose or found[0].match < LOOSE_MATCH
        best = next((c for c in found if c.kind == prefer and c.match >= found[0].match), found[0])
        return Ref(text=text, id=best.item_id, title=best.title), best

    def works(self) -> tuple[Ref | None, Ref | None]:
        """(track, album) of a play request, each linked against tracks *and* albums.

        Why: SNIPS labels "play X by Y" as an album or a track by conventions the words do not
        decide (the tagger says album for 16 % of misspelt track titles), while the catalog
        knows which X is. A name tagged as one kind moves to the other only when an item of
        the other kind matches its words strictly better.
        """
        refs: dict[str, Ref | None] = {"track": None, "album": None}
        for slot, other in (("track", "album"), ("album", "track")):
            linked = self._link(slot, [slot, other], prefer=slot)
            if linked is None:
                continue
            ref, chosen = linked
            kind = slot if chosen is None else chosen.kind
            if refs[kind] is None:
                refs[kind] = ref
        return refs["track"], refs["album"]

    def artist(self) -> Candidate | None:
        if self._linked_artist is None and "artist" in self.values and self.index is not None:
            found = self.index.link(self.values["artist"], ["artist"], history=self.history)
            self._linked_artist = found[0] if found else None
        return self._linked_artist

    def genre(self) -> str | None:
        text = self.values.get("genre")
        if text is None or self.index is None:
            return text
        return self.index.link_genre(text) or text

    # -- context ------------------------------------------------------------------------
    def time_of_day(self) -> str | None:
        words = self.values.get("timeRange", "")
        for part, names in (
            ("morning", ("morning", "breakfast", "sunrise")),
            ("afternoon", ("afternoon", "lunch")),
            ("evening", ("evening", "dinner", "tonight")),
            ("night", ("night", "midnight", "sleep")),
        ):
            if any(n in words for n in names):
                return part
        if self.now is not None and (not words or words in ("today", "right now", "now")):
            hour = self.now.hour
            self.context["local_time"] = self.now.isoformat()
            return (
                "morning"
                if 5 <= hour < 12
                else "afternoon"
                if hour < 17
                else "evening"
                if hour < 22
                else "night"
            )
        return None

    # -- calls --------------------------------------------------------------------------
    def call_data(self, intent: str, words: list[str]) -> tuple[dict[str, Any], str | None]:
        """The call's fields, or a clarification question when something must be asked."""
        v = self.values
        if intent == "play_music":
            favourites = any(f in " ".join(words) for f in FAVOURITE_WORDS)
            data: dict[str, Any] = {"name": "playMusic"}
            if favourites:
                data["source"] = "history"
                self.context["history_items"] = len(self.history)
            else:
                data["playlist"] = v.get("playlist")
            track, album = self.works()
            data.update(
                track=track,
                artist=self.ref("artist", ["artist"]),
                album=album,
                genre=self.genre(),
                year=v.get("year"),
                mood=v.get("mood"),
                activity=v.get("activity"),
                service=v.get("service"),
                sort=v.get("sort"),
            )
            if not any(data.get(k) for k in ("track", "artist", "album", "playlist")) and not (
                favourites
            ):
                data["source"] = "recommendations"
            return data, None
        if intent == "add_to_playlist":
            item = self.ref("entity_name", ["track", "album"]) or self.ref("artist", ["artist"])
            item = item or Ref(text=v.get("music_item", "current"), id=None)
            if "playlist" not in v:
                return {}, "Which playlist should I add it to?"
            return {"name": "addToPlaylist", "item": item, "playlist": v["playlist"]}, None
        if intent in ("like", "dislike"):
            item = self.ref("track", ["track"]) or self.ref("artist", ["artist"])
            item = item or Ref(text="current")
            return {"name": "rateItem", "item": item, "liked": intent == "like"}, None
        if intent in ("skip", "previous", "pause", "resume"):
            return {"name": "controlPlayback", "action": intent}, None
        if intent in ("focus_mode_on", "focus_mode_off"):
            return {"name": "setFocusMode", "on": intent == "focus_mode_on"}, None
        if intent == "start_station":
            return self._station(words)
        if intent == "recommend":
            like = self.ref("track", ["track"]) or self.ref("artist", ["artist"])
            return {
                "name": "recommend",
                "like": like,
                "genre": self.genre(),
                "mood": v.get("mood"),
                "activity": v.get("activity"),
                "time_of_day": self.time_of_day(),
            }, None
        # search: the linked candidates are the results
        key = next((k for k in ("object_name", "track", "artist", "album") if k in v), None)
        if key is None:
            return {}, "What should I search for?"
        self.ref(key, ["track", "artist", "album"])
        found = self.entities[-1].candidates if self.index is not None else []
        results = tuple(Ref(text=v[key], id=c.item_id, title=c.title) for c in found)
        return {
            "name": "search",
            "query": v[key],
            "kind": v.get("object_type"),
            "results": results,
        }, None

    def _station(self, words: list[str]) -> tuple[dict[str, Any], str | None]:
        v = self.values
        if "station" in v or "discover" in " ".join(words):
            ref = self.ref("station", ["feature"]) if "station" in v else None
            seed = ref or Ref(text="discovery")
            return {"name": "startStation", "seed_kind": "discovery", "seed": seed}, None
        if "track" in v:
            return {
                "name": "startStation",
                "seed_kind": "track",
                "seed": self.ref("track", ["track"]),
            }, None
        if "artist" in v:
            return {
                "name": "startStation",
                "seed_kind": "artist",
                "seed": self.ref("artist", ["artist"]),
            }, None
        if "genre" in v:
            genre = self.genre() or v["genre"]
            return {"name": "startStation", "seed_kind": "genre", "seed": Ref(text=genre)}, None
        if "music_item" in v:
            return {
                "name": "startStation",
                "seed_kind": "current",
                "seed": Ref(text="current"),
            }, None
        return {}, "Which artist or genre should the station start from?"


def _question_for(exc: ValidationError) -> str:
    missing = sorted({str(e["loc"][-1]) for e in exc.errors() if e["loc"]})
    return f"I need a bit more: which {' and '.join(missing) or 'details'} did you mean?"


def _confirmation(call: Call | None, build: _Builder) -> str:
    names = [e.candidates[0].title for e in build.entities if e.candidates]
    what = call.name if call is not None else "that"
    if names:
        return f"Did you mean {', '.join(names)}? Shall I go ahead ({what})?"
    return f"Just to check: shall I go ahead ({what})?"
