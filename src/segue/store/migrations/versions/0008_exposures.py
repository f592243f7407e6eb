"""Schema version 8: the exposure log, every list served as it was shown (see
segue.store.exposures).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exposures",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
        sa.Column("surface", sa.String(32), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("path", sa.String(32), nullable=False),
        sa.Column("items", sa.Text, nullable=False),
        sa.Column("experiments", sa.Text, nullable=False),
        sa.Column("context", sa.Text, nullable=False),
        sa.Column("propensities", sa.Text),
        sa.PrimaryKeyConstraint("request_id", name="pk_exposures"),
    )
    op.create_index("ix_exposures_ts", "exposures", ["ts_ms"])
    op.create_index("ix_exposures_user_ts", "exposures", ["user_id", "ts_ms"])


def downgrade() -> None:
    raise NotImplementedError("segue's store migrations only go forward")
