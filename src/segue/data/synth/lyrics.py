"""Lyrics for the synthetic world's tracks: word-timed, with a chorus, background vocals and
duets, made from the track's id, title and length alone.

Why generated on read rather than stored: a world of 20,000 tracks would carry about 60 MB of
lyrics that say nothing the seed does not. ``segue synth`` stores one short row per track
(``format="synth"``, the seed) and :func:`synthetic_lyrics` rebuilds the same lyrics in well
under a millisecond whenever they are asked for. Same seed, id, title and length: same lyrics.

The song follows a tempo (80–140 BPM): an intro of two to four bars, verses of four lines and
a chorus of four lines that sings the title, each line two bars with words on eighth notes;
choruses carry background echoes ("(ooh)", the line's last word) and one track in five is a
duet (``v2`` sings the second verse). Times are on a 10 ms grid, so the lyrics written as
enhanced LRC (:func:`segue.data.lyrics.to_lrc`) read back unchanged.
"""

from __future__ import annotations

import random

from segue.data.lyrics import BACKGROUND, LEAD, Line, Lyrics, Word
from segue.data.synth.names import ADJECTIVES, NOUNS, VERBS

_SMALL = (
    "the", "a", "my", "your", "in", "on", "we", "you", "I", "and", "to", "of", "all", "no",
    "so", "with", "our", "through", "when", "like",
)  # fmt: skip
_ECHOES = ("ooh", "ah", "yeah", "oh-oh", "hey")


def _grid(ms: float) -> int:
    return round(ms / 10.0) * 10


def synthetic_lyrics(seed: int, item_id: str, title: str, duration_ms: int | None) -> Lyrics:
    """The lyrics of a synthetic track (see the module docstring)."""
    rng = random.Random(f"segue-lyrics:{seed}:{item_id}")
    length = duration_ms if duration_ms and duration_ms > 20_000 else 180_000
    beat = 60_000.0 / rng.uniform(80, 140)
    bar = 4 * beat
    duet = rng.random() < 0.2
    nouns = [n.lower() for n in rng.sample(NOUNS, 6)]
    adjectives = [a.lower() for a in rng.sample(ADJECTIVES, 4)]
    verbs = [v.lower() for v in rng.sample(VERBS, 3)]
    hook = title.split("(")[0].split() or ["la"]
    chorus = [_line_words(rng, nouns, adjectives, verbs, hook) for _ in range(4)]
    sections = ["verse", "chorus", "verse", "chorus", "bridge", "chorus", "chorus"]
    lines: list[Line] = []
    t = rng.randint(2, 4) * bar
    verse_no = 0
    end_of_song = length - 4_000
    for section in sections:
        if section == "verse":
            verse_no += 1
        for k in range(4 if section != "bridge" else 2):
            if t + 2 * bar > end_of_song:
                break
            if section == "chorus":
                words = chorus[k]
            else:
                words = _line_words(rng, nouns, adjectives, verbs, None)
            singer = "v2" if duet and section == "verse" and verse_no == 2 else LEAD
            lines.append(_timed_line(rng, words, t, beat, singer, echo=section == "chorus"))
            t += 2 * bar
        t += 2 * bar if section == "chorus" else 0  # a two-bar break after each chorus
    if not lines:  # a very short track still sings one line
        lines.append(_timed_line(rng, hook, 1_000, beat, LEAD, echo=False))
    return Lyrics(tuple(_ends(lines)), {"ti": title, "by": "segue synth"})


def _line_words(
    rng: random.Random,
    nouns: list[str],
    adjectives: list[str],
    verbs: list[str],
    hook: list[str] | None,
) -> list[str]:
    """Five to eight words that read like a lyric line; a chorus line ends on the hook."""
    words = [rng.choice(_SMALL), rng.choice(verbs), rng.choice(_SMALL)]
    words += [rng.choice(adjectives), rng.choice(nouns)]
    if rng.random() < 0.5:
        words = [rng.choice(_SMALL), *words]
    if hook is not None:
        words = words[:3] + [w.lower() for w in hook[:3]]
    words[0] = words[0].capitalize()
    return words


def _timed_line(
    rng: random.Random, words: list[str], start: float, beat: float, singer: str, *, echo: bool
) -> Line:
    """Words on eighth notes from ``start`` (some held a quarter), the line's last word
    echoed by background vocals in a chorus."""
    eighth = beat / 2
    t = start
    out: list[Word] = []
    for word in words:
        held = eighth * (2 if rng.random() < 0.3 else 1)
        out.append(Word(word, _grid(t), _grid(t + held), singer))
        t += held
    sung_end = out[-1].end_ms + _grid(beat)
    out[-1] = Word(out[-1].text, out[-1].start_ms, sung_end, singer)
    if echo:
        back = f"({rng.choice(_ECHOES)})"
        b0 = sung_end
        out.append(Word(back, b0, _grid(b0 + 2 * beat), BACKGROUND))
    text = " ".join(w.text for w in out if w.singer != BACKGROUND)  # echoes are apart
    return Line(_grid(start), out[-1].end_ms, text, singer, tuple(out), True)


def _ends(lines: list[Line]) -> list[Line]:
    """Lines end where their last word does: the gap to the next line is a break."""
    fixed: list[Line] = []
    for line in lines:
        end = max(w.end_ms for w in line.words)
        fixed.append(Line(line.start_ms, end, line.text, line.singer, line.words, True))
    return fixed
