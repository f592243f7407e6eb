"""Sing along over HTTP: a track's synced lyrics (``GET /v1/items/{id}/lyrics``, ``?at=MS`` for
what is sung at a moment) and its audio with the lead vocal at a level
(``GET /v1/items/{id}/audio?vocals=0.0..1.0``).

The lyrics lookup is what a player polls while it plays, so it reads one row by primary key
and answers only the current line and word when ``at`` is given. The audio is a WAV file
rendered once per (track, level step of 0.05) into ``<data dir>/sing/`` and streamed from
there in chunks, with ``Range`` requests answered ``206`` (one range; several, or a malformed
header, are ignored and the whole file is sent, as RFC 9110 allows) and a range past the end
answered ``416`` with problem details. The response models live here, next to their routes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from segue.api.problems import problem_responses
from segue.api.security import require
from segue.api.services import ServicesDep
from segue.data.lyrics import Line, Word
from segue.errors import SegueError
from segue.jobs.sing import render_track, track_lyrics

router = APIRouter(prefix="/v1", tags=["sing"])
_AUTH = (401, 403, 503)
CHUNK = 64 * 1024
WAV = "audio/wav"
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class LyricWord(BaseModel):
    text: str
    start_ms: int
    end_ms: int = Field(description="Exclusive")
    singer: str = Field(description="v1 the lead, v2… other voices of a duet, bg background")
    joined: bool = Field(description="A syllable the next word continues: no space after it")


class LyricLine(BaseModel):
    index: int
    start_ms: int
    end_ms: int = Field(description="Exclusive: the next line's start, or a break")
    text: str
    singer: str
    timed_words: bool = Field(description="False: the file had no word times, these are spread")
    words: list[LyricWord]


class NowSinging(BaseModel):
    """What is sung at ``at_ms``: the line and word (null between lines or words)."""

    at_ms: int
    line: LyricLine | None
    word_index: int | None
    word: LyricWord | None
    next_line_start_ms: int | None = Field(description="When the next line starts, if any")


class TrackLyrics(BaseModel):
    item_id: str
    lines: list[LyricLine] = Field(description="Every line; empty when `at` is given")
    now: NowSinging | None = Field(default=None, description="Given `at`: what is sung then")


def _word(w: Word) -> LyricWord:
    return LyricWord(
        text=w.text, start_ms=w.start_ms, end_ms=w.end_ms, singer=w.singer, joined=w.joined
    )


def _line(index: int, line: Line) -> LyricLine:
    return LyricLine(
        index=index,
        start_ms=line.start_ms,
        end_ms=line.end_ms,
        text=line.text,
        singer=line.singer,
        timed_words=line.timed_words,
        words=[_word(w) for w in line.words],
    )


@router.get(
    "/items/{item_id}/lyrics",
    response_model=TrackLyrics,
    responses=problem_responses(*_AUTH, 404, 422),
    dependencies=[Depends(require("read"))],
)
def lyrics(
    item_id: str,
    svc: ServicesDep,
    at: Annotated[
        int | None, Query(ge=0, le=86_400_000, description="A moment of the track, in ms")
    ] = None,
) -> TrackLyrics:
    """A track's synced lyrics: lines and words with start and end (ms) and singer; with
    ``at``, only the line and word sung at that moment."""
    found = track_lyrics(svc.store, item_id)
    if found is None:
        if svc.store.get_item(item_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown item {item_id!r}")
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"item {item_id!r} has no lyrics; import them with `segue import lyrics DIR`",
        )
    if at is None:
        return TrackLyrics(
            item_id=item_id, lines=[_line(i, ln) for i, ln in enumerate(found.lines)]
        )
    pos = found.at(at)
    line = found.lines[pos.line] if pos.line is not None else None
    word = line.words[pos.word] if line is not None and pos.word is not None else None
    nxt = found.lines[pos.next_line].start_ms if pos.next_line is not None else None
    now = NowSinging(
        at_ms=at,
        line=_line(pos.line, line) if line is not None and pos.line is not None else None,
        word_index=pos.word,
        word=_word(word) if word is not None else None,
        next_line_start_ms=nxt,
    )
    return TrackLyrics(item_id=item_id, lines=[], now=now)


_AUDIO = {
    "description": "The WAV file",
    "content": {WAV: {"schema": {"type": "string", "format": "binary"}}},
}


@router.get(
    "/items/{item_id}/audio",
    response_class=StreamingResponse,
    responses={
        200: _AUDIO,
        206: {**_AUDIO, "description": "The requested byte range of the WAV file"},
        **problem_responses(*_AUTH, 404, 416, 422),
    },
    dependencies=[Depends(require("read"))],
)
def audio(
    item_id: str,
    svc: ServicesDep,
    vocals: Annotated[
        float, Query(ge=0.0, le=1.0, description="Lead vocal level: 0 gone, 1 as recorded")
    ] = 1.0,
    range_: Annotated[
        str | None,
        Header(alias="Range", description="One byte range, e.g. bytes=0-1023 (RFC 9110)"),
    ] = None,
) -> StreamingResponse:
    """The track's audio as WAV with the lead vocal at ``vocals`` (rounded to steps of 0.05;
    background vocals stay), rendered once per step and cached; ``Range`` requests get 206."""
    if svc.store.get_item(item_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown item {item_id!r}")
    if svc.store.get_audio(item_id) is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"item {item_id!r} has no audio file; attach one with `segue import audio DIR`",
        )
    try:
        rendered = render_track(svc.store, item_id, vocals, svc.settings.data_dir / "sing")
    except SegueError as exc:  # the file went away since it was imported, or is unreadable
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    size = rendered.path.stat().st_size
    span = byte_range(range_, size)
    headers = {
        "Accept-Ranges": "bytes",
        "X-Segue-Vocals": f"{rendered.level:g}",
        "X-Segue-Method": rendered.method,
    }
    start, end = span if span is not None else (0, size - 1)
    headers["Content-Length"] = str(end - start + 1)
    code = status.HTTP_200_OK
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        code = status.HTTP_206_PARTIAL_CONTENT
    return StreamingResponse(_chunks(rendered.path, start, end), code, headers, media_type=WAV)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one satisfiable range ``(first, last)`` of a ``Range`` header, inclusive; None to
    send the whole file (no header, several ranges, or one that does not parse); a 416
    problem when the range starts past the end."""
    if header is None:
        return None
    m = _RANGE.match(header)
    if m is None:
        return None
    first, last = m.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        n = int(last)
        if n == 0:
            raise _unsatisfiable(size)
        return max(0, size - n), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # not a range at all: ignored
    if start >= size:
        raise _unsatisfiable(size)
    return start, min(end, size - 1)


def _unsatisfiable(size: int) -> HTTPException:
    return HTTPException(
        status.HTTP_416_RANGE_NOT_SATISFIABLE,
        f"the range starts past the end of the file ({size:,} bytes)",
        headers={"Content-Range": f"bytes */{size}"},
    )


def _chunks(path: Path, start: int, end: int) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(start)
        left = end - start + 1
        while left > 0:
            block = handle.read(min(CHUNK, left))
            if not block:
                return
            left -= len(block)
            yield block
