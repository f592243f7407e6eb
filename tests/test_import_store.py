"""Parse → ingest, end to end on both backends: counts, idempotence, all-or-nothing failures."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from segue.data.sources import read_lastfm_2k, read_table
from segue.errors import RowError
from segue.store.base import TABLES, Store

EVENT_MAP = {"user_id": "uid", "item_id": "track", "timestamp": "ts", "type": "what"}


def _counts(store: Store) -> dict[str, int]:
    return {table: store.count(table) for table in TABLES}


def _data_lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().split(b"\n")[1:] if line.strip()]


# -- Last.fm -------------------------------------------------------------------------------


def _lastfm_subset(source: Path, folder: Path, plays: int = 300) -> Path:
    """Real lines: the first ``plays`` plays, their artists, all tags, some taggings and links."""
    folder.mkdir()
    play_lines = (source / "user_artists.dat").read_bytes().split(b"\n")[: plays + 1]
    (folder / "user_artists.dat").write_bytes(b"\n".join(play_lines) + b"\n")
    wanted = {line.split(b"\t")[1] for line in play_lines[1:]}
    artists = (source / "artists.dat").read_bytes().split(b"\n")
    kept = [artists[0]] + [line for line in artists[1:] if line.split(b"\t")[0] in wanted]
    (folder / "artists.dat").write_bytes(b"\n".join(kept) + b"\n")
    shutil.copy(source / "tags.dat", folder / "tags.dat")
    for name, lines in (("user_taggedartists.dat", 400), ("user_friends.dat", 150)):
        head = (source / name).read_bytes().split(b"\n")[: lines + 1]
        (folder / name).write_bytes(b"\n".join(head) + b"\n")
    return folder


def test_lastfm_subset_import_then_reimport_adds_nothing(
    store: Store, lastfm_dir: Path, tmp_path: Path
) -> None:
    folder = _lastfm_subset(lastfm_dir, tmp_path / "lastfm")
    batch = read_lastfm_2k(folder)
    report = store.ingest(batch)
    expected = {
        "events": len(_data_lines(folder / "user_artists.dat")),
        "items": len(_data_lines(folder / "artists.dat")),
        "tags": 11_946,
        "tag_assignments": len(_data_lines(folder / "user_taggedartists.dat")),
        "friendships": len(_data_lines(folder / "user_friends.dat")),
        "users": len(batch.users),
    }
    assert _counts(store) == expected
    assert report.inserted["events"] == 300
    assert store.get_item("51").title == "Duran Duran"  # artists.dat line of id 51
    assert store.tags()[7982] == "fußball"

    again = store.ingest(read_lastfm_2k(folder))
    assert _counts(store) == expected
    assert again.inserted["events"] == 0 and again.ignored["events"] == 300
    assert again.inserted["friendships"] == 0 and again.ignored["friendships"] == 150
    assert again.inserted["tag_assignments"] == 0 and again.ignored["tag_assignments"] == 400


@pytest.mark.slow
def test_full_lastfm_import(store: Store, lastfm_dir: Path) -> None:
    store.ingest(read_lastfm_2k(lastfm_dir))
    expected = {
        "items": 17_632,
        "users": 1_892,
        "tags": 11_946,
        "events": 92_834,
        "friendships": 25_434,
        "tag_assignments": 186_478,
    }
    assert _counts(store) == expected
    log = store.interactions()
    assert len(log) == 92_834
    assert int(log.count.sum()) == sum(
        int(line.split(b"\t")[2]) for line in _data_lines(lastfm_dir / "user_artists.dat")
    )
    again = store.ingest(read_lastfm_2k(lastfm_dir))
    assert _counts(store) == expected
    assert again.ignored["events"] == 92_834 and again.inserted["events"] == 0


# -- CSV -----------------------------------------------------------------------------------


@pytest.fixture
def catalog(store: Store, tmp_path: Path) -> Store:
    """Users u1, u2; tracks t1, t2; one event already stored."""
    users = tmp_path / "users.csv"
    users.write_text("id,signup_at\nu1,2024-01-01\nu2,2024-02-01\n", encoding="utf-8")
    items = tmp_path / "items.csv"
    items.write_text("id,title\nt1,One\nt2,Two\n", encoding="utf-8")
    first = tmp_path / "first.csv"
    first.write_text("uid,track,ts,what\nu1,t1,2024-05-01T12:00:00Z,play\n", encoding="utf-8")
    store.ingest(read_table(users, "users", None))
    store.ingest(read_table(items, "items", None, defaults={"kind": "track"}))
    store.ingest(read_table(first, "events", EVENT_MAP))
    return store


def _write(tmp_path: Path, body: bytes) -> Path:
    path = tmp_path / "events.csv"
    path.write_bytes(b"uid,track,ts,what\n" + body)
    return path


def test_csv_events_land_and_reimport_is_idempotent(catalog: Store, tmp_path: Path) -> None:
    path = _write(
        tmp_path, b"u1,t2,1714567890,play\nu2,t1,1714567890,skip\nu2,t1,1714567890,skip\n"
    )
    before = _counts(catalog)
    report = catalog.ingest(read_table(path, "events", EVENT_MAP))
    assert report.inserted["events"] == 3  # the repeated row is a second skip, kept
    assert catalog.count("events") == before["events"] + 3
    again = catalog.ingest(read_table(path, "events", EVENT_MAP))
    assert (again.inserted["events"], again.ignored["events"]) == (0, 3)
    assert catalog.count("events") == before["events"] + 3
    stamps = catalog.interactions().ts_ms
    assert int(stamps.max()) == 1_714_567_890_000


def test_unknown_user_on_third_row_fails_whole_file(catalog: Store, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        b"u1,t2,2024-05-01T13:00:00Z,play\nu2,t2,2024-05-01T13:00:00Z,play\n"
        b"u9,t1,2024-05-01T13:00:00Z,play\nu1,t1,2024-05-01T14:00:00Z,play\n",
    )
    before = _counts(catalog)
    with pytest.raises(RowError) as info:
        catalog.ingest(read_table(path, "events", EVENT_MAP))
    assert (Path(info.value.file), info.value.line, info.value.column) == (path, 4, "uid")
    assert "u9" in info.value.reason
    assert _counts(catalog) == before


def test_unknown_item_names_the_item_column(catalog: Store, tmp_path: Path) -> None:
    path = _write(tmp_path, b"u1,t2,1714567890,play\nu1,t7,1714567890,play\n")
    before = _counts(catalog)
    with pytest.raises(RowError) as info:
        catalog.ingest(read_table(path, "events", EVENT_MAP))
    assert (info.value.line, info.value.column) == (3, "track")
    assert _counts(catalog) == before


@pytest.mark.parametrize(
    ("third_row", "column"),
    [
        (b"u1,t1,2024-13-45,play", "ts"),
        (b"u1,t\xe9,2024-05-01T13:00:00Z,play", "track"),
    ],
    ids=["bad-timestamp", "invalid-utf8"],
)
def test_bad_third_row_writes_nothing(
    catalog: Store, tmp_path: Path, third_row: bytes, column: str
) -> None:
    path = _write(
        tmp_path,
        b"u1,t2,2024-05-01T13:00:00Z,play\nu2,t2,2024-05-01T13:00:00Z,play\n" + third_row + b"\n",
    )
    before = _counts(catalog)
    with pytest.raises(RowError) as info:
        catalog.ingest(read_table(path, "events", EVENT_MAP))
    assert (info.value.line, info.value.column) == (4, column)
    assert _counts(catalog) == before
    assert catalog.interactions().ts_ms.tolist() == [
        int(dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC).timestamp() * 1000)
    ]
