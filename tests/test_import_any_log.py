"""Issue 18, item 1: a log imported as it comes — MovieLens-100K-shaped raw files (headerless
tab-separated ratings, a pipe-separated Latin-1 catalog with month-name dates and 19 genre
flags, M/F genders, a genre list) from raw files to train and evaluate with CLI commands
alone; sniffing, dry runs, chunked streaming and the columnar path's agreement with the
row-by-row reader, on both store backends."""

from __future__ import annotations

import datetime as dt
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segue.data.log import InteractionLog
from segue.data.model import Event, Gender
from segue.data.sources.tabular import ReadOptions, open_reader, read_table
from segue.errors import RowError, SegueError
from segue.jobs.ingest import import_table
from segue.store import Store, open_store

GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
RATING_MAP = "user_id=user,item_id=item,rating=rating,timestamp=ts"


def _ml_files(folder: Path, users: int = 30, items: int = 40, ratings: int = 600) -> Path:
    """Made-up files in MovieLens 100K's shapes (not its data)."""
    rng = random.Random(5)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)) + "\n")
    lines = []
    for i in range(1, items + 1):
        flags = ["0"] * 19
        flags[1 + i % 18] = "1"
        flags[1 + (i * 7) % 18] = "1"
        title = "Café Ölgemälde (1995)" if i == 2 else f"Film {i} (1994)"
        date = "01-Jan-1995" if i == 2 else f"{1 + i % 28:02d}-Mar-1994"
        lines.append(f"{i}|{title}|{date}||http://example.org/{i}|" + "|".join(flags))
    (folder / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    (folder / "u.user").write_text(
        "".join(f"{u}|{20 + u}|{'MF'[u % 2]}|writer|0{u:04d}\n" for u in range(1, users + 1))
    )
    seen: set[tuple[int, int]] = set()
    rows = []
    ts = 874_965_758
    while len(rows) < ratings:
        u, i = rng.randint(1, users), rng.randint(1, items)
        if (u, i) in seen:
            continue
        seen.add((u, i))
        ts += rng.randint(1, 5000)
        rows.append(f"{u}\t{i}\t{rng.randint(1, 5)}\t{ts}\n")
    (folder / "u.data").write_text("".join(rows))
    return folder


def _segue(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEGUE_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    for name in ("SEGUE_DATABASE_URL", "SEGUE_REDIS_URL", "SEGUE_REDIS_PREFIX"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", "from segue.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done


def test_movielens_shaped_files_to_train_and_evaluate_with_cli_alone(tmp_path: Path) -> None:
    raw = _ml_files(tmp_path / "raw")
    data = tmp_path / "data"
    dry = _segue(
        data, "import", "csv", str(raw / "u.data"), "--kind", "events",
        "--columns", "user,item,rating,ts", "--map", RATING_MAP, "--default", "type=play",
        "--dry-run",
    )  # fmt: skip
    assert "600 of 600 rows would import as events with 30 new users and 40 new items" in (
        dry.stdout
    )
    assert "delimiter tab" in dry.stdout
    # a dry run writes no store: only its line in the import status log (jobs/import_log.py)
    assert [p.name for p in data.iterdir()] == ["imports.jsonl"]
    _segue(
        data, "import", "csv", str(raw / "u.data"), "--kind", "events",
        "--columns", "user,item,rating,ts", "--map", RATING_MAP, "--default", "type=play",
    )  # fmt: skip
    items = _segue(
        data, "import", "csv", str(raw / "u.item"), "--kind", "items", "--no-header",
        "--map", "id=1,title=2,release_date=3", "--default", "kind=video",
        "--flags", "genre=6-24", "--flag-names", str(raw / "u.genre"),
    )  # fmt: skip
    assert "encoding cp1252" in items.stdout and "delimiter pipe" in items.stdout
    _segue(
        data, "import", "csv", str(raw / "u.user"), "--kind", "users",
        "--columns", "id,age,gender,occupation,zip", "--map", "id=id,gender=gender",
        "--values", "gender=M:male,F:female",
    )  # fmt: skip
    store = open_store(f"sqlite:///{data / 'segue.sqlite'}")
    try:
        film = store.get_item("2")
        assert film is not None and film.title == "Café Ölgemälde (1995)"
        assert film.release_date == dt.date(1995, 1, 1)
        assert film.genres == (GENRES[1 + 2 % 18], GENRES[1 + 14 % 18])
        user = store.get_user("3")
        assert user is not None and user.gender is Gender.FEMALE  # 'MF'[3 % 2]
        other = store.get_user("2")
        assert other is not None and other.gender is Gender.MALE
        log = store.interactions()
        assert len(log) == 600 and set(np.unique(log.rating)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
        first = int(log.ts_ms[log.user_ids[log.user] == "3"].min())
        assert int(user.signup_at.timestamp() * 1000) == first  # kept from the first event
    finally:
        store.close()
    _segue(data, "train", "--models", "popularity,ease")
    report = _segue(data, "evaluate", "--models", "popularity,ease", "--protocol", "random")
    assert "| ease |" in report.stdout and "NDCG@10" in report.stdout
    positive = _segue(
        data, "evaluate", "--models", "popularity", "--protocol", "random",
        "--positive", "rating>=4", "--weight-by", "rating",
    )  # fmt: skip
    assert "| popularity |" in positive.stdout


def test_columnar_chunks_agree_with_the_row_by_row_reader(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    rows = ["u1;t1;2024-05-01T12:00:00Z;4.5;play", "u1;t1;2024-05-01T12:00:00Z;4.5;play"]
    rows += [f"u{i % 7};t{i % 5};{1714564800 + i};{i % 5 + 1};PLAY" for i in range(40)]
    rows += ["u1;t1;1714564800000;;skip", "u1;t1;1714564800000;;skip"]  # epoch ms, repeated
    path.write_text("user;item;when;stars;what\n" + "\n".join(rows) + "\n")
    mapping = {"user_id": "user", "item_id": "item", "timestamp": "when", "rating": "stars"}
    mapping["type"] = "what"
    expected = read_table(path, "events", mapping).events
    reader = open_reader(path, "events", mapping)
    chunks = list(reader.chunks(size=9))  # repeats fall across chunk boundaries
    got = [
        (str(c.log.event_id[i]), c.log.ts_ms[i], c.log.rating[i], int(c.lines[i]))
        for c in chunks
        for i in range(len(c))
        if c.log is not None
    ]
    assert [g[0] for g in got] == [e.event_id for e in expected]
    assert got[1][0] == got[0][0] + ":1" and got[-1][0] == got[-2][0] + ":1"
    assert [g[1] for g in got] == [int(e.timestamp.timestamp() * 1000) for e in expected]
    assert np.isnan(got[-1][2]) and got[0][2] == 4.5
    assert [g[3] for g in got] == list(range(2, len(rows) + 2))


def test_sniffing_semicolons_cp1252_and_a_header_that_is_data(tmp_path: Path) -> None:
    path = tmp_path / "items.data"
    path.write_bytes("id;title;genres\nx1;Caf\u00e9 \u20ac;rock\n".encode("cp1252"))
    reader = open_reader(path, "items", defaults={"kind": "track"})
    assert reader.table.dialect["encoding"] == "cp1252"
    assert reader.table.dialect["delimiter"] == "semicolon"
    assert read_table(path, "items", defaults={"kind": "track"}).items[0].title == "Café €"
    headless = tmp_path / "u.data"
    headless.write_text("196\t242\t3\t881250949\n")
    with pytest.raises(RowError, match=r"looks like data.*--no-header"):
        open_reader(headless, "events")
    named = open_reader(headless, "events", {"user_id": "1", "item_id": "2", "timestamp": "4"},
                        defaults={"type": "play"}, options=ReadOptions(header=False))  # fmt: skip
    assert named.records().events[0].user_id == "196"


def test_unmapped_optional_columns_are_ignored_unless_auto_map(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text("id,gender,signup_at\nu1,M,2024-01-01\n")
    off = ReadOptions(auto_map=False)
    user = read_table(path, "users", options=off).users[0]
    assert user.gender is None  # 'M' is not read silently
    with pytest.raises(RowError, match="unknown gender 'M'"):
        read_table(path, "users", options=ReadOptions(auto_map=True))
    mapped = ReadOptions(auto_map=False, values={"gender": {"M": "male"}})
    assert read_table(path, "users", {"gender": "gender"}, options=mapped).users[0].gender == (
        Gender.MALE
    )


def test_dry_run_lists_errors_and_writes_nothing(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "plays.csv"
    path.write_text("uid,track,ts\nu1,t1,1714564800\nu2,t2,not-a-time\nu3,,1714564800\n")
    mapping = {"user_id": "uid", "item_id": "track", "timestamp": "ts"}
    result = import_table(store, path, "events", mapping, defaults={"type": "play"}, dry_run=True)
    assert (result.rows, result.records, result.error_count) == (3, 1, 2)
    assert result.errors[0].startswith(f"{path}, line 3, column 'ts': bad timestamp")
    assert result.errors[1].startswith(f"{path}, line 4, column 'track': empty cell")
    assert store.count("events") == 0 and store.count("users") == 0


def test_events_create_users_in_chunks_or_refuse(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "plays.tsv"
    path.write_text("uid\ttrack\tts\nu1\tt1\t1714564900\nu2\tt1\t1714564900\nu1\tt2\t1714564800\n")
    mapping = {"user_id": "uid", "item_id": "track", "timestamp": "ts"}
    with pytest.raises(RowError) as refused:
        import_table(store, path, "events", mapping, defaults={"type": "play"},
                     create_missing=False)  # fmt: skip
    assert (refused.value.line, refused.value.column) == (2, "uid")
    assert store.count("users") == 0
    result = import_table(store, path, "events", mapping, defaults={"type": "play"}, chunk_rows=2)
    assert result.report.inserted["events"] == 3 and result.created_users == 2
    first = store.get_user("u1")
    assert first is not None and first.signup_at.timestamp() == 1714564800  # from chunk 2


def test_users_without_signup_keep_the_stored_one(store: Store, tmp_path: Path) -> None:
    plays = tmp_path / "plays.csv"
    plays.write_text("uid,track,ts\nu1,t1,1714564800\n")
    mapping = {"user_id": "uid", "item_id": "track", "timestamp": "ts"}
    import_table(store, plays, "events", mapping, defaults={"type": "play"})
    users = tmp_path / "users.csv"
    users.write_text("id,country\nu1,de\nu9,fr\n")
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    import_table(store, users, "users", {"country": "country"})
    kept, new = store.get_user("u1"), store.get_user("u9")
    assert kept is not None and kept.signup_at.timestamp() == 1714564800 and kept.country == "DE"
    assert new is not None and new.signup_at >= before


def test_bad_options_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(SegueError, match="unknown encoding"):
        open_reader(path, "events", options=ReadOptions(encoding="klingon"))
    with pytest.raises(SegueError, match="--columns names 3 columns but the line has 2"):
        open_reader(path, "events", options=ReadOptions(columns=("a", "b", "c")))


def test_piped_import_tables_are_whole(tmp_path: Path) -> None:
    """Item 5: piped, the mapping and first rows print as Markdown, no cell cut to fit 80
    columns (a long title and every field of the row are all there)."""
    title = "A Very Long Title " * 12 + "(1995)"
    path = tmp_path / "items.txt"
    path.write_text(f"id|name|year\nx1|{title}|01-Jan-1995\n")
    shown = _segue(
        tmp_path / "data", "import", "csv", str(path), "--kind", "items",
        "--map", "title=name,release_date=year", "--default", "kind=track", "--dry-run",
    )  # fmt: skip
    assert f"| {title.strip()} |" in shown.stdout and "1995-01-01" in shown.stdout
    assert "| release_date | year (mapped) |" in shown.stdout
    assert "…" not in shown.stdout


def test_ratings_as_values_and_as_the_positive_threshold(tmp_path: Path) -> None:
    """Item 2: a rated event weighs its rating when asked (unrated ones their count), and
    --positive keeps only the pairs meeting the condition as relevant."""
    from segue.dataset import Interactions
    from segue.jobs.evaluate import positive_pairs

    path = tmp_path / "r.tsv"
    path.write_text("u1\ti1\t5\t1714564800\nu1\ti2\t2\t1714564801\nu2\ti1\t\t1714564802\n")
    mapping = {"user_id": "1", "item_id": "2", "rating": "3", "timestamp": "4"}
    events = read_table(
        path, "events", mapping, defaults={"type": "play"}, options=ReadOptions(header=False)
    ).events
    log = InteractionLog.from_events(events)
    counted = Interactions.from_log(log)
    rated = Interactions.from_log(log, values="rating")
    assert counted.pairs.value.tolist() == [1.0, 1.0, 1.0]
    assert rated.pairs.value.tolist() == [5.0, 2.0, 1.0]  # u1·i1, u1·i2, u2·i1 (unrated)
    liked = positive_pairs(log, "rating >= 4")
    assert len(liked.pairs) == 1 and liked.same_space(counted)
    with pytest.raises(SegueError, match="not a rating condition"):
        positive_pairs(log, "stars>=4")
    with pytest.raises(SegueError, match="no event qualifies"):
        positive_pairs(log, "rating>5")


def test_occurrence_counts_match_a_plain_dict_in_any_mix_of_calls() -> None:
    """The compact counter behind derived event ids (sorted prefixes + repeats) against the
    dict it replaces, over chunked and one-at-a-time calls interleaved."""
    from segue.data.sources.tabular import _Occurrences

    rng = random.Random(1)
    counter, plain = _Occurrences(), {}
    for _ in range(60):
        if rng.random() < 0.5:
            keys = [rng.randint(0, 300) for _ in range(rng.randint(0, 150))]
            expected = []
            for key in keys:
                expected.append(plain.get(key, 0))
                plain[key] = plain.get(key, 0) + 1
            assert counter.take(np.array(keys, dtype=np.uint64)).tolist() == expected
        else:
            for _ in range(rng.randint(0, 40)):
                key = rng.randint(0, 300)
                assert counter.take_one(key) == plain.get(key, 0)
                plain[key] = plain.get(key, 0) + 1


def _both_paths(path: Path, mapping: dict[str, str], **kw: object) -> tuple[list, list]:
    """(row by row, columnar in small pyarrow blocks): id, time ms, rating, line per event."""
    expected = read_table(path, "events", mapping, **kw).events  # type: ignore[arg-type]
    reader = open_reader(path, "events", mapping, **kw)  # type: ignore[arg-type]
    reader.block_bytes = 96  # a few lines a block: every kind of block boundary is crossed
    chunks = list(reader.chunks(size=7))
    assert reader.rows_read == sum(len(c) for c in chunks)
    got = [
        (str(c.log.event_id[i]), int(c.log.ts_ms[i]), float(c.log.rating[i]), int(c.lines[i]))
        for c in chunks
        if c.log is not None
        for i in range(len(c))
    ]
    want = [
        (e.event_id, int(e.timestamp.timestamp() * 1000), np.nan if e.rating is None else e.rating)
        for e in expected
    ]
    return want, got


def test_pyarrow_blocks_agree_with_the_row_reader_on_awkward_files(tmp_path: Path) -> None:
    """pyarrow parses the clean blocks; blank lines, CRLF, a BOM, Latin-1 ids, padded cells,
    repeated rows and (from there on) quoted cells go through the csv module; every event's
    id, time, rating and line are the row-by-row reader's."""
    from segue.data.sources._tables import ArrowBlock, csv_blocks

    lines = ["user|item|when|stars"]
    for i in range(60):
        lines.append(f"u{i % 7}|caf\u00e9{i % 5}|{1714564800 + i * 3}|{i % 5 + 1}")
    lines[10] = " u1 |caf\u00e90| 1714564800|4.5"  # padded: stripped ids, a non-epoch form
    lines[11] = lines[12] = "u1|t1|2024-05-01T12:00:00Z|"  # repeated content, no rating
    lines[20] = ""  # a blank line
    lines[30] = "u2|t2|1714564800000|2\r"  # CRLF, epoch milliseconds
    lines[50] = 'u3|"t|3"|1714564801|3'  # a quoted pipe: the csv module from here on
    path = tmp_path / "ratings.txt"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n")
    mapping = {"user_id": "user", "item_id": "item", "timestamp": "when", "rating": "stars"}
    want, got = _both_paths(path, mapping, defaults={"type": "play"})
    assert [g[:2] for g in got] == [w[:2] for w in want]
    np.testing.assert_array_equal([g[2] for g in got], [w[2] for w in want])
    numbered = [n for n, text in enumerate(lines, start=1) if text and n > 1]
    assert [g[3] for g in got] == numbered
    assert got[11][0] == got[10][0] + ":1"
    reader = open_reader(path, "events", mapping, defaults={"type": "play"})
    parts = list(csv_blocks(reader.table.source, reader.table.columns, 96))  # type: ignore[arg-type]
    arrow = [p for p in parts if isinstance(p, ArrowBlock)]
    assert arrow and len(arrow) < len(parts)  # both kinds of block were read

    latin = tmp_path / "latin.data"  # headerless, tab-separated, Latin-1
    rows = [f"n\u00e9{i % 4}\t{i % 3}\t{i % 5 + 1}\t{881250949 + i}" for i in range(40)]
    latin.write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    options = ReadOptions(columns=("user", "item", "rating", "ts"))
    want, got = _both_paths(latin, RATING_MAP_DICT, defaults={"type": "play"}, options=options)
    assert got == [(*w, n) for n, w in enumerate(want, start=1)]
    sniffed = open_reader(latin, "events", RATING_MAP_DICT, defaults={"type": "play"},
                          options=options)  # fmt: skip
    assert sniffed.table.dialect["encoding"] in ("cp1252", "latin-1")
    assert sniffed.table.source is not None  # Latin-1 is read in pyarrow blocks too


RATING_MAP_DICT = {"user_id": "user", "item_id": "item", "rating": "rating", "timestamp": "ts"}


@pytest.mark.parametrize(
    ("bad", "column", "reason"),
    [
        ("u9\tt9\tfive\t881250949", "rating", "expected a number"),
        ("u9\tt9\t3\t88125094x", "ts", "bad timestamp"),
        ("u9\tt9\t3", "ts", "expected 4 tab-separated fields"),
        ("\tt9\t3\t881250949", "user", "empty cell; user_id is required"),
    ],
)
def test_a_bad_cell_inside_a_pyarrow_block_is_named_and_nothing_is_stored(
    store: Store, tmp_path: Path, bad: str, column: str, reason: str
) -> None:
    path = tmp_path / "u.data"
    rows = [f"u{i % 9}\tt{i % 4}\t{i % 5 + 1}\t{881250949 + i}" for i in range(3000)]
    rows[1776] = bad  # line 1777, in the middle of a block, after chunks already written
    path.write_text("\n".join(rows) + "\n")
    options = ReadOptions(columns=("user", "item", "rating", "ts"))
    reader = open_reader(path, "events", RATING_MAP_DICT, defaults={"type": "play"},
                         options=options)  # fmt: skip
    assert reader.table.source is not None  # the pyarrow path reads this file
    with pytest.raises(RowError) as failed:
        import_table(store, path, "events", RATING_MAP_DICT, defaults={"type": "play"},
                     options=options, chunk_rows=500)  # fmt: skip
    assert (failed.value.file, failed.value.line, failed.value.column) == (str(path), 1777, column)
    assert reason in failed.value.reason and "\n" not in str(failed.value)
    assert store.count("events") == store.count("users") == store.count("items") == 0


def test_invalid_bytes_inside_a_pyarrow_block_are_located(tmp_path: Path) -> None:
    path = tmp_path / "u.data"
    rows = [f"u{i}\tt{i}\t3\t{881250949 + i}".encode() for i in range(5000)]
    rows[3333] = b"u1\tcaf\xe9\t3\t881250949"  # far past what opening the file decodes
    path.write_bytes(b"user\titem\trating\tts\n" + b"\n".join(rows) + b"\n")
    reader = open_reader(path, "events", RATING_MAP_DICT, defaults={"type": "play"},
                         options=ReadOptions(encoding="utf-8"))  # fmt: skip
    with pytest.raises(RowError) as failed:
        list(reader.chunks())
    assert (failed.value.line, failed.value.column) == (3335, "item")
    assert "UTF-8" in failed.value.reason


def _event_indexes(store: Store) -> set[str]:
    import sqlalchemy as sa

    with store._engine.connect() as conn:  # type: ignore[attr-defined]
        return {ix["name"] for ix in sa.inspect(conn).get_indexes("events")}


def _stored_times(store: Store) -> dict[str, int]:
    with store._engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.exec_driver_sql("SELECT event_id, ts_ms FROM events").all()
    return {event_id: ts_ms // 1000 for event_id, ts_ms in rows}


EVENT_ID_MAP = {"event_id": "eid", "user_id": "uid", "item_id": "track", "timestamp": "ts"}


def test_repeated_event_ids_through_a_bulk_import_keep_the_first_and_count_right(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Event ids repeated within a file (in one chunk and across chunks) and ids stored before
    it: each stored once, the first kept, the report's counts exact, while the bulk path has
    the store's unique index off (chunks as large as the store); importing the same file again
    stores nothing and counts every row as a repeat."""
    from segue.store import bulk

    monkeypatch.setattr(bulk, "REBUILD_MIN", 3)
    before = tmp_path / "before.csv"
    before.write_text("eid,uid,track,ts\nold,u1,t1,1000\n")
    import_table(store, before, "events", EVENT_ID_MAP, defaults={"type": "play"})
    path = tmp_path / "plays.csv"
    rows = ["eid,uid,track,ts"]
    rows += [f"e{n % 7},u{n % 3},t{n % 2},{2000 + n}" for n in range(12)]  # e0..e6, e0..e4
    rows += ["old,u2,t1,3000", "e1,u1,t1,3001", "e9,u1,t1,3002", "e9,u2,t2,3003"]
    path.write_text("\n".join(rows) + "\n")
    for attempt in range(2):
        result = import_table(store, path, "events", EVENT_ID_MAP, defaults={"type": "play"},
                              chunk_rows=5 if attempt == 0 else 100)  # fmt: skip
        new = 8 if attempt == 0 else 0  # e0..e6 and e9
        assert result.report.inserted["events"] == new
        assert result.report.ignored["events"] == 16 - new
        assert _stored_times(store) == {
            "old": 1000, **{f"e{n}": 2000 + n for n in range(7)}, "e9": 3002
        }  # fmt: skip
        assert {"uq_events_event_id", "ix_events_user_ts"} <= _event_indexes(store)


def test_a_failing_bulk_import_leaves_nothing_and_the_unique_index(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad row at the end of a file whose first chunks went in with the unique index off:
    the one transaction rolls back rows and index changes alike, so the index is there and
    still refuses a repeat afterwards."""
    from segue.store import bulk

    monkeypatch.setattr(bulk, "REBUILD_MIN", 3)
    indexes = _event_indexes(store)
    assert "uq_events_event_id" in indexes
    path = tmp_path / "plays.csv"
    rows = ["eid,uid,track,ts", *(f"e{n},u{n % 3},t1,{2000 + n}" for n in range(20))]
    path.write_text("\n".join([*rows, "e99,u1,t1,soon"]) + "\n")
    with pytest.raises(RowError) as failed:
        import_table(store, path, "events", EVENT_ID_MAP, defaults={"type": "play"},
                     chunk_rows=5)  # fmt: skip
    assert failed.value.line == 22
    assert store.count("events") == store.count("users") == 0
    assert _event_indexes(store) == indexes
    path.write_text("\n".join([*rows, "e3,u1,t1,9999"]) + "\n")
    result = import_table(store, path, "events", EVENT_ID_MAP, defaults={"type": "play"})
    assert (result.report.inserted["events"], result.report.ignored["events"]) == (20, 1)
    again = Event(
        event_id="e4", user_id="u1", item_id="t1", type="play", timestamp=dt.datetime.now(dt.UTC)
    )
    assert store.add_events([again]) == 0 and store.count("events") == 20
