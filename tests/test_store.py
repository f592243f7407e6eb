"""The store contract on real SQLite and PostgreSQL (every test using ``store`` runs on both)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from segue.data.batch import Origin, RecordBatch
from segue.data.log import InteractionLog
from segue.data.model import (
    EVENT_CODES,
    EVENT_TYPES,
    AudioFeatures,
    Event,
    EventType,
    Friendship,
    Item,
    ItemKind,
    Tag,
    TagAssignment,
    User,
)
from segue.errors import RowError, StoreError
from segue.store import bulk, export, open_store, scan, schema
from segue.store.base import TABLES

T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
T0_MS = 1_709_294_400_000  # T0 in epoch milliseconds, computed by hand


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def ms(minutes: float) -> int:
    return T0_MS + int(minutes * 60_000)


FULL_ITEM = Item(
    id="trk-ü1",
    kind=ItemKind.TRACK,
    title='Jóga — live, "quoted", with, commas\nand a newline',
    artist_id="art-björk",
    album_id="alb-homogenic",
    show_id=None,
    genres=("électronique", "art pop"),
    tags=("icelandic", "strings"),
    duration_ms=305_000,
    release_date=dt.date(1997, 9, 22),
    explicit=True,
    audio=AudioFeatures(
        tempo=81.5,
        energy=0.41,
        danceability=0.2,
        valence=0.1,
        acousticness=0.77,
        instrumentalness=0.0,
        loudness=-11.25,
    ),
    description="Ein Lied über Vulkane 🌋",
)
BARE_ITEM = Item(id="ep-1", kind=ItemKind.PODCAST_EPISODE, title="Episode 1", show_id="show-1")
FULL_USER = User(
    id="usr-ñ",
    signup_at=dt.datetime(2020, 2, 29, 23, 59, 59, 123_000, tzinfo=dt.UTC),
    age_band="25-34",
    gender="nonbinary",
    country="is",
    timezone="Atlantic/Reykjavik",
    consent_push=True,
    consent_email=True,
    consent_personalisation=False,
    kids_profile=True,
    focus_mode=True,
)
BARE_USER = User(id="u2", signup_at=dt.datetime(2021, 1, 1))


def users(*ids: str) -> list[User]:
    return [User(id=i, signup_at=T0) for i in ids]


def items(*ids: str) -> list[Item]:
    return [Item(id=i, kind=ItemKind.TRACK, title=f"title {i}") for i in ids]


def play(event_id: str, user: str, item: str, minute: float, **extra: object) -> Event:
    return Event(
        event_id=event_id, user_id=user, item_id=item, type="play", timestamp=at(minute), **extra
    )


def counts(store) -> dict[str, int]:
    return {table: store.count(table) for table in TABLES}


# -- records ----------------------------------------------------------------------------------


def test_items_round_trip_every_field(store) -> None:
    assert store.upsert_items([FULL_ITEM, BARE_ITEM]) == 2
    assert store.get_item(FULL_ITEM.id) == FULL_ITEM
    assert store.get_item(BARE_ITEM.id) == BARE_ITEM
    assert store.get_item("nope") is None
    assert list(store.iter_items()) == [FULL_ITEM, BARE_ITEM]
    assert list(store.iter_items(ItemKind.PODCAST_EPISODE)) == [BARE_ITEM]
    assert list(store.iter_items(ItemKind.VIDEO)) == []
    assert store.existing_item_ids(["ep-1", "trk-ü1", "ghost"]) == {"ep-1", "trk-ü1"}


def test_users_round_trip_every_field(store) -> None:
    assert store.upsert_users([FULL_USER, BARE_USER]) == 2
    assert store.get_user(FULL_USER.id) == FULL_USER
    assert store.get_user("u2") == BARE_USER
    assert store.get_user("ghost") is None
    assert list(store.iter_users()) == [FULL_USER, BARE_USER]
    assert store.existing_user_ids(["u2", "ghost"]) == {"u2"}
    assert store.existing_user_ids([]) == set()


def test_upsert_replaces_by_id_and_last_repeat_wins(store) -> None:
    store.upsert_items(items("a", "b"))
    renamed = Item(id="a", kind=ItemKind.ALBUM, title="first")
    final = Item(id="a", kind=ItemKind.ALBUM, title="second", genres=("jazz",))
    assert store.upsert_items([renamed, final]) == 1
    assert store.count("items") == 2
    assert store.get_item("a") == final
    assert [i.id for i in store.iter_items()] == ["a", "b"]  # the key (order) is kept

    store.upsert_users([BARE_USER])
    changed = BARE_USER.model_copy(update={"country": "FR", "consent_email": True})
    store.upsert_users([changed])
    assert store.get_user("u2") == changed
    assert store.count("users") == 1

    store.upsert_tags([Tag(id=7, name="rock"), Tag(id=8, name="rock")])  # names may repeat
    store.upsert_tags([Tag(id=7, name="Rock ’n’ Roll")])
    assert store.tags() == {7: "Rock ’n’ Roll", 8: "rock"}


def test_repeated_upserts_do_not_use_up_surrogate_keys(store, database_url: str) -> None:
    for _ in range(3):
        store.upsert_users(users("u1", "u2"))
        store.upsert_items(items("i1"))
    store.upsert_users(users("u3"))
    store.upsert_items(items("i2"))
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema.users.c.key).order_by("key")).scalars().all() == [
            1,
            2,
            3,
        ]
        assert conn.execute(sa.select(schema.items.c.key).order_by("key")).scalars().all() == [
            1,
            2,
        ]
    engine.dispose()


def test_events_are_inserted_once_per_event_id(store) -> None:
    store.upsert_users(users("u1", "u2"))
    store.upsert_items(items("i1", "i2"))
    first = [play("e1", "u1", "i1", 0), play("e2", "u2", "i2", 1)]
    assert store.add_events(first) == 2
    assert store.add_events(first) == 0
    again = [play("e2", "u2", "i2", 1), play("e3", "u1", "i2", 2), play("e3", "u1", "i1", 9)]
    assert store.add_events(again) == 1  # e2 stored, e3 repeated inside the call
    assert store.count("events") == 3
    log = store.interactions()
    assert log.item_id_array().tolist() == ["i1", "i2", "i2"]  # the first e3 won
    assert log.ts_ms.tolist() == [ms(0), ms(1), ms(2)]


def test_add_events_with_unknown_reference_writes_nothing(store) -> None:
    store.upsert_users(users("u1"))
    store.upsert_items(items("i1"))
    with pytest.raises(StoreError, match=r"unknown user id.*'ghost'"):
        store.add_events([play("e1", "u1", "i1", 0), play("e2", "ghost", "i1", 1)])
    with pytest.raises(StoreError, match=r"unknown item id.*'nowhere'"):
        store.add_events([play("e1", "u1", "i1", 0), play("e2", "u1", "nowhere", 1)])
    assert store.count("events") == 0


def test_friendships_tags_and_assignments_round_trip(store) -> None:
    store.upsert_users(users("a", "b", "c"))
    store.upsert_items(items("song"))
    store.upsert_tags([Tag(id=1, name="métal"), Tag(id=2, name="jazz")])
    links = [Friendship(user_id="a", friend_id="b"), Friendship(user_id="b", friend_id="a")]
    assert store.add_friendships([*links, links[0]]) == 2
    assert store.add_friendships(links) == 0
    assert store.friendships() == [("a", "b"), ("b", "a")]
    rows = [
        TagAssignment(user_id="c", item_id="song", tag_id=2, timestamp=at(5)),
        # an item the catalog does not know: kept, tags may describe items outside it
        TagAssignment(user_id="a", item_id="not-in-catalog", tag_id=1, timestamp=at(0)),
    ]
    assert store.add_tag_assignments(rows) == 2
    assert store.add_tag_assignments(rows[:1]) == 0
    assert store.tag_assignments() == [("a", "not-in-catalog", 1, ms(0)), ("c", "song", 2, ms(5))]
    assert store.tags() == {1: "métal", 2: "jazz"}

    with pytest.raises(StoreError, match="'zed'"):
        store.add_friendships([Friendship(user_id="a", friend_id="zed")])
    with pytest.raises(StoreError, match="'zed'"):
        store.add_tag_assignments(
            [TagAssignment(user_id="zed", item_id="x", tag_id=1, timestamp=T0)]
        )
    with pytest.raises(StoreError, match="99"):
        store.add_tag_assignments(
            [TagAssignment(user_id="a", item_id="x", tag_id=99, timestamp=T0)]
        )
    assert (store.count("friendships"), store.count("tag_assignments")) == (2, 2)


def test_set_user_flags(store) -> None:
    store.upsert_users([BARE_USER])
    updated = store.set_user_flags("u2", focus_mode=True, consent_push=True)
    assert updated == BARE_USER.model_copy(update={"focus_mode": True, "consent_push": True})
    assert store.get_user("u2") == updated
    assert store.set_user_flags("u2") == updated
    with pytest.raises(StoreError, match=r"colour.*focus_mode"):
        store.set_user_flags("u2", colour=True)
    with pytest.raises(StoreError, match="true or false"):
        store.set_user_flags("u2", focus_mode="yes")  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="unknown user 'ghost'"):
        store.set_user_flags("ghost", focus_mode=True)
    assert store.get_user("u2") == updated


def test_count_and_export_name_the_valid_tables(store, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"'songs'.*items, users, events"):
        store.count("songs")
    with pytest.raises(StoreError, match=r"'songs'.*tag_assignments"):
        store.export_parquet("songs", tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


# -- ingest -----------------------------------------------------------------------------------


def _seed(store) -> None:
    store.upsert_users(users("u1", "u2"))
    store.upsert_items(items("i1"))
    store.upsert_tags([Tag(id=1, name="rock")])
    store.add_events([play("old", "u1", "i1", 0)])
    store.add_friendships([Friendship(user_id="u1", friend_id="u2")])
    store.add_tag_assignments([TagAssignment(user_id="u1", item_id="i1", tag_id=1, timestamp=T0)])


def _batch() -> RecordBatch:
    """A valid batch that references both stored and new records."""
    batch = RecordBatch(
        items=items("i2", "i3", "i2"),
        users=[*users("u3"), FULL_USER],
        tags=[Tag(id=2, name="pop")],
    )
    for n, (user, item) in enumerate([("u1", "i2"), ("u3", "i1"), ("u1", "i1")]):
        batch.events.append(play(f"b{n}", user, item, 10 + n))
        batch.event_origins.append(Origin("plays.tsv", n + 2, "userID", "artistID"))
    batch.events.append(play("old", "u1", "i1", 0))  # already stored
    batch.event_origins.append(Origin("plays.tsv", 5, "userID", "artistID"))
    batch.friendships += [Friendship(user_id="u3", friend_id="u1")] * 2
    batch.friendship_origins += [Origin("friends.tsv", 2, "userID", "friendID")] * 2
    batch.tag_assignments.append(
        TagAssignment(user_id="u3", item_id="elsewhere", tag_id=2, timestamp=at(3))
    )
    batch.tag_assignment_origins.append(Origin("tagged.tsv", 2, "userID", "artistID"))
    return batch


def test_ingest_writes_everything_and_reports_counts(store) -> None:
    _seed(store)
    report = store.ingest(_batch())
    assert report.inserted == {
        "items": 2,
        "users": 2,
        "tags": 1,
        "events": 3,
        "friendships": 1,
        "tag_assignments": 1,
    }
    assert report.ignored == {
        "items": 1,  # i2 twice in the batch
        "users": 0,
        "tags": 0,
        "events": 1,
        "friendships": 1,
        "tag_assignments": 0,
    }
    assert report.updated == {"items": 0, "users": 0, "tags": 0}
    assert counts(store) == {
        "items": 3,
        "users": 4,
        "events": 4,
        "friendships": 2,
        "tags": 2,
        "tag_assignments": 2,
    }
    assert store.get_user(FULL_USER.id) == FULL_USER
    assert store.friendships() == [("u1", "u2"), ("u3", "u1")]

    again = store.ingest(_batch())
    assert set(again.inserted.values()) == {0}
    assert again.updated == {"items": 2, "users": 2, "tags": 1}
    assert again.ignored["events"] == 4
    assert store.count("events") == 4


@pytest.mark.parametrize(
    ("spoil", "file", "line", "column", "reason"),
    [
        ("event_user", "plays.tsv", 3, "userID", "unknown user 'ghost'"),
        ("event_item", "plays.tsv", 4, "artistID", "unknown item 'void'"),
        ("friend", "friends.tsv", 2, "friendID", "unknown user 'ghost'"),
        ("friend_user", "friends.tsv", 2, "userID", "unknown user 'ghost'"),
        ("assignment_user", "tagged.tsv", 2, "userID", "unknown user 'ghost'"),
        ("assignment_tag", "tagged.tsv", 2, None, "unknown tag '404'"),
    ],
)
def test_ingest_rejects_unknown_references_and_changes_nothing(
    store, spoil: str, file: str, line: int, column: str | None, reason: str
) -> None:
    _seed(store)
    before = counts(store)
    batch = _batch()
    if spoil == "event_user":
        batch.events[1] = play("b1", "ghost", "i1", 11)
    elif spoil == "event_item":
        batch.events[2] = play("b2", "u1", "void", 12)
    elif spoil == "friend":
        batch.friendships[0] = Friendship(user_id="u3", friend_id="ghost")
    elif spoil == "friend_user":
        batch.friendships[1] = Friendship(user_id="ghost", friend_id="u3")
    elif spoil == "assignment_user":
        batch.tag_assignments[0] = TagAssignment(
            user_id="ghost", item_id="x", tag_id=2, timestamp=T0
        )
    else:
        batch.tag_assignments[0] = TagAssignment(
            user_id="u3", item_id="x", tag_id=404, timestamp=T0
        )
    with pytest.raises(RowError) as caught:
        store.ingest(batch)
    error = caught.value
    assert (error.file, error.line, error.column, error.reason) == (file, line, column, reason)
    assert counts(store) == before
    assert store.get_user("u3") is None
    assert store.get_item("i2") is None


def test_ingest_without_origins_still_names_the_record(store) -> None:
    batch = RecordBatch(users=users("u1"), events=[play("e", "u1", "missing-item", 0)])
    with pytest.raises(StoreError, match=r"event #1 .*unknown item 'missing-item'"):
        store.ingest(batch)
    assert store.count("users") == 0


# -- transactions -----------------------------------------------------------------------------


class Boom(Exception):
    pass


def test_transaction_rolls_back_everything_on_error(store) -> None:
    store.upsert_users(users("keep"))
    with pytest.raises(Boom), store.transaction():
        store.upsert_users(users("u1"))
        store.upsert_items(items("i1"))
        store.add_events([play("e1", "u1", "i1", 0)])
        with store.transaction():  # nested: joins the outer transaction
            store.add_friendships([Friendship(user_id="u1", friend_id="keep")])
        # reads inside the transaction see its writes
        assert store.count("events") == 1
        assert len(store.interactions()) == 1
        assert store.get_user("u1") is not None
        raise Boom
    assert counts(store) == {table: int(table == "users") for table in TABLES}


def test_transaction_commits_when_the_block_ends(store) -> None:
    with store.transaction():
        store.upsert_users(users("u1"))
        store.upsert_items(items("i1"))
        store.add_events([play("e1", "u1", "i1", 0)])
    assert (store.count("users"), store.count("events")) == (1, 1)


# -- columnar logs ----------------------------------------------------------------------------


def _rich_events(prefix: str) -> list[Event]:
    """Events with every optional field, unicode and None, and out-of-order timestamps."""
    return [
        Event(
            event_id=f"{prefix}e1",
            user_id=f"{prefix}u1",
            item_id=f"{prefix}i1",
            type="play",
            timestamp=at(5),
            ms_played=123_456,
            count=3,
            session_id="séance",
            surface="home,row",
            source='camp"aign',
            device="phone",
            focus=True,
            rating=4.25,
        ),
        Event(
            event_id=f"{prefix}e2",
            user_id=f"{prefix}u2",
            item_id=f"{prefix}i1",
            type="skip",
            timestamp=at(1),
            session_id="",
        ),
        Event(
            event_id=f"{prefix}e3",
            user_id=f"{prefix}u1",
            item_id=f"{prefix}i2",
            type="like",
            timestamp=at(1),
            rating=-0.5,
            device="télé\nwith newline",
        ),
    ]


def _exported_events(store, path: Path, prefix: str) -> list[dict]:
    store.export_parquet("events", path)
    rows = pq.read_table(path).to_pylist()
    picked = [r for r in rows if r["event_id"].startswith(prefix)]
    for r in picked:
        for key in ("event_id", "user_id", "item_id"):
            r[key] = r[key][len(prefix) :]
    return picked


def test_add_event_log_stores_what_add_events_stores(store, tmp_path: Path) -> None:
    for prefix in ("a:", "b:"):
        store.upsert_users(users(f"{prefix}u1", f"{prefix}u2"))
        store.upsert_items(items(f"{prefix}i1", f"{prefix}i2"))
    assert store.add_events(_rich_events("a:")) == 3

    # The same events, hand-encoded: vocabularies in another order plus ids no row uses
    # (unknown to the store, which is fine because nothing references them).
    source = _rich_events("b:")
    log = InteractionLog(
        user_ids=np.array(["nobody", "b:u2", "b:u1"], dtype=object),
        item_ids=np.array(["b:i2", "b:i1", "nothing"], dtype=object),
        user=[2, 1, 2],
        item=[1, 1, 0],
        type=[EVENT_CODES[e.type] for e in source],
        ts_ms=[ms(5), ms(1), ms(1)],
        ms_played=[123_456, -1, -1],
        count=[3, 1, 1],
        focus=[True, False, False],
        rating=[4.25, np.nan, -0.5],
        event_id=np.array([e.event_id for e in source], dtype=object),
        session_id=np.array([e.session_id for e in source], dtype=object),
        surface=np.array([e.surface for e in source], dtype=object),
        source=np.array([e.source for e in source], dtype=object),
        device=np.array([e.device for e in source], dtype=object),
    )
    assert store.add_event_log(log) == 3
    assert store.add_event_log(log) == 0

    a = _exported_events(store, tmp_path / "events.parquet", "a:")
    b = _exported_events(store, tmp_path / "events.parquet", "b:")
    assert a == b
    assert a[0] == {
        "event_id": "e1",
        "user_id": "u1",
        "item_id": "i1",
        "type": "play",
        "ts_ms": ms(5),
        "timestamp": at(5),
        "ms_played": 123_456,
        "count": 3,
        "session_id": "séance",
        "surface": "home,row",
        "source": 'camp"aign',
        "device": "phone",
        "focus": True,
        "rating": 4.25,
    }
    assert a[1]["session_id"] == "" and a[1]["surface"] is None and a[1]["ms_played"] is None
    assert a[2]["device"] == "télé\nwith newline" and a[2]["rating"] == -0.5


def test_add_event_log_with_a_short_last_chunk_and_absent_columns(store, monkeypatch) -> None:
    """Regression: a log longer than one chunk, with a column the writer left out (None)."""
    from segue.store import bulk

    monkeypatch.setattr(bulk, "CHUNK", 4)
    store.upsert_users(users("u1"))
    store.upsert_items(items("i1"))
    n = 10  # chunks of 4, 4 and 2
    log = InteractionLog(
        user_ids=np.array(["u1"], dtype=object),
        item_ids=np.array(["i1"], dtype=object),
        user=np.zeros(n),
        item=np.zeros(n),
        type=np.zeros(n),
        ts_ms=np.arange(n) * 1000,
        ms_played=np.full(n, 1000),
        count=np.ones(n),
        focus=np.zeros(n, dtype=bool),
        rating=np.full(n, np.nan),
        event_id=np.array([f"e{i}" for i in range(n)], dtype=object),
        session_id=np.array([f"s{i % 3}" for i in range(n)], dtype=object),
    )
    assert store.add_event_log(log) == n
    back = store.interactions()
    assert len(back) == n
    assert back.ts_ms.tolist() == [i * 1000 for i in range(n)]


def test_add_event_log_refuses_bad_logs(store) -> None:
    store.upsert_users(users("u1"))
    store.upsert_items(items("i1"))
    base = {
        "user_ids": ["u1"],
        "item_ids": ["i1"],
        "user": [0],
        "item": [0],
        "type": [0],
        "ts_ms": [T0_MS],
        "ms_played": [-1],
        "count": [1],
        "focus": [False],
        "rating": [np.nan],
    }
    with pytest.raises(StoreError, match="no event_id column"):
        store.add_event_log(InteractionLog(**base))
    with pytest.raises(StoreError, match=r"no event_id .*row 0"):
        store.add_event_log(InteractionLog(**base, event_id=np.array([None], dtype=object)))
    with pytest.raises(StoreError, match=r"no event_id .*row 0"):
        store.add_event_log(InteractionLog(**base, event_id=np.array([""], dtype=object)))
    ghosts = InteractionLog.from_events([play(f"e{n}", f"ghost{n}", "i1", n) for n in range(8)])
    with pytest.raises(StoreError, match=r"8 unknown user id\(s\).*'ghost0'.* and 3 more"):
        store.add_event_log(ghosts)
    assert store.add_event_log(InteractionLog.empty()) == 0
    assert store.count("events") == 0


def test_add_event_log_joins_an_outer_transaction(store) -> None:
    log = InteractionLog.from_events([play("e1", "u1", "i1", 0)])
    with pytest.raises(Boom), store.transaction():
        store.upsert_users(users("u1"))
        store.upsert_items(items("i1"))
        assert store.add_event_log(log) == 1
        raise Boom
    assert counts(store) == dict.fromkeys(TABLES, 0)
    with store.transaction():
        store.upsert_users(users("u1"))
        store.upsert_items(items("i1"))
        assert store.add_event_log(log) == 1
    assert store.count("events") == 1


def _event_constraints(url: str) -> tuple[set[str], int]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            indexes = {ix["name"] for ix in inspector.get_indexes("events")}
            fks = len(inspector.get_foreign_keys("events"))
    finally:
        engine.dispose()
    return indexes, fks


def test_large_loads_rebuild_indexes_and_keep_constraints(
    store, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "REBUILD_MIN", 4)  # take the bulk-load path with a small log
    indexes, fks = _event_constraints(database_url)
    assert "ix_events_user_ts" in indexes and fks == 0  # keys checked by the writers (v4)
    store.upsert_users(users("u1", "u2"))
    store.upsert_items(items("i1"))
    events = [play(f"e{n}", f"u{n % 2 + 1}", "i1", n) for n in range(6)]
    log = InteractionLog.from_events(events)
    with pytest.raises(Boom), store.transaction():
        assert store.add_event_log(log) == 6
        raise Boom
    assert _event_constraints(database_url) == (indexes, fks)
    assert store.add_event_log(log) == 6
    assert _event_constraints(database_url) == (indexes, fks)
    assert store.interactions().user_id_array().tolist() == ["u1", "u2"] * 3
    # the rebuilt unique index still holds
    assert store.add_event_log(log) == 0
    # and databases created afterwards in this process still get every index
    fresh = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    open_store(fresh).close()
    assert _event_constraints(fresh) == ({"ix_events_user_ts", "uq_events_event_id"}, 0)


def test_a_chunked_load_in_one_transaction_rebuilds_once_at_commit(
    store, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "REBUILD_MIN", 2)
    store.upsert_users(users("u1", "u2"))
    store.upsert_items(items("i1"))
    chunks = [
        InteractionLog.from_events(
            [play(f"c{c}e{n}", f"u{n % 2 + 1}", "i1", c * 10 + n) for n in range(3)]
        )
        for c in range(3)
    ]
    with store.transaction():
        for chunk in chunks:
            assert store.add_event_log(chunk) == 3
            # still dropped after later chunks, which would otherwise not qualify (3 < stored)
            names = {ix["name"] for ix in sa.inspect(store._tx).get_indexes("events")}
            assert "ix_events_user_ts" not in names
        assert store.count("events") == 9
    indexes, fks = _event_constraints(database_url)
    assert "ix_events_user_ts" in indexes and fks == 0
    assert store.interactions().ts_ms.tolist() == sorted(
        ms(c * 10 + n) for c in range(3) for n in range(3)
    )


def _index_names(conn: sa.Connection) -> set[str]:
    return {ix["name"] for ix in sa.inspect(conn).get_indexes("events")}


def _stored_minutes(store) -> dict[str, float]:
    """event_id -> minute of the event stored under it."""
    with store._engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT event_id, ts_ms FROM events").all()
    return {event_id: (ts_ms - ms(0)) / 60_000 for event_id, ts_ms in rows}


@pytest.mark.parametrize("collide", [False, True], ids=["hashes", "every-hash-equal"])
def test_a_bulk_load_keeps_the_first_of_repeated_event_ids(
    store, database_url: str, monkeypatch: pytest.MonkeyPatch, collide: bool
) -> None:
    """The first one wins, as with ON CONFLICT DO NOTHING: ids stored before the load and ids
    repeated within and across its calls are stored once, the earliest kept, and each call
    says how many of its rows were new. On SQLite the unique index is off meanwhile (the ids
    are vetted by hash, then exactly: with every hash equal the counts must not change)."""
    monkeypatch.setattr(bulk, "REBUILD_MIN", 2)
    monkeypatch.setattr(bulk, "UNIQUE_BACK_SHARE", 2.0)  # the index stays off however many
    if collide:
        monkeypatch.setattr(bulk, "hash", lambda value: 7, raising=False)
    store.upsert_users(users("u1", "u2"))
    store.upsert_items(items("i1"))
    store.add_events([play("old1", "u1", "i1", 1), play("old2", "u2", "i1", 2)])
    sqlite = store._engine.dialect.name == "sqlite"
    first = [
        play("a", "u1", "i1", 10),
        play("old1", "u1", "i1", 11),  # stored before the load: kept at minute 1
        play("b", "u2", "i1", 12),
        play("a", "u2", "i1", 13),  # repeated within the call: minute 10 kept
        play("c", "u1", "i1", 14),
    ]
    second = [
        play("b", "u1", "i1", 20),  # repeated across calls: minute 12 kept
        play("d", "u1", "i1", 21),
        play("old2", "u1", "i1", 22),
        play("d", "u2", "i1", 23),
        play("e", "u2", "i1", 24),
    ]
    with store.transaction():
        assert store.add_event_log(InteractionLog.from_events(first)) == 3
        assert ("uq_events_event_id" in _index_names(store._tx)) is not sqlite
        assert store.add_event_log(InteractionLog.from_events(second)) == 2
        assert store.add_events([play("e", "u1", "i1", 30), play("f", "u1", "i1", 31)]) == 1
        assert store.count("events") == 8
    assert _stored_minutes(store) == {
        "old1": 1, "old2": 2, "a": 10, "b": 12, "c": 14, "d": 21, "e": 24, "f": 31
    }  # fmt: skip
    with store._engine.connect() as conn:
        assert "uq_events_event_id" in _index_names(conn)
    # the rebuilt index is unique: the usual path ignores a repeat, raw SQL is refused
    assert store.add_events([play("a", "u1", "i1", 40)]) == 0
    with pytest.raises(sa.exc.IntegrityError), store.transaction():
        store._tx.execute(
            schema.events.insert().values(
                event_id="c", user_key=1, item_key=1, type="play", ts_ms=0, count=1, focus=False
            )
        )
    assert store.count("events") == 8


def test_a_bulk_load_that_repeats_stored_ids_gets_the_unique_index_back_at_once(
    store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a call's rows repeat stored ids often (UNIQUE_BACK_SHARE), vetting them without
    the index costs a scan a call: the index comes back then, and the rest of the load
    goes through ON CONFLICT, first one still winning, counts still exact."""
    monkeypatch.setattr(bulk, "REBUILD_MIN", 2)
    monkeypatch.setattr(bulk, "UNIQUE_BACK_SHARE", 0.25)
    store.upsert_users(users("u1"))
    store.upsert_items(items("i1"))
    sqlite = store._engine.dialect.name == "sqlite"
    calls = [
        ([f"a{n}" for n in range(8)], 8, False),
        (["a0", "b0", "b1", "b2", "b3", "b4", "b5", "b0"], 6, False),  # 1 in 8 stored: off
        (["a1", "a2", "c0", "c1", "c2", "c3", "c4", "c2"], 5, True),  # 2 in 8: back
        (["a3", "c0", "d0", "d0", "d1"], 2, True),
    ]
    with store.transaction():
        for call, (ids, new, back) in enumerate(calls):
            log = InteractionLog.from_events(
                [play(event_id, "u1", "i1", call * 10 + n) for n, event_id in enumerate(ids)]
            )
            assert store.add_event_log(log) == new
            names = _index_names(store._tx)
            assert ("uq_events_event_id" in names) is (back or not sqlite)
            assert "ix_events_user_ts" not in names  # rebuilt at the commit only
    stored = _stored_minutes(store)
    assert len(stored) == store.count("events") == 21
    assert (stored["a1"], stored["b0"], stored["c0"], stored["c2"], stored["d0"]) == (
        1, 11, 22, 24, 32
    )  # fmt: skip
    with store._engine.connect() as conn:
        assert {"uq_events_event_id", "ix_events_user_ts"} <= _index_names(conn)
        if sqlite:  # the load's small page cache went with the index's return
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -65536


def test_reloading_the_same_log_in_bulk_stores_nothing_again(
    store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second load of a log as large as the store takes the bulk path again (the stored
    ids are read in first): every row is a repeat, none is stored twice."""
    monkeypatch.setattr(bulk, "REBUILD_MIN", 2)
    store.upsert_users(users("u1", "u2"))
    store.upsert_items(items("i1"))
    events = [play(f"e{n % 5}", f"u{n % 2 + 1}", "i1", n) for n in range(8)]
    log = InteractionLog.from_events(events)
    assert store.add_event_log(log) == 5
    before = _stored_minutes(store)
    assert before == {f"e{n}": n for n in range(5)}
    assert store.add_event_log(log) == 0
    with store.transaction():
        assert store.add_event_log(log) == 0
        assert store.add_event_log(log.select(np.arange(3))) == 0
    assert _stored_minutes(store) == before and store.count("events") == 5


def test_a_failed_bulk_load_leaves_no_rows_and_the_unique_index(
    store, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The indexes are dropped inside the transaction: a failure after the rows went in
    brings them back (SQLite's DDL rolls back too), so later repeats are still refused."""
    monkeypatch.setattr(bulk, "REBUILD_MIN", 2)
    store.upsert_users(users("u1"))
    store.upsert_items(items("i1"))
    indexes = _event_constraints(database_url)[0]
    assert {"uq_events_event_id", "ix_events_user_ts"} <= indexes
    log = InteractionLog.from_events([play(f"e{n}", "u1", "i1", n) for n in range(4)])
    with pytest.raises(Boom), store.transaction():
        assert store.add_event_log(log) == 4
        raise Boom
    assert _event_constraints(database_url)[0] == indexes
    assert store.count("events") == 0
    assert store.add_events([play("x", "u1", "i1", 0)]) == 1
    assert store.add_events([play("x", "u1", "i1", 1)]) == 0


def test_sqlite_page_cache_is_back_after_the_index_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bulk load runs with a small page cache (its rows are appends; the rebuild's sorter
    takes as much again as the cache), and the pooled connection gets its own back at the
    commit, or at a rollback."""
    monkeypatch.setattr(bulk, "REBUILD_MIN", 2)
    with open_store(f"sqlite:///{tmp_path / 's.sqlite'}") as store:
        store.upsert_users(users("u1", "u2"))
        store.upsert_items(items("i1"))
        log = InteractionLog.from_events([play(f"e{n}", "u1", "i1", n) for n in range(3)])

        def cache(conn: sa.Connection) -> int:
            return conn.exec_driver_sql("PRAGMA cache_size").scalar_one()

        with pytest.raises(Boom), store.transaction():
            assert store.add_event_log(log) == 3
            assert cache(store._tx) == -bulk.LOAD_CACHE_KIB != -65536
            raise Boom
        with store._engine.connect() as conn:
            assert cache(conn) == -65536
        with store.transaction():
            assert store.add_event_log(log) == 3
            tx = store._tx
            assert tx is not None
            assert cache(tx) == -bulk.LOAD_CACHE_KIB
            seen: list[int] = []
            # a step after the rebuild, in the same commit: what the connection has by then
            store._deferred["zz check"] = lambda conn: seen.append(cache(conn))  # type: ignore[index]
        assert seen == [-65536]
        with store._engine.connect() as conn:
            assert cache(conn) == -65536
        names = {ix["name"] for ix in sa.inspect(store._engine).get_indexes("events")}
        assert {"ix_events_user_ts", "uq_events_event_id"} <= names
        assert len(store.interactions()) == 3


def test_sqlite_foreign_keys_are_back_on_after_a_bulk_load(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 's.sqlite'}") as store:
        store.upsert_users(users("u1"))
        store.upsert_items(items("i1"))
        store.add_event_log(InteractionLog.from_events([play("e1", "u1", "i1", 0)]))
        with pytest.raises(sa.exc.IntegrityError), store.transaction():
            # friendships keep their foreign keys: a raw row pointing nowhere is refused
            store._tx.execute(schema.friendships.insert().values(user_key=9, friend_key=8))


# -- interactions -----------------------------------------------------------------------------


def _history(store) -> None:
    store.upsert_users(users("u1", "u2", "idle"))
    store.upsert_items(items("i1", "i2", "i3"))
    store.add_events(
        [
            play("p3", "u2", "i2", 30, ms_played=1_000, count=2),
            play("p1", "u1", "i1", 10, rating=2.5),
            Event(event_id="s1", user_id="u1", item_id="i2", type="skip", timestamp=at(10)),
            play("f1", "u1", "i3", 20, focus=True),
            Event(event_id="l1", user_id="u2", item_id="i1", type="like", timestamp=at(0)),
        ]
    )
    store.add_events([play("p0", "u2", "i3", 10)])  # same time as p1/s1, inserted later


@pytest.mark.parametrize("page", [scan.PAGE, 2])
def test_interactions_order_columns_and_vocabulary(
    store, page: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scan, "PAGE", page)
    _history(store)
    log = store.interactions()
    assert log.user_ids.tolist() == ["u1", "u2", "idle"]  # every user, key order
    assert log.item_ids.tolist() == ["i1", "i2", "i3"]
    # oldest first; equal times keep insertion order; focus listening left out
    assert list(zip(log.user_id_array(), log.item_id_array(), strict=True)) == [
        ("u2", "i1"),
        ("u1", "i1"),
        ("u1", "i2"),
        ("u2", "i3"),
        ("u2", "i2"),
    ]
    assert log.ts_ms.tolist() == [ms(0), ms(10), ms(10), ms(10), ms(30)]
    assert [EVENT_TYPES[t].value for t in log.type] == ["like", "play", "skip", "play", "play"]
    assert log.ms_played.tolist() == [-1, -1, -1, -1, 1_000]
    assert log.count.tolist() == [1, 1, 1, 1, 2]
    assert np.isnan(log.rating[[0, 2, 3, 4]]).all() and log.rating[1] == 2.5
    assert not log.focus.any()


def test_interactions_filters(store) -> None:
    _history(store)
    with_focus = store.interactions(include_focus=True)
    assert len(with_focus) == 6
    assert with_focus.focus.tolist() == [False, False, False, False, True, False]
    plays = store.interactions([EventType.PLAY])
    assert set(plays.type.tolist()) == {EVENT_CODES["play"]} and len(plays) == 3
    assert len(store.interactions(["like", "skip"])) == 2
    assert len(store.interactions([])) == 0
    window = store.interactions(start_ms=ms(10), end_ms=ms(30), include_focus=True)
    assert window.ts_ms.tolist() == [ms(10), ms(10), ms(10), ms(20)]  # end is exclusive
    assert len(store.interactions(start_ms=ms(31))) == 0
    assert window.user_ids.tolist() == ["u1", "u2", "idle"]  # vocabulary never filtered
    with pytest.raises(StoreError, match="unknown event type 'listen'"):
        store.interactions(["listen"])  # type: ignore[list-item]


def test_interactions_of_an_empty_store(store) -> None:
    log = store.interactions()
    assert len(log) == 0 and len(log.user_ids) == 0
    store.upsert_users(users("u1"))
    assert store.interactions().user_ids.tolist() == ["u1"]


def test_key_positions_dense_and_sparse() -> None:
    dense = np.array([1, 2, 3, 5])
    assert scan._positions(dense, np.array([5, 1, 3])).tolist() == [3, 0, 2]
    sparse = np.array([3, 10, 10_000_000])  # e.g. keys after many sequence gaps
    assert scan._positions(sparse, np.array([10_000_000, 3, 10])).tolist() == [2, 0, 1]


# -- export -----------------------------------------------------------------------------------


def test_export_parquet_every_table(store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "_ROWS_PER_CHUNK", 2)  # stream in several chunks
    store.upsert_items([FULL_ITEM, BARE_ITEM])
    store.upsert_users([FULL_USER, BARE_USER])
    store.upsert_tags([Tag(id=3, name="ambient")])
    store.add_events([play(f"e{n}", "u2", "ep-1", n) for n in range(5)])
    store.add_friendships([Friendship(user_id="u2", friend_id="usr-ñ")])
    store.add_tag_assignments([TagAssignment(user_id="u2", item_id="far", tag_id=3, timestamp=T0)])

    assert store.export_parquet("items", tmp_path / "items.parquet") == 2
    item_rows = pq.read_table(tmp_path / "items.parquet").to_pylist()
    assert item_rows[0]["genres"] == ["électronique", "art pop"]
    assert item_rows[0]["audio"]["loudness"] == -11.25
    assert item_rows[0]["release_date"] == dt.date(1997, 9, 22)
    assert item_rows[0]["title"] == FULL_ITEM.title and item_rows[0]["explicit"] is True
    assert item_rows[1]["audio"] is None and item_rows[1]["show_id"] == "show-1"

    assert store.export_parquet("users", tmp_path / "users.parquet") == 2
    user_rows = pq.read_table(tmp_path / "users.parquet").to_pylist()
    assert user_rows[0]["signup_at"] == FULL_USER.signup_at
    assert user_rows[0]["country"] == "IS" and user_rows[0]["kids_profile"] is True
    assert user_rows[1]["age_band"] is None

    events_path = tmp_path / "deep" / "er" / "events.parquet"
    assert store.export_parquet("events", events_path) == 5
    table = pq.read_table(events_path)
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert table.column("ts_ms").to_pylist() == [ms(n) for n in range(5)]
    assert table.column("user_id").to_pylist() == ["u2"] * 5
    assert table.column("item_id").to_pylist() == ["ep-1"] * 5

    assert store.export_parquet("friendships", tmp_path / "f.parquet") == 1
    assert pq.read_table(tmp_path / "f.parquet").to_pylist() == [
        {"user_id": "u2", "friend_id": "usr-ñ"}
    ]
    assert store.export_parquet("tags", tmp_path / "t.parquet") == 1
    assert store.export_parquet("tag_assignments", tmp_path / "ta.parquet") == 1
    assert pq.read_table(tmp_path / "ta.parquet").to_pylist() == [
        {"user_id": "u2", "item_id": "far", "tag_id": 3, "ts_ms": T0_MS, "timestamp": T0}
    ]
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_export_is_atomic_and_empty_tables_keep_their_schema(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    target = out / "events.parquet"
    target.write_bytes(b"previous contents")
    store.upsert_users(users("u1"))
    store.upsert_items(items("i1"))
    store.add_events([play("e1", "u1", "i1", 0)])

    def failing_batch(*args: object) -> None:
        raise Boom  # e.g. the disk filled up half-way

    with monkeypatch.context() as patch:
        patch.setattr(export, "_batch", failing_batch)
        with pytest.raises(Boom):
            store.export_parquet("events", target)
    assert target.read_bytes() == b"previous contents"
    assert [p.name for p in out.iterdir()] == ["events.parquet"]
    assert store.export_parquet("events", target) == 1  # replaces the old file

    assert store.export_parquet("friendships", out / "empty.parquet") == 0
    empty = pq.read_table(out / "empty.parquet")
    assert empty.num_rows == 0 and empty.column_names == ["user_id", "friend_id"]


# -- opening (migrations: test_store_migrations.py) -------------------------------------------


def test_reopening_keeps_data(database_url: str) -> None:
    with open_store(database_url) as store:
        store.upsert_users([FULL_USER])
        assert store.schema_version == schema.SCHEMA_VERSION
    with open_store(database_url) as store:
        assert store.get_user(FULL_USER.id) == FULL_USER


def test_sqlite_creates_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "segue.sqlite"
    with open_store(f"sqlite:///{path}") as store:
        store.upsert_users(users("u1"))
    assert path.is_file()
    with open_store(f"sqlite:///{path}") as store:
        assert store.count("users") == 1


def test_bad_urls_and_unreachable_servers_are_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a database URL"):
        open_store("just some words")
    with pytest.raises(StoreError, match="unsupported database URL mysql"):
        open_store("mysql://root@localhost/db")
    with pytest.raises(StoreError) as caught:
        open_store("postgresql://bob:s3cret@127.0.0.1:1/segue")
    message = str(caught.value)
    assert "s3cret" not in message and "bob:***@127.0.0.1:1/segue" in message
    assert "PostgreSQL server running" in message
    not_sqlite = tmp_path / "notes.sqlite"
    not_sqlite.write_text("this is not a database, just text " * 100)
    with pytest.raises(StoreError, match="cannot open the store at sqlite"):
        open_store(f"sqlite:///{not_sqlite}")


def test_a_database_with_foreign_tables_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE users (name TEXT)")
    engine.dispose()
    with pytest.raises(StoreError, match=r"tables \['users'\] but no segue schema version"):
        open_store(f"sqlite:///{path}")


def test_postgres_url_spellings(pg_database_url: str) -> None:
    engine = sa.create_engine(pg_database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:  # start empty, as the database_url fixture does
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
    tail = pg_database_url.split("://", 1)[1]
    for scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        with open_store(f"{scheme}://{tail}") as store:
            assert store.url.startswith("postgresql+psycopg://")
            store.upsert_users(users(scheme))
    with open_store(pg_database_url) as store:
        assert store.count("users") == 3


def test_point_reads_see_other_writers_commits_at_once(store) -> None:
    # serving reads a listener's row on kept connections; a change committed elsewhere (an
    # other process's store) must show on the very next read, not after a stale snapshot
    store.upsert_users(users("u1"))
    assert store.get_user("u1").kids_profile is False  # keeps a connection aside
    with open_store(store.url) as other:
        other.upsert_users([users("u1")[0].model_copy(update={"kids_profile": True})])
        other.upsert_items(items("i9"))
    assert store.get_user("u1").kids_profile is True
    assert store.get_item("i9") is not None


def test_point_reads_recover_from_a_killed_database_connection(pg_database_url: str) -> None:
    # a restarted server drops every kept connection: the next read must still answer
    with open_store(pg_database_url) as store:
        store.upsert_users(users("u1"))
        assert store.get_user("u1") is not None
        with store._engine.connect() as conn:
            killed = conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).all()
        assert killed  # the kept connection was among them
        assert store.get_user("u1") is not None
        assert store.get_user("ghost") is None


def test_the_event_detail_columns_are_the_events_table_beyond_its_keys() -> None:
    from segue.store import schema

    beyond_keys = [
        c.name
        for c in schema.events.columns
        if c.name not in ("key", "event_id", "user_key", "item_key")
    ]
    assert list(schema.EVENT_DETAIL_COLUMNS) == beyond_keys
