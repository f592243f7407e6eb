"""Generic CSV/TSV/Parquet import: mapping, conversions, derived event ids, located errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from segue.data.model import AgeBand, EventType, ItemKind
from segue.data.sources import ParquetRowError, parse_mapping, read_table
from segue.errors import RowError, SegueError

MAP = {"user_id": "uid", "item_id": "track", "timestamp": "ts", "type": "what"}
NOON = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def _csv(tmp_path: Path, text: str, name: str = "events.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def _row_error(path: Path, kind: str = "events", mapping=MAP, **kw) -> RowError:
    with pytest.raises(RowError) as info:
        read_table(path, kind, mapping, **kw)  # type: ignore[arg-type]
    return info.value


# -- parse_mapping -------------------------------------------------------------------------


def test_parse_mapping() -> None:
    assert parse_mapping("user_id=uid, item_id = track,timestamp=ts") == {
        "user_id": "uid",
        "item_id": "track",
        "timestamp": "ts",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("user_id", "not FIELD=COLUMN"),
        ("user_id=", "not FIELD=COLUMN"),
        ("=uid", "not FIELD=COLUMN"),
        ("user_id=a,,item_id=b", "empty entry"),
        ("user_id=a,user_id=b", "maps 'user_id' twice"),
        ("", "empty entry"),
    ],
)
def test_parse_mapping_errors(text: str, message: str) -> None:
    with pytest.raises(SegueError, match=message):
        parse_mapping(text)


# -- events from CSV -----------------------------------------------------------------------


def test_events_with_mapping_same_named_columns_and_defaults(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "uid,track,ts,count,device,notes\n"
        "u1,t1,2024-05-01T12:00:00Z,3,phone,first\n"
        "u2,t2,2024-05-01T14:00:00+02:00,,,\n",
    )
    batch = read_table(
        path,
        "events",
        {"user_id": "uid", "item_id": "track", "timestamp": "ts"},
        defaults={"type": "play", "surface": "import"},
    )
    first, second = batch.events
    assert (first.user_id, first.item_id, first.type, first.count) == ("u1", "t1", "play", 3)
    assert first.device == "phone" and first.surface == "import"
    assert first.timestamp == NOON
    assert second.timestamp == NOON  # 14:00 at +02:00 is noon UTC
    assert second.count == 1 and second.device is None  # empty cells take the model default
    assert [(o.line, o.user_column, o.item_column) for o in batch.event_origins] == [
        (2, "uid", "track"),
        (3, "uid", "track"),
    ]
    assert Path(batch.event_origins[0].file) == path


def test_timestamp_forms_agree(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "uid,track,ts,what\n"
        "u,t,2024-05-01T12:00:00Z,play\n"
        "u,t,2024-05-01 12:00:00,play\n"  # no offset: UTC
        "u,t,1714564800,play\n"  # seconds
        "u,t,1714564800000,play\n"  # milliseconds (> 1e11)
        "u,t,1714564800000000,play\n"  # microseconds (> 1e14)
        "u,t,1714564800.5,play\n",
    )
    stamps = [e.timestamp for e in read_table(path, "events", MAP).events]
    assert stamps[:5] == [NOON] * 5
    assert stamps[5] == NOON + dt.timedelta(milliseconds=500)


def test_derived_event_ids_are_stable_and_keep_repeated_rows(tmp_path: Path) -> None:
    text = (
        "uid,track,ts,what\n"
        "u1,t1,2024-05-01T12:00:00Z,play\n"
        "u1,t1,2024-05-01T12:00:00Z,play\n"  # a genuine repeat: kept, different id
        "u1,t2,2024-05-01T12:00:00Z,play\n"
    )
    ids = [e.event_id for e in read_table(_csv(tmp_path, text), "events", MAP).events]
    again = [e.event_id for e in read_table(_csv(tmp_path, text), "events", MAP).events]
    assert ids == again
    assert len(set(ids)) == 3
    assert ids[1] == ids[0] + ":1"
    # the same events written differently (epoch ms, upper-case type, extra column) agree
    other = _csv(
        tmp_path,
        "ts,what,uid,track,comment\n"
        "1714564800000,PLAY,u1,t1,a\n"
        "1714564800000,play,u1,t1,b\n"
        "1714564800000,play,u1,t2,c\n",
        "other.csv",
    )
    assert [e.event_id for e in read_table(other, "events", MAP).events] == ids


def test_explicit_event_ids_are_used(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,uid,track,ts,what\ne-1,u,t,1714564800,skip\n,u,t,1714564800,skip\n")
    events = read_table(path, "events", {**MAP, "event_id": "id"}).events
    assert events[0].event_id == "e-1"
    assert events[0].type is EventType.SKIP
    assert events[1].event_id.startswith("row:")  # an empty cell gets a derived id


def test_quoted_multiline_cells_keep_line_numbers(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        'uid,track,ts,what,session_id\nu,t,1714564800,play,"two\nlines"\nu,t,oops,play,s\n',
    )
    err = _row_error(path)
    assert (err.line, err.column) == (4, "ts")


def test_utf8_bom_and_tsv(tmp_path: Path) -> None:
    path = tmp_path / "events.tsv"
    path.write_bytes("\ufeffuid\ttrack\tts\twhat\nü\tt\t1714564800\tlike\n".encode())
    event = read_table(path, "events", MAP).events[0]
    assert (event.user_id, event.type) == ("ü", EventType.LIKE)


# -- errors --------------------------------------------------------------------------------

GOOD = "u1,t1,2024-05-01T12:00:00Z,play,1"


@pytest.mark.parametrize(
    ("bad", "column", "reason"),
    [
        ("u3,t3,2024-05-01T12:00:00Z,play,abc", "n", "expected an integer, got 'abc'"),
        ("u3,t3,2024-13-45,play,1", "ts", "bad timestamp '2024-13-45'"),
        (
            "u3,t3,2024-05-01T12:00:00Z,plya,1",
            "what",
            "unknown event type 'plya' (known: play, skip",
        ),
        ("u3,t3,2024-05-01T12:00:00Z,play,0", "n", "greater than or equal to 1"),
        ("u3,t3,2024-05-01T12:00:00Z,play,1_000", "n", "expected an integer, got '1_000'"),
        (",t3,2024-05-01T12:00:00Z,play,1", "uid", "empty cell; user_id is required"),
        ("u3,t3,2024-05-01T12:00:00Z,play", "n", "expected 5 comma-separated fields"),
        ("u3,t3,1e400,play,1", "ts", "bad timestamp"),
    ],
)
def test_bad_cells_name_line_column_and_expectation(
    tmp_path: Path, bad: str, column: str, reason: str
) -> None:
    path = _csv(tmp_path, f"uid,track,ts,what,n\n{GOOD}\n{GOOD}\n{bad}\n{GOOD}\n")
    err = _row_error(path, mapping={**MAP, "count": "n"})
    assert (err.file, err.line, err.column) == (str(path), 4, column)
    assert reason in err.reason
    assert f"line 4, column '{column}'" in str(err)


@pytest.mark.parametrize(
    ("row", "column"),
    [(b"u3,caf\xe9,1714564800,play", "track"), (b"\xff3,t,1714564800,play", "uid")],
)
def test_invalid_utf8_names_the_line_and_column(tmp_path: Path, row: bytes, column: str) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes(
        b"\xef\xbb\xbfuid,track,ts,what\nu1,t1,1714564800,play\nu2,t1,1714564800,play\n"
        + row
        + b"\n"
    )
    err = _row_error(path)
    assert (err.line, err.column) == (4, column)
    assert "UTF-8" in err.reason


def test_mapped_column_missing_from_the_file(tmp_path: Path) -> None:
    path = _csv(tmp_path, "user,track,ts,what\nu,t,1714564800,play\n")
    err = _row_error(path)
    assert (err.line, err.column) == (1, "uid")
    assert "'user'" in err.reason  # lists what the file has


def test_required_field_without_column_or_default(tmp_path: Path) -> None:
    path = _csv(tmp_path, "uid,track,ts\nu,t,1714564800\n")
    err = _row_error(path, mapping={"user_id": "uid", "item_id": "track", "timestamp": "ts"})
    assert err.line == 1 and "'type'" in err.reason and "default" in err.reason


def test_mapping_and_default_names_are_checked(tmp_path: Path) -> None:
    path = _csv(tmp_path, "uid,track,ts,what\nu,t,1714564800,play\n")
    with pytest.raises(SegueError, match="no such field; known: event_id, user_id"):
        read_table(path, "events", {**MAP, "usr": "uid"})
    with pytest.raises(SegueError, match="not a single column"):
        read_table(path, "items", {"audio": "x"})
    with pytest.raises(SegueError, match="default for 'type': unknown event type 'listen'"):
        read_table(path, "events", {"user_id": "uid"}, defaults={"type": "listen"})
    with pytest.raises(SegueError, match="unknown record kind"):
        read_table(path, "plays", MAP)  # type: ignore[arg-type]
    with pytest.raises(SegueError, match="file not found"):
        read_table(tmp_path / "events.txt", "events", MAP)  # any suffix is read as text
    with pytest.raises(SegueError, match="file not found"):
        read_table(tmp_path / "nope.csv", "events", MAP)


def test_empty_file_and_duplicate_header(tmp_path: Path) -> None:
    err = _row_error(_csv(tmp_path, ""))
    assert err.line == 1 and "header" in err.reason
    err = _row_error(_csv(tmp_path, "uid,track,uid\n"))
    assert (err.line, err.column) == (1, "uid")


# -- items and users -----------------------------------------------------------------------


def test_items_with_labels_dates_and_kind_default(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "track_id,name,tags,year,explicit,duration_ms\n"
        "t1,Song,rock| indie|,1999,yes,215000\n"
        "t2,Other,,2001-07,no,\n",
        "items.csv",
    )
    items = read_table(
        path,
        "items",
        {"id": "track_id", "title": "name", "release_date": "year"},
        defaults={"kind": "track"},
    ).items
    assert items[0].tags == ("rock", "indie")
    assert items[0].release_date == dt.date(1999, 1, 1)
    assert items[0].explicit is True and items[0].duration_ms == 215_000
    assert items[0].kind is ItemKind.TRACK
    assert items[1].release_date == dt.date(2001, 7, 1)
    assert items[1].tags == () and items[1].explicit is False


def test_items_repeat_id_is_an_error(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,kind,title\na,track,A\nb,album,B\na,track,A2\n", "items.csv")
    err = _row_error(path, "items", None)
    assert (err.line, err.column) == (4, "id")
    assert "line 2" in err.reason


def test_users_and_validation_errors_at_their_column(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "uid,joined,land,age\nu1,1714564800000,de,25-34\nu2,2024-05-01,Germany,18-24\n",
        "users.csv",
    )
    mapping = {"id": "uid", "signup_at": "joined", "country": "land", "age_band": "age"}
    err = _row_error(path, "users", mapping)
    assert (err.line, err.column) == (3, "land")
    assert "GERMANY" in err.reason and "pattern" in err.reason
    path.write_text("uid,joined,land,age\nu1,1714564800000,de,25-34\n", encoding="utf-8")
    (user,) = read_table(path, "users", mapping).users
    assert user.signup_at == dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    assert (user.country, user.age_band) == ("DE", AgeBand.A25_34)


def test_user_timezone_is_checked(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,signup_at,timezone\nu,2024-05-01,Mars/Olympus\n", "users.csv")
    err = _row_error(path, "users", None)
    assert (err.line, err.column) == (2, "timezone")
    assert "unknown IANA timezone" in err.reason


# -- Parquet -------------------------------------------------------------------------------


def _parquet(tmp_path: Path, table: pa.Table, name: str = "events.parquet") -> Path:
    path = tmp_path / name
    pq.write_table(table, path)
    return path


def test_parquet_typed_columns(tmp_path: Path) -> None:
    table = pa.table(
        {
            "uid": pa.array([7, 8], pa.int64()),
            "track": ["t1", "t2"],
            "ts": pa.array([NOON, NOON], pa.timestamp("ns", tz="UTC")),
            "what": ["play", "skip"],
            "ms_played": pa.array([1000, None], pa.int64()),
            "focus": [True, False],
        }
    )
    batch = read_table(_parquet(tmp_path, table), "events", MAP)
    first, second = batch.events
    assert (first.user_id, first.timestamp, first.ms_played, first.focus) == ("7", NOON, 1000, True)
    assert second.ms_played is None and second.type is EventType.SKIP
    assert [o.line for o in batch.event_origins] == [1, 2]


def test_parquet_and_csv_of_the_same_events_share_ids(tmp_path: Path) -> None:
    table = pa.table(
        {
            "uid": ["u1", "u1"],
            "track": ["t1", "t1"],
            "ts": pa.array([1714564800000, 1714564800000], pa.int64()),
            "what": ["play", "play"],
        }
    )
    from_parquet = read_table(_parquet(tmp_path, table), "events", MAP).events
    csv = _csv(tmp_path, "uid,track,ts,what\n" + "u1,t1,2024-05-01T12:00:00Z,play\n" * 2)
    from_csv = read_table(csv, "events", MAP).events
    assert [e.event_id for e in from_parquet] == [e.event_id for e in from_csv]


def test_parquet_errors_say_row(tmp_path: Path) -> None:
    table = pa.table(
        {
            "uid": ["u1", "u2", "u3"],
            "track": ["t", "t", "t"],
            "ts": ["2024-05-01", "x", "2024-05-02"],
            "what": ["play"] * 3,
        }
    )
    with pytest.raises(ParquetRowError) as info:
        read_table(_parquet(tmp_path, table), "events", MAP)
    err = info.value
    assert (err.line, err.column) == (2, "ts")
    assert str(err).startswith(f"{tmp_path / 'events.parquet'}, row 2, column 'ts': bad timestamp")


def test_parquet_schema_and_file_errors(tmp_path: Path) -> None:
    path = _parquet(tmp_path, pa.table({"uid": ["u"], "track": ["t"], "what": ["play"]}))
    with pytest.raises(
        SegueError, match="column 'ts' \\(mapped to timestamp\\) is not in the file"
    ):
        read_table(path, "events", MAP)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(SegueError, match="not a readable Parquet file"):
        read_table(junk, "events", MAP)
