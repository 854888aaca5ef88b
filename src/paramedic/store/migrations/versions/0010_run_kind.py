"""runs.kind: a remediation, or the way back (``recover``) of one on the same incident

A runbook has at most one remediation run per incident (the exactly-once guarantee) and at most one
recovery run: the unique key becomes (incident_id, runbook, kind).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 00:25:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), nullable=False, server_default="remediation"))
        batch_op.drop_constraint("uq_runs_incident_runbook", type_="unique")
        batch_op.create_unique_constraint("uq_runs_incident_runbook_kind", ["incident_id", "runbook", "kind"])


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_runs_incident_runbook_kind", type_="unique")
        batch_op.create_unique_constraint("uq_runs_incident_runbook", ["incident_id", "runbook"])
        batch_op.drop_column("kind")
