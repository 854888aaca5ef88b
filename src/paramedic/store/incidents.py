"""The ingest transaction: record alert deliveries, open and resolve incidents, create runs.

All alerts of one request are written in one transaction, so a ``202`` means every one of them
is stored, and a failure stores none. Runs are created only when an incident is created, so
repeated deliveries never start a second remediation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from paramedic.core.alerts import Alert, Echo, Unreadable
from paramedic.core.incidents import Delivery, Episode, IncidentStatus, decide
from paramedic.core.plan import Plan
from paramedic.core.runbooks import Mode
from paramedic.store import audit
from paramedic.store.rows import IncidentRow, IngestResult
from paramedic.store.tables import evidence, incidents, runs

CANCELLABLE = ("pending", "awaiting_approval", "approved")


@dataclass(frozen=True, slots=True)
class RunSeed:
    """What the engine decided for one matching runbook before the transaction."""

    runbook: str
    mode: Mode
    plan: Plan | None
    error: str = ""
    approval_timeout: timedelta = timedelta(minutes=15)
    version: str = ""  # of the runbook that decided (``RunbookSet.versions``), for the audit trail


def _open_key(alert: Alert) -> str:
    return f"{alert.source}|{alert.fingerprint}"[:200]


# The ingest transaction's statements, built once and executed with parameters: building a
# statement per alert (``.values(...)``, comparisons with literals) cost several times more than
# running it, and capped ingest at a few hundred alerts per second.
_OPEN_EPISODE = select(incidents.c.id, incidents.c.starts_at).where(incidents.c.open_key == bindparam("key"))
_OPEN_EPISODE_LOCKED = _OPEN_EPISODE.with_for_update()
_SEEN = select(incidents.c.id).where(
    and_(
        incidents.c.source == bindparam("source"),
        incidents.c.fingerprint == bindparam("fingerprint"),
        incidents.c.starts_at == bindparam("starts_at"),
    )
)
_REPEATED = (
    update(incidents)
    .where(incidents.c.id == bindparam("incident_id"))
    .values(deliveries=incidents.c.deliveries + 1, last_seen_at=bindparam("seen_at"))
)
_INSERT_INCIDENT = {
    "postgresql": pg_insert(incidents).on_conflict_do_nothing().returning(incidents.c.id),
    "sqlite": sqlite_insert(incidents).on_conflict_do_nothing().returning(incidents.c.id),
}
_INSERT_RUN = runs.insert().returning(runs.c.id)


def _open_episode(conn: Connection, key: str) -> Episode | None:
    q = _OPEN_EPISODE_LOCKED if conn.dialect.name == "postgresql" else _OPEN_EPISODE
    row = conn.execute(q, {"key": key}).first()
    return None if row is None else Episode(int(row.id), row.starts_at, True)


def _seen(conn: Connection, alert: Alert) -> bool:
    params = {"source": alert.source, "fingerprint": alert.fingerprint, "starts_at": alert.starts_at}
    return conn.execute(_SEEN, params).first() is not None


def _repeated(conn: Connection, incident_id: int, *, now: datetime) -> None:
    conn.execute(_REPEATED, {"incident_id": incident_id, "seen_at": now})


def record(
    conn: Connection,
    alert: Alert,
    seeds: Sequence[RunSeed],
    *,
    now: datetime,
    unknown_escalates: bool = True,
    owner: str = "",
) -> IngestResult:
    """Apply one delivery inside the caller's transaction."""
    key = _open_key(alert)
    episode = _open_episode(conn, key)
    delivery = decide(alert, open_episode=episode, same_start_seen=episode is None and _seen(conn, alert))

    if delivery is Delivery.UPDATED and episode is not None:
        _repeated(conn, episode.incident_id, now=now)
        return IngestResult(alert.fingerprint, delivery, episode.incident_id)
    if delivery is Delivery.RESOLVED and episode is not None:
        resolve(
            conn,
            episode.incident_id,
            at=alert.ends_at or now,
            now=now,
            actor=f"alert:{alert.source}",
        )
        return IngestResult(alert.fingerprint, delivery, episode.incident_id)
    if delivery is not Delivery.CREATED:
        return IngestResult(alert.fingerprint, delivery, None)

    values = dict(
        source=alert.source,
        fingerprint=alert.fingerprint,
        starts_at=alert.starts_at,
        open_key=key,
        group_key=alert.group_key,
        alertname=alert.name,
        service=alert.service,
        severity=alert.labels.get("severity", ""),
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        status=IncidentStatus.OPEN,
        runbooks=[s.runbook for s in seeds],
        handled_by="",
        deliveries=1,
        first_seen_at=now,
        last_seen_at=now,
        generator_url=alert.generator_url,
        owner=owner or None,
    )
    inserted = conn.execute(_INSERT_INCIDENT[conn.dialect.name], values).first()
    if inserted is None:  # a concurrent replica opened it first: this delivery is a repeat
        again = _open_episode(conn, key)
        if again is None:
            return IngestResult(alert.fingerprint, Delivery.LATE, None)
        _repeated(conn, again.incident_id, now=now)
        return IngestResult(alert.fingerprint, Delivery.UPDATED, again.incident_id)
    incident_id = int(inserted.id)
    audit.append(
        conn,
        at=now,
        kind="incident.opened",
        actor=f"alert:{alert.source}",
        incident_id=incident_id,
        data={
            "alertname": alert.name,
            "fingerprint": alert.fingerprint,
            "labels": dict(alert.labels),
            "starts_at": alert.starts_at.isoformat(),
            "runbooks": [s.runbook for s in seeds],
            **(
                {"unreadable": {"error": alert.unreadable.error, "field": alert.unreadable.field}}
                if alert.unreadable
                else {}
            ),
        },
    )
    if alert.unreadable is not None:
        _escalate_unreadable(conn, incident_id, alert.unreadable, now=now)
        return IngestResult(alert.fingerprint, delivery, incident_id)
    cancel_recoveries(conn, alert, now=now, opened=incident_id)
    run_ids = [_create_run(conn, incident_id, seed, now=now) for seed in seeds]
    if not seeds and unknown_escalates:
        escalate(conn, incident_id, now=now, reason="no runbook matches this alert: a human has to look")
    elif seeds and all(s.plan is None for s in seeds):
        escalate(conn, incident_id, now=now, reason="; ".join(s.error for s in seeds))
    elif seeds and not any(_acts(s) for s in seeds):
        # Matching is not handling: with only observe-mode or evidence-only runbooks, a human decides.
        escalate(
            conn,
            incident_id,
            now=now,
            reason="no runbook will act on this alert: " + "; ".join(_why_not(s) for s in seeds),
        )
    return IngestResult(alert.fingerprint, delivery, incident_id, [r for r in run_ids if r])


def link_echo(conn: Connection, echo: Echo, *, now: datetime) -> IngestResult:
    """Link an event about paramedic's own notification to the incident it came from: an audit
    entry on that incident, never a new incident (``ingest.common.Echo``)."""
    exists = (
        echo.incident_id is not None
        and conn.execute(select(incidents.c.id).where(incidents.c.id == echo.incident_id)).first()
    )
    incident_id = echo.incident_id if exists else None
    audit.append(
        conn,
        at=now,
        kind="incident.linked" if incident_id else "echo.unmatched",
        actor=f"alert:{echo.source}",
        incident_id=incident_id,
        data={
            "event": echo.event_type,
            "incident_key": echo.incident_key,
            "remote_incident": echo.pagerduty_incident,
            "url": echo.url,
            "agent": echo.agent,
        },
    )
    return IngestResult(echo.incident_key, Delivery.LINKED, incident_id)


def _escalate_unreadable(conn: Connection, incident_id: int, problem: Unreadable, *, now: datetime) -> None:
    """An alert paramedic could not read goes to a human, whatever ``unknown_alerts`` says, with the
    alert as received kept as evidence (its first line says what is wrong)."""
    conn.execute(
        evidence.insert().values(
            incident_id=incident_id,
            kind="raw_alert",
            title="The alert as received (paramedic could not read it)",
            status="failed",
            body=f"{problem.field}: {problem.error}\n\n{problem.raw}",
            data={"field": problem.field, "error": problem.error, "reason": problem.reason},
            at=now,
        )
    )
    escalate(
        conn,
        incident_id,
        now=now,
        reason=f"paramedic could not read this alert ({problem.error}); nothing was automated. The alert as"
        " received is attached as evidence: fix the alerting rule or the sender.",
    )


def _acts(seed: RunSeed) -> bool:
    """Whether this runbook will act: it has steps and runs them (auto) or asks a human (approve)."""
    return seed.plan is not None and bool(seed.plan.steps) and seed.mode is not Mode.OBSERVE


def _why_not(seed: RunSeed) -> str:
    if seed.plan is None:
        return seed.error
    if not seed.plan.steps:
        return f"{seed.runbook} only gathers evidence"
    return f"{seed.runbook} is in observe mode (its plan is recorded as a suggestion)"


def schedule_recovery(
    conn: Connection, incident_id: int, seed: RunSeed, *, not_before: datetime, now: datetime
) -> int | None:
    """A run of a runbook's ``recover`` steps on a resolved incident, claimable from ``not_before``
    (the alert has stayed resolved that long by then, unless ``cancel_recoveries`` ran first)."""
    run_id = _create_run(conn, incident_id, seed, now=now)
    if run_id is not None:
        conn.execute(update(runs).where(runs.c.id == run_id).values(not_before=not_before))
        audit.append(
            conn,
            at=now,
            kind="recovery.scheduled",
            incident_id=incident_id,
            run_id=run_id,
            data={"runbook": seed.runbook, "not_before": not_before.isoformat()},
        )
    return run_id


def cancel_recoveries(conn: Connection, alert: Alert, *, now: datetime, opened: int) -> list[int]:
    """The alert fired again before it stayed resolved: the way back of its earlier episodes is
    not taken (a resolved incident has no other pending run: resolving cancelled those)."""
    earlier = select(incidents.c.id).where(
        and_(
            incidents.c.source == alert.source,
            incidents.c.fingerprint == alert.fingerprint,
            incidents.c.status == IncidentStatus.RESOLVED,
            incidents.c.id != opened,
        )
    )
    why = f"the alert fired again (incident #{opened}) before it stayed resolved: the way back is not taken"
    cancelled = conn.execute(
        update(runs)
        .where(and_(runs.c.incident_id.in_(earlier), runs.c.status.in_(("pending", "awaiting_approval"))))
        .values(status="cancelled", reason=why, finished_at=now, updated_at=now)
        .returning(runs.c.id, runs.c.incident_id)
    ).all()
    for row in cancelled:
        audit.append(
            conn, at=now, kind="recovery.cancelled", incident_id=int(row.incident_id), run_id=int(row.id),
            data={"reason": why},
        )  # fmt: skip
    return [int(r.id) for r in cancelled]


def _create_run(conn: Connection, incident_id: int, seed: RunSeed, *, now: datetime) -> int | None:
    if seed.plan is None:
        audit.append(
            conn,
            at=now,
            kind="plan.refused",
            incident_id=incident_id,
            data={"runbook": seed.runbook, "version": seed.version, "reason": seed.error},
        )
        return None
    status = {Mode.AUTO: "pending", Mode.APPROVE: "awaiting_approval", Mode.OBSERVE: "observed"}[seed.mode]
    plan = seed.plan
    digest = plan.digest
    row = conn.execute(
        _INSERT_RUN,
        {
            "incident_id": incident_id,
            "runbook": seed.runbook,
            "mode": seed.mode,
            "status": status,
            "plan": plan.to_json(),
            "plan_digest": digest,
            "target": plan.target,
            "service": plan.service,
            "current_step": 0,
            "phase": "steps",
            "attempts": 0,
            "reason": "",
            "created_at": now,
            "updated_at": now,
            "approval_expires_at": now + seed.approval_timeout if seed.mode is Mode.APPROVE else None,
            "finished_at": now if seed.mode is Mode.OBSERVE else None,
            "kind": "recovery" if plan.recovery else "remediation",
        },
    ).one()
    run_id = int(row.id)
    audit.append(
        conn,
        at=now,
        kind="run.created",
        incident_id=incident_id,
        run_id=run_id,
        data={
            "runbook": seed.runbook,
            "version": seed.version,
            "mode": str(seed.mode),
            "status": status,
            "target": plan.target,
            "plan_digest": digest,
            "steps": [{"action": s.action, "args": dict(s.args)} for s in plan.steps],
        },
    )
    if seed.mode is Mode.APPROVE:
        set_status(conn, incident_id, IncidentStatus.AWAITING_APPROVAL)
    return run_id


def set_status(conn: Connection, incident_id: int, status: IncidentStatus, **extra: Any) -> None:
    conn.execute(
        update(incidents)
        .where(and_(incidents.c.id == incident_id, incidents.c.open_key.is_not(None)))
        .values(status=status, **extra)
    )


def acknowledge(conn: Connection, incident_id: int, *, at: datetime, by: str) -> None:
    conn.execute(
        update(incidents)
        .where(and_(incidents.c.id == incident_id, incidents.c.acknowledged_at.is_(None)))
        .values(acknowledged_at=at, handled_by=by)
    )


def escalate(conn: Connection, incident_id: int, *, now: datetime, reason: str, run_id: int | None = None) -> None:
    conn.execute(
        update(incidents)
        .where(and_(incidents.c.id == incident_id, incidents.c.open_key.is_not(None)))
        .values(
            status=IncidentStatus.ESCALATED,
            escalated_at=func.coalesce(incidents.c.escalated_at, now),
            handled_by="human",
        )
    )
    audit.append(
        conn,
        at=now,
        kind="incident.escalated",
        incident_id=incident_id,
        run_id=run_id,
        data={"reason": reason},
    )
    from paramedic.store import outbox

    outbox.enqueue(conn, incident_id=incident_id, event="escalated", now=now, data={"reason": reason})


def resolve(
    conn: Connection,
    incident_id: int,
    *,
    at: datetime,
    now: datetime,
    actor: str,
    human: str = "",
    reason: str = "",
) -> None:
    """Close the incident: by its alert resolving, or by ``human`` with a ``reason``."""
    extra: dict[str, Any] = {}
    if human:
        extra = {"resolved_by": human, "resolution": reason, "snoozed_until": None}
    conn.execute(
        update(incidents)
        .where(incidents.c.id == incident_id)
        .values(
            status=IncidentStatus.RESOLVED,
            resolved_at=at,
            ends_at=at,
            open_key=None,
            last_seen_at=now,
            **extra,
        )
    )
    why = f"resolved by {human}: {reason}" if human else "resolved: the alert resolved before the action ran"
    cancelled = conn.execute(
        update(runs)
        .where(and_(runs.c.incident_id == incident_id, runs.c.status.in_(CANCELLABLE)))
        .values(status="cancelled", reason=why, finished_at=now, updated_at=now)
        .returning(runs.c.id)
    ).all()
    data: dict[str, Any] = {"resolved_at": at.isoformat(), "cancelled_runs": [int(r.id) for r in cancelled]}
    if human:
        data["reason"] = reason
    audit.append(conn, at=now, kind="incident.resolved", actor=actor, incident_id=incident_id, data=data)
    from paramedic.store import outbox

    outbox.enqueue(conn, incident_id=incident_id, event="resolved", now=now, data={})


def get(conn: Connection, incident_id: int) -> IncidentRow | None:
    row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
    return None if row is None else IncidentRow.of(row)


def listing(
    conn: Connection, *, status: str | None = None, limit: int = 100, before: int | None = None
) -> list[IncidentRow]:
    q = select(incidents).order_by(incidents.c.id.desc()).limit(limit)
    if status == "open":
        q = q.where(incidents.c.open_key.is_not(None))
    elif status:
        q = q.where(incidents.c.status == status)
    if before is not None:
        q = q.where(incidents.c.id < before)
    return [IncidentRow.of(r) for r in conn.execute(q)]


def episodes(conn: Connection, *, source: str, fingerprint: str, since: datetime) -> list[datetime]:
    """Start times of this alert's episodes since ``since`` (for flapping)."""
    q = select(incidents.c.starts_at).where(
        and_(
            incidents.c.source == source,
            incidents.c.fingerprint == fingerprint,
            incidents.c.starts_at >= since,
        )
    )
    return [r.starts_at for r in conn.execute(q)]
