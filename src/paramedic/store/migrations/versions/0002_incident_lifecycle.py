"""incident lifecycle for humans: who acknowledged, assignee, snooze, who resolved and why

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 23:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = (
    ("acknowledged_by", sa.String(length=128)),
    ("assignee", sa.String(length=256)),
    ("assignee_kind", sa.String(length=16)),
    ("snoozed_until", sa.DateTime(timezone=True)),
    ("resolved_by", sa.String(length=128)),
    ("resolution", sa.Text()),
)


def upgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        for name, type_ in COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
