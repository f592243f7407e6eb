"""Schema version 3: the lists a daily run published (see segue.store.published).

One row per (registry name, version, kind, user); the payload is the user's whole list as
JSON. Like version 3's own step, it leaves a ``published`` table that is already there alone.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("published"):
        return
    op.create_table(
        "published",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", "version", "kind", "user_id", name="pk_published"),
    )


def downgrade() -> None:
    raise NotImplementedError("segue's store migrations only go forward")
