"""steps: how a completed step is undone

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:05:00.000000

Written when the step succeeds: the runbook's ``undo:``, the executor's natural inverse, or why
nothing undoes it. A rollback reads it back, also after a restart.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("undo", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.drop_column("undo")
