"""audit: the id of the key that links each entry, and a head row from the start

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 23:00:00.000000

The head row is created here, not on the first append, so a missing head is always a sign of
tampering and ``paramedic audit verify`` can report it as a failure.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))
    conn = op.get_bind()
    heads = conn.execute(sa.text("SELECT COUNT(*) FROM audit_head")).scalar_one()
    entries = conn.execute(sa.text("SELECT COUNT(*) FROM audit")).scalar_one()
    if heads == 0 and entries == 0:  # a head missing beside entries is left for verify to report
        conn.execute(sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :genesis)"), {"genesis": "0" * 64})


def downgrade() -> None:
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.drop_column("key_id")
