"""SQLAlchemy table definitions. Alembic migrations in ``store/migrations`` create them; this
module is the single description the repositories query against."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TS = UTCDateTime()
ID = BigInteger().with_variant(Integer, "sqlite")

incidents = Table(
    "incidents",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("source", String(32), nullable=False),
    Column("fingerprint", String(128), nullable=False),
    Column("starts_at", TS, nullable=False),
    # "source|fingerprint" while open, NULL once resolved: a unique index keeps one open incident
    Column("open_key", String(200), nullable=True, unique=True),
    Column("group_key", Text, nullable=False, default=""),
    Column("alertname", String(256), nullable=False),
    Column("service", String(256), nullable=False, default=""),
    Column("severity", String(64), nullable=False, default=""),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("status", String(32), nullable=False),
    Column("runbooks", JSON, nullable=False),
    Column("handled_by", String(16), nullable=False, default=""),
    Column("deliveries", Integer, nullable=False, default=1),
    Column("first_seen_at", TS, nullable=False),
    Column("last_seen_at", TS, nullable=False),
    Column("acknowledged_at", TS),
    Column("mitigated_at", TS),
    Column("escalated_at", TS),
    Column("resolved_at", TS),
    Column("ends_at", TS),
    Column("generator_url", Text, nullable=False, default=""),
    # the human side (migration 0002): who acknowledged, who owns it now, snooze, who resolved and why
    Column("acknowledged_by", String(128)),
    Column("assignee", String(256)),
    Column("assignee_kind", String(16)),  # person | team
    Column("snoozed_until", TS),
    Column("resolved_by", String(128)),
    Column("resolution", Text),
    Column("owner", String(128)),  # migration 0003: the runbook's owner, else the service's (config owners:)
    UniqueConstraint("source", "fingerprint", "starts_at", name="uq_incidents_episode"),
    Index("ix_incidents_status", "status"),
    Index("ix_incidents_fp", "source", "fingerprint"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("incident_id", ID, ForeignKey("incidents.id"), nullable=False),
    Column("runbook", String(128), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("status", String(32), nullable=False),
    Column("plan", JSON, nullable=False),
    Column("plan_digest", String(32), nullable=False),
    Column("target", String(512), nullable=False, default=""),
    Column("service", String(256), nullable=False, default=""),
    Column("current_step", Integer, nullable=False, default=0),
    Column("phase", String(16), nullable=False, default="steps"),  # steps | verify | done
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_owner", String(128)),
    Column("lease_until", TS),
    Column("not_before", TS),
    Column("reason", Text, nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("approval_expires_at", TS),
    Column("finished_at", TS),
    Column("kind", String(16), nullable=False, default="remediation", server_default="remediation"),  # | recovery
    UniqueConstraint("incident_id", "runbook", "kind", name="uq_runs_incident_runbook_kind"),
    Index("ix_runs_claim", "status", "lease_until"),
)

steps = Table(
    "steps",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("run_id", ID, ForeignKey("runs.id"), nullable=False),
    Column("idx", Integer, nullable=False),
    Column("action", String(128), nullable=False),
    Column("args", JSON, nullable=False),
    Column("idempotent", Boolean, nullable=False),
    Column("status", String(16), nullable=False),  # pending started succeeded failed skipped
    Column("attempts", Integer, nullable=False, default=0),
    Column("started_at", TS),
    Column("finished_at", TS),
    Column("summary", Text, nullable=False, default=""),
    Column("output", Text, nullable=False, default=""),
    Column("error", Text, nullable=False, default=""),
    Column("reason", String(64), nullable=False, default=""),
    Column("undo", JSON),  # {action, args} | {none: why}; written when the step succeeds
    UniqueConstraint("run_id", "idx", name="uq_steps_run_idx"),
)

# Every executed (or executing) action, for rate limits, blast radius and breakers.
ledger = Table(
    "action_ledger",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("run_id", ID, nullable=False),
    Column("step_idx", Integer, nullable=False),
    Column("runbook", String(128), nullable=False),
    Column("target", String(512), nullable=False),
    Column("service", String(256), nullable=False, default=""),
    Column("scope", JSON, nullable=False),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS),
    Column("outcome", String(16), nullable=False),  # in_flight succeeded failed
    Index("ix_ledger_started", "started_at"),
)

verdicts = Table(
    "verdicts",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("run_id", ID, nullable=False),
    Column("step_idx", Integer, nullable=False),
    Column("at", TS, nullable=False),
    Column("checks", JSON, nullable=False),
    Column("allowed", Boolean, nullable=False),
    Column("code", String(64), nullable=False, default=""),
    Index("ix_verdicts_run", "run_id"),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("run_id", ID, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("plan_digest", String(32), nullable=False),
    Column("at", TS, nullable=False),
    UniqueConstraint("run_id", "actor", name="uq_approvals_run_actor"),
)

evidence = Table(
    "evidence",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("incident_id", ID, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("title", Text, nullable=False),
    Column("status", String(16), nullable=False),  # ok failed timeout
    Column("body", Text, nullable=False, default=""),
    Column("data", JSON, nullable=False),
    Column("image", Text),  # base64 PNG
    Column("at", TS, nullable=False),
    Index("ix_evidence_incident", "incident_id"),
)

audit = Table(
    "audit",
    metadata,
    Column("seq", ID, primary_key=True, autoincrement=False),
    Column("at", TS, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("incident_id", ID),
    Column("run_id", ID),
    Column("data", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("key_id", String(16)),  # the id of the key that links this entry; NULL: unkeyed SHA-256
    Index("ix_audit_incident", "incident_id"),
)

# One row: the chain's tip, updated in the same transaction as each append (detects a cut tail).
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", ID, nullable=False),
    Column("hash", String(64), nullable=False),
)

settings = Table(
    "settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("updated_by", String(128), nullable=False, default=""),
)

breakers = Table(
    "breakers",
    metadata,
    Column("runbook", String(128), primary_key=True),
    Column("scope_key", String(512), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("updated_at", TS, nullable=False),
)

trust = Table(
    "trust",
    metadata,
    Column("runbook", String(128), primary_key=True),
    Column("mode", String(16)),  # the mode trust or a human set, in force while the file's mode is ``ceiling``
    Column("ceiling", String(16)),  # the file's mode when ``mode`` was set: an edit to the file voids ``mode``
    Column("mode_since", TS),  # when ``mode`` was set: marks and runs since then count toward promotion
    Column("runs", Integer, nullable=False, default=0),
    Column("successes", Integer, nullable=False, default=0),
    Column("failures", Integer, nullable=False, default=0),
    Column("runs_at_mode", Integer, nullable=False, default=0),
    Column("successes_at_mode", Integer, nullable=False, default=0),
    Column("last_failure_at", TS),
    Column("last_failure", Text, nullable=False, default=""),
    Column("updated_at", TS, nullable=False),
)

# A responder's judgement of a suggestion paramedic made without acting: an observed run
# (source "observe", ref = the run id) or a backtested episode (source "backtest").
suggestion_marks = Table(
    "suggestion_marks",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("runbook", String(128), nullable=False),
    Column("source", String(16), nullable=False),
    Column("ref", String(256), nullable=False),
    Column("right", Boolean, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("at", TS, nullable=False),
    UniqueConstraint("source", "ref", name="uq_suggestion_marks_source_ref"),
    Index("ix_suggestion_marks_runbook", "runbook", "at"),
)

targets = Table(
    "known_targets",
    metadata,
    Column("scope_key", String(512), primary_key=True),
    Column("target", String(512), primary_key=True),
    Column("healthy", Boolean, nullable=False, default=True),
    Column("origin", String(32), nullable=False),
    Column("seen_at", TS, nullable=False),
)

# Serialises guardrail decisions per scope across replicas (SELECT ... FOR UPDATE on a row).
scope_locks = Table(
    "scope_locks",
    metadata,
    Column("scope_key", String(512), primary_key=True),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("sink", String(128), nullable=False),
    Column("dedup_key", String(256), nullable=False),
    Column("incident_id", ID),
    Column("event", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending sent dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", TS, nullable=False),
    Column("last_error", Text, nullable=False, default=""),
    Column("lease_until", TS),
    Column("created_at", TS, nullable=False),
    Column("sent_at", TS),
    # sent inside the grouped message of that row (an alert storm: one message for many incidents)
    Column("grouped_into", ID, nullable=True),
    UniqueConstraint("sink", "dedup_key", name="uq_outbox_sink_dedup"),
    Index("ix_outbox_due", "status", "next_at"),
)

changes = Table(
    "changes",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("service", String(256), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("version", String(256), nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("actor", String(128), nullable=False, default=""),
    Column("at", TS, nullable=False),
    Column("data", JSON, nullable=False),
    Index("ix_changes_service_at", "service", "at"),
)

# Keys remembered for a while, across restarts and replicas: webhook delivery ids inside their
# replay window (kind "webhook"), UI sessions ended by a logout until they would have expired
# (kind "logout"). A row past ``expires_at`` means nothing and is deleted on the next write.
seen_keys = Table(
    "seen_keys",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("expires_at", TS, nullable=False),
    Index("ix_seen_keys_expires", "expires_at"),
)

# Large deliveries, stored as received before their 202 and recorded in chunks afterwards
# (``store.inbox``): a storm is answered within the sender's timeout and loses nothing accepted.
inbox = Table(
    "inbox",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("source", String(32), nullable=False),
    Column("body", Text, nullable=False),  # the delivery's JSON, as received
    Column("total", Integer, nullable=False),
    Column("done", Integer, nullable=False, default=0),  # alerts recorded so far
    Column("received_at", TS, nullable=False),
    Column("lease_until", TS),
    Column("finished_at", TS),
    Index("ix_inbox_open", "finished_at"),
)
