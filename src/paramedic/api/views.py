"""JSON views of store rows for the API (one place, so the CLI and UI show the same thing)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from paramedic.api import escalation
from paramedic.core.durations import format_duration
from paramedic.store import audit as audit_repo
from paramedic.store import runs as runs_repo
from paramedic.store.rows import IncidentRow, RunRow, StepRow
from paramedic.store.tables import evidence, verdicts


def _t(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def incident(row: IncidentRow) -> dict[str, Any]:
    mttr = (row.resolved_at - row.starts_at).total_seconds() if row.resolved_at else None
    ttm = (row.mitigated_at - row.starts_at).total_seconds() if row.mitigated_at else None
    return {
        "id": row.id,
        "source": row.source,
        "fingerprint": row.fingerprint,
        "alertname": row.alertname,
        "service": row.service,
        "severity": row.severity,
        "status": row.status,
        "labels": dict(row.labels),
        "annotations": dict(row.annotations),
        "group_key": row.group_key,
        "runbooks": row.runbooks,
        "handled_by": row.handled_by,
        "deliveries": row.deliveries,
        "detected_at": _t(row.starts_at),
        "first_seen_at": _t(row.first_seen_at),
        "acknowledged_at": _t(row.acknowledged_at),
        "mitigated_at": _t(row.mitigated_at),
        "escalated_at": _t(row.escalated_at),
        "resolved_at": _t(row.resolved_at),
        "time_to_mitigate_s": ttm,
        "mttr_s": mttr,
        "mttr": format_duration(mttr) if mttr is not None else None,
        "owner": row.owner,
        "generator_url": row.generator_url,
        "acknowledged_by": row.acknowledged_by,
        "assignee": row.assignee,
        "assignee_kind": row.assignee_kind,
        "snoozed_until": _t(row.snoozed_until),
        "resolved_by": row.resolved_by,
        "resolution": row.resolution,
    }


def step(row: StepRow) -> dict[str, Any]:
    return {
        "idx": row.idx,
        "action": row.action,
        "args": dict(row.args),
        "idempotent": row.idempotent,
        "status": row.status,
        "attempts": row.attempts,
        "started_at": _t(row.started_at),
        "finished_at": _t(row.finished_at),
        "summary": row.summary,
        "output": row.output,
        "error": row.error,
        "reason": row.reason,
        "undo": dict(row.undo) if row.undo else None,
    }


def run(conn: Connection, row: RunRow) -> dict[str, Any]:
    vs = conn.execute(select(verdicts).where(verdicts.c.run_id == row.id).order_by(verdicts.c.id))
    return {
        "id": row.id,
        "runbook": row.runbook,
        "mode": row.mode,
        "status": row.status,
        "target": row.target,
        "service": row.service,
        "reason": row.reason,
        "plan": dict(row.plan),
        "plan_digest": row.plan_digest,
        "created_at": _t(row.created_at),
        "finished_at": _t(row.finished_at),
        "approval_expires_at": _t(row.approval_expires_at),
        "steps": [step(s) for s in runs_repo.steps_of(conn, row.id)],
        "verdicts": [
            {
                "step": v.step_idx,
                "at": _t(v.at),
                "allowed": v.allowed,
                "code": v.code,
                "checks": v.checks,
            }
            for v in vs
        ],
        "approvals": runs_repo.approvals_of(conn, row.id),
    }


def incident_detail(conn: Connection, row: IncidentRow) -> dict[str, Any]:
    out = incident(row)
    out["runs"] = [run(conn, r) for r in runs_repo.for_incident(conn, row.id)]
    ev = conn.execute(select(evidence).where(evidence.c.incident_id == row.id).order_by(evidence.c.id))
    out["evidence"] = [
        {
            "kind": e.kind,
            "title": e.title,
            "status": e.status,
            "body": e.body,
            "data": e.data,
            "has_image": bool(e.image),
            "at": _t(e.at),
        }
        for e in ev
    ]
    out["timeline"] = [
        {
            "seq": e.seq,
            "at": _t(e.at),
            "kind": e.kind,
            "actor": e.actor,
            "run_id": e.run_id,
            "data": dict(e.data),
        }
        for e in reversed(audit_repo.page(conn, incident_id=row.id, limit=500))
    ]
    out["notes"] = [
        {"at": t["at"], "by": t["actor"], "text": t["data"].get("text", "")}
        for t in out["timeline"]
        if t["kind"] == "incident.note"
    ]
    out["escalation"] = escalation.banner(out)
    return out
