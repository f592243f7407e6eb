"""The Last.fm 2K importer on the real dataset, and on small corrupted copies of its real lines."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import LASTFM_DIR
from segue.data.batch import RecordBatch
from segue.data.model import EventType, ItemKind
from segue.data.sources import read_lastfm_2k
from segue.errors import RowError, SegueError

SNAPSHOT = dt.datetime(2011, 5, 10, tzinfo=dt.UTC)  # latest tagging is 2011-05-09
FILES = (
    "artists.dat",
    "tags.dat",
    "user_artists.dat",
    "user_friends.dat",
    "user_taggedartists.dat",
)


@pytest.fixture(scope="module")
def batch() -> Iterator[RecordBatch]:
    if not LASTFM_DIR.is_dir():
        pytest.skip(f"Last.fm 2K dataset not found at {LASTFM_DIR}")
    yield read_lastfm_2k(LASTFM_DIR)


# -- the real dataset ----------------------------------------------------------------------


def test_counts_match_the_published_dataset(batch: RecordBatch) -> None:
    assert batch.counts() == {
        "items": 17_632,
        "users": 1_892,
        "tags": 11_946,
        "events": 92_834,
        "friendships": 25_434,
        "tag_assignments": 186_478,
    }
    assert len(batch.event_origins) == len(batch.events)
    assert len(batch.friendship_origins) == len(batch.friendships)
    assert len(batch.tag_assignment_origins) == len(batch.tag_assignments)


def test_latin1_tag_names_decode_to_their_accented_letters(batch: RecordBatch) -> None:
    names = {tag.id: tag.name for tag in batch.tags}
    assert names[2863] == "tropicália"
    assert names[4571] == "rock français"
    assert names[5457] == "español"
    assert names[7982] == "fußball"
    assert names[11213] == "die Ärzte"
    assert names[11676] == "düsseldorf"
    assert not any("Ã" in name for name in names.values())  # UTF-8 read as Latin-1 twice


def test_artists_are_utf8_items_with_their_page(batch: RecordBatch) -> None:
    items = {item.id: item for item in batch.items}
    assert items["18"].title == "The Crüxshadows"
    assert items["64"].title == "Röyksopp"
    assert items["158"].title == "עברי לידר"
    assert items["1"].title == "MALICE MIZER"
    assert items["1"].kind is ItemKind.ARTIST
    assert items["1"].description == "http://www.last.fm/music/MALICE+MIZER"


def test_plays_are_dated_the_day_after_the_last_tagging(batch: RecordBatch) -> None:
    assert {e.timestamp for e in batch.events} == {SNAPSHOT}
    assert max(a.timestamp for a in batch.tag_assignments) == SNAPSHOT - dt.timedelta(days=1)
    assert {u.signup_at for u in batch.users} == {SNAPSHOT}
    first = batch.events[0]  # line 2 of user_artists.dat: 2 51 13883
    assert (first.event_id, first.user_id, first.item_id, first.count) == (
        "lastfm-2k:play:2:51",
        "2",
        "51",
        13883,
    )
    assert first.type is EventType.PLAY
    assert len({e.event_id for e in batch.events}) == len(batch.events)
    assert sum(e.count for e in batch.events) > len(batch.events)


def test_tag_assignments_keep_their_day_and_unknown_artists(batch: RecordBatch) -> None:
    first = batch.tag_assignments[0]  # line 2: 2 52 13 1 4 2009
    assert (first.user_id, first.item_id, first.tag_id) == ("2", "52", 13)
    assert first.timestamp == dt.datetime(2009, 4, 1, tzinfo=dt.UTC)
    artist_ids = {item.id for item in batch.items}
    outside = {a.item_id for a in batch.tag_assignments} - artist_ids
    assert len(outside) == 390


def test_users_are_every_id_in_any_file(batch: RecordBatch) -> None:
    ids = [u.id for u in batch.users]
    assert ids == sorted(ids, key=int)
    mentioned = {e.user_id for e in batch.events}
    mentioned |= {f.user_id for f in batch.friendships} | {f.friend_id for f in batch.friendships}
    mentioned |= {a.user_id for a in batch.tag_assignments}
    assert set(ids) == mentioned
    assert (batch.friendships[0].user_id, batch.friendships[0].friend_id) == ("2", "275")


def test_origins_point_at_the_lines_and_columns(batch: RecordBatch) -> None:
    first, last = batch.event_origins[0], batch.event_origins[-1]
    assert Path(first.file).name == "user_artists.dat"
    assert (first.line, first.user_column, first.item_column) == (2, "userID", "artistID")
    assert last.line == 92_835  # header is line 1
    tagging = batch.tag_assignment_origins[-1]
    assert Path(tagging.file).name == "user_taggedartists.dat"
    assert tagging.line == 186_479
    assert batch.friendship_origins[-1].line == 25_435


def test_artist_tags_are_real_names_at_most_ten(batch: RecordBatch) -> None:
    names = {tag.name for tag in batch.tags}
    tagged = {a.item_id for a in batch.tag_assignments}
    for item in batch.items:
        assert len(item.tags) <= 10
        assert set(item.tags) <= names
        assert bool(item.tags) == (item.id in tagged)


# -- small copies of real lines ------------------------------------------------------------


def _copy(tmp_path: Path, lines: int = 40) -> Path:
    """The header and first ``lines`` rows of each file (all of tags.dat), bytes untouched."""
    folder = tmp_path / "lastfm"
    folder.mkdir()
    for name in FILES:
        if name == "tags.dat":
            shutil.copy(LASTFM_DIR / name, folder / name)
            continue
        data = (LASTFM_DIR / name).read_bytes()
        kept = data.split(b"\n")[: lines + 1]
        (folder / name).write_bytes(b"\n".join(kept) + b"\n")
    return folder


def _edit(folder: Path, name: str, line: int, new: bytes) -> None:
    """Replace 1-based ``line`` of a file, keeping its line ending."""
    rows = (folder / name).read_bytes().split(b"\n")
    ending = b"\r" if rows[line - 1].endswith(b"\r") else b""
    rows[line - 1] = new + ending
    (folder / name).write_bytes(b"\n".join(rows))


@pytest.fixture
def copy(lastfm_dir: Path, tmp_path: Path) -> Path:
    return _copy(tmp_path)


def _error(folder: Path) -> RowError:
    with pytest.raises(RowError) as info:
        read_lastfm_2k(folder)
    return info.value


def test_a_small_copy_parses_with_the_same_records(copy: Path) -> None:
    small = read_lastfm_2k(copy)
    assert small.counts()["events"] == 40
    assert small.counts()["items"] == 40
    assert small.counts()["tags"] == 11_946
    assert small.event_origins[-1].line == 41


def test_line_endings_do_not_matter(copy: Path, tmp_path: Path) -> None:
    before = read_lastfm_2k(copy)
    for name in FILES:
        data = (copy / name).read_bytes()
        flipped = data.replace(b"\r\n", b"\n") if b"\r\n" in data else data.replace(b"\n", b"\r\n")
        (copy / name).write_bytes(flipped)
    after = read_lastfm_2k(copy)
    assert after.items == before.items
    assert after.tags == before.tags
    assert after.events == before.events
    assert after.tag_assignments == before.tag_assignments
    assert after.friendships == before.friendships


def test_missing_file(copy: Path) -> None:
    (copy / "user_friends.dat").unlink()
    with pytest.raises(SegueError, match=r"missing user_friends\.dat"):
        read_lastfm_2k(copy)


def test_wrong_header(copy: Path) -> None:
    _edit(copy, "user_artists.dat", 1, b"userID\tartistID\tplays")
    err = _error(copy)
    assert (Path(err.file).name, err.line) == ("user_artists.dat", 1)
    assert "userID<TAB>artistID<TAB>weight" in err.reason


def test_too_few_fields(copy: Path) -> None:
    _edit(copy, "user_artists.dat", 5, b"2\t54")
    err = _error(copy)
    assert (Path(err.file).name, err.line, err.column) == ("user_artists.dat", 5, "weight")
    assert "expected 3" in err.reason and "got 2" in err.reason


def test_non_integer_id(copy: Path) -> None:
    _edit(copy, "user_friends.dat", 3, b"2\tfour")
    err = _error(copy)
    assert (Path(err.file).name, err.line, err.column) == ("user_friends.dat", 3, "friendID")
    assert "'four'" in err.reason


def test_invalid_utf8_in_artists(copy: Path) -> None:
    _edit(copy, "artists.dat", 4, b"3\tBare \xff Jr.\thttp://x\thttp://y")
    err = _error(copy)
    assert (Path(err.file).name, err.line, err.column) == ("artists.dat", 4, "name")
    assert "UTF-8" in err.reason and "\\xff" in err.reason


def test_impossible_tagging_date(copy: Path) -> None:
    _edit(copy, "user_taggedartists.dat", 6, b"2\t52\t13\t30\t2\t2009")
    err = _error(copy)
    assert (Path(err.file).name, err.line, err.column) == ("user_taggedartists.dat", 6, "day")


def test_tagging_of_unknown_tag(copy: Path) -> None:
    _edit(copy, "user_taggedartists.dat", 7, b"2\t52\t99999\t1\t4\t2009")
    err = _error(copy)
    assert (err.line, err.column) == (7, "tagID")


def test_zero_plays_and_repeated_pairs(copy: Path) -> None:
    _edit(copy, "user_artists.dat", 4, b"2\t53\t0")
    err = _error(copy)
    assert (err.line, err.column) == (4, "weight")
    _edit(copy, "user_artists.dat", 4, b"2\t51\t7")  # line 2 already pairs 2 and 51
    err = _error(copy)
    assert (err.line, err.column) == (4, "artistID")
    assert "line 2" in err.reason


def test_empty_artist_name(copy: Path) -> None:
    _edit(copy, "artists.dat", 9, b"8\t  \thttp://x\thttp://y")
    err = _error(copy)
    assert (Path(err.file).name, err.line, err.column) == ("artists.dat", 9, "name")


def test_top_tags_rank_by_users_then_tag_id(tmp_path: Path) -> None:
    folder = tmp_path / "mini"
    folder.mkdir()
    (folder / "artists.dat").write_bytes(b"id\tname\turl\tpictureURL\n1\tA\tu\tp\n2\tB\tu\tp\n")
    tags = b"".join(f"{i}\ttag{i}\r\n".encode() for i in range(1, 15))
    (folder / "tags.dat").write_bytes(b"tagID\ttagValue\r\n" + tags)
    (folder / "user_artists.dat").write_bytes(b"userID\tartistID\tweight\r\n10\t1\t3\r\n")
    (folder / "user_friends.dat").write_bytes(b"userID\tfriendID\r\n10\t11\r\n11\t10\r\n")
    # artist 1: tag 5 by three users, tags 7 and 3 by two, tags 1..14 (others) by one
    rows = [(u, 5) for u in (10, 11, 12)] + [(u, 7) for u in (10, 11)] + [(u, 3) for u in (12, 13)]
    rows += [(14, t) for t in range(1, 15) if t not in (3, 5, 7)]
    lines = b"".join(f"{u}\t1\t{t}\t2\t3\t2010\r\n".encode() for u, t in rows)
    header = b"userID\tartistID\ttagID\tday\tmonth\tyear\r\n"
    (folder / "user_taggedartists.dat").write_bytes(header + lines)
    batch = read_lastfm_2k(folder)
    items = {item.id: item for item in batch.items}
    assert items["1"].tags == (
        "tag5",
        "tag3",
        "tag7",
        "tag1",
        "tag2",
        "tag4",
        "tag6",
        "tag8",
        "tag9",
        "tag10",
    )
    assert items["2"].tags == ()
    assert [u.id for u in batch.users] == ["10", "11", "12", "13", "14"]
    assert {e.timestamp for e in batch.events} == {dt.datetime(2010, 3, 3, tzinfo=dt.UTC)}
