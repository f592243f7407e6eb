"""Schema version 9: ``events.event_id`` is unique by a unique index, no longer a table
constraint.

Why: a bulk load must be able to drop the uniqueness of event ids and rebuild it in one sort
at the commit, as it already does for ``ix_events_user_ts`` (see
:func:`segue.store.bulk.add_event_log`). SQLite cannot drop a table constraint without
rebuilding the table, but it can drop an index; and inserting content-hash ids into a live
unique B-tree that outgrows the page cache was most of a 3M-row import's time (measured in
docs/benchmarks.md, "Importing any log"). The index keeps the constraint's name,
``uq_events_event_id``, and ``ON CONFLICT (event_id) DO NOTHING`` infers it on both backends.

SQLite rebuilds ``events`` (rows and keys kept, as revision 0005 does); PostgreSQL drops the
constraint (and the index behind it) and builds the unique index. Both are one-off costs of
reading the table once.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_NAME = "uq_events_event_id"


def _events_at_version_9() -> sa.Table:
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
        sa.Index(_NAME, "event_id", unique=True),
        sa.Index("ix_events_user_ts", "user_key", "ts_ms"),
    )


def upgrade() -> None:
    bind = op.get_bind()
    constraints = {u["name"] for u in sa.inspect(bind).get_unique_constraints("events")}
    if _NAME not in constraints:
        return
    if bind.dialect.name == "sqlite":
        # Nothing references events, so the copy-and-rename needs no foreign-key pragma.
        with op.batch_alter_table("events", copy_from=_events_at_version_9(), recreate="always"):
            pass
        return
    op.drop_constraint(_NAME, "events", type_="unique")
    op.create_index(_NAME, "events", ["event_id"], unique=True)


def downgrade() -> None:
    raise NotImplementedError("segue's store migrations only go forward")
