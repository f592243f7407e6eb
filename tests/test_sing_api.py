"""Sing along end to end on a real SQLite store: the synthetic world's lyrics, ``segue import
lyrics`` / ``segue import audio`` through the real entry point (all or nothing, one line per
bad file, ambiguous names refused with the candidates), ``segue sing``, and the API's lyrics
(``?at=``) and audio routes, Range requests included."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy.io import wavfile

from segue.api import create_app
from segue.api.sing_routes import NowSinging, TrackLyrics, _line, _word
from segue.config import Settings
from segue.data.lyrics import parse_lrc
from segue.data.model import Item, ItemKind
from segue.data.synth import SynthParams
from segue.jobs.ingest import load_synthetic_world
from segue.jobs.sing import track_lyrics
from segue.sing.audio import Audio, from_float, to_float, write_wav
from segue.sing.songs import Song, render_song
from segue.store import open_store

PROBLEM = "application/problem+json"
SONG_TRACK = "trk-000000"


def _segue(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real entry point in a subprocess, as a user runs it."""
    env = {**os.environ, "SEGUE_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    for name in ("SEGUE_DATABASE_URL", "SEGUE_REDIS_URL", "SEGUE_CONFIG"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", "from segue.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def song() -> Song:
    return render_song(3, seconds=8.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, song: Song) -> Path:
    root = tmp_path_factory.mktemp("sing-world")
    with open_store(f"sqlite:///{root / 'segue.sqlite'}") as store:
        load_synthetic_world(store, SynthParams(seed=5, n_users=20, n_tracks=40, n_events=300))
        store.upsert_items(
            [
                Item(id="ar-x", kind=ItemKind.ARTIST, title="Quiet Harbor"),
                Item(id="ar-y", kind=ItemKind.ARTIST, title="Loud Harbor"),
                Item(id="t-x", kind=ItemKind.TRACK, title="Same Song", artist_id="ar-x"),
                Item(id="t-y", kind=ItemKind.TRACK, title="Same Song", artist_id="ar-y"),
            ]
        )
    audio = root / "audio"
    write_wav(
        audio / f"{SONG_TRACK}.wav", Audio(song.rate, from_float(song.mix, np.dtype(np.int16)))
    )
    return root


def _store(world: Path):  # type: ignore[no-untyped-def]
    return open_store(f"sqlite:///{world / 'segue.sqlite'}")


def _title_artist(world: Path, item_id: str) -> tuple[str, str]:
    with _store(world) as store:
        item = store.get_item(item_id)
        assert item is not None and item.artist_id
        artist = store.get_item(item.artist_id)
        assert artist is not None
        return item.title, artist.title


def test_the_synthetic_world_gives_every_track_lyrics(world: Path) -> None:
    with _store(world) as store:
        tracks = [i.id for i in store.iter_items(ItemKind.TRACK) if i.id.startswith("trk-")]
        assert len(tracks) == 40
        for track in tracks:
            row = store.get_lyrics(track)
            assert row is not None and row.format == "synth"
        first = track_lyrics(store, "trk-000007")
        assert first is not None and len(first.lines) >= 10
        assert track_lyrics(store, "trk-000007") == first  # rebuilt the same every time
        assert track_lyrics(store, "t-x") is None


def test_import_lyrics_is_all_or_nothing_and_says_which_file_and_line(
    world: Path, song: Song, tmp_path: Path
) -> None:
    title, artist = _title_artist(world, "trk-000001")
    folder = tmp_path / "lyrics"
    folder.mkdir()
    (folder / f"{SONG_TRACK}.lrc").write_text(song.lrc, encoding="utf-8")
    typo = title[:-1] if len(title) > 4 else title  # a letter short: fuzzy matching finds it
    (folder / f"{artist} - {typo}.lrc").write_bytes(
        "[00:01.00]<00:01.00>Caf\u00e9 <00:01.50>line <00:02.00>\n".encode("latin-1")
    )
    (folder / "broken.lrc").write_text("[00:01.00]one\n[00:02.00]two\n[00:1x.00]three\n")
    before = _store(world)
    try:
        refused = _segue(world, "import", "lyrics", str(folder))
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "broken.lrc, line 3: bad timestamp [00:1x.00]" in refused.stderr
        assert "nothing imported" in refused.stderr
        assert before.get_lyrics(SONG_TRACK).format == "synth"  # nothing stored
        done = _segue(world, "import", "lyrics", str(folder), "--skip-bad")
        assert done.returncode == 0, done.stderr
        assert "2 lyrics stored" in done.stdout and "broken.lrc, line 3" in done.stdout
        stored = track_lyrics(before, SONG_TRACK)
        assert stored is not None and stored.lines == parse_lrc(song.lrc).lines
        other = before.get_lyrics("trk-000001")
        assert other is not None and other.format == "lrc" and other.source.startswith(artist)
        latin = track_lyrics(before, "trk-000001")
        assert latin is not None and latin.lines[0].text == "Caf\u00e9 line"
    finally:
        before.close()


def test_an_ambiguous_file_name_is_refused_with_the_candidates(world: Path, tmp_path: Path) -> None:
    folder = tmp_path / "same"
    folder.mkdir()
    (folder / "Same Song.lrc").write_text("[00:01.00]la\n")
    refused = _segue(world, "import", "lyrics", str(folder))
    assert refused.returncode == 2
    assert "Same Song.lrc" in refused.stderr and "t-x" in refused.stderr and "t-y" in refused.stderr
    with _store(world) as store:
        assert store.get_lyrics("t-x") is None and store.get_lyrics("t-y") is None


@pytest.fixture(scope="module")
def client(world: Path) -> Iterator[TestClient]:
    imported = _segue(world, "import", "audio", str(world / "audio"))
    assert imported.returncode == 0, imported.stderr
    with TestClient(create_app(Settings(data_dir=world), watch_s=None)) as c:
        yield c


def test_lyrics_route_and_the_lookup_by_time(client: TestClient, world: Path) -> None:
    whole = client.get("/v1/items/trk-000002/lyrics")
    assert whole.status_code == 200, whole.text
    body = whole.json()
    assert body["now"] is None and len(body["lines"]) >= 10
    line = body["lines"][3]
    word = line["words"][1]
    assert word["start_ms"] < word["end_ms"] <= line["end_ms"] and word["singer"] in ("v1", "v2")
    middle = (word["start_ms"] + word["end_ms"]) // 2
    now = client.get("/v1/items/trk-000002/lyrics", params={"at": middle}).json()
    assert now["lines"] == [] and now["now"]["line"]["index"] == 3
    assert now["now"]["word_index"] == 1 and now["now"]["word"] == word
    gap = line["end_ms"] + 1  # synthetic lines end where the singing does: a short break
    between = client.get("/v1/items/trk-000002/lyrics", params={"at": gap}).json()["now"]
    assert between["line"] is None and between["next_line_start_ms"] == body["lines"][4]["start_ms"]
    for path, params, code in (
        ("/v1/items/nope/lyrics", {}, 404),
        ("/v1/items/t-x/lyrics", {}, 404),
        ("/v1/items/trk-000002/lyrics", {"at": -5}, 422),
    ):
        r = client.get(path, params=params)
        assert r.status_code == code and r.headers["content-type"] == PROBLEM, r.text
    assert "segue import lyrics" in client.get("/v1/items/t-x/lyrics").json()["detail"]


def _answer_by_the_models(world: Path, item_id: str, at: int | None) -> dict[str, object]:
    """What the lyrics route answered before it assembled pre-encoded pieces: the response
    models filled from the lyrics, validated and dumped by pydantic."""
    with _store(world) as store:
        found = track_lyrics(store, item_id)
    assert found is not None
    if at is None:
        lines = [_line(i, ln) for i, ln in enumerate(found.lines)]
        return TrackLyrics(item_id=item_id, lines=lines).model_dump(mode="json")
    pos = found.at(at)
    line = found.lines[pos.line] if pos.line is not None else None
    word = line.words[pos.word] if line is not None and pos.word is not None else None
    now = NowSinging(
        at_ms=at,
        line=_line(pos.line, line) if line is not None and pos.line is not None else None,
        word_index=pos.word,
        word=_word(word) if word is not None else None,
        next_line_start_ms=(
            found.lines[pos.next_line].start_ms if pos.next_line is not None else None
        ),
    )
    return TrackLyrics(item_id=item_id, lines=[], now=now).model_dump(mode="json")


def test_the_lean_lyrics_answer_is_the_models_answer(client: TestClient, world: Path) -> None:
    """The route answers from JSON pieces encoded once per track: every moment of a
    synthetic track and of an imported LRC (in a word, between words and lines, before the
    first line, after the last) reads as the response models would have written it."""
    for item_id in ("trk-000002", SONG_TRACK):
        with _store(world) as store:
            found = track_lyrics(store, item_id)
        assert found is not None
        moments = {0, 1, found.lines[-1].end_ms, found.lines[-1].end_ms + 60_000}
        for line in found.lines:
            moments |= {line.start_ms, line.end_ms - 1, line.end_ms}
            moments |= {w.start_ms for w in line.words} | {w.end_ms for w in line.words}
        kinds = set()
        for at in sorted(moments):
            r = client.get(f"/v1/items/{item_id}/lyrics", params={"at": at})
            assert r.status_code == 200 and r.headers["content-type"] == "application/json"
            expected = _answer_by_the_models(world, item_id, at)
            assert r.json() == expected, at
            now = expected["now"]
            assert isinstance(now, dict)
            kinds.add((now["line"] is None, now["word"] is None, now["next_line_start_ms"] is None))
        assert any(not line_none and not word_none for line_none, word_none, _ in kinds), kinds
        assert (True, True, False) in kinds, kinds  # before a line (the first, or between)
        assert (True, True, True) in kinds, kinds  # after the last line
        whole = client.get(f"/v1/items/{item_id}/lyrics")
        assert whole.json() == _answer_by_the_models(world, item_id, None)


def test_a_reimported_lrc_is_served_at_once(
    client: TestClient, world: Path, tmp_path: Path
) -> None:
    """The process keeps encoded lyrics, but the row read on every request re-validates
    them: the answer after an import is the new file's, with no wait and no restart."""
    track = "trk-000003"
    before = client.get(f"/v1/items/{track}/lyrics", params={"at": 1200}).json()
    folder = tmp_path / "again"
    folder.mkdir()
    for take in ("First", "Second"):
        (folder / f"{track}.lrc").write_text(
            f"[00:01.00]<00:01.00>{take} <00:01.50>take <00:02.00>\n", encoding="utf-8"
        )
        done = _segue(world, "import", "lyrics", str(folder))
        assert done.returncode == 0, done.stderr
        now = client.get(f"/v1/items/{track}/lyrics", params={"at": 1200}).json()["now"]
        assert now["line"]["text"] == f"{take} take" and now["word"]["text"] == take, now
        assert now != before["now"]
        whole = client.get(f"/v1/items/{track}/lyrics").json()
        assert [ln["text"] for ln in whole["lines"]] == [f"{take} take"]
    # the same file again: a new row (new time), the same answer
    done = _segue(world, "import", "lyrics", str(folder))
    assert done.returncode == 0, done.stderr
    again = client.get(f"/v1/items/{track}/lyrics", params={"at": 1200}).json()["now"]
    assert again["line"]["text"] == "Second take"


def _samples(data: bytes) -> np.ndarray:
    return wavfile.read(io.BytesIO(data))[1]


def test_audio_route_renders_caches_and_answers_ranges(
    client: TestClient, world: Path, song: Song
) -> None:
    original = (world / "audio" / f"{SONG_TRACK}.wav").read_bytes()
    same = client.get(f"/v1/items/{SONG_TRACK}/audio", params={"vocals": 1})
    assert same.status_code == 200 and same.headers["content-type"] == "audio/wav"
    assert same.content == original  # level 1: the input, byte for byte
    low = client.get(f"/v1/items/{SONG_TRACK}/audio", params={"vocals": 0.02})
    assert low.headers["x-segue-vocals"] == "0" and low.headers["x-segue-method"] == "soft-mask"
    out = to_float(_samples(low.content))
    sdr = 10 * np.log10(np.sum(song.accompaniment**2) / np.sum((song.accompaniment - out) ** 2))
    assert sdr >= 10.0, sdr  # the lead is gone, the accompaniment kept (through 16-bit PCM)
    renders = list((world / "sing").rglob("*.wav"))
    again = client.get(f"/v1/items/{SONG_TRACK}/audio", params={"vocals": 0})
    assert again.content == low.content and list((world / "sing").rglob("*.wav")) == renders
    full, size = low.content, len(low.content)
    url = f"/v1/items/{SONG_TRACK}/audio?vocals=0"
    for header, first, last in (
        ("bytes=0-99", 0, 99),
        ("bytes=-16", size - 16, size - 1),
        ("bytes=1000-", 1000, size - 1),
        ("bytes=10-9999999", 10, size - 1),
    ):
        part = client.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert part.content == full[first : last + 1]
    assert client.get(url, headers={"Range": "bytes=9-2"}).content == full  # ignored
    past = client.get(url, headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416 and past.headers["content-type"] == PROBLEM
    assert past.headers["content-range"] == f"bytes */{size}"
    assert client.get("/v1/items/t-x/audio").status_code == 404
    assert client.get(url.replace("vocals=0", "vocals=2")).status_code == 422


def test_a_flac_file_is_imported_served_as_it_is_and_sung(
    client: TestClient, world: Path, song: Song, tmp_path: Path
) -> None:
    soundfile = pytest.importorskip("soundfile", reason="the audio extra is not installed")
    folder = tmp_path / "flac"
    folder.mkdir()
    flac = folder / "t-y.flac"
    soundfile.write(str(flac), song.mix, song.rate, subtype="PCM_16")
    done = _segue(world, "import", "audio", str(folder))
    assert done.returncode == 0 and "1 audio files stored" in done.stdout, done.stderr
    same = client.get("/v1/items/t-y/audio", params={"vocals": 1})
    assert same.headers["content-type"] == "audio/flac" and same.content == flac.read_bytes()
    low = client.get("/v1/items/t-y/audio", params={"vocals": 0})
    assert low.status_code == 200 and low.headers["content-type"] == "audio/wav"
    out = to_float(_samples(low.content))
    sdr = 10 * np.log10(np.sum(song.accompaniment**2) / np.sum((song.accompaniment - out) ** 2))
    assert sdr >= 10.0, sdr  # as from the WAV: FLAC is lossless


def test_segue_sing_writes_the_render(world: Path, tmp_path: Path, client: TestClient) -> None:
    original = _samples((world / "audio" / f"{SONG_TRACK}.wav").read_bytes())
    same = _segue(world, "sing", SONG_TRACK, "--vocals", "1", "--out", str(tmp_path / "a.wav"))
    assert same.returncode == 0, same.stderr
    assert np.array_equal(_samples((tmp_path / "a.wav").read_bytes()), original)
    low = _segue(world, "sing", SONG_TRACK, "--vocals", "0.2", "--out", str(tmp_path / "b.wav"))
    assert low.returncode == 0 and "soft-mask" in low.stdout, low.stderr
    lowered = _samples((tmp_path / "b.wav").read_bytes())
    assert lowered.shape == original.shape and not np.array_equal(lowered, original)
    none = _segue(world, "sing", "t-x", "--out", str(tmp_path / "c.wav"))
    assert none.returncode == 2 and "segue import audio" in none.stderr


def test_segue_songs_writes_a_sung_song_per_track(world: Path, tmp_path: Path) -> None:
    made = _segue(world, "songs", str(tmp_path / "songs"), "--count", "1", "--seconds", "5")
    assert made.returncode == 0, made.stderr
    rate, samples = wavfile.read(tmp_path / "songs" / "t-x.wav")  # the first track id, sorted
    assert rate == 44100 and samples.dtype == np.int16 and samples.shape[1] == 2
    lyrics = parse_lrc((tmp_path / "songs" / "t-x.lrc").read_bytes(), "t-x.lrc")
    assert lyrics.lines and lyrics.lines[-1].end_ms <= len(samples) * 1000 // rate + 10


def test_renders_are_cached_per_step_and_method(world: Path, client: TestClient) -> None:
    from segue.jobs.sing import render_track

    cache = world / "sing-cache-test"
    with _store(world) as store:
        first = render_track(store, SONG_TRACK, 0.51, cache, "mid-side")
        again = render_track(store, SONG_TRACK, 0.49, cache, "mid-side")
        assert (first.cached, again.cached) == (False, True)
        assert again.path == first.path and (again.level, again.method) == (0.5, "mid-side")
        auto = render_track(store, SONG_TRACK, 0.5, cache)
        assert auto.path != first.path and auto.method == "soft-mask"
        same = render_track(store, SONG_TRACK, 0.99, cache)  # rounds to 1: the file itself
        assert same.path == world / "audio" / f"{SONG_TRACK}.wav" and same.method == "original"
    assert len(list(cache.rglob("*.wav"))) == 2
