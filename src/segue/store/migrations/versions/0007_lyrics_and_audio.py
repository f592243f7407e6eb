"""Schema version 7: a track's synced lyrics and its audio file (see segue.store.media).

Two tables keyed by the item's external id, each with a foreign key to ``items.id``: serving
reads a track's lyrics by primary key on every ``?at=`` lookup. Neither holds anything about a
listener, so erasure and export leave them alone.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lyrics",
        sa.Column("item_id", sa.String(200), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("item_id", name="pk_lyrics"),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name="fk_lyrics_item_id_items"),
    )
    op.create_table(
        "item_audio",
        sa.Column("item_id", sa.String(200), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("item_id", name="pk_item_audio"),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name="fk_item_audio_item_id_items"),
    )


def downgrade() -> None:
    raise NotImplementedError("segue's store migrations only go forward")
