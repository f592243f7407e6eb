"""The tables of the store, identical on SQLite and PostgreSQL, as the code reads and writes them.

Design choices that the rest of the store relies on:

* Timestamps are ``BIGINT`` epoch milliseconds (``ts_ms``, ``signup_ms``): the same bytes on
  both backends, no timezone conversions by drivers, and they load straight into NumPy.
* ``users`` and ``items`` carry an integer surrogate ``key`` next to the external string ``id``;
  events and links reference the ints, which keeps the big ``events`` table narrow. The
  ``events`` references are not foreign-key constraints, on either backend (revisions 0004 and
  0005, for ingestion speed): writers resolve them inside the inserting transaction and refuse
  unknown ids with the row that named them. Nothing deletes an item; a listener is deleted
  only by erasure (:mod:`segue.store.privacy`), which removes their events by the
  ``(user_key, ts_ms)`` index, not through constraints.
* ``events.key`` is the insertion order, the tie-break when two events share a timestamp.
* Lists (genres, tags) and audio features are JSON text: they are read whole, never queried.
* ``tag_assignments.item_id`` is the external item id with **no foreign key**: tags may describe
  items outside the catalog (Last.fm's tag file names 390 artists that ``artists.dat`` lacks and
  every one of its 186,478 assignments is kept). Users and tags in assignments are checked.

How the tables got here is the Alembic history in ``migrations/versions/``, which
:mod:`segue.store.migrate` runs when a store opens; a change to the tables below needs a new
revision there, and ``tests/test_store_migrations.py`` checks that the two agree.
"""

from __future__ import annotations

import sqlalchemy as sa

#: The newest revision of ``migrations/versions/`` as a number ("0005" is 5): the version of the
#: tables below, and what :attr:`segue.store.base.Store.schema_version` reports once open.
SCHEMA_VERSION = 9

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
    sa.Column("event_id", sa.String(200), nullable=False),
    # users.key / items.key, without foreign-key constraints: see the module docstring.
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
    # Revision 0009: a unique index rather than a table constraint, so that a bulk load can
    # drop it and rebuild it in one sort (segue.store.bulk); ON CONFLICT (event_id) infers it.
    sa.Index("uq_events_event_id", "event_id", unique=True),
    sa.Index("ix_events_user_ts", "user_key", "ts_ms"),
)

friendships = sa.Table(
    "friendships",
    metadata,
    sa.Column("user_key", sa.Integer, sa.ForeignKey("users.key"), primary_key=True),
    sa.Column("friend_key", sa.Integer, sa.ForeignKey("users.key"), primary_key=True),
    # revision 0006: erasure finds the links pointing at a listener without a scan
    sa.Index("ix_friendships_friend_key", "friend_key"),
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

# Revision 0002: the next-best-action outbox (see segue.store.outbox for the delivery protocol).
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

# Revision 0003: the lists a daily run published, one row per (registry name, version, kind, user)
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

# Revision 0006: the deletion log (see segue.store.privacy). One row per erased listener: a
# one-way hash of the id and when it was erased, nothing else. Serving refuses events of an
# erased id (instead of re-creating the listener) until they sign up again.
deletion_log = sa.Table(
    "deletion_log",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),  # sha256 hex of the id, see privacy
    sa.Column("erased_ms", sa.BigInteger, nullable=False),
)

# Revision 0007: a track's synced lyrics and its audio file (see segue.store.media). Keyed by
# the item's external id, so that the per-request read is one primary-key lookup.
lyrics = sa.Table(
    "lyrics",
    metadata,
    sa.Column("item_id", sa.String(200), sa.ForeignKey("items.id"), primary_key=True),
    sa.Column("format", sa.String(16), nullable=False),  # "lrc" (parsed JSON) or "synth"
    sa.Column("source", sa.Text, nullable=False),  # the file, or "segue synth"
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

item_audio = sa.Table(
    "item_audio",
    metadata,
    sa.Column("item_id", sa.String(200), sa.ForeignKey("items.id"), primary_key=True),
    sa.Column("path", sa.Text, nullable=False),  # absolute path on the serving machine
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

# Revision 0008: every list served, as it was shown (see segue.store.exposures): the record
# online metrics, experiments and counterfactual estimates are computed from. Keyed by the
# request id (a retried write adds nothing); user and items are external ids without foreign
# keys, like the outbox's. Personal data: erased and exported with the listener.
exposures = sa.Table(
    "exposures",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("ts_ms", sa.BigInteger, nullable=False),
    sa.Column("surface", sa.String(32), nullable=False),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("path", sa.String(32), nullable=False),  # personal, cold_start, fallback, ...
    sa.Column("items", sa.Text, nullable=False),  # JSON list of item ids, position order
    sa.Column("experiments", sa.Text, nullable=False),  # JSON {experiment: variant}
    sa.Column("context", sa.Text, nullable=False),  # JSON {device, local_time, ...}
    sa.Column("propensities", sa.Text),  # JSON list per position where a stage explored
    sa.Index("ix_exposures_ts", "ts_ms"),
    sa.Index("ix_exposures_user_ts", "user_id", "ts_ms"),
)

#: Store tables by the public names in :data:`segue.store.base.TABLES`.
TABLES_BY_NAME: dict[str, sa.Table] = {
    t.name: t for t in (items, users, events, friendships, tags, tag_assignments, exposures)
}


#: The columns of an event beyond its id and its user and item keys, in table order: what
#: bulk inserts write, and what exports and a listener's export read back.
EVENT_DETAIL_COLUMNS = (
    "type",
    "ts_ms",
    "ms_played",
    "count",
    "session_id",
    "surface",
    "source",
    "device",
    "focus",
    "rating",
)

# -- before Alembic ----------------------------------------------------------------------------
#: Up to schema version 4 segue kept the version as the ``schema_version`` row of a ``meta``
#: table. Opening such a store records the matching revision (version N is revision "000N")
#: in Alembic's table, drops ``meta`` and upgrades from there (see segue.store.migrate).
LEGACY_VERSIONS = range(1, 5)
legacy_meta = sa.Table(
    "meta",
    sa.MetaData(),
    sa.Column("name", sa.String(100)),
    sa.Column("value", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("name", name="pk_meta"),
)
