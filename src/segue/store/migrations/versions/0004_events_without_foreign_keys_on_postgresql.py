"""Schema version 4: ``events`` loses its foreign keys to ``users`` and ``items`` on PostgreSQL.

Why: each inserted event fired two constraint triggers, each locking the referenced user and
item row (``FOR KEY SHARE``), 30 of the 51 µs an event's insert cost on the 10M-event world:
the largest single cost of streaming ingestion. The keys stay right by construction: every
writer resolves them from ``users`` and ``items`` inside the inserting transaction (unknown ids
are refused with the row that named them), and no code path deletes a user or an item or
changes its key. Version 4 left SQLite alone (dropping a constraint there rebuilds the table);
revision 0005 finishes the job there.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for name in ("fk_events_user_key_users", "fk_events_item_key_items"):
        bind.exec_driver_sql(f"ALTER TABLE events DROP CONSTRAINT IF EXISTS {name}")


def downgrade() -> None:
    raise NotImplementedError("segue's store migrations only go forward")
