"""seen keys: webhook delivery ids inside their replay window, sessions ended by a logout

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:20:00.000000
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
        "seen_keys",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", name=op.f("pk_seen_keys")),
    )
    with op.batch_alter_table("seen_keys", schema=None) as batch_op:
        batch_op.create_index("ix_seen_keys_expires", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("seen_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_seen_keys_expires")
    op.drop_table("seen_keys")
