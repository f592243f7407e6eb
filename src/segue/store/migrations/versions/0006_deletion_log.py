"""Schema version 6: the deletion log of erased listeners (see segue.store.privacy).

One row per erased listener: a one-way hash of the id and the erasure time, no personal data.
And an index on ``friendships.friend_key``, so that erasure finds the links pointing at a
listener without a scan. ``events`` keeps having no foreign keys: erasure deletes its rows by
the ``(user_key, ts_ms)`` index.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deletion_log",
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("erased_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name="pk_deletion_log"),
    )
    op.create_index("ix_friendships_friend_key", "friendships", ["friend_key"])


def downgrade() -> None:
    raise NotImplementedError("segue's store migrations only go forward")
