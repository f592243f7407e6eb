"""``events`` without foreign keys on SQLite too, so that both backends have the same tables.

Schema version 4 created ``events`` without them, but SQLite files migrated to 4 from older
versions kept their declarations (version 4 only dropped them on PostgreSQL). Such a file's
``events`` is rebuilt here as version 4 creates it (rows, keys and the secondary index kept);
a file that has no such constraints, and PostgreSQL, are left as they are.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _events_at_version_4() -> sa.Table:
    return sa.Table(
        "events",
        sa.MetaData(),
        sa.Column("key", sa.Integer, autoincrement=True),
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
        sa.Index("ix_events_user_ts", "user_key", "ts_ms"),
    )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite" or not sa.inspect(bind).get_foreign_keys("events"):
        return
    # Nothing references events, so the copy-and-rename needs no foreign-key pragma.
    with op.batch_alter_table("events", copy_from=_events_at_version_4(), recreate="always"):
        pass


def downgrade() -> None:
    raise NotImplementedError("segue's store migrations only go forward")
