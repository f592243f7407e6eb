"""Words as the model sees them, and the typing errors that augmentation and benchmarks make.

SNIPS text is lower-cased with punctuation split off or dropped ("i d like" for "I'd like"), so
a request is normalised the same way before tagging: the tagger never sees a form it was not
trained on, and slot values come back as the listener's words in that normal form.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from segue.errors import SegueError

#: The longest request taken, in words: SNIPS requests run to about 35, and past the model's
#: 64 sub-words the rest would be cut off silently.
MAX_REQUEST_WORDS = 40
#: Characters that show nothing: zero-width spaces and joiners, direction marks, the BOM.
_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
#: Control characters (C0, DEL, C1): never part of what a listener said.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

_APOSTROPHES = re.compile(r"[’'`´]")
# colons stay: SNIPS keeps them inside titles ("curtain call: the hits")
_EDGE_PUNCT = re.compile(r"^[\"“”()\[\]{},.!?;]+|[\"“”()\[\]{},.!?;]+$")
_KEYBOARD_NEIGHBOURS = {
    c: n
    for row in ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    for i, c in enumerate(row)
    for n in [row[max(0, i - 1) : i] + row[i + 1 : i + 2]]
}


def words_of(text: str) -> list[str]:
    """Lower-cased words with apostrophes split ("i'd" -> "i d") and edge punctuation dropped."""
    text = _APOSTROPHES.sub(" ", text.lower())
    out = []
    for raw in text.split():
        word = _EDGE_PUNCT.sub("", raw)
        if word:
            out.append(word)
    return out


def clean_text(text: str) -> str:
    """``text`` as the rest of the pipeline should see it: Unicode NFKC (full-width letters,
    ligatures and compatibility forms become plain ones, so "ｐｌａｙ" is "play"), with
    zero-width and direction marks removed and control characters turned into spaces.
    Done before any emptiness check, so invisible input is seen as empty."""
    text = unicodedata.normalize("NFKC", text)
    return _CONTROL.sub(" ", _INVISIBLE.sub("", text)).strip()


def request_words(text: str) -> list[str]:
    """The words of a request, or a refusal a listener can act on: a request of nothing
    visible (only spaces, control or zero-width characters) is not taken for "resume", and
    one longer than :data:`MAX_REQUEST_WORDS` is refused rather than cut off unseen."""
    words = [w for w in words_of(clean_text(text)) if any(ch.isalnum() for ch in w)]
    if not words:
        raise SegueError(
            "the request holds no words (only spaces, punctuation, control or invisible "
            "characters): say what to play, e.g. 'play some jazz'"
        )
    if len(words) > MAX_REQUEST_WORDS:
        raise SegueError(
            f"the request is {len(words)} words long; a request is at most "
            f"{MAX_REQUEST_WORDS} words: say what to play in one sentence"
        )
    return words


def misspell(text: str, rng: np.random.Generator, edits: int = 1) -> str:
    """``text`` with ``edits`` random character edits (swap, drop, double, neighbour key).

    Only letters inside words are touched and a word keeps at least two characters, so the
    result still looks like a typo of the name rather than a different, shorter word. Edits
    that happen to cancel out (a swap undone) are retried, so the result always differs when
    the text has letters to change.
    """
    for _ in range(10):
        typo = _edit(text, rng, edits)
        if typo != text:
            return typo
    return typo


def _edit(text: str, rng: np.random.Generator, edits: int) -> str:
    chars = list(text)
    for _ in range(edits):
        spots = [i for i, c in enumerate(chars) if c.isalpha()]
        if len(spots) < 3:
            break
        i = int(rng.choice(spots))
        kind = int(rng.integers(4))
        if kind == 0 and i + 1 < len(chars) and chars[i + 1].isalpha() and chars[i] != chars[i + 1]:
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif kind == 1 and _word_length(chars, i) > 2:
            del chars[i]
        elif kind == 2:
            chars.insert(i, chars[i])
        else:
            near = _KEYBOARD_NEIGHBOURS.get(chars[i].lower(), "")
            if near:
                chars[i] = near[int(rng.integers(len(near)))]
            else:
                chars.insert(i, chars[i])
    return "".join(chars)


def _word_length(chars: list[str], i: int) -> int:
    start = i
    while start > 0 and chars[start - 1].isalpha():
        start -= 1
    end = i
    while end < len(chars) and chars[end].isalpha():
        end += 1
    return end - start
