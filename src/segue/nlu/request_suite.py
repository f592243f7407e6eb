"""A suite of requests with the answer each should get, and the judge that scores answers.

Issue 23's done-when: over the synthetic catalog and Last.fm artists, with misspellings,
every kind, names the catalog lacks, other languages and junk, at least 97 % of requests
get the right call or the right question, no queue is built for a name under the link
threshold, and nothing raises anything but a clear refusal. :func:`generate_cases` makes
the generated part; ``tests/data/requests_hand.jsonl`` holds the hand-written part (read by
:func:`read_cases`); :func:`judge` scores one answer. ``benchmarks/bench_requests.py`` runs
it all against a trained model; ``tests/test_nlu_requests.py`` a part, with a small model.

What each expectation accepts (``Case.expect``):

* ``play`` / ``recommend``: that call with an item titled ``title`` (of ``kind`` when set:
  the kind the request named), or a question (confirm or clarify) that offers that item
  among its candidates — asking about a misspelt name is a right answer, acting on another
  item is not;
* ``search``: a search whose first result is of ``kind``;
* ``ask``: no call and a question or message (a name the catalog lacks);
* ``language``: the "I understand requests in English" answer;
* ``refuse``: refused with a clear error (empty, invisible, too long);
* ``no_call``: anything without a call (junk words);
* ``call:NAME``: a call named NAME (``call:controlPlayback``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segue.data.model import Item
from segue.errors import SegueError
from segue.nlu.language import NOT_ENGLISH
from segue.nlu.linking import normalise
from segue.nlu.words import MAX_REQUEST_WORDS, misspell

EXPECTATIONS = ("play", "recommend", "search", "ask", "language", "refuse", "no_call")


@dataclass(frozen=True)
class Case:
    """One request and what answers it rightly (see the module docstring)."""

    text: str
    expect: str
    title: str | None = None
    kind: str | None = None
    group: str = ""

    def __post_init__(self) -> None:
        if self.expect not in EXPECTATIONS and not self.expect.startswith("call:"):
            raise SegueError(f"case {self.text!r}: unknown expectation {self.expect!r}")


def read_cases(path: Path) -> list[Case]:
    """Cases from a JSON-lines file; an error names the line that is wrong."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(Case(**json.loads(line)))
        except (ValueError, TypeError) as exc:
            raise SegueError(f"{path} line {number}: {exc}") from None
    return out


def write_cases(cases: Iterable[Case], path: Path) -> None:
    path.write_text(
        "".join(json.dumps(asdict(c), ensure_ascii=False) + "\n" for c in cases), encoding="utf-8"
    )


_PLAY = {
    "track": ("play the song {}", "play {}", "put on {}", "play the track {}", "listen to {}"),
    "album": ("play the album {}", "put on the album {}", "play the {} album"),
    "artist": ("play {}", "put on some {}", "listen to {}", "play the artist {}"),
    "podcast_show": ("play the podcast {}", "put on the podcast {}", "play the show {}"),
    "podcast_episode": ("play the episode {}", "play the podcast episode {}"),
    "audiobook": ("play the audiobook {}", "put on the audiobook {}", "play the book {}"),
}
#: kinds a request names in the template ("the album X"); the others may link to any kind
_NAMED = {"play the song {}", "play the track {}", "play the artist {}"}
_OTHER_LANGUAGES = (
    "pon la canción {} por favor",
    "quiero escuchar algo de {}",
    "joue la chanson {} s'il te plaît",
    "spiel bitte das lied {}",
    "metti la canzone {} per favore",
    "播放{}的歌",
    "请播放一些音乐",
    "включи песню {}",
    "{}の曲を再生して",
)
_JUNK = (
    "\u200b\u200b\u200b",
    "\x00\x01\x02",
    "   ",
    "?!?!",
    "\u202e\u200f",
    "...",
    "\ufeff",
    "\t\n",
)
_NO_CALL = ("asdfgh qwerty zxcv", "lorem ipsum dolor sit amet", "blorp snarf quux", "zzzz")
_CONTROL = (
    ("skip this song", "call:controlPlayback"),
    ("pause the music", "call:controlPlayback"),
    ("turn on focus mode", "call:setFocusMode"),
    ("next track please", "call:controlPlayback"),
)


def generate_cases(
    items: Sequence[Item], n: int = 600, seed: int = 0, absent: Sequence[str] = ()
) -> list[Case]:
    """``n`` cases over ``items``: about 60 % play requests of every kind (a third of the
    names misspelt by one edit), "something like" an exact track title, searches naming a
    kind, names the catalog lacks (``absent``, e.g. Last.fm artists, and made-up ones), other
    languages, junk and too-long input, and a few playback commands."""
    rng = np.random.default_rng(seed)
    by_kind: dict[str, list[Item]] = {}
    for item in items:
        if normalise(item.title) and len(normalise(item.title)) > 3:
            by_kind.setdefault(item.kind.value, []).append(item)
    known = {normalise(i.title) for i in items}
    absent = [a for a in absent if normalise(a) and normalise(a) not in known]
    kinds = [k for k in _PLAY if k in by_kind]
    out: list[Case] = []

    def pick(kind: str) -> Item:
        return by_kind[kind][int(rng.integers(len(by_kind[kind])))]

    i = 0
    while len(out) < n:
        roll = i % 20
        i += 1
        if roll < 12:
            kind = kinds[roll % len(kinds)]
            item = pick(kind)
            template = _PLAY[kind][int(rng.integers(len(_PLAY[kind])))]
            name = item.title if rng.random() < 0.67 else misspell(item.title, rng, edits=1)
            named = kind not in ("track", "artist") or template in _NAMED
            out.append(
                Case(template.format(name), "play", item.title, kind if named else None, "play")
            )
        elif roll == 12:
            item = pick("track")
            out.append(
                Case(
                    f"recommend something like {item.title}",
                    "recommend",
                    item.title,
                    "track",
                    "like",
                )
            )
        elif roll == 13 and "album" in by_kind:
            item = pick("album")
            out.append(
                Case(f"search for the album {item.title}", "search", None, "album", "search")
            )
        elif roll in (14, 15):
            if absent and rng.random() < 0.6:
                name = absent[int(rng.integers(len(absent)))]
            else:
                name = _made_up(rng)
            template = ("play {}", "play the song {}", "put on {}", "play the podcast {}")[
                int(rng.integers(4))
            ]
            out.append(Case(template.format(name), "ask", None, None, "absent"))
        elif roll == 16:
            name = pick("artist").title
            template = _OTHER_LANGUAGES[int(rng.integers(len(_OTHER_LANGUAGES)))]
            out.append(Case(template.format(name), "language", group="language"))
        elif roll == 17:
            junk = _JUNK[int(rng.integers(len(_JUNK)))]
            if rng.random() < 0.3:
                junk = "play " + "and then " * (MAX_REQUEST_WORDS // 2 + 1)
            out.append(Case(junk, "refuse", group="junk"))
        elif roll == 18:
            out.append(Case(_NO_CALL[int(rng.integers(len(_NO_CALL)))], "no_call", group="junk"))
        else:
            text, expect = _CONTROL[int(rng.integers(len(_CONTROL)))]
            out.append(Case(text, expect, group="control"))
    return out


def _made_up(rng: np.random.Generator) -> str:
    """A name no catalog holds: two made-up words."""
    first = "".join(
        "bcdfgklmnprstvz"[int(rng.integers(15))] + "aeiou"[int(rng.integers(5))] for _ in range(4)
    )
    second = "".join("kstrzv"[int(rng.integers(6))] + "oa"[int(rng.integers(2))] for _ in range(3))
    return f"{first} {second}"


@dataclass(frozen=True)
class Verdict:
    right: bool
    queue_below_threshold: bool
    traceback: str | None
    outcome: str


def judge(case: Case, answer: Any, error: BaseException | None, threshold: float) -> Verdict:
    """Score one answer (a :class:`segue.jobs.ask.QueryAnswer`, or the error it raised)."""
    if error is not None:
        if not isinstance(error, SegueError):
            return Verdict(False, False, f"{type(error).__name__}: {error}", "traceback")
        return Verdict(case.expect == "refuse", False, None, "refused")
    u = answer.understanding
    below = any(e.confidence < threshold for e in u.entities if e.slot != "object_name")
    queue_below = bool(answer.queue) and (below or case.expect == "ask")
    call = u.call
    outcome = call.name if call is not None else (u.question_kind or "message")
    right = False
    if case.expect == "refuse":
        right = False
    elif case.expect == "language":
        right = u.message == NOT_ENGLISH and call is None
    elif case.expect in ("ask", "no_call"):
        right = call is None and (case.expect == "no_call" or bool(u.question or u.message))
    elif case.expect == "search":
        right = (
            call is not None
            and call.name == "search"
            and bool(call.results)
            and (call.results[0].kind == case.kind)
        )
    elif case.expect.startswith("call:"):
        right = call is not None and call.name == case.expect[5:]
    else:
        want = "playMusic" if case.expect == "play" else "recommend"
        title = normalise(case.title or "")
        if call is not None and call.name == want and u.question_kind != "clarify":
            refs = (
                [call.track, call.album, call.artist, call.item]
                if want == "playMusic"
                else [call.like]
            )
            right = any(
                r is not None
                and r.id is not None
                and normalise(r.title or "") == title
                and (case.kind is None or r.kind == case.kind)
                for r in refs
            )
        if not right and u.question is not None:  # a right question offers the item
            right = (
                any(normalise(c.title) == title for e in u.entities for c in e.candidates[:3])
                and not answer.queue
            )
    return Verdict(right, queue_below, None, outcome)
