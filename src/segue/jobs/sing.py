"""Sing along, the use cases: lyrics and audio files imported and matched to tracks, a track's
lyrics read, and its mix rendered with the lead vocal at a level (cached on disk).

Matching a file to a track: the file's stem is an item id (``trk-000042.lrc``), or it reads
"Artist - Title" (``First Compass - Late Kingdom.lrc``) and resolves like a typed name
(:class:`segue.jobs.catalog.CatalogNames`: fuzzy, typos are fine), or it is a title alone.
A name that fits several tracks equally is refused with the closest ones, so a rename to the
id settles it. Imports are all or nothing by default: every file is parsed and matched first,
and any failure (each one line naming the file, and the line for a malformed LRC) stores
nothing; ``skip_bad`` stores the good files and reports the rest.

Renders are cached per (track, audio file version, level step, method) under
``<data dir>/sing/``: the level is rounded to steps of 0.05, so 21 renders at most per track,
and a re-imported or edited audio file (new size or time) never serves an old render.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segue.data.lyrics import BACKGROUND, Lyrics, parse_lrc
from segue.data.model import ItemKind
from segue.data.synth.lyrics import synthetic_lyrics
from segue.errors import NameNotResolved, SegueError
from segue.jobs.catalog import CatalogNames
from segue.sing.audio import (
    DECODED,
    NEEDS_DECODER,
    READABLE,
    Audio,
    from_float,
    read_audio,
    to_float,
    write_wav,
)
from segue.sing.songs import render_song
from segue.sing.vocals import METHODS, Method, render
from segue.store import AudioFile, Store, StoredLyrics

#: Renders are cached per level step: 0.05 → 21 versions per track at most.
LEVEL_STEP = 0.05
LYRICS_SUFFIXES = (".lrc",)
AUDIO_SUFFIXES = READABLE + DECODED + NEEDS_DECODER


# -- reading lyrics ---------------------------------------------------------------------------
def track_lyrics(store: Store, item_id: str) -> Lyrics | None:
    """A track's lyrics: parsed at import (``lrc``), or the synthetic world's rebuilt from
    its seed and the track's title and length (``synth``); None when it has none."""
    row = store.get_lyrics(item_id)
    if row is None:
        return None
    key = lyrics_key(store, row)
    return None if key is None else lyrics_of(key)


LyricsKey = tuple[str, str, str, str, int | None, int]


def lyrics_key(store: Store, row: StoredLyrics) -> LyricsKey | None:
    """Everything a track's lyrics are made from: the row's format and body, and for
    synthetic lyrics the track's title and length (one more point read); with the row's
    ``updated_ms``, so a re-import is a new key even when the body reads the same. Equal keys
    give equal lyrics (:func:`lyrics_of`): what a cache of lyrics, or of their encodings,
    compares to serve from memory and still see a new import at once."""
    if row.format == "synth":
        item = store.get_item(row.item_id)
        if item is None:  # the foreign key makes this impossible; be plain about it
            return None
        return (row.format, row.body, item.id, item.title, item.duration_ms, row.updated_ms)
    return (row.format, row.body, row.item_id, "", None, row.updated_ms)


def lyrics_of(key: LyricsKey) -> Lyrics:
    """The lyrics a :func:`lyrics_key` stands for (decoded once per key, then kept)."""
    return _decoded(*key[:5])


@functools.lru_cache(maxsize=4096)
def _decoded(fmt: str, body: str, item_id: str, title: str, duration_ms: int | None) -> Lyrics:
    """Lyrics from a row, kept for the rows read last: a player polls ``?at=`` several times
    a second, and rebuilding (synthetic, ~1 ms) or parsing the JSON each time is most of the
    lookup. The key is the row's content (and the track's title and length), so a new import
    is never answered from an old entry; lyrics are immutable."""
    if fmt == "synth":
        return synthetic_lyrics(int(json.loads(body)["seed"]), item_id, title, duration_ms)
    return Lyrics.from_json(body)


# -- matching files to tracks -----------------------------------------------------------------
@dataclass
class ImportReport:
    """Files stored (file name → item id) and files refused (one line each)."""

    stored: dict[str, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)


def _files(directory: Path, suffixes: tuple[str, ...], what: str) -> list[Path]:
    if not directory.is_dir():
        raise SegueError(f"{directory} is not a folder; pass the folder holding the {what} files")
    found = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not found:
        raise SegueError(f"no {what} files ({', '.join(suffixes)}) in {directory}")
    return found


class _Matcher:
    """File stems to track ids; the name index is built only if some stem is not an id."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._names: CatalogNames | None = None

    def __call__(self, path: Path) -> str:
        stem = path.stem.strip()
        item = self._store.get_item(stem)
        if item is not None:
            if item.kind is not ItemKind.TRACK:
                raise SegueError(f"{path}: {stem} is a {item.kind.value}, not a track")
            return item.id
        if self._names is None:  # artists too: "Artist - Title" finds the artist first
            self._names = CatalogNames(self._store.iter_items())
        artist, sep, title = stem.partition(" - ")
        text = f"{title.strip()} — {artist.strip()}" if sep else stem
        try:
            return self._names.resolve(text, [ItemKind.TRACK], what="track").item_id
        except NameNotResolved as exc:
            raise SegueError(
                f"{path}: {exc}; or name the file by the track's id (trk-000042{path.suffix})"
            ) from None


def _import(
    store: Store,
    directory: Path,
    suffixes: tuple[str, ...],
    what: str,
    read: Callable[[Path], object],
    put: Callable[[list[tuple[Path, str, object]]], None],
    skip_bad: bool,
) -> ImportReport:
    report = ImportReport()
    match = _Matcher(store)
    good: list[tuple[Path, str, object]] = []
    owner: dict[str, Path] = {}
    for path in _files(directory, suffixes, what):
        try:
            content = read(path)
            item_id = match(path)
            if item_id in owner:
                raise SegueError(
                    f"{path}: names the same track ({item_id}) as {owner[item_id]}; keep one"
                )
        except SegueError as exc:
            report.failed.append(str(exc))
            continue
        owner[item_id] = path
        good.append((path, item_id, content))
    if report.failed and not skip_bad:
        shown = report.failed[:10]
        more = f"\n(and {len(report.failed) - 10} more)" if len(report.failed) > 10 else ""
        raise SegueError(
            f"nothing imported: {len(report.failed)} of {len(report.failed) + len(good)} "
            f"{what} files cannot be used (--skip-bad imports the others):\n"
            + "\n".join(shown)
            + more
        )
    put(good)
    report.stored = {str(path): item_id for path, item_id, _ in good}
    return report


def import_lyrics(store: Store, directory: Path, *, skip_bad: bool = False) -> ImportReport:
    """Parse and match every ``.lrc`` file under ``directory``, then store them in one
    transaction (see the module docstring)."""

    def read(path: Path) -> Lyrics:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise SegueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        return parse_lrc(raw, str(path))

    def put(good: list[tuple[Path, str, object]]) -> None:
        now = _now_ms()
        rows = []
        for path, item_id, lyrics in good:
            assert isinstance(lyrics, Lyrics)
            rows.append(StoredLyrics(item_id, "lrc", path.name, lyrics.to_json(), now))
        store.put_lyrics(rows)

    return _import(store, directory, LYRICS_SUFFIXES, "lyrics (LRC)", read, put, skip_bad)


def import_audio(store: Store, directory: Path, *, skip_bad: bool = False) -> ImportReport:
    """Match every WAV file under ``directory`` to a track and store its absolute path; each
    file's header is read first, so an unreadable file is refused at import, not when sung."""

    def read(path: Path) -> Audio:
        return read_audio(path)

    def put(good: list[tuple[Path, str, object]]) -> None:
        now = _now_ms()
        store.put_audio(AudioFile(item_id, str(path.resolve()), now) for path, item_id, _ in good)

    return _import(store, directory, AUDIO_SUFFIXES, "audio", read, put, skip_bad)


def _now_ms() -> int:
    return int(time.time() * 1000)


# -- rendering --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rendered:
    """A render on disk: the file, the level it was made at (a step), the method used
    (``original`` at level 1) and whether it came from the cache."""

    path: Path
    level: float
    method: str
    cached: bool
    #: whether the track's lyrics fitted the audio and kept the mask to the sung words
    lyrics_used: bool = False


def level_step(level: float) -> float:
    """``level`` rounded to the cache's steps; refused outside [0, 1]."""
    if not 0.0 <= level <= 1.0 or level != level:
        raise SegueError(f"the vocal level is between 0 and 1, not {level}")
    return round(round(level / LEVEL_STEP) * LEVEL_STEP, 2)


def sung_words(store: Store, item_id: str) -> list[tuple[int, int]] | None:
    """(start, end) ms of the words the lead (and duet voices) sing, from the track's lyrics:
    the soft mask uses them when they fit the audio (:func:`segue.sing.vocals.plan`)."""
    lyrics = track_lyrics(store, item_id)
    if lyrics is None:
        return None
    return [
        (w.start_ms, w.end_ms)
        for line in lyrics.lines
        for w in line.words
        if w.singer != BACKGROUND
    ]


def track_audio(store: Store, item_id: str) -> Path:
    """The audio file of a track, or one line saying what is missing."""
    if store.get_item(item_id) is None:
        raise SegueError(f"no item {item_id!r} in the store")
    row = store.get_audio(item_id)
    if row is None:
        raise SegueError(
            f"track {item_id} has no audio file; attach one with `segue import audio DIR`"
        )
    path = Path(row.path)
    if not path.is_file():
        raise SegueError(f"track {item_id}'s audio file {path} is gone; import it again")
    return path


def render_track(
    store: Store,
    item_id: str,
    level: float,
    cache_dir: Path,
    method: Method | str = "auto",
) -> Rendered:
    """The track's mix with the lead at ``level`` (rounded to a step), as a WAV file in the
    cache; rendered once per (file version, step, method)."""
    if method not in ("auto", *METHODS):
        raise SegueError(f"--method must be auto, mid-side or soft-mask, not {method!r}")
    step = level_step(level)
    source = track_audio(store, item_id)
    if step == 1.0:  # the lead as recorded: the file itself, byte for byte, nothing rendered
        return Rendered(source, 1.0, "original", True)  # (read at import, so readable)
    stat = source.stat()
    lyrics = store.get_lyrics(item_id)  # new lyrics can change the render (they gate the mask)
    words = lyrics.updated_ms if lyrics is not None else "-"
    version = hashlib.sha256(
        f"{item_id}\0{source}\0{stat.st_size}\0{stat.st_mtime_ns}\0{words}".encode()
    ).hexdigest()[:20]
    folder = cache_dir / version
    existing = sorted(folder.glob(f"{round(step * 100):03d}_{method}_*.wav"))
    if existing:  # <step>_<method asked>_<method used>.wav
        used = existing[0].stem.split("_")[2]
        return Rendered(existing[0], step, used, True)
    audio = read_audio(source)
    sung = sung_words(store, item_id)
    mixed, chosen = render(to_float(audio.samples), audio.rate, step, method, sung)  # type: ignore[arg-type]
    out = from_float(mixed, audio.samples.dtype)
    used = chosen.method if chosen is not None else "original"
    path = folder / f"{round(step * 100):03d}_{method}_{used}.wav"
    write_wav(path, Audio(audio.rate, out))
    return Rendered(path, step, used, False)


def sing(
    store: Store, item_id: str, level: float, out: Path, method: Method | str = "auto"
) -> Rendered:
    """``segue sing``: render at exactly ``level`` (no step, no cache) into ``out``."""
    if method not in ("auto", *METHODS):
        raise SegueError(f"--method must be auto, mid-side or soft-mask, not {method!r}")
    if not 0.0 <= level <= 1.0 or level != level:
        raise SegueError(f"--vocals is between 0 and 1, not {level}")
    audio = read_audio(track_audio(store, item_id))
    sung = sung_words(store, item_id)
    mixed, chosen = render(to_float(audio.samples), audio.rate, level, method, sung)  # type: ignore[arg-type]
    samples = audio.samples if chosen is None else from_float(mixed, audio.samples.dtype)
    write_wav(out, Audio(audio.rate, samples))
    used = chosen is not None and chosen.estimate is not None and chosen.estimate.lyrics_used
    return Rendered(out, level, "original" if chosen is None else chosen.method, False, used)


# -- synthetic songs for the synthetic world ---------------------------------------------------
def write_songs(store: Store, out: Path, count: int, *, seconds: float = 16.0) -> list[str]:
    """Render synthetic multi-stem songs (:mod:`segue.sing.songs`) for the store's first
    ``count`` tracks into ``out``: ``<track id>.wav`` (16-bit stereo, 44.1 kHz) and
    ``<track id>.lrc`` with the words the lead sings, ready for ``segue import audio`` and
    ``segue import lyrics``. Each track's song is seeded by its position, so the same store
    gives the same files. Returns the track ids."""
    if count < 1:
        raise SegueError(f"--count must be at least 1, got {count}")
    tracks = sorted(i.id for i in store.iter_items(ItemKind.TRACK))[:count]
    if not tracks:
        raise SegueError("the store has no tracks; make a world first (segue synth)")
    out.mkdir(parents=True, exist_ok=True)
    for k, track in enumerate(tracks):
        song = render_song(k, seconds=seconds, rate=44100)
        samples = from_float(song.mix, np.dtype(np.int16))
        write_wav(out / f"{track}.wav", Audio(song.rate, samples))
        (out / f"{track}.lrc").write_text(song.lrc, encoding="utf-8")
    return tracks
