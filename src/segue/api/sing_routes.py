"""Sing along over HTTP: a track's synced lyrics (``GET /v1/items/{id}/lyrics``, ``?at=MS`` for
what is sung at a moment) and its audio with the lead vocal at a level
(``GET /v1/items/{id}/audio?vocals=0.0..1.0``).

The lyrics lookup is what a player polls while it plays, so it reads one row by primary key
and answers only the current line and word when ``at`` is given. It is lean on purpose (issue
22's p99 ≤ 5 ms at 300 req/s): an ``async`` route (no thread-pool hand-off; the point read is
tens of microseconds, as the recommendations route's), and answers assembled from JSON
encoded once per track and kept per process (:class:`_Encoded`), keyed by everything the
lyrics are made from, so the row read on every request also re-validates the entry: a
re-import is served at once. The audio is a WAV file
rendered once per (track, level step of 0.05) into ``<data dir>/sing/`` and streamed from
there in chunks, with ``Range`` requests answered ``206`` (one range; several, or a malformed
header, are ignored and the whole file is sent, as RFC 9110 allows) and a range past the end
answered ``416`` with problem details. The response models live here, next to their routes.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, status
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from segue.api.problems import problem_responses
from segue.api.security import require
from segue.api.services import ServicesDep
from segue.data.lyrics import Line, Lyrics, Word
from segue.errors import SegueError
from segue.jobs.sing import LyricsKey, lyrics_key, lyrics_of, render_track
from segue.sing.audio import MEDIA_TYPES

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


@dataclass
class _Encoded:
    """A track's lyrics with their JSON pieces, encoded once (through the response models,
    so the answer is what they would give): each line and each word, and the whole body."""

    key: LyricsKey
    lyrics: Lyrics
    item_json: str
    lines: list[str]
    words: list[list[str]]
    whole: bytes | None = None

    @classmethod
    def of(cls, item_id: str, key: LyricsKey) -> _Encoded:
        found = lyrics_of(key)
        models = [_line(i, ln) for i, ln in enumerate(found.lines)]
        return cls(
            key,
            found,
            json.dumps(item_id),
            [m.model_dump_json() for m in models],
            [[w.model_dump_json() for w in m.words] for m in models],
        )

    def body(self, at: int | None) -> bytes:
        """The ``TrackLyrics`` JSON: every line, or (given ``at``) what is sung then."""
        if at is None:
            if self.whole is None:
                self.whole = (
                    f'{{"item_id":{self.item_json},"lines":[{",".join(self.lines)}],"now":null}}'
                ).encode()
            return self.whole
        found = self.lyrics
        pos = found.at(at)
        line = "null" if pos.line is None else self.lines[pos.line]
        word = "null"
        if pos.line is not None and pos.word is not None:
            word = self.words[pos.line][pos.word]
        index = "null" if pos.word is None else str(pos.word)
        nxt = "null" if pos.next_line is None else str(found.lines[pos.next_line].start_ms)
        return (
            f'{{"item_id":{self.item_json},"lines":[],"now":{{"at_ms":{at},"line":{line},'
            f'"word_index":{index},"word":{word},"next_line_start_ms":{nxt}}}}}'
        ).encode()


#: Tracks whose encoded lyrics are kept per process (the most recently asked).
ENCODED_KEEP = 4096
_ENCODED: OrderedDict[str, _Encoded] = OrderedDict()


def _encoded(item_id: str, key: LyricsKey) -> _Encoded:
    """The kept encoding when its key is the row's (the lyrics did not change), else a new
    one. Only the event loop calls it (an ``async`` route), so no lock."""
    entry = _ENCODED.get(item_id)
    if entry is not None and entry.key == key:
        _ENCODED.move_to_end(item_id)
        return entry
    entry = _Encoded.of(item_id, key)
    _ENCODED[item_id] = entry
    if len(_ENCODED) > ENCODED_KEEP:
        _ENCODED.popitem(last=False)
    return entry


@router.get(
    "/items/{item_id}/lyrics",
    response_model=TrackLyrics,
    responses=problem_responses(*_AUTH, 404, 422),
    dependencies=[Depends(require("read"))],
)
async def lyrics(
    item_id: str,
    svc: ServicesDep,
    at: Annotated[
        int | None, Query(ge=0, le=86_400_000, description="A moment of the track, in ms")
    ] = None,
) -> TrackLyrics:
    """A track's synced lyrics: lines and words with start and end (ms) and singer; with
    ``at``, only the line and word sung at that moment."""
    row = svc.store.get_lyrics(item_id)  # one primary-key read: a re-import is seen at once
    key = lyrics_key(svc.store, row) if row is not None else None
    if key is None:
        if svc.store.get_item(item_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown item {item_id!r}")
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"item {item_id!r} has no lyrics; import them with `segue import lyrics DIR`",
        )
    # encoded here rather than validated again by FastAPI: the pieces went through the models
    body = _encoded(item_id, key).body(at)
    return Response(body, media_type="application/json")  # type: ignore[return-value]


_AUDIO = {
    "description": "A WAV render, or at level 1 the file as imported (WAV, FLAC, OGG, MP3)",
    "content": {
        media: {"schema": {"type": "string", "format": "binary"}}
        for media in sorted(set(MEDIA_TYPES.values()))
    },
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
    media = MEDIA_TYPES.get(rendered.path.suffix.lower(), WAV)  # level 1: the file as imported
    return StreamingResponse(_chunks(rendered.path, start, end), code, headers, media_type=media)


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
