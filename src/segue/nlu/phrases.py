"""The few phrasings whose meaning the words settle, read by rule next to the tagger.

Why rules: SNIPS teaches the tagger that "play the song X" is often SearchCreativeWork
(81 % of 300 catalog titles came out as searches, issue 23), that "something like X" names
an artist, and nothing about podcasts or audiobooks. Yet "play|put on|listen to [the KIND] X
[by Y]" is a play request for the item X whatever the tagger says, "something like X" wants
the item X of whatever kind it is, and "search for the album X" names its kind. The parser
(:mod:`segue.nlu.parser`) uses a phrase read here when the phrase names its kind, or when
the tagger's own reading does not link to the catalog; everything else (skip, playlists,
likes, stations, the rest) stays the tagger's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: words naming a kind -> the item kind they name ("playlist" is the listener's own)
KIND_WORDS: dict[str, str] = {
    "song": "track",
    "songs": "track",
    "track": "track",
    "tune": "track",
    "single": "track",
    "album": "album",
    "record": "album",
    "lp": "album",
    "ep": "album",
    "artist": "artist",
    "band": "artist",
    "singer": "artist",
    "group": "artist",
    "podcast": "podcast_show",
    "show": "podcast_show",
    "episode": "podcast_episode",
    "podcast episode": "podcast_episode",
    "audiobook": "audiobook",
    "audio book": "audiobook",
    "book": "audiobook",
    "video": "video",
    "music video": "video",
    "playlist": "playlist",
    "genre": "genre",
}
#: streaming services a listener may name ("play X on spotify"): SNIPS's fourteen, this
#: service and the common others. A "service" the tagger finds outside this list is a name
#: it misread ("put on Nyze"), which the parser links like any other name.
STREAMING_SERVICES = frozenset(
    {
        "segue", "spotify", "deezer", "youtube", "youtube music", "google music", "itunes",
        "apple music", "pandora", "netflix", "groove shark", "grooveshark", "zvooq", "lastfm",
        "last fm", "slacker", "vimeo", "iheart", "iheartradio", "tidal", "soundcloud",
        "amazon music", "bandcamp", "napster", "qobuz",
    }
)  # fmt: skip


def known_service(text: str) -> bool:
    """Whether ``text`` (normalised words) names a streaming service."""
    return text.strip() in STREAMING_SERVICES


_PLAY_VERBS = (
    "play",
    "put on",
    "listen to",
    "i want to listen to",
    "i want to hear",
    "i d like to hear",
    "i d like to listen to",
    "let me hear",
    "start playing",
    "queue",
    "queue up",
    "spin",
)
_POLITE = ("please", "can you", "could you", "would you", "hey", "hey segue", "ok", "um", "uh")
_LIKE_LEADS = (
    "recommend",
    "recommend me",
    "suggest",
    "find me",
    "give me",
    "play",
    "play me",
    "i want",
    "i d like",
    "",
)
_LIKE_OBJECTS = (
    "something",
    "anything",
    "music",
    "songs",
    "tracks",
    "stuff",
    "artists",
    "more",
    "some music",
    "some songs",
    "more music",
    "",
)
_SEARCH_VERBS = ("search for", "search the catalog for", "search", "look up", "find", "look for")
_TRAILING = (
    "please",
    "now",
    "for me",
    "thanks",
    "thank you",
    *(f"{on} {service}" for on in ("on", "from", "using", "in") for service in STREAMING_SERVICES),
)


@dataclass(frozen=True)
class Phrase:
    """A request read by rule: what to do, the kind named (if any), the name, its artist."""

    action: Literal["play", "like", "search"]
    name: str
    kind: str | None = None
    by: str | None = None


def read_phrase(words: list[str]) -> Phrase | None:
    """The phrase ``words`` (normalised, see :func:`segue.nlu.words.words_of`) make, or None."""
    text = " ".join(words)
    text = _strip_lead(text, _POLITE)
    text = _strip_tail(text, _TRAILING)
    like = _like(text)
    if like is not None:
        return like
    for verbs, action in ((_SEARCH_VERBS, "search"), (_PLAY_VERBS, "play")):
        rest = _after(text, verbs)
        if rest is None:
            continue
        kind, name = _kind(rest)
        by = None
        if action == "play" and " by " in f" {name} ":
            head, _, tail = name.rpartition(" by ")
            if head and tail:
                name, by = head, tail
        if name and name not in ("it", "this", "that", "something", "music", "anything"):
            return Phrase(action, name, kind, by)  # type: ignore[arg-type]
    return None


def _like(text: str) -> Phrase | None:
    for lead in sorted(_LIKE_LEADS, key=len, reverse=True):
        if lead and not text.startswith(lead + " "):
            continue
        rest = text[len(lead) :].strip()
        for obj in sorted(_LIKE_OBJECTS, key=len, reverse=True):
            if obj and not rest.startswith(obj + " "):
                continue
            tail = rest[len(obj) :].strip()
            for marker in ("similar to", "like", "that sounds like", "in the style of"):
                if tail.startswith(marker + " "):
                    kind, name = _kind(tail[len(marker) :].strip())
                    if name and (lead or obj):
                        return Phrase("like", name, kind)
    return None


def _kind(rest: str) -> tuple[str | None, str]:
    """("the album X" | "the X album" | "X") -> (kind named or None, X)."""
    for lead in ("the ", "a ", "an ", "that ", "this ", "my "):
        if rest.startswith(lead):
            rest = rest[len(lead) :]
            break
    for word in sorted(KIND_WORDS, key=len, reverse=True):
        if rest.startswith(word + " "):
            name = rest[len(word) :].strip()
            for lead in ("called ", "named ", "titled "):
                if name.startswith(lead):
                    name = name[len(lead) :]
            return KIND_WORDS[word], name
    for word in ("album", "podcast", "audiobook", "playlist", "episode"):
        if rest.endswith(" " + word):
            return KIND_WORDS[word], rest[: -len(word) - 1].strip()
    return None, rest.strip()


def _after(text: str, leads: tuple[str, ...]) -> str | None:
    for lead in sorted(leads, key=len, reverse=True):
        if text.startswith(lead + " "):
            return text[len(lead) + 1 :].strip()
    return None


def _strip_lead(text: str, leads: tuple[str, ...]) -> str:
    changed = True
    while changed:
        changed = False
        for lead in sorted(leads, key=len, reverse=True):
            if text.startswith(lead + " "):
                text, changed = text[len(lead) + 1 :], True
                break
    return text


def _strip_tail(text: str, tails: tuple[str, ...]) -> str:
    longest_first = sorted(tails, key=len, reverse=True)
    changed = True
    while changed:  # "X on spotify please"
        changed = False
        for tail in longest_first:
            if text.endswith(" " + tail):
                text, changed = text[: -len(tail) - 1], True
                break
    return text
