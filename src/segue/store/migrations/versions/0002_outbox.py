"""Schema version 2: the next-best-action outbox (see segue.store.outbox).

User and item are external ids without foreign keys: a message outlives a deleted item.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("key", _BIG_KEY, autoincrement=True),
        sa.Column("message_id", sa.String(200), nullable=False),
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
        sa.PrimaryKeyConstraint("key", name="pk_outbox"),
        sa.UniqueConstraint("message_id", name="uq_outbox_message_id"),
    )
    op.create_index("ix_outbox_status_scheduled", "outbox", ["status", "scheduled_ms"])
    op.create_index("ix_outbox_user_created", "outbox", ["user_id", "created_ms"])
    op.create_index("ix_outbox_claim_token", "outbox", ["claim_token"])


def downgrade() -> None:
    raise NotImplementedError("segue's store migrations only go forward")
