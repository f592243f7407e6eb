"""Schema migrations (Alembic, ``segue.store.migrate``) on SQLite and PostgreSQL.

Stores that older segue created (schema versions 1 to 4, their version a row of ``meta``) are
built here with a frozen copy of that code's tables and steps, then opened by today's code:
they must end with exactly the tables a fresh store gets, keep every row, and not change when
opened again. A store newer than this code is refused and left alone; a failing step changes
nothing.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from segue.data.model import Event, Item, ItemKind, User
from segue.errors import SegueError, StoreError
from segue.store import PublishedList, migrate, open_store, schema
from segue.store.codec import item_row, user_row
from segue.store.outbox import OutboxMessage

ROOT = Path(__file__).resolve().parents[1]
T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
T0_MS = int(T0.timestamp() * 1000)


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    """A plain engine (none of segue's settings) on the empty database of ``database_url``."""
    eng = _engine(database_url)
    try:
        yield eng
    finally:
        eng.dispose()


# -- the stores of segue <= 4, frozen ---------------------------------------------------------
# segue.store.schema as it was at versions 1 to 4 (only the column lists, not the comments), and
# what its open_store did: create the tables of the version it was, write ``meta``, and bring
# older stores forward with MIGRATIONS (2: outbox, 3: published, 4: drop the events foreign
# keys on PostgreSQL only).


def _old_tables(version: int) -> sa.MetaData:
    """The tables segue at schema ``version`` created for a new store."""
    md = sa.MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    big_key = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    sa.Table(
        "meta",
        md,
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    sa.Table(
        "items",
        md,
        sa.Column("key", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("artist_id", sa.String(200)),
        sa.Column("album_id", sa.String(200)),
        sa.Column("show_id", sa.String(200)),
        sa.Column("genres", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("duration_ms", sa.BigInteger),
        sa.Column("release_date", sa.Date),
        sa.Column("explicit", sa.Boolean, nullable=False),
        sa.Column("audio", sa.Text),
        sa.Column("description", sa.Text, nullable=False),
    )
    sa.Table(
        "users",
        md,
        sa.Column("key", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(200), nullable=False, unique=True),
        sa.Column("signup_ms", sa.BigInteger, nullable=False),
        sa.Column("age_band", sa.String(16)),
        sa.Column("gender", sa.String(16)),
        sa.Column("country", sa.String(2)),
        sa.Column("timezone", sa.String(64)),
        sa.Column("consent_push", sa.Boolean, nullable=False),
        sa.Column("consent_email", sa.Boolean, nullable=False),
        sa.Column("consent_personalisation", sa.Boolean, nullable=False),
        sa.Column("kids_profile", sa.Boolean, nullable=False),
        sa.Column("focus_mode", sa.Boolean, nullable=False),
    )
    references: list[Any] = (
        [
            sa.ForeignKey("users.key", name="fk_events_user_key_users"),
            sa.ForeignKey("items.key", name="fk_events_item_key_items"),
        ]
        if version < 4
        else [None, None]
    )
    sa.Table(
        "events",
        md,
        sa.Column("key", big_key, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(200), nullable=False, unique=True),
        *(
            sa.Column(name, sa.Integer, *([ref] if ref is not None else []), nullable=False)
            for name, ref in zip(("user_key", "item_key"), references, strict=True)
        ),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
        sa.Column("ms_played", sa.BigInteger),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("session_id", sa.Text),
        sa.Column("surface", sa.Text),
        sa.Column("source", sa.Text),
        sa.Column("device", sa.Text),
        sa.Column("focus", sa.Boolean, nullable=False),
        sa.Column("rating", sa.Float),
        sa.Index("ix_events_user_ts", "user_key", "ts_ms"),
    )
    sa.Table(
        "friendships",
        md,
        sa.Column("user_key", sa.Integer, sa.ForeignKey("users.key"), primary_key=True),
        sa.Column("friend_key", sa.Integer, sa.ForeignKey("users.key"), primary_key=True),
    )
    sa.Table(
        "tags",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.Text, nullable=False),
    )
    sa.Table(
        "tag_assignments",
        md,
        sa.Column("user_key", sa.Integer, sa.ForeignKey("users.key"), primary_key=True),
        sa.Column("item_id", sa.String(200), primary_key=True),
        sa.Column("tag_id", sa.Integer, sa.ForeignKey("tags.id"), primary_key=True),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "outbox",
        md,
        sa.Column("key", big_key, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(200), nullable=False, unique=True),
        sa.Column("campaign", sa.String(200), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("action_type", sa.String(32), nullable=False),
        sa.Column("item_id", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("scheduled_ms", sa.BigInteger, nullable=False),
        sa.Column("claim_token", sa.String(64)),
        sa.Column("lease_until_ms", sa.BigInteger),
        sa.Column("sent_ms", sa.BigInteger),
        sa.Column("last_error", sa.Text),
        sa.Column("p_click", sa.Float, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Index("ix_outbox_status_scheduled", "status", "scheduled_ms"),
        sa.Index("ix_outbox_user_created", "user_id", "created_ms"),
        sa.Index("ix_outbox_claim_token", "claim_token"),
    )
    sa.Table(
        "published",
        md,
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
    )
    introduced = {"outbox": 2, "published": 3}
    for name, since in introduced.items():
        if version < since:
            md.remove(md.tables[name])
    return md


def _old_store(engine: sa.Engine, version: int, created_at: int) -> sa.MetaData:
    """A store that segue at ``created_at`` created, opened by each segue up to ``version``."""
    md = _old_tables(created_at)
    meta = md.tables["meta"]
    with engine.begin() as conn:
        md.create_all(conn)
        conn.execute(meta.insert().values(name="schema_version", value=str(created_at)))
    for step in range(created_at + 1, version + 1):
        with engine.begin() as conn:
            later = _old_tables(step)
            if step == 2:
                later.tables["outbox"].create(conn)
            elif step == 3:
                later.tables["published"].create(conn, checkfirst=True)
            elif step == 4 and conn.dialect.name == "postgresql":
                for name in ("fk_events_user_key_users", "fk_events_item_key_items"):
                    conn.exec_driver_sql(f"ALTER TABLE events DROP CONSTRAINT IF EXISTS {name}")
            conn.execute(meta.update().values(value=str(step)))
    return _old_tables(version)


USERS = [
    User(id="u1", signup_at=T0, country="is", consent_push=True, kids_profile=True),
    User(id="u2", signup_at=T0 + dt.timedelta(days=3), timezone="Europe/Paris"),
]
ITEMS = [
    Item(id="i1", kind=ItemKind.TRACK, title="Jóga", genres=("art pop",), explicit=True),
    Item(id="i2", kind=ItemKind.PODCAST_EPISODE, title="Episode 2", show_id="show-1"),
]
# (event_id, user key, item key, minutes after T0): e1 and e2 share a time, so only their keys
# (the insertion order) put e1 first.
EVENTS = [("e1", 1, 1, 5), ("e2", 2, 2, 5), ("e0", 1, 2, 0)]


def _fill(engine: sa.Engine, md: sa.MetaData) -> None:
    """Rows in every table of an old store, written as that segue wrote them."""
    t = md.tables
    with engine.begin() as conn:
        conn.execute(t["users"].insert(), [user_row(u) for u in USERS])
        conn.execute(t["items"].insert(), [item_row(i) for i in ITEMS])
        conn.execute(
            t["events"].insert(),
            [
                {
                    "event_id": event_id,
                    "user_key": user_key,
                    "item_key": item_key,
                    "type": "play",
                    "ts_ms": T0_MS + minutes * 60_000,
                    "ms_played": 30_000,
                    "count": 1,
                    "session_id": "s1",
                    "surface": None,
                    "source": None,
                    "device": "phone",
                    "focus": False,
                    "rating": None,
                }
                for event_id, user_key, item_key, minutes in EVENTS
            ],
        )
        conn.execute(t["friendships"].insert().values(user_key=1, friend_key=2))
        conn.execute(t["tags"].insert().values(id=7, name="icelandic"))
        conn.execute(
            t["tag_assignments"].insert().values(user_key=2, item_id="i9", tag_id=7, ts_ms=T0_MS)
        )
        if "outbox" in t:
            conn.execute(
                t["outbox"]
                .insert()
                .values(
                    message_id="m1",
                    campaign="c1",
                    user_id="u1",
                    channel="push",
                    action_type="play_track",
                    item_id="i1",
                    payload=json.dumps({"title": "hello"}),
                    status="pending",
                    attempts=0,
                    created_ms=T0_MS,
                    scheduled_ms=T0_MS,
                    p_click=0.25,
                    value=1.5,
                )
            )
        if "published" in t:
            conn.execute(
                t["published"]
                .insert()
                .values(
                    name="daily",
                    version="v0001",
                    kind="top",
                    user_id="u1",
                    day=T0.date(),
                    payload='{"items": ["i1"]}',
                )
            )


def _check_data(store, version: int) -> None:
    """Every row ``_fill`` wrote, read back through today's store."""
    assert [store.get_user(u.id) for u in USERS] == USERS
    assert [store.get_item(i.id) for i in ITEMS] == ITEMS
    assert store.user_events("u1").event_id.tolist() == ["e0", "e1"]
    log = store.interactions()  # e1 before e2: their keys decide
    assert log.user_id_array().tolist() == ["u1", "u1", "u2"]
    assert log.item_id_array().tolist() == ["i2", "i1", "i2"]
    assert store.friendships() == [("u1", "u2")]
    assert store.tags() == {7: "icelandic"}
    assert store.tag_assignments() == [("u2", "i9", 7, T0_MS)]
    if version >= 2:
        (message,) = store.outbox_messages()
        assert (message.message_id, message.status, message.p_click) == ("m1", "pending", 0.25)
    if version >= 3:
        listed = store.published_list("daily", "v0001", "top", "u1")
        assert listed == PublishedList("u1", T0.date(), '{"items": ["i1"]}')


# -- looking at a database ----------------------------------------------------------------------


def _snapshot(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    """Tables, columns (type, nullability, default), keys, constraints and indexes."""
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        shape: dict[str, dict[str, Any]] = {}
        for table in sorted(inspector.get_table_names()):
            pk = inspector.get_pk_constraint(table)
            shape[table] = {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                    for c in inspector.get_columns(table)
                ],
                "primary_key": (pk["name"], tuple(pk["constrained_columns"])),
                "foreign_keys": sorted(
                    (
                        fk["name"],
                        tuple(fk["constrained_columns"]),
                        fk["referred_table"],
                        tuple(fk["referred_columns"]),
                    )
                    for fk in inspector.get_foreign_keys(table)
                ),
                "unique": sorted(
                    (u["name"], tuple(u["column_names"]))
                    for u in inspector.get_unique_constraints(table)
                ),
                "indexes": sorted(
                    (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                    for ix in inspector.get_indexes(table)
                ),
            }
    return shape


def _differences_from_the_code(engine: sa.Engine) -> list[Any]:
    """What Alembic's autogenerate would add to make the database match segue.store.schema."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, schema.metadata)


def _revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return migrate.current_revision(conn)


def _reset(engine: sa.Engine) -> None:
    """Empty the database again (PostgreSQL: its schema; SQLite: the file's tables)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
        else:
            for table in sa.inspect(conn).get_table_names():
                conn.exec_driver_sql(f'DROP TABLE "{table}"')


_FRESH: dict[str, dict[str, dict[str, Any]]] = {}


def _fresh_snapshot(database_url: str, engine: sa.Engine) -> dict[str, dict[str, Any]]:
    """The tables of a new store on this backend (made once per run, in the same database)."""
    backend = engine.dialect.name
    if backend not in _FRESH:
        open_store(database_url).close()
        _FRESH[backend] = _snapshot(engine)
        _reset(engine)
    return _FRESH[backend]


# -- tests ----------------------------------------------------------------------------------------


def test_the_history_is_one_numbered_line_ending_at_the_schema_version() -> None:
    script = ScriptDirectory(str(migrate.MIGRATIONS))
    revisions = list(reversed(list(script.walk_revisions())))
    ids = [r.revision for r in revisions]
    assert ids == [f"{n:04d}" for n in range(1, len(ids) + 1)]
    assert [r.down_revision for r in revisions] == [None, *ids[:-1]]
    assert script.get_heads() == [migrate.head()] == [ids[-1]]
    assert int(migrate.head()) == schema.SCHEMA_VERSION
    # every old version has its revision, with the same number
    assert {f"{v:04d}" for v in schema.LEGACY_VERSIONS} <= set(ids)


def test_the_history_ships_in_the_package() -> None:
    """pyproject's package data names every file of the history (a wheel without them cannot
    open a store)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["segue.store"]
    package = ROOT / "src" / "segue" / "store"
    files = [
        p.relative_to(package).as_posix()
        for p in migrate.MIGRATIONS.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    assert "migrations/env.py" in files and "migrations/versions/0001_baseline.py" in files
    unshipped = [f for f in files if not any(fnmatch.fnmatch(f, p) for p in patterns)]
    assert not unshipped


def test_a_fresh_store_has_the_tables_of_the_code(database_url: str, engine: sa.Engine) -> None:
    with open_store(database_url) as store:
        assert store.schema_version == schema.SCHEMA_VERSION
    assert _revision(engine) == migrate.head()
    assert _differences_from_the_code(engine) == []
    shape = _snapshot(engine)
    assert set(shape) == {*schema.metadata.tables, "alembic_version"}  # no "meta" any more


@pytest.mark.parametrize(
    ("version", "created_at"),
    [(1, 1), (2, 1), (3, 1), (4, 1), (2, 2), (3, 3), (4, 4)],
    ids=lambda v: str(v),
)
def test_an_old_store_is_upgraded_to_the_fresh_schema_with_its_data(
    database_url: str, engine: sa.Engine, version: int, created_at: int
) -> None:
    fresh = _fresh_snapshot(database_url, engine)
    old = _old_store(engine, version, created_at)
    _fill(engine, old)
    before = _snapshot(engine)
    assert "meta" in before and "alembic_version" not in before
    # events has foreign keys where segue <= 4 left them: SQLite files that started below 4
    expect_fks = created_at < 4 and (version < 4 or engine.dialect.name == "sqlite")
    assert bool(before["events"]["foreign_keys"]) == expect_fks

    with open_store(database_url) as store:
        assert store.schema_version == schema.SCHEMA_VERSION
        _check_data(store, version)
        # event keys survived (SQLite rebuilds events), new ones follow, ids stay unique
        assert store.add_events([_play("e3"), _play("e1")]) == 1
    with engine.connect() as conn:
        keys = conn.exec_driver_sql("SELECT key, event_id FROM events ORDER BY key").all()
        assert [tuple(k) for k in keys] == [(1, "e1"), (2, "e2"), (3, "e0"), (4, "e3")]
    after = _snapshot(engine)
    assert after == fresh
    assert _differences_from_the_code(engine) == []
    assert _revision(engine) == migrate.head()

    with open_store(database_url) as store:  # writes work as in a fresh store
        store.upsert_users([User(id="u3", signup_at=T0)])
        store.upsert_items([Item(id="i3", kind=ItemKind.TRACK, title="three")])
        store.outbox_add([_message("m2")])
        store.publish_lists("daily", "v0002", "mix", [PublishedList("u3", T0.date(), "{}")])
    with open_store(database_url) as store:
        assert store.get_user("u3") is not None and store.get_item("i3") is not None
        assert store.outbox_counts()["pending"] == (2 if version >= 2 else 1)
        assert store.published_counts("daily", "v0002") == {"mix": 1}


def _play(event_id: str, user_id: str = "u1") -> Event:
    return Event(event_id=event_id, user_id=user_id, item_id="i1", type="play", timestamp=T0)


def _message(message_id: str) -> OutboxMessage:
    return OutboxMessage(
        message_id=message_id,
        campaign="c2",
        user_id="u3",
        channel="email",
        action_type="play_track",
        item_id="i3",
        payload={},
        created_ms=T0_MS,
        scheduled_ms=T0_MS,
        p_click=0.5,
        value=1.0,
    )


def test_migrating_again_changes_nothing(database_url: str, engine: sa.Engine) -> None:
    _fill(engine, _old_store(engine, 3, 1))
    open_store(database_url).close()
    upgraded = _snapshot(engine)
    # both ways in: the store opening again, and Alembic asked directly to upgrade once more
    with open_store(database_url) as store:
        _check_data(store, 3)
    with engine.begin() as conn:
        command.upgrade(migrate.alembic_config(connection=conn), "head")
        assert migrate.prepare(conn, "here") == schema.SCHEMA_VERSION
    assert _snapshot(engine) == upgraded
    assert _revision(engine) == migrate.head()
    with open_store(database_url) as store:
        _check_data(store, 3)


def test_events_have_no_foreign_keys_on_either_backend_and_the_others_are_enforced(
    database_url: str, engine: sa.Engine
) -> None:
    with open_store(database_url) as store:
        shape = _snapshot(engine)
        assert shape["events"]["foreign_keys"] == []
        assert shape["friendships"]["foreign_keys"] == [
            ("fk_friendships_friend_key_users", ("friend_key",), "users", ("key",)),
            ("fk_friendships_user_key_users", ("user_key",), "users", ("key",)),
        ]
        assert [fk[0] for fk in shape["tag_assignments"]["foreign_keys"]] == [
            "fk_tag_assignments_tag_id_tags",
            "fk_tag_assignments_user_key_users",
        ]
        # SQLite enforces them too (the store turns the pragma on for every connection)
        with pytest.raises(sa.exc.IntegrityError), store.transaction():
            store._tx.execute(schema.friendships.insert().values(user_key=9, friend_key=8))
        # events are checked by the writers instead: an unknown user is refused, by id
        with pytest.raises(StoreError, match="unknown user"):
            store.add_events([_play("x", user_id="ghost")])


def test_a_store_newer_than_the_code_is_refused_and_left_alone(
    database_url: str, engine: sa.Engine
) -> None:
    open_store(database_url).close()
    newer = f"{schema.SCHEMA_VERSION + 1:04d}"
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": newer})
    shape = _snapshot(engine)
    with pytest.raises(StoreError, match=rf"schema version {newer}, newer .*Upgrade segue") as e:
        open_store(database_url)
    assert isinstance(e.value, SegueError)
    assert _revision(engine) == newer and _snapshot(engine) == shape


def test_an_old_store_with_a_version_no_segue_wrote_is_refused(
    database_url: str, engine: sa.Engine
) -> None:
    _old_store(engine, 4, 4)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE meta SET value = '5'")
    with pytest.raises(StoreError, match=r"schema version 5, newer .*Upgrade segue"):
        open_store(database_url)
    assert "alembic_version" not in _snapshot(engine)


def test_a_failing_step_leaves_the_old_store_as_it_was(
    database_url: str, engine: sa.Engine
) -> None:
    old = _old_store(engine, 1, 1)
    _fill(engine, old)
    with engine.begin() as conn:  # something of another program's, where 0002 creates outbox
        conn.exec_driver_sql("CREATE TABLE outbox (note TEXT)")
    before = _snapshot(engine)
    expected = rf"from schema version 0001 to {migrate.head()}: .*Nothing was"
    with pytest.raises(StoreError, match=expected):
        open_store(database_url)
    assert _snapshot(engine) == before  # still meta, no alembic_version, no published
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT value FROM meta").scalar_one() == "1"
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM events").scalar_one() == 3


def test_tables_without_any_version_are_refused(database_url: str, engine: sa.Engine) -> None:
    md = _old_tables(4)
    md.remove(md.tables["meta"])
    with engine.begin() as conn:
        md.create_all(conn)
    with pytest.raises(StoreError, match="no segue schema version; it is not a segue database"):
        open_store(database_url)
    assert "alembic_version" not in _snapshot(engine)


def test_a_store_at_version_8_gets_event_ids_unique_by_an_index_with_its_rows(
    database_url: str, engine: sa.Engine
) -> None:
    """Revision 0009: ``uq_events_event_id`` goes from a table constraint to a unique index
    (what a bulk load can drop and rebuild), rows and keys kept, ids still unique."""
    fresh = _fresh_snapshot(database_url, engine)
    with engine.begin() as conn:
        command.upgrade(migrate.alembic_config(connection=conn), "0008")
    at_8 = sa.MetaData()
    at_8.reflect(engine)
    _fill(engine, at_8)
    before = _snapshot(engine)["events"]
    assert ("uq_events_event_id", ("event_id",)) in before["unique"]

    with open_store(database_url) as store:
        assert store.schema_version == schema.SCHEMA_VERSION == 9
        _check_data(store, 3)
        assert store.add_events([_play("e3"), _play("e1"), _play("e3")]) == 1
    after = _snapshot(engine)
    assert after == fresh and _differences_from_the_code(engine) == []
    assert after["events"]["unique"] == []
    assert ("uq_events_event_id", ("event_id",), True) in after["events"]["indexes"]
    with engine.connect() as conn:
        keys = conn.exec_driver_sql("SELECT key, event_id FROM events ORDER BY key").all()
        assert [tuple(k) for k in keys] == [(1, "e1"), (2, "e2"), (3, "e0"), (4, "e3")]
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:  # the index is unique
        conn.exec_driver_sql(
            "INSERT INTO events (event_id, user_key, item_key, type, ts_ms, count, focus) "
            "VALUES ('e2', 1, 1, 'play', 0, 1, false)"
        )
