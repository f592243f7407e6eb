"""The tables of the store, identical on SQLite and PostgreSQL, and how they evolve.

Design choices that the rest of the store relies on:

* Timestamps are ``BIGINT`` epoch milliseconds (``ts_ms``, ``signup_ms``): the same bytes on
  both backends, no timezone conversions by drivers, and they load straight into NumPy.
* ``users`` and ``items`` carry an integer surrogate ``key`` next to the external string ``id``;
  events and links reference the ints, which keeps the big ``events`` table narrow. The
  ``events`` references are not foreign-key constraints (since version 4, for ingestion speed;
  see :func:`_drop_event_foreign_keys`): writers resolve them inside the inserting transaction.
* ``events.key`` is the insertion order, the tie-break when two events share a timestamp.
* Lists (genres, tags) and audio features are JSON text: they are read whole, never queried.
* ``tag_assignments.item_id`` is the external item id with **no foreign key**: tags may describe
  items outside the catalog (Last.fm's tag file names 390 artists that ``artists.dat`` lacks and
  every one of its 186,478 assignments is kept). Users and tags in assignments are checked.

The schema version lives in ``meta``. A fresh database gets the current tables and version; an
older one is brought forward by :data:`MIGRATIONS`, in order, inside one transaction.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

#: Version of the tables defined below. Bump it together with a new entry in MIGRATIONS.
SCHEMA_VERSION = 4

#: Named constraints, so that migrations and bulk loads can drop and re-add them by name.
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only aliases the rowid (fast, autoincrementing) for a column declared INTEGER.
_BigKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

items = sa.Table(
    "items",
    metadata,
    sa.Column("key", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(200), nullable=False, unique=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("artist_id", sa.String(200)),
    sa.Column("album_id", sa.String(200)),
    sa.Column("show_id", sa.String(200)),
    sa.Column("genres", sa.Text, nullable=False),  # JSON list
    sa.Column("tags", sa.Text, nullable=False),  # JSON list
    sa.Column("duration_ms", sa.BigInteger),
    sa.Column("release_date", sa.Date),
    sa.Column("explicit", sa.Boolean, nullable=False),
    sa.Column("audio", sa.Text),  # JSON object or NULL
    sa.Column("description", sa.Text, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
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

events = sa.Table(
    "events",
    metadata,
    sa.Column("key", _BigKey, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(200), nullable=False, unique=True),
    # users.key / items.key, without foreign-key constraints since version 4: see below.
    sa.Column("user_key", sa.Integer, nullable=False),
    sa.Column("item_key", sa.Integer, nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("ts_ms", sa.BigInteger, nullable=False),
    sa.Column("ms_played", sa.BigInteger),  # NULL = unknown
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("session_id", sa.Text),
    sa.Column("surface", sa.Text),
    sa.Column("source", sa.Text),
    sa.Column("device", sa.Text),
    sa.Column("focus", sa.Boolean, nullable=False),
    sa.Column("rating", sa.Float),
    sa.Index("ix_events_user_ts", "user_key", "ts_ms"),
)

friendships = sa.Table(
    "friendships",
    metadata,
    sa.Column("user_key", sa.Integer, sa.ForeignKey("users.key"), primary_key=True),
    sa.Column("friend_key", sa.Integer, sa.ForeignKey("users.key"), primary_key=True),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.Text, nullable=False),  # not unique: sources repeat names
)

tag_assignments = sa.Table(
    "tag_assignments",
    metadata,
    sa.Column("user_key", sa.Integer, sa.ForeignKey("users.key"), primary_key=True),
    sa.Column("item_id", sa.String(200), primary_key=True),  # external id, no FK (see above)
    sa.Column("tag_id", sa.Integer, sa.ForeignKey("tags.id"), primary_key=True),
    sa.Column("ts_ms", sa.BigInteger, nullable=False),
)

# Version 2: the next-best-action outbox (see segue.store.outbox for the delivery protocol).
# User and item are external ids without foreign keys: a message outlives a deleted item.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("key", _BigKey, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(200), nullable=False, unique=True),  # idempotency key
    sa.Column("campaign", sa.String(200), nullable=False),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("action_type", sa.String(32), nullable=False),
    sa.Column("item_id", sa.String(200), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # JSON: rendered message and recipient
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("scheduled_ms", sa.BigInteger, nullable=False),  # not before (quiet hours, retry)
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

# Version 3: the lists a daily run published, one row per (registry name, version, kind, user)
# (see segue.store.published). The payload is the user's whole list as JSON: serving reads one
# user's list by primary key, and a rollback only has to point at another version's rows.
published = sa.Table(
    "published",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),  # registry name, e.g. "daily"
    sa.Column("version", sa.String(32), primary_key=True),  # registry version, e.g. "v0003"
    sa.Column("kind", sa.String(16), primary_key=True),  # "top", "mix", "nba"
    sa.Column("user_id", sa.String(200), primary_key=True),  # external id, no FK
    sa.Column("day", sa.Date, nullable=False),  # the day the lists were made for
    sa.Column("payload", sa.Text, nullable=False),  # JSON, shape per kind
)

#: Store tables by the public names in :data:`segue.store.base.TABLES`.
TABLES_BY_NAME: dict[str, sa.Table] = {
    t.name: t for t in (items, users, events, friendships, tags, tag_assignments)
}

Migration = Callable[[sa.Connection], None]

#: ``MIGRATIONS[v]`` turns a version ``v - 1`` database into version ``v``. Each runs inside
#: the transaction that opens the store, so a failing step leaves the database as it was.
#: A fresh database skips them: it is created at :data:`SCHEMA_VERSION` directly.
MIGRATIONS: dict[int, Migration] = {
    2: lambda conn: outbox.create(conn),
    3: lambda conn: published.create(conn, checkfirst=True),
    4: lambda conn: _drop_event_foreign_keys(conn),
}

#: The constraints version 4 drops from ``events`` (named by the convention above).
EVENT_FOREIGN_KEYS = ("fk_events_user_key_users", "fk_events_item_key_items")


def _drop_event_foreign_keys(conn: sa.Connection) -> None:
    """Version 4: ``events`` keeps its user and item keys without foreign-key constraints.

    Why: on PostgreSQL each inserted event fired two constraint triggers, each locking the
    referenced user and item row (``FOR KEY SHARE``), 30 of the 51 µs an event's insert cost
    on the 10M-event world: the largest single cost of streaming ingestion. The keys stay
    right by construction: every writer resolves them from ``users`` and ``items`` inside the
    inserting transaction (unknown ids are refused with the row that named them), and no code
    path deletes a user or an item or changes its key. SQLite cannot drop a constraint without
    rebuilding the table; its writes already run with foreign keys off (bulk.py), so an older
    SQLite file keeps its declarations harmlessly.
    """
    if conn.dialect.name == "postgresql":
        for name in EVENT_FOREIGN_KEYS:
            conn.exec_driver_sql(f"ALTER TABLE events DROP CONSTRAINT IF EXISTS {name}")


def read_version(conn: sa.Connection) -> int | None:
    """The stored schema version, or None when the database has no segue tables yet."""
    if not sa.inspect(conn).has_table(meta.name):
        return None
    value = conn.execute(sa.select(meta.c.value).where(meta.c.name == "schema_version")).scalar()
    return None if value is None else int(value)


def write_version(conn: sa.Connection, version: int) -> None:
    updated = conn.execute(
        sa.update(meta).where(meta.c.name == "schema_version").values(value=str(version))
    )
    if updated.rowcount == 0:
        conn.execute(sa.insert(meta).values(name="schema_version", value=str(version)))


def foreign_tables(conn: sa.Connection) -> list[str]:
    """Tables of ours that exist although ``meta`` does not (not a segue database)."""
    inspector = sa.inspect(conn)
    return [name for name in TABLES_BY_NAME if inspector.has_table(name)]


def create_current(conn: sa.Connection, version: int) -> None:
    """Create every table as defined here and stamp ``version`` (the current one)."""
    metadata.create_all(conn)
    write_version(conn, version)


def migrate(conn: sa.Connection, from_version: int, to_version: int) -> None:
    """Run every migration after ``from_version`` up to ``to_version``, then stamp it."""
    for version in range(from_version + 1, to_version + 1):
        step = MIGRATIONS.get(version)
        if step is None:
            raise RuntimeError(f"no migration to schema version {version}")
        step(conn)
    write_version(conn, to_version)
