"""trust: the file's mode as a ceiling, when the mode was set; responders' marks on suggestions

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 23:40:00.000000

A stored mode set before this migration has no ceiling, so the file's mode is in force again until
trust or a human sets one (the file owns the mode).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("trust", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ceiling", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("mode_since", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "suggestion_marks",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("runbook", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=256), nullable=False),
        sa.Column("right", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suggestion_marks")),
        sa.UniqueConstraint("source", "ref", name="uq_suggestion_marks_source_ref"),
    )
    with op.batch_alter_table("suggestion_marks", schema=None) as batch_op:
        batch_op.create_index("ix_suggestion_marks_runbook", ["runbook", "at"], unique=False)


def downgrade() -> None:
    op.drop_table("suggestion_marks")
    with op.batch_alter_table("trust", schema=None) as batch_op:
        batch_op.drop_column("mode_since")
        batch_op.drop_column("ceiling")
