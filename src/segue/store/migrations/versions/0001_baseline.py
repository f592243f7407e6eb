"""The tables as segue created them at schema version 1, the first.

The ``meta`` table that held the version then is not among them: Alembic's ``alembic_version``
took its place. Names follow the naming convention of ``segue.store.schema``, written out here
so that this revision never changes when the current tables do.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# SQLite only aliases the rowid (fast, autoincrementing) for a column declared INTEGER.
_BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("key", sa.Integer, autoincrement=True),
        sa.Column("id", sa.String(200), nullable=False),
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
        sa.PrimaryKeyConstraint("key", name="pk_items"),
        sa.UniqueConstraint("id", name="uq_items_id"),
    )
    op.create_table(
        "users",
        sa.Column("key", sa.Integer, autoincrement=True),
        sa.Column("id", sa.String(200), nullable=False),
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
        sa.PrimaryKeyConstraint("key", name="pk_users"),
        sa.UniqueConstraint("id", name="uq_users_id"),
    )
    op.create_table(
        "events",
        sa.Column("key", _BIG_KEY, autoincrement=True),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("user_key", sa.Integer, nullable=False),
        sa.Column("item_key", sa.Integer, nullable=False),
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
        sa.PrimaryKeyConstraint("key", name="pk_events"),
        sa.UniqueConstraint("event_id", name="uq_events_event_id"),
        sa.ForeignKeyConstraint(["user_key"], ["users.key"], name="fk_events_user_key_users"),
        sa.ForeignKeyConstraint(["item_key"], ["items.key"], name="fk_events_item_key_items"),
    )
    op.create_index("ix_events_user_ts", "events", ["user_key", "ts_ms"])
    op.create_table(
        "friendships",
        sa.Column("user_key", sa.Integer, nullable=False),
        sa.Column("friend_key", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("user_key", "friend_key", name="pk_friendships"),
        sa.ForeignKeyConstraint(["user_key"], ["users.key"], name="fk_friendships_user_key_users"),
        sa.ForeignKeyConstraint(
            ["friend_key"], ["users.key"], name="fk_friendships_friend_key_users"
        ),
    )
    op.create_table(
        "tags",
        sa.Column("id", sa.Integer, autoincrement=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tags"),
    )
    op.create_table(
        "tag_assignments",
        sa.Column("user_key", sa.Integer, nullable=False),
        sa.Column("item_id", sa.String(200), nullable=False),
        sa.Column("tag_id", sa.Integer, nullable=False),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("user_key", "item_id", "tag_id", name="pk_tag_assignments"),
        sa.ForeignKeyConstraint(
            ["user_key"], ["users.key"], name="fk_tag_assignments_user_key_users"
        ),
        sa.ForeignKeyConstraint(["tag_id"], ["tags.id"], name="fk_tag_assignments_tag_id_tags"),
    )


def downgrade() -> None:
    raise NotImplementedError("segue's store migrations only go forward")
