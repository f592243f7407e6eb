"""From a request in words to a validated call, or to the question that must come first.

Steps: normalise the words, tag them (intent + BIO slots, calibrated confidences), read the
slot spans, link names to catalog items, fill in context (the listener's history for "my
favourites", the local time for "something for this morning"), build the call and validate
it against its pydantic schema. A call that misses required information becomes a
clarification question; a call built on an unsure reading (low calibrated confidence, or a
name whose calibrated link probability is under :data:`segue.nlu.link_score.CONFIRM_BELOW`)
comes with a confirmation question, and a name under
:data:`segue.nlu.link_score.LINK_THRESHOLD` gets no call at all: "I couldn't find X; did
you mean A or B?" (or "not in the catalog" when nothing is close).

Before the model: the text is NFKC-normalised and cleaned of control and invisible
characters (:func:`segue.nlu.words.clean_text`), refused when empty or longer than the
model reads (:data:`segue.nlu.words.MAX_REQUEST_WORDS` words, :data:`MAX_SUBWORDS`
sub-words), and answered "I understand requests in English" when it is not English
(:mod:`segue.nlu.language`). After the model: the phrasings whose words settle the meaning
("play the song X", "put on X", "something like X", "search for the album X") are read by
rule (:mod:`segue.nlu.phrases`) where the tagger's reading names no linked item.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from segue.errors import SegueError
from segue.nlu.calls import Call, Ref, validate_call
from segue.nlu.evaluate import spans
from segue.nlu.generate import MOODS
from segue.nlu.language import ENGLISH_WORDS, NOT_ENGLISH, not_english
from segue.nlu.link_score import CONFIRM_BELOW as CONFIRM_LINK_BELOW
from segue.nlu.link_score import LINK_THRESHOLD, link_confidence
from segue.nlu.linking import Candidate, EntityIndex
from segue.nlu.phrases import KIND_WORDS, Phrase, known_service, read_phrase
from segue.nlu.tagged import Tagged, frame_confidence
from segue.nlu.words import clean_text, request_words, words_of

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
#: the model reads 64 sub-words, [CLS] and [SEP] included: longer requests are refused
MAX_SUBWORDS = 62
#: item kinds a play request may name besides tracks, albums and artists (``PlayMusic.item``)
OTHER_KINDS = ("podcast_show", "podcast_episode", "audiobook", "video")
#: every kind a name in a request may be, in the order preferred among equal matches
ALL_KINDS = ("track", "album", "artist", *OTHER_KINDS, "feature")
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
    #: the calibrated probability that the first candidate is the item meant (0: none found)
    confidence: float = 0.0


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
        text = clean_text(text)
        words = request_words(text)  # refuses nothing visible, or too many words
        words = words_of(text)
        if not_english(text, words):
            return ParseResult(
                text=text,
                words=words,
                intent="out_of_scope",
                model_intent="",
                confidence=0.0,
                slots=[],
                entities=[],
                call=None,
                message=NOT_ENGLISH,
                context={"language": "not English"},
            )
        tokenizer = getattr(self.tagger, "tokenizer", None)
        if tokenizer is not None:
            n = len(tokenizer(words, is_split_into_words=True)["input_ids"]) - 2
            if n > MAX_SUBWORDS:
                raise SegueError(
                    f"the request is too long for the model: {n} word pieces, the limit is "
                    f"{MAX_SUBWORDS}; say what to play in fewer words"
                )
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
        phrase = read_phrase(words) if self.index is not None else None
        ruled = False
        if phrase is not None and _phrase_first(phrase, intent):
            intent, ruled = _PHRASE_INTENTS[phrase.action], True
            data, question = build.phrase_data(phrase)
        elif intent == "out_of_scope" or self._junk(words):
            # no word a request is made of and no catalog name ("blorp snarf"): not a request
            return result.model_copy(
                update={"intent": "out_of_scope", "message": OUT_OF_SCOPE_MESSAGE}
            )
        else:
            data, question = build.call_data(intent, words)
            if phrase is not None and phrase.action != "search" and not build.all_linked(phrase):
                # the tagger's reading links nothing sure: read the words by rule instead
                build = _Builder(self.index, slots, set(history), now)
                intent, ruled = _PHRASE_INTENTS[phrase.action], True
                data, question = build.phrase_data(phrase)
        update: dict[str, Any] = {"entities": build.entities, "context": build.context}
        if ruled:
            update["intent"] = intent
            build.context["rule"] = f"{phrase.action} phrase" if phrase else None
        unresolved = build.unresolved() if intent != "search" else []
        if unresolved:
            build.context["unresolved"] = [e.text for e in unresolved]
            update.update(question=_not_found(unresolved), question_kind="clarify")
            return result.model_copy(update=update)
        if question is None:
            try:
                update["call"] = validate_call(data)
            except ValidationError as exc:
                question = _question_for(exc)
        if question is not None:
            update.update(question=question, question_kind="clarify")
        elif (confidence < self.confirm_below and not ruled) or build.unsure(intent):
            update.update(question=_confirmation(update["call"], build), question_kind="confirm")
        return result.model_copy(update=update)

    def _junk(self, words: list[str]) -> bool:
        """No English request word, and the whole text names no catalog item for sure."""
        if ENGLISH_WORDS.intersection(words) or self.index is None:
            return False
        text = " ".join(words)
        found = self.index.link(text, ALL_KINDS, limit=3)
        return link_confidence(text, found) < LINK_THRESHOLD


_PHRASE_INTENTS = {"play": "play_music", "like": "recommend", "search": "search"}


def _phrase_first(phrase: Phrase, intent: str) -> bool:
    """Whether a phrase read by rule goes before the tagger's reading: "something like X"
    always (the item of any kind is wanted), a phrase that names its kind ("the podcast X",
    "search for the album X"), and a play phrase ("play X", "put on X") the tagger took for
    anything but playing, skipping, going back, a playlist or a station ("play the next
    song" stays a skip)."""
    if phrase.action == "like" or (phrase.kind is not None and phrase.kind != "playlist"):
        return True
    keep = ("play_music", "skip", "previous", "add_to_playlist", "start_station")
    return phrase.action == "play" and intent not in keep


def _call_field(kind: str) -> str:
    """The play call's field for an item of ``kind``: its own for tracks, albums and
    artists, ``item`` for every other kind (podcasts, audiobooks, ...)."""
    return kind if kind in ("track", "album", "artist") else "item"


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
        #: a "service" no streaming service is called: a name the tagger misread, linked
        #: like any other so that one the catalog lacks is asked about, never ignored
        self.stray: str | None = None
        if "service" in self.values and not known_service(self.values["service"]):
            self.stray = self.values.pop("service")
        self.history = history
        self.now = now
        self.entities: list[LinkedEntity] = []
        self.context: dict[str, Any] = {}
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
        return self._record(slot, text, found, prefer)

    def _record(
        self, slot: str, text: str, found: list[Candidate], prefer: str | None = None
    ) -> tuple[Ref, Candidate | None]:
        """Keep the linking in :attr:`entities` with its calibrated probability; the ref
        carries an id only when that probability reaches the threshold."""
        best = next((c for c in found if c.kind == prefer and c.match >= found[0].match), None)
        if best is not None and best is not found[0]:
            found = [best, *(c for c in found if c is not best)]
        confidence = round(link_confidence(text, found), 6)
        self.entities.append(
            LinkedEntity(slot=slot, text=text, candidates=list(found), confidence=confidence)
        )
        if not found or confidence < LINK_THRESHOLD:
            return Ref(text=text), None
        top = found[0]
        return Ref(text=text, id=top.item_id, title=top.title, kind=top.kind), top

    def unresolved(self) -> list[LinkedEntity]:
        """Linked names under the threshold: nothing is done with them, the listener is asked."""
        return [e for e in self.entities if e.confidence < LINK_THRESHOLD]

    def unsure(self, intent: str) -> bool:
        """A name over the threshold but under the confirmation line (searches list, they
        play nothing, so they need no confirmation)."""
        return intent != "search" and any(e.confidence < CONFIRM_LINK_BELOW for e in self.entities)

    def all_linked(self, phrase: Phrase) -> bool:
        """Whether the tagger's reading linked every name it holds, holds at least one name
        or something else to act on (genre, mood, playlist ...), and, when the phrase's whole
        name is an exact catalog title, linked that title."""
        # a playlist the listener did not call one ("play Tender Paradse") is the tagger's
        # guess, not something to act on: the words are then read by rule
        acts = [k for k in self.values if k != "playlist" or phrase.kind == "playlist"]
        if self.unresolved() or not (self.entities or acts):
            return False
        assert self.index is not None
        whole = self.index.link(phrase.name, ALL_KINDS, limit=1)
        if whole and whole[0].match >= 0.999:
            titles = {c.title for e in self.entities for c in e.candidates[:1]}
            return whole[0].title in titles
        return True

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
            text = self.values["artist"]
            found = self.index.link(text, ["artist"], history=self.history)
            sure = found and link_confidence(text, found) >= LINK_THRESHOLD
            self._linked_artist = found[0] if sure else None
        return self._linked_artist

    def genre(self) -> str | None:
        """The catalog genre the genre slot names; one the catalog lacks is recorded as an
        entity without candidates, so the listener is told instead of getting an empty list."""
        text = self.values.get("genre")
        if text is None or self.index is None:
            return text
        genre = self.index.link_genre(text)
        if genre is None and self.index.genres:
            self.entities.append(LinkedEntity(slot="genre", text=text, candidates=[]))
        return genre or text

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
            if self.stray is not None and self.index is not None:
                ref, chosen = self.any_ref("item", self.stray, None)
                field = _call_field(chosen.kind if chosen is not None else "track")
                if data.get(field) is None:
                    data[field] = ref
            named = ("track", "artist", "album", "item", "playlist")
            if not any(data.get(k) for k in named) and not favourites:
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
        # search: the linked candidates are the results, the kind named first
        key = next((k for k in ("object_name", "track", "artist", "album") if k in v), None)
        if key is None:
            return {}, "What should I search for?"
        kind = KIND_WORDS.get(v.get("object_type", ""), v.get("object_type"))
        return self.search(v[key], kind, slot=key), None

    def search(self, text: str, kind: str | None, slot: str = "object_name") -> dict[str, Any]:
        """A search over every kind, items of the kind named listed first."""
        found: list[Candidate] = []
        if self.index is not None:
            found = self.index.link(text, ALL_KINDS, history=self.history, limit=10)
            found = [c for c in found if c.kind == kind] + [c for c in found if c.kind != kind]
            self._record(slot, text, found)
        results = tuple(Ref(text=text, id=c.item_id, title=c.title, kind=c.kind) for c in found)
        return {"name": "search", "query": text, "kind": kind, "results": results}

    # -- phrases read by rule -------------------------------------------------------------
    def any_ref(
        self, slot: str, text: str, kind: str | None, artist: Candidate | None = None
    ) -> tuple[Ref, Candidate | None]:
        """``text`` linked against the kind named, or every kind: among names matched
        exactly the kind earliest in :data:`ALL_KINDS` (the track first), else the best."""
        assert self.index is not None
        kinds = [kind] if kind in ALL_KINDS else list(ALL_KINDS)
        found: list[Candidate] = []
        if artist is not None and set(kinds) & {"track", "album"}:
            works = [k for k in kinds if k in ("track", "album")]
            found = self.index.link_artist_work(text, works, artist.item_id)
        if not found:  # per kind, so that many equal titles of one kind crowd out none
            artist_id = artist.item_id if artist else None
            for k in kinds:
                found += self.index.link(
                    text, [k], history=self.history, artist_id=artist_id, limit=3
                )
            found.sort(key=lambda c: (-c.score, kinds.index(c.kind), c.item_id))
        exact = [c for c in found if c.match >= 0.999]
        prefer = min(exact, key=lambda c: kinds.index(c.kind)).kind if exact else None
        return self._record(slot, text, found, prefer)

    def phrase_data(self, phrase: Phrase) -> tuple[dict[str, Any], str | None]:
        """The call of a phrase read by rule (see :mod:`segue.nlu.phrases`)."""
        assert self.index is not None
        if phrase.action == "search":
            return self.search(phrase.name, phrase.kind), None
        if phrase.action == "like":
            style = self._style(phrase.name) if phrase.kind is None else None
            if style is not None:
                return {"name": "recommend", **style}, None
            ref, _ = self.any_ref("like", phrase.name, phrase.kind)
            return {"name": "recommend", "like": ref}, None
        name = phrase.name
        if any(f in name for f in FAVOURITE_WORDS):
            self.context["history_items"] = len(self.history)
            return {"name": "playMusic", "source": "history"}, None
        if phrase.kind == "playlist":
            return {"name": "playMusic", "playlist": name}, None
        style = self._style(name) if phrase.kind in (None, "genre") else None
        if style is not None:
            return {"name": "playMusic", "source": "recommendations", **style}, None
        artist = None
        data: dict[str, Any] = {"name": "playMusic"}
        if phrase.by is not None:
            by, artist = self.any_ref("artist", phrase.by, "artist")
            data["artist"] = by
        ref, chosen = self.any_ref(phrase.kind or "item", name, phrase.kind, artist)
        genre = self._near_genre(name) if chosen is None and phrase.kind is None else None
        if genre is not None and artist is None:
            self.entities.pop()  # a genre, not an item the catalog lacks
            return {"name": "playMusic", "source": "recommendations", "genre": genre}, None
        field = _call_field(chosen.kind if chosen is not None else (phrase.kind or "track"))
        if field == "artist" and "artist" in data:
            field = "item"
        data[field] = ref
        return data, None

    def _style(self, name: str) -> dict[str, str] | None:
        """A genre or mood named as such ("some jazz", "something chill", "happy songs")."""
        assert self.index is not None
        words = name.split()
        while words and words[0] in ("some", "something", "a", "bit", "of", "more"):
            words = words[1:]
        while words and words[-1] in ("music", "songs", "tracks", "stuff", "tunes"):
            words = words[:-1]
        text = " ".join(words)
        if not text:
            return None
        if text in self.index.moods or text in MOODS:
            return {"mood": text}
        if text in self.index.genres:
            return {"genre": text}
        return None

    def _near_genre(self, name: str) -> str | None:
        """A misspelt genre ("some jaz"), tried only when no item matched."""
        assert self.index is not None
        words = [w for w in name.split() if w not in ("some", "music", "songs")]
        return self.index.link_genre(" ".join(words)) if words else None

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


def _not_found(unresolved: list[LinkedEntity]) -> str:
    """ "I couldn't find X; did you mean A or B?", or that X is not in the catalog."""
    parts = []
    for entity in unresolved:
        titles = list(dict.fromkeys(c.title for c in entity.candidates))[:2]
        if titles:
            parts.append(f"I couldn't find {entity.text!r}; did you mean {' or '.join(titles)}?")
        else:
            parts.append(f"I couldn't find {entity.text!r}: it is not in the catalog.")
    return " ".join(parts)


def _confirmation(call: Call | None, build: _Builder) -> str:
    names = [e.candidates[0].title for e in build.entities if e.candidates]
    what = call.name if call is not None else "that"
    if names:
        return f"Did you mean {', '.join(names)}? Shall I go ahead ({what})?"
    return f"Just to check: shall I go ahead ({what})?"
