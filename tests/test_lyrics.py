"""Synced lyrics: the LRC / enhanced-LRC parser, its refusals, the lookup by time, the
synthetic world's lyrics, and the store's lyrics and audio rows on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from segue.data.lyrics import BACKGROUND, LEAD, Lyrics, parse_lrc, to_lrc
from segue.data.model import Item, ItemKind
from segue.data.synth.lyrics import synthetic_lyrics
from segue.errors import RowError, StoreError
from segue.store import AudioFile, Store, StoredLyrics

ENHANCED = """[ti:Late Kingdom]
[ar:First Compass]
[offset:+100]
[00:10.10]<00:10.10>When the <00:10.60>night <00:11.10>comes <00:11.60>
[bg: <00:11.20>(night <00:11.40>comes) <00:11.90>]
[00:12.10]v2: <00:12.10>I'll <00:12.40>be <00:12.70>there <00:13.10>
[00:15.00]
[00:16.00]bg: ooh ooh
"""


def test_enhanced_lrc_lines_words_singers_and_offset() -> None:
    lyr = parse_lrc(ENHANCED, "a.lrc")
    assert lyr.meta["ti"] == "Late Kingdom" and lyr.meta["offset"] == "+100"
    first, second, third = lyr.lines
    # offset +100: everything 100 ms sooner
    assert (first.start_ms, first.end_ms) == (10_000, 12_000)  # ends where the next starts
    assert first.text == "When the night comes" and first.singer == LEAD and first.timed_words
    lead = [(w.text, w.start_ms, w.end_ms) for w in first.words if w.singer == LEAD]
    assert lead == [
        ("When the", 10_000, 10_500),
        ("night", 10_500, 11_000),
        ("comes", 11_000, 11_500),
    ]
    back = [(w.text, w.start_ms, w.end_ms) for w in first.words if w.singer == BACKGROUND]
    assert back == [("(night", 11_100, 11_300), ("comes)", 11_300, 11_800)]
    assert second.singer == "v2" and second.end_ms == 14_900  # the empty line ends it
    assert [w.text for w in second.words] == ["I'll", "be", "there"]
    assert third.singer == BACKGROUND and not third.timed_words
    assert [(w.start_ms, w.end_ms) for w in third.words] == [(15_900, 18_400), (18_400, 20_900)]


def test_lookup_by_time() -> None:
    lyr = parse_lrc(ENHANCED, "a.lrc")
    assert lyr.at(9_999).line is None and lyr.at(9_999).next_line == 0
    pos = lyr.at(10_700)
    assert (pos.line, pos.word, pos.next_line) == (0, 1, 1)
    assert lyr.lines[0].words[pos.word].text == "night"
    assert lyr.at(11_700).word is not None  # the background echo is still sung
    assert lyr.lines[0].words[lyr.at(11_700).word].singer == BACKGROUND
    assert lyr.at(14_950).line is None and lyr.at(14_950).next_line == 2  # the break
    assert lyr.at(10**9).line is None and lyr.at(10**9).next_line is None


def test_syllables_bom_latin1_and_utf16() -> None:
    body = "[00:01.00]<00:01.00>Hel<00:01.30>lo <00:01.60>café <00:02.00>\n"
    for raw in (
        b"\xef\xbb\xbf" + body.encode("utf-8"),
        body.encode("latin-1"),
        body.encode("utf-16"),
    ):
        lyr = parse_lrc(raw, "x.lrc")
        assert lyr.lines[0].text == "Hello café"
        assert [w.text for w in lyr.lines[0].words] == ["Hel", "lo", "café"]
        assert lyr.lines[0].words[0].joined and not lyr.lines[0].words[1].joined


def test_repeated_timestamps_are_sorted_and_plain_lines_spread() -> None:
    lyr = parse_lrc("[00:20.00][00:05.00]Chorus line\n[00:10.00]Verse (echo)\n", "r.lrc")
    assert [(ln.start_ms, ln.text) for ln in lyr.lines] == [
        (5_000, "Chorus line"),
        (10_000, "Verse (echo)"),
        (20_000, "Chorus line"),
    ]
    verse = lyr.lines[1]
    assert [w.singer for w in verse.words] == [LEAD, BACKGROUND]
    assert verse.words[0].start_ms == 10_000 and verse.words[-1].end_ms == 20_000
    assert lyr.lines[-1].end_ms == 25_000  # nothing says: 5 s


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("[00:01.00]a\n[00:75.00]b\n", 2, "bad timestamp [00:75.00]"),
        ("[00:01.00]a\n[0a:10.00]b\n", 2, "bad timestamp [0a:10.00]"),
        ("[ti:x]\n[00:05.00]a\n[00:04.00]b\n", 3, "comes before line 2's [00:05.00]"),
        ("[00:01.00]<00:01.00>a <00:00.50>b\n", 1, "goes back"),
        ("[00:02.00]<00:01.00>a\n", 1, "before its line"),
        ("[00:01.00]<00:01.x0>a\n", 1, "bad word timestamp"),
        ("[00:01.00]a\n[00:02.00]Hel<00:02.50>lo\n", 2, "text 'Hel' before the first word"),
        ("[00:01.00]a\njust words\n", 2, "no [mm:ss.xx] timestamp"),
        ("[bg: ooh]\n[00:01.00]a\n", 1, "needs a timed line before it"),
        ("[ti:only tags]\n", 1, "no timed lyrics line"),
        ("[00:01.00]a\n[offset:soon]\n", 2, "bad [offset:soon]"),
    ],
)
def test_malformed_files_are_refused_with_file_and_line(text: str, line: int, says: str) -> None:
    with pytest.raises(RowError) as caught:
        parse_lrc(text, "songs/bad.lrc")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"songs/bad.lrc, line {line}: "), message
    assert says in message, message


def test_lrc_round_trip_and_json_round_trip() -> None:
    lyr = parse_lrc(ENHANCED, "a.lrc")
    again = parse_lrc(to_lrc(lyr).replace("[offset:+100]\n", ""), "b.lrc")
    assert again.lines == lyr.lines
    assert Lyrics.from_json(lyr.to_json()) == lyr


def test_synthetic_lyrics_are_deterministic_timed_and_fit_the_track() -> None:
    a = synthetic_lyrics(7, "trk-000001", "Golden River", 200_000)
    assert a == synthetic_lyrics(7, "trk-000001", "Golden River", 200_000)
    assert a != synthetic_lyrics(8, "trk-000001", "Golden River", 200_000)
    assert len(a.lines) >= 16 and all(ln.timed_words for ln in a.lines)
    assert a.lines[-1].end_ms <= 200_000
    starts = [ln.start_ms for ln in a.lines]
    assert starts == sorted(starts) and all(s % 10 == 0 for s in starts)
    assert any(w.singer == BACKGROUND for ln in a.lines for w in ln.words)  # chorus echoes
    assert sum("golden river" in ln.text.lower() for ln in a.lines) >= 4  # the hook
    assert parse_lrc(to_lrc(a), "synth.lrc") == a  # what a user exports reads back


# -- the store ------------------------------------------------------------------------------
def _track(i: int) -> Item:
    return Item(id=f"t{i}", kind=ItemKind.TRACK, title=f"Song {i}")


def test_store_puts_replaces_and_reads_lyrics_and_audio(store: Store) -> None:
    store.upsert_items([_track(1), _track(2)])
    lyr = parse_lrc(ENHANCED, "a.lrc")
    row = StoredLyrics("t1", "lrc", "a.lrc", lyr.to_json(), 1_000)
    assert (
        store.put_lyrics([row, StoredLyrics("t2", "synth", "segue synth", '{"seed": 3}', 5)]) == 2
    )
    got = store.get_lyrics("t1")
    assert got == row and Lyrics.from_json(got.body) == lyr
    assert json.loads(store.get_lyrics("t2").body) == {"seed": 3}
    assert store.get_lyrics("t3") is None
    store.put_lyrics([StoredLyrics("t1", "lrc", "b.lrc", lyr.to_json(), 2_000)])
    assert store.get_lyrics("t1").source == "b.lrc"  # replaced whole
    store.put_audio([AudioFile("t1", "/music/t1.wav", 7)])
    assert store.get_audio("t1") == AudioFile("t1", "/music/t1.wav", 7)
    assert store.get_audio("t2") is None


def test_store_refuses_lyrics_of_unknown_items_and_writes_none(store: Store) -> None:
    store.upsert_items([_track(1)])
    rows = [
        StoredLyrics("t1", "lrc", "a.lrc", "{}", 1),
        StoredLyrics("nope", "lrc", "b.lrc", "{}", 1),
    ]
    with pytest.raises(StoreError, match="'nope'"):
        store.put_lyrics(rows)
    assert store.get_lyrics("t1") is None
    with pytest.raises(StoreError, match="format"):
        store.put_lyrics([StoredLyrics("t1", "txt", "a.txt", "", 1)])
    with pytest.raises(StoreError, match="'ghost'"):
        store.put_audio([AudioFile("ghost", "/x.wav", 1)])
