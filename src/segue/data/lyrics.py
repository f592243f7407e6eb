"""Time-synced lyrics: the records, an LRC / enhanced-LRC parser, and the lookup by time.

Why a parser of our own: LRC is a loose de-facto format, and the files people have differ in
exactly the places a sing-along view cares about. What is read:

* line timestamps ``[mm:ss.xx]`` (also ``[mm:ss]``, ``[mm:ss:xx]``, ``[mm:ss.xxx]``), several on
  one line for a repeated line (``[00:12.00][01:40.00]Chorus``);
* word timestamps of enhanced LRC, ``<mm:ss.xx>`` before each word or syllable, and a last one
  with no text after it that ends the last word;
* singers: a ``v1:`` / ``v2:`` … ``v9:`` or ``bg:`` prefix (and the karaoke ``M:``, ``F:``,
  ``D:`` of male, female and duet lines) after the timestamps; background vocals in
  parentheses inside a line ("and I run (run away)"); an untimed ``[bg: …]`` line after a
  line, the background part of that line (Apple Music's lyrics exported to LRC write them so);
* metadata tags ``[ti:]``, ``[ar:]``, ``[al:]``, ``[length:]``, ``[offset:]`` (positive:
  the lyrics come sooner), ``[by:]`` and the like; a UTF-8 or UTF-16 byte order mark; files in
  Latin-1 / Windows-1252 when they are not UTF-8.

What is refused, each with one line naming the file and line (:class:`~segue.errors.RowError`):
a timestamp that is not one (``[00:75.00]``, ``[1:2:3:4]``, ``<0a:10.00>``), a line earlier than
the one before it (in a file without repeated-timestamp lines, which are sorted instead), word
times going back or before their line, text without any timestamp, a ``[bg: …]`` line with no
line before it, and a file with no timed line at all. A file either parses whole or not at all,
so an import stores nothing from a file that fails.

Lines end where the next line starts (or at their last word's end, or at ``[length:]`` for the
last line, else 5 s after its last start). Lines without word timestamps get their words spread
over the line by length, marked ``timed_words=False`` so a client knows they are estimates.
Empty timed lines (instrumental breaks) only end the line before them.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from typing import Any

from segue.errors import RowError

#: Singers: ``v1`` is the lead (the default), ``v2``… other voices of a duet, ``bg`` background.
LEAD = "v1"
BACKGROUND = "bg"
DUET = "duet"
_SINGER_TAGS = {f"v{i}": f"v{i}" for i in range(1, 10)} | {
    "bg": BACKGROUND,
    "m": "v1",
    "f": "v2",
    "d": DUET,
}
#: How long the last line lasts when nothing says (no word end, no [length:]).
LAST_LINE_MS = 5_000
#: The JSON layout version of :meth:`Lyrics.to_json`.
JSON_VERSION = 1

_TIME = r"(\d{1,3}):(\d{1,2})(?:[.:](\d{1,3}))?"
_LINE_STAMP = re.compile(r"\[([^\]]*)\]")
_WORD_STAMP = re.compile(r"<([^>]*)>")
_TIME_RE = re.compile(rf"^\s*{_TIME}\s*$")
_META = re.compile(r"^\[([A-Za-z#][A-Za-z0-9_ #-]*):(.*)\]\s*$")
_SINGER = re.compile(r"^\s*(v[1-9]|bg|[mfd])\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Word:
    """A word or syllable: its text, when it is sung (ms, end exclusive) and by whom."""

    text: str
    start_ms: int
    end_ms: int
    singer: str
    #: True for a syllable the next word continues ("Hel" of "<..>Hel<..>lo"): no space after
    joined: bool = False


@dataclass(frozen=True, slots=True)
class Line:
    """One line: its words (background parts included, in time order) and the singer of its
    main part. ``timed_words`` is False when the file had no word times and they are spread
    over the line by length."""

    start_ms: int
    end_ms: int
    text: str
    singer: str
    words: tuple[Word, ...]
    timed_words: bool


@dataclass(frozen=True)
class Position:
    """What is being sung at a moment: the line and word indexes (None between lines or words)
    and the next line's index (None after the last)."""

    line: int | None
    word: int | None
    next_line: int | None


@dataclass(frozen=True)
class Lyrics:
    """A track's synced lyrics, lines in time order; ``meta`` holds the file's tags."""

    lines: tuple[Line, ...]
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", [line.start_ms for line in self.lines])

    def at(self, ms: int) -> Position:
        """The line whose span holds ``ms`` and, within it, the word being sung: a bisection
        over the starts, so a lookup costs microseconds however long the song."""
        starts: list[int] = self._starts  # type: ignore[attr-defined]
        i = bisect.bisect_right(starts, ms) - 1
        next_line = i + 1 if i + 1 < len(self.lines) else None
        if i < 0:
            return Position(None, None, 0 if self.lines else None)
        line = self.lines[i]
        if ms >= line.end_ms:
            return Position(None, None, next_line)
        word = None
        for j in range(len(line.words) - 1, -1, -1):
            w = line.words[j]
            if w.start_ms <= ms < w.end_ms:
                word = j
                break
        return Position(i, word, next_line)

    # -- storage ----------------------------------------------------------------------------
    def to_json(self) -> str:
        """Compact JSON (lists, not objects): what the store keeps for imported lyrics."""
        return json.dumps(
            {
                "v": JSON_VERSION,
                "meta": self.meta,
                "lines": [
                    [
                        ln.start_ms,
                        ln.end_ms,
                        ln.singer,
                        ln.text,
                        ln.timed_words,
                        [[w.start_ms, w.end_ms, w.singer, w.text, w.joined] for w in ln.words],
                    ]
                    for ln in self.lines
                ],
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Lyrics:
        data: dict[str, Any] = json.loads(text)
        if data.get("v") != JSON_VERSION:
            raise ValueError(f"stored lyrics of layout {data.get('v')!r}, expected {JSON_VERSION}")
        lines = tuple(
            Line(s, e, txt, singer, tuple(Word(t, a, b, g, j) for a, b, g, t, j in ws), bool(timed))
            for s, e, singer, txt, timed, ws in data["lines"]
        )
        return cls(lines, dict(data.get("meta", {})))


# -- parsing --------------------------------------------------------------------------------
def decode(raw: bytes) -> str:
    """Text of an LRC file: UTF-16 or UTF-8 with or without a BOM, else Windows-1252 / Latin-1
    (old players wrote the local code page; every byte means something in Latin-1)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError:
            return raw.decode("latin-1")


def _ms(stamp: str) -> int | None:
    """Milliseconds of ``mm:ss.xx``, or None if it is not a valid time."""
    m = _TIME_RE.match(stamp)
    if m is None:
        return None
    minutes, seconds, fraction = m.groups()
    if int(seconds) >= 60:
        return None
    frac_ms = int((fraction or "0").ljust(3, "0")[:3])
    return (int(minutes) * 60 + int(seconds)) * 1000 + frac_ms


@dataclass
class _Raw:
    """A timed line as read: start, singer, text, and (start, text) segments when timed."""

    lineno: int
    start_ms: int
    singer: str
    text: str
    segments: list[tuple[int, str]] | None
    end_ms: int | None  # a trailing <mm:ss.xx> with no text after it
    background: list[tuple[int | None, str]] = field(default_factory=list)
    bg_end_ms: int | None = None


def parse_lrc(source: str | bytes, name: str = "<lyrics>") -> Lyrics:
    """Parse an LRC or enhanced-LRC file (see the module docstring); ``name`` is the file
    named in errors. Raises :class:`~segue.errors.RowError` on the first bad line."""
    text = decode(source) if isinstance(source, bytes) else source.lstrip("\ufeff")
    meta: dict[str, str] = {}
    raws: list[_Raw] = []
    repeated = False
    last_single: tuple[int, int] | None = None  # (start, lineno) of the previous timed line
    breaks: list[int] = []  # empty timed lines: they end the line before
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue

        def fail(reason: str, _lineno: int = lineno) -> RowError:
            return RowError(name, _lineno, None, reason)

        stamps: list[int] = []
        rest = stripped
        while rest.startswith("["):
            m = _LINE_STAMP.match(rest)
            if m is None:
                raise fail(f"unclosed '[' in {_short(rest)}")
            inner = m.group(1)
            ms = _ms(inner)
            if ms is None:
                if inner.strip() and not inner.strip()[:1].isdigit():
                    break  # a tag ([ar:...], [bg: ...]) or bracketed text: handled below
                raise fail(f"bad timestamp [{inner}]: expected [mm:ss.xx] with seconds below 60")
            stamps.append(ms)
            rest = rest[m.end() :]
        if not stamps:
            tag = _META.match(stripped)
            if tag is not None:
                key, value = tag.group(1).strip().lower(), tag.group(2).strip()
                if key == "bg":
                    if not raws:
                        raise fail("a [bg: ...] line needs a timed line before it")
                    _add_background(raws[-1], value, fail)
                    continue
                meta[key] = value
                if key == "offset" and not re.fullmatch(r"[+-]?\d+", value):
                    raise fail(f"bad [offset:{value}]: expected milliseconds such as +250")
                continue
            raise fail(
                f"no [mm:ss.xx] timestamp in {_short(stripped)}; segue imports synced lyrics (LRC)"
            )
        if len(stamps) > 1:
            repeated = True
        elif last_single is not None and not repeated and stamps[0] < last_single[0]:
            raise fail(
                f"[{_fmt(stamps[0])}] comes before line {last_single[1]}'s "
                f"[{_fmt(last_single[0])}]: lines must be in time order"
            )
        last_single = (stamps[0], lineno)
        singer, body = _singer(rest)
        segments, end_ms = _segments(body, fail)
        if segments is not None:
            if segments and segments[0][0] < min(stamps) and len(stamps) == 1:
                raise fail(
                    f"word time <{_fmt(segments[0][0])}> is before its line [{_fmt(stamps[0])}]"
                )
            words_text = "".join(t for _, t in segments)
        else:
            words_text = body
        plain = " ".join(_WORD_STAMP.sub("", words_text).split())
        if not plain and segments is None:
            breaks.extend(stamps)
            continue
        for start in stamps:
            shift = start - stamps[0]
            raws.append(
                _Raw(
                    lineno,
                    start,
                    singer,
                    plain,
                    None if segments is None else [(s + shift, t) for s, t in segments],
                    None if end_ms is None else end_ms + shift,
                )
            )
    if not raws:
        raise RowError(name, max(1, len(text.splitlines())), None, "no timed lyrics line")
    offset = int(meta.get("offset", "0") or 0)
    if repeated:
        raws.sort(key=lambda r: (r.start_ms, r.lineno))
    length_ms = _length(meta.get("length"))
    return Lyrics(_build(raws, sorted(breaks), offset, length_ms), meta)


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _fmt(ms: int) -> str:
    return f"{ms // 60000:02d}:{ms // 1000 % 60:02d}.{ms % 1000 // 10:02d}"


def _length(value: str | None) -> int | None:
    if not value:
        return None
    return _ms(value)


def _singer(text: str) -> tuple[str, str]:
    """The singer prefix of a line's text (after any first word timestamp) and the rest."""
    lead = ""
    body = text
    m0 = _WORD_STAMP.match(body.lstrip())
    if m0 is not None:  # <00:12.00>v2: Hello
        lead, body = m0.group(0), body.lstrip()[m0.end() :]
    m = _SINGER.match(body)
    if m is None:
        return LEAD, text.strip()
    return _SINGER_TAGS[m.group(1).lower()], (lead + body[m.end() :]).strip()


def _segments(body: str, fail: Any) -> tuple[list[tuple[int, str]] | None, int | None]:
    """Word segments of enhanced LRC: ``[(start_ms, text)]`` and the end time a trailing
    stamp gives, or (None, None) when the body has no word stamps."""
    marks = list(_WORD_STAMP.finditer(body))
    if not marks:
        return None, None
    if body[: marks[0].start()].strip():
        raise fail(f"text {_short(body[: marks[0].start()].strip())} before the first word time")
    segments: list[tuple[int, str]] = []
    end_ms: int | None = None
    previous = -1
    for k, m in enumerate(marks):
        ms = _ms(m.group(1))
        if ms is None:
            raise fail(f"bad word timestamp <{m.group(1)}>: expected <mm:ss.xx>")
        if ms < previous:
            raise fail(f"word time <{m.group(1)}> goes back from <{_fmt(previous)}>")
        previous = ms
        after = body[m.end() : marks[k + 1].start() if k + 1 < len(marks) else len(body)]
        if after.strip():
            segments.append((ms, after))
        elif k == len(marks) - 1:
            end_ms = ms
    return segments, end_ms


def _add_background(raw: _Raw, value: str, fail: Any) -> None:
    segments, end_ms = _segments(value, fail)
    if segments is None:
        raw.background.append((None, value))
    else:
        raw.background.extend(segments)
        raw.bg_end_ms = end_ms


def _build(
    raws: list[_Raw], breaks: list[int], offset: int, length_ms: int | None
) -> tuple[Line, ...]:
    starts = [max(0, r.start_ms - offset) for r in raws]
    out: list[Line] = []
    for i, raw in enumerate(raws):
        start = starts[i]
        nxt = starts[i + 1] if i + 1 < len(raws) else None
        k = bisect.bisect_right(breaks, raw.start_ms)
        brk = max(0, breaks[k] - offset) if k < len(breaks) else None
        word_end = None if raw.end_ms is None else max(0, raw.end_ms - offset)
        if raw.bg_end_ms is not None:
            word_end = max(word_end or 0, raw.bg_end_ms - offset)
        last_word_start = max(
            [max(0, s - offset) for s, _ in raw.segments or []]
            + [max(0, s - offset) for s, _ in raw.background if s is not None]
            + [start]
        )
        candidates = [c for c in (nxt, brk) if c is not None and c > start]
        if candidates:
            end = min(candidates)
        elif word_end is not None:
            end = word_end
        elif length_ms is not None and length_ms > last_word_start:
            end = length_ms
        else:
            end = last_word_start + LAST_LINE_MS
        if word_end is not None and nxt is None and brk is None:
            end = word_end
        end = max(end, start + 1)
        words, timed = _words(raw, start, end, offset)
        out.append(Line(start, end, raw.text, raw.singer, words, timed))
    return tuple(out)


def _words(raw: _Raw, start: int, end: int, offset: int) -> tuple[tuple[Word, ...], bool]:
    """The line's words with their times: from the file, or spread by length."""
    timed = raw.segments is not None
    parts: list[tuple[int, str, str, bool]] = []  # (start, text, singer, joined)
    if raw.segments is not None:
        inside = False
        for k, (s, text) in enumerate(raw.segments):
            singer, inside = _paren_singer(text, raw.singer, inside)
            joined = k + 1 < len(raw.segments) and not text[-1:].isspace()
            parts.append((max(0, s - offset), text.strip(), singer, joined))
    else:
        parts += _spread(raw.text, start, end, raw.singer)
    bg_untimed = [t for s, t in raw.background if s is None]
    for s, text in raw.background:
        if s is not None:
            parts.append((max(0, s - offset), text.strip(), BACKGROUND, False))
    if bg_untimed:
        spread = _spread(" ".join(bg_untimed), start, end, "")
        parts += [(s, t, BACKGROUND, j) for s, t, _, j in spread]
    parts.sort(key=lambda p: p[0])
    words: list[Word] = []
    lead_parts = [p for p in parts if p[1]]
    for j, (s, text, singer, joined) in enumerate(lead_parts):
        # timed words last until their singer's next word; spread ones until the next word
        later = [q[0] for q in lead_parts[j + 1 :] if q[0] > s and (q[2] == singer or not timed)]
        w_end = later[0] if later else end
        if not later:  # the last word of its singer: a trailing stamp ends it
            given = raw.bg_end_ms if singer == BACKGROUND else raw.end_ms
            if given is not None:
                w_end = min(end, max(s + 1, given - offset))
        words.append(Word(text, s, max(s + 1, min(w_end, end)), singer, joined))
    return tuple(words), timed


def _paren_singer(text: str, singer: str, inside: bool) -> tuple[str, bool]:
    """A segment's singer given parentheses: "(ooh" opens background, "ah)" closes it."""
    stripped = text.strip()
    opens = stripped.startswith("(")
    closes = stripped.endswith(")")
    in_bg = inside or opens
    still = in_bg and not closes
    return (BACKGROUND if in_bg else singer), still


def _spread(text: str, start: int, end: int, singer: str) -> list[tuple[int, str, str, bool]]:
    """Untimed words over [start, end) in proportion to their length (+1 for the gap);
    words in parentheses are background."""
    tokens = text.split()
    if not tokens:
        return []
    weights = [len(t) + 1 for t in tokens]
    total = sum(weights)
    out: list[tuple[int, str, str, bool]] = []
    acc = 0
    inside = False
    for token, weight in zip(tokens, weights, strict=True):
        who, inside = _paren_singer(token, singer or BACKGROUND, inside)
        out.append((start + (end - start) * acc // total, token, who, False))
        acc += weight
    return out


def to_lrc(lyrics: Lyrics) -> str:
    """Enhanced LRC of ``lyrics``: a line stamp, the singer tag when not the lead, each word
    with its stamp and a closing stamp; background words on a ``[bg: ...]`` line after it.
    Times are written in hundredths, so lyrics on a 10 ms grid read back unchanged."""
    out = [f"[{k}:{v}]" for k, v in lyrics.meta.items()]
    for k, line in enumerate(lyrics.lines):
        nxt = lyrics.lines[k + 1].start_ms if k + 1 < len(lyrics.lines) else None
        main = [w for w in line.words if w.singer != BACKGROUND or line.singer == BACKGROUND]
        back = [w for w in line.words if w not in main]
        tag = "" if line.singer == LEAD else f"{line.singer}: "
        if line.timed_words:
            body = _stamped(main)
            end = f"<{_fmt(main[-1].end_ms)}>" if main else ""
            out.append(f"[{_fmt(line.start_ms)}]{tag}{body}{end}")
            if back:
                out.append(f"[bg: {_stamped(back)}<{_fmt(back[-1].end_ms)}>]")
        else:
            out.append(f"[{_fmt(line.start_ms)}]{tag}{line.text}")
        if (nxt is not None and line.end_ms < nxt) or (nxt is None and not line.timed_words):
            out.append(f"[{_fmt(line.end_ms)}]")  # an empty timed line: the end of this one
    return "\n".join(out) + "\n"


def _stamped(words: list[Word]) -> str:
    return "".join(f"<{_fmt(w.start_ms)}>{w.text}{'' if w.joined else ' '}" for w in words)
