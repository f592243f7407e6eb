"""Training utterances for segue's own intents, generated from the catalog's entity names.

SNIPS covers playing music and adding to playlists, but not the rest of what a listener says
to a player (skip, like, pause, stations, Focus Mode, recommendations), and its names are not
our catalog's. Templates with slots filled from the catalog close that gap; augmentation makes
the tagger robust to how people really type: misspelt names (one or two character edits),
random casing, filler words, many phrasings per intent, and partial names ("play rhapsody").

Slot names follow SNIPS (``track``, ``artist``, ``album``, ``playlist``, ``playlist_owner``,
``music_item``, ``entity_name``, ``object_name``, ``object_type``, ``timeRange`` ...) so that
one tagger learns both sources; segue adds ``mood``, ``activity`` and ``station``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segue.data.model import Item, ItemKind
from segue.errors import SegueError
from segue.nlu.snips import Utterance
from segue.nlu.words import misspell, words_of

PLAYLISTS = (
    "workout",
    "chill vibes",
    "road trip",
    "sunday morning",
    "party mix",
    "focus flow",
    "sleep",
    "dinner jazz",
    "throwback thursday",
    "summer hits",
    "rainy day",
    "study beats",
    "gym power",
    "coffee house",
    "late night drive",
    "feel good",
    "running",
    "wedding",
)
FAVOURITES = ("favourites", "favorites", "favourite songs", "favorite songs", "liked songs")
MOODS = (
    "happy",
    "sad",
    "chill",
    "relaxing",
    "upbeat",
    "calm",
    "energetic",
    "mellow",
    "romantic",
    "dark",
    "uplifting",
    "melancholic",
    "cheerful",
    "angry",
)
ACTIVITIES = (
    "running",
    "working out",
    "studying",
    "sleeping",
    "cooking",
    "driving",
    "the gym",
    "reading",
    "a party",
    "yoga",
    "cleaning",
    "dinner",
    "focus",
    "jogging",
    "meditation",
    "a road trip",
    "work",
)
TIMES = (
    "this morning",
    "tonight",
    "this evening",
    "this afternoon",
    "today",
    "right now",
    "the weekend",
    "sunday morning",
    "late at night",
)
YEARS = (
    "eighties",
    "nineties",
    "seventies",
    "sixties",
    "2000s",
    "80s",
    "90s",
    "1999",
    "2010",
    "2016",
    "fifties",
    "2005",
)
MUSIC_ITEMS = ("song", "track", "tune", "album", "record", "artist", "playlist")
ITEM_WORDS = ("song", "track", "tune")
SORTS = ("popular", "newest", "latest", "top", "best", "most popular", "top-10")
SERVICES = ("segue", "spotify", "deezer", "youtube", "google music", "itunes", "pandora")
STATIONS = ("discovery", "discover", "discovery station", "discovery mix")
OBJECT_TYPES = ("song", "album", "track", "soundtrack", "artist")

# Intent -> templates. {slot} is filled from the vocabulary; {slot:source} fills slot ``slot``
# with values from ``source`` (e.g. entity_name from track titles).
TEMPLATES: dict[str, tuple[str, ...]] = {
    "PlayMusic": (
        "play {track} by {artist}",
        "play {track}",
        "put on {artist}",
        "play some {genre}",
        "play some {genre} music",
        "play the {music_item} {track} by {artist}",
        "play the album {album}",
        "play the album {album} by {artist}",
        "play {playlist_owner} {playlist} playlist",
        "play {mood} music",
        "play something {mood}",
        "play music for {activity}",
        "play {playlist_owner} {playlist:favourites}",
        "play {artist} from the {year}",
        "i want to hear {track} by {artist}",
        "listen to {artist}",
        "play {sort} {music_item:items} by {artist}",
        "play {artist} on {service}",
        "play {track} by {artist} on {service}",
        "put on some {mood} {genre}",
        "let me hear {album} by {artist}",
        "play {artist}",
        "play {playlist_owner} {playlist:favourites} please",
        "play {genre} from the {year}",
        "can you play {track}",
        "i d like to listen to {artist}",
        "play a {music_item:items} by {artist}",
    ),
    "AddToPlaylist": (
        "add {entity_name:track} to {playlist_owner} {playlist} playlist",
        "add this {music_item:items} to {playlist_owner} {playlist} playlist",
        "add this {music_item:items} to {playlist}",
        "add this to {playlist_owner} {playlist}",
        "put {entity_name:track} on {playlist_owner} {playlist} playlist",
        "save this {music_item:items} to {playlist_owner} {playlist} playlist",
        "add {entity_name:track} by {artist} to {playlist}",
        "add this {music_item:items} to a playlist",
        "add this to a playlist",
        "save this {music_item:items} to a playlist",
        "add this {music_item:items}",
        "add {entity_name:track} to a playlist",
        "add {artist} to {playlist_owner} {playlist} playlist",
        "put this {music_item:items} in {playlist_owner} {playlist} list",
    ),
    "LikeTrack": (
        "i like this {music_item:items}",
        "like this",
        "i love this {music_item:items}",
        "thumbs up",
        "like {track} by {artist}",
        "this {music_item:items} is great",
        "love it",
        "i really like this",
        "like this {music_item:items}",
        "heart this {music_item:items}",
        "i love {track}",
        "mark this {music_item:items} as liked",
        "great {music_item:items} like it",
    ),
    "DislikeTrack": (
        "i don t like this {music_item:items}",
        "dislike this",
        "i hate this {music_item:items}",
        "thumbs down",
        "never play this {music_item:items} again",
        "dislike {track} by {artist}",
        "don t play {artist} anymore",
        "this {music_item:items} is terrible",
        "i dislike this {music_item:items}",
        "not a fan of this {music_item:items}",
        "stop playing {artist} for me",
        "ban this {music_item:items}",
    ),
    "SkipTrack": (
        "skip",
        "skip this {music_item:items}",
        "next",
        "next {music_item:items}",
        "play the next {music_item:items}",
        "skip this one",
        "not this one",
        "skip ahead",
        "skip to the next {music_item:items}",
        "next one please",
        "go to the next {music_item:items}",
        "move on",
        "skip it",
    ),
    "PreviousTrack": (
        "previous {music_item:items}",
        "go back",
        "play the previous {music_item:items}",
        "back to the last {music_item:items}",
        "replay the last {music_item:items}",
        "go back one {music_item:items}",
        "previous",
        "last {music_item:items} again",
        "play that {music_item:items} again",
        "back one",
        "rewind to the previous {music_item:items}",
    ),
    "PauseMusic": (
        "pause",
        "pause the music",
        "stop the music",
        "stop playing",
        "pause it",
        "pause playback",
        "hold on pause",
        "pause the {music_item:items}",
        "pause for a moment",
        "stop",
        "mute the music",
        "pause this {music_item:items}",
    ),
    "ResumeMusic": (
        "resume",
        "resume playback",
        "continue playing",
        "unpause",
        "keep playing",
        "resume the music",
        "continue the {music_item:items}",
        "carry on playing",
        "resume the {music_item:items}",
        "start playing again",
        "unpause the music",
        "continue",
    ),
    "StartStation": (
        "start a station based on {artist}",
        "start {artist} radio",
        "start a {genre} station",
        "start {playlist_owner} {station} station",
        "launch {artist} radio",
        "tune in to a {genre} radio station",
        "create a station from {track} by {artist}",
        "start {station}",
        "open {playlist_owner} {station}",
        "start a radio station for {genre}",
        "make a station like {artist}",
        "start {genre} radio",
        "start a station from this {music_item:items}",
        "turn on {station}",
        "start the {station} station",
    ),
    "FocusModeOn": (
        "turn on focus mode",
        "focus mode on",
        "enable focus mode",
        "i need to focus",
        "start focus mode",
        "switch to focus mode",
        "activate focus mode",
        "put me in focus mode",
        "focus mode please",
        "go into focus mode",
        "turn focus mode on",
    ),
    "FocusModeOff": (
        "turn off focus mode",
        "disable focus mode",
        "exit focus mode",
        "stop focus mode",
        "focus mode off",
        "i m done focusing",
        "leave focus mode",
        "deactivate focus mode",
        "turn focus mode off",
        "switch off focus mode",
        "end focus mode",
    ),
    "Recommend": (
        "recommend something like {artist}",
        "something like {track} by {artist}",
        "suggest music for {activity}",
        "what should i listen to {timeRange}",
        "recommend some {genre}",
        "give me something {mood}",
        "music for {activity}",
        "something for {timeRange}",
        "recommend songs similar to {track}",
        "any recommendations for {activity}",
        "recommend me something",
        "suggest something {mood}",
        "what should i listen to",
        "i need music for {activity}",
        "recommend artists like {artist}",
        "find me something like {artist}",
        "suggest some {mood} {genre}",
        "recommend something for {timeRange}",
        "something {mood} for {timeRange}",
        "what do you recommend for {activity}",
    ),
    "SearchCreativeWork": (
        "search for {object_name:any}",
        "find the {object_type} {object_name:track}",
        "look up {object_name:any}",
        "search the catalog for {object_name:any}",
        "find the album {object_name:album}",
        "search for the {object_type} {object_name:track}",
        "show me {object_name:artist}",
        "find {object_name:any}",
    ),
    "OutOfScope": (
        "what time is it",
        "set an alarm for seven",
        "tell me a joke",
        "how are you",
        "call mom",
        "what s the capital of france",
        "turn on the lights",
        "order a pizza",
        "send a message to john",
        "how tall is mount everest",
        "translate hello into spanish",
        "remind me to buy milk",
        "what is two plus two",
        "open the garage door",
        "who won the game last night",
        "set a timer for ten minutes",
        "read my emails",
        "turn up the heating",
        "what s on my calendar",
        "how do i get to the station",
        "who are you",
        "book a taxi",
        "what s the news",
        "lock the front door",
    ),
}

SLOT_VALUES = {
    "playlist_owner": ("my",), "mood": MOODS, "activity": ACTIVITIES, "timeRange": TIMES,
    "year": YEARS, "music_item": MUSIC_ITEMS, "items": ITEM_WORDS, "sort": SORTS,
    "service": SERVICES, "station": STATIONS, "object_type": OBJECT_TYPES, "favourites": FAVOURITES,
}  # fmt: skip
_PLACEHOLDER = re.compile(r"\{(\w+)(?::(\w+))?\}")
FILLERS_BEFORE = ("please", "hey", "hey segue", "could you", "can you", "um", "ok", "uh")
FILLERS_AFTER = ("please", "now", "thanks", "for me")


@dataclass(frozen=True)
class Vocabulary:
    """The names templates draw from: the catalog's tracks, artists, albums and genres."""

    tracks: tuple[str, ...]
    artists: tuple[str, ...]
    albums: tuple[str, ...]
    genres: tuple[str, ...]
    playlists: tuple[str, ...] = PLAYLISTS

    def __post_init__(self) -> None:
        for field in ("tracks", "artists", "albums", "genres"):
            if not getattr(self, field):
                raise SegueError(f"the generator's vocabulary has no {field}")

    @classmethod
    def from_items(cls, items: Iterable[Item], extra_artists: Iterable[str] = ()) -> Vocabulary:
        """Names of catalog items (music kinds only), plus e.g. Last.fm artist names."""
        tracks: set[str] = set()
        artists: set[str] = set(a for a in extra_artists if words_of(a))
        albums: set[str] = set()
        genres: set[str] = set()
        for item in items:
            if not words_of(item.title):
                continue
            if item.kind == ItemKind.TRACK:
                tracks.add(item.title)
            elif item.kind == ItemKind.ARTIST:
                artists.add(item.title)
            elif item.kind == ItemKind.ALBUM:
                albums.add(item.title)
            else:
                continue
            genres.update(g for g in item.genres if words_of(g))
        return cls(*(tuple(sorted(s)) for s in (tracks, artists, albums, genres)))

    def values(self, source: str) -> tuple[str, ...]:
        if source == "track":
            return self.tracks
        if source == "artist":
            return self.artists
        if source == "album":
            return self.albums
        if source == "genre":
            return self.genres
        if source == "playlist":
            return self.playlists
        if source == "any":
            return self.tracks + self.artists + self.albums
        if source in SLOT_VALUES:
            return SLOT_VALUES[source]
        raise SegueError(f"template placeholder source {source!r} is unknown")


def lastfm_artist_names(path: Path) -> list[str]:
    """Artist names from Last.fm 2K's ``artists.dat`` (tab-separated, header row)."""
    if not path.is_file():
        raise SegueError(f"Last.fm artists file {path} not found")
    names = []
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) >= 2 and parts[1].strip():
            names.append(parts[1].strip())
    return names


def generate(vocab: Vocabulary, per_intent: int = 150, seed: int = 0) -> list[Utterance]:
    """``per_intent`` utterances for every intent in TEMPLATES, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    out: list[Utterance] = []
    for intent, templates in TEMPLATES.items():
        for i in range(per_intent):
            template = (
                templates[i % len(templates)]
                if i < len(templates)
                else (templates[int(rng.integers(len(templates)))])
            )
            out.append(render(template, intent, vocab, rng))
    return out


def render(template: str, intent: str, vocab: Vocabulary, rng: np.random.Generator) -> Utterance:
    """One utterance from a template, with augmentation drawn from ``rng``."""
    words: list[str] = []
    tags: list[str] = []
    if rng.random() < 0.25:
        _append(words, tags, _pick(FILLERS_BEFORE, rng), None)
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        _append(words, tags, template[position : match.start()], None)
        slot, source = match.group(1), match.group(2) or match.group(1)
        value = _augment_name(_pick(vocab.values(source), rng), source, rng)
        _append(words, tags, value, slot)
        position = match.end()
    _append(words, tags, template[position:], None)
    if rng.random() < 0.15:
        _append(words, tags, _pick(FILLERS_AFTER, rng), None)
    return Utterance(tuple(words), tuple(tags), intent)


def _augment_name(value: str, source: str, rng: np.random.Generator) -> str:
    """Names as people type them: partial, misspelt, oddly cased."""
    if source not in ("track", "artist", "album", "any"):
        return value
    parts = value.split()
    if len(parts) > 2 and rng.random() < 0.15:
        value = " ".join(parts[1:] if rng.random() < 0.5 else parts[:-1])
    if rng.random() < 0.25:
        value = misspell(value, rng, edits=int(rng.integers(1, 3)))
    roll = rng.random()
    if roll < 0.2:
        value = value.upper()
    elif roll < 0.5:
        value = value.title()
    return value


def _append(words: list[str], tags: list[str], text: str, slot: str | None) -> None:
    for position, word in enumerate(words_of(text)):
        words.append(word)
        tags.append("O" if slot is None else f"{'B' if position == 0 else 'I'}-{slot}")


def _pick(values: tuple[str, ...], rng: np.random.Generator) -> str:
    return values[int(rng.integers(len(values)))]
