"""Runs and their steps: claims with leases, step records written before and after execution,
approvals, and the end of a run. Every function works inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, or_, select, update

from paramedic.core.errors import ParamedicError
from paramedic.core.incidents import IncidentStatus
from paramedic.store import audit
from paramedic.store import incidents as inc
from paramedic.store.rows import RunRow, StepRow
from paramedic.store.tables import approvals, incidents, ledger, runs, steps

CLAIMABLE = ("pending", "approved", "running")
ACTIVE = ("pending", "approved", "running", "awaiting_approval")


def claim(conn: Connection, *, owner: str, now: datetime, lease: timedelta) -> RunRow | None:
    """Take the oldest runnable run whose lease is free or expired (a crashed worker's run)."""
    q = (
        select(runs.c.id, runs.c.status, runs.c.lease_owner, runs.c.incident_id)
        .where(
            and_(
                runs.c.status.in_(CLAIMABLE),
                or_(runs.c.lease_until.is_(None), runs.c.lease_until < now),
                or_(runs.c.not_before.is_(None), runs.c.not_before <= now),
            )
        )
        .order_by(runs.c.id)
        .limit(1)
    )
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    row = conn.execute(q).first()
    if row is None:
        return None
    conn.execute(
        update(runs)
        .where(runs.c.id == row.id)
        .values(
            lease_owner=owner,
            lease_until=now + lease,
            attempts=runs.c.attempts + 1,
            status="running",
            updated_at=now,
        )
    )
    if row.status == "running":
        audit.append(
            conn,
            at=now,
            kind="run.resumed",
            actor=owner,
            incident_id=int(row.incident_id),
            run_id=int(row.id),
            data={"previous_owner": row.lease_owner},
        )
    return get(conn, int(row.id))


def heartbeat(conn: Connection, run_id: int, *, owner: str, now: datetime, lease: timedelta) -> bool:
    """Extend the lease; False means another worker took the run over (stop working on it)."""
    res = conn.execute(
        update(runs)
        .where(and_(runs.c.id == run_id, runs.c.lease_owner == owner, runs.c.status == "running"))
        .values(lease_until=now + lease)
    )
    return res.rowcount == 1


def owned(conn: Connection, run_id: int, *, owner: str) -> bool:
    """Whether ``owner`` still holds the run's lease (the fence every worker write checks first).
    On PostgreSQL the row stays locked until the caller's transaction ends, so a claim cannot take
    the run over between this check and the write it guards."""
    q = select(runs.c.lease_owner).where(and_(runs.c.id == run_id, runs.c.status == "running"))
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).first()
    return row is not None and row.lease_owner == owner


def get(conn: Connection, run_id: int) -> RunRow | None:
    row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
    return None if row is None else RunRow.of(row)


def for_incident(conn: Connection, incident_id: int) -> list[RunRow]:
    return [
        RunRow.of(r) for r in conn.execute(select(runs).where(runs.c.incident_id == incident_id).order_by(runs.c.id))
    ]


def listing(conn: Connection, *, status: str | None = None, limit: int = 200) -> list[RunRow]:
    q = select(runs).order_by(runs.c.id.desc()).limit(limit)
    if status:
        q = q.where(runs.c.status == status)
    return [RunRow.of(r) for r in conn.execute(q)]


def steps_of(conn: Connection, run_id: int) -> list[StepRow]:
    return [StepRow.of(r) for r in conn.execute(select(steps).where(steps.c.run_id == run_id).order_by(steps.c.idx))]


def step(conn: Connection, run_id: int, idx: int) -> StepRow | None:
    row = conn.execute(select(steps).where(and_(steps.c.run_id == run_id, steps.c.idx == idx))).first()
    return None if row is None else StepRow.of(row)


def step_started(
    conn: Connection,
    run: RunRow,
    *,
    idx: int,
    action: str,
    args: Mapping[str, Any],
    idempotent: bool,
    now: datetime,
    ledger_scope: Mapping[str, str] | None = None,
    undoes: int | None = None,
) -> None:
    """Write 'started' before the executor is called (the run's reservation is taken by the caller).
    With ``undoes``, the step is the undo of that completed step, written during the run's rollback."""
    existing = step(conn, run.id, idx)
    if existing is None:
        conn.execute(
            steps.insert().values(
                run_id=run.id,
                idx=idx,
                action=action,
                args=dict(args),
                idempotent=idempotent,
                status="started",
                attempts=1,
                started_at=now,
                summary="",
                output="",
                error="",
                reason="",
                undo={"undoes": undoes} if undoes is not None else None,
            )
        )
    else:
        conn.execute(
            update(steps)
            .where(steps.c.id == existing.id)
            .values(status="started", attempts=steps.c.attempts + 1, started_at=now, finished_at=None)
        )
    data: dict[str, Any] = {"step": idx, "action": action, "args": dict(args), "idempotent": idempotent}
    if undoes is None:
        conn.execute(update(runs).where(runs.c.id == run.id).values(current_step=idx, phase="steps", updated_at=now))
        inc.acknowledge(conn, run.incident_id, at=now, by="automation" if run.mode == "auto" else "human")
        inc.set_status(conn, run.incident_id, IncidentStatus.REMEDIATING)
    else:
        data["undoes"] = undoes
    audit.append(
        conn,
        at=now,
        kind="step.started" if undoes is None else "undo.started",
        actor=run.lease_owner or "paramedic",
        incident_id=run.incident_id,
        run_id=run.id,
        data=data,
    )


def step_finished(
    conn: Connection,
    run: RunRow,
    *,
    idx: int,
    ok: bool,
    now: datetime,
    summary: str,
    output: str = "",
    error: str = "",
    reason: str = "",
    undo: Mapping[str, Any] | None = None,
    undoes: int | None = None,
) -> None:
    """End a step. ``undo`` says how a succeeded step is undone (``{action, args}``) or why nothing
    does (``{none: why}``); ``undoes`` marks the step as the undo of that step, which becomes 'undone'."""
    row = step(conn, run.id, idx)
    if row is None:
        return
    conn.execute(
        update(steps)
        .where(steps.c.id == row.id)
        .values(
            status="succeeded" if ok else "failed",
            finished_at=now,
            summary=summary[:2000],
            output=output,
            error=error[:4000],
            reason=reason,
            undo=dict(undo) if undo is not None else None,
        )
    )
    data: dict[str, Any] = {"step": idx, "summary": summary, "error": error, "reason": reason}
    if undoes is not None:
        data["undoes"] = undoes
        if ok:
            conn.execute(
                update(steps).where(and_(steps.c.run_id == run.id, steps.c.idx == undoes)).values(status="undone")
            )
    audit.append(
        conn,
        at=now,
        kind=("step." if undoes is None else "undo.") + ("succeeded" if ok else "failed"),
        actor=run.lease_owner or "paramedic",
        incident_id=run.incident_id,
        run_id=run.id,
        data=data,
    )


def defer(conn: Connection, run: RunRow, *, until: datetime, now: datetime, reason: str) -> None:
    """Put a run that has not acted back in the queue until ``until`` (``require.firing_for`` not
    met yet): durable, so a restart keeps the wait; the claim it used does not count as an attempt;
    if the alert resolves meanwhile, the waiting run is cancelled like any pending one."""
    conn.execute(
        update(runs)
        .where(runs.c.id == run.id)
        .values(
            status="pending",
            not_before=until,
            lease_owner=None,
            lease_until=None,
            attempts=runs.c.attempts - 1,
            reason=reason[:4000],
            updated_at=now,
        )
    )
    audit.append(
        conn,
        at=now,
        kind="run.deferred",
        actor=run.lease_owner or "paramedic",
        incident_id=run.incident_id,
        run_id=run.id,
        data={"until": until.isoformat(), "reason": reason},
    )


def begin_undo(conn: Connection, run: RunRow, *, reason: str, now: datetime) -> None:
    """The run failed (or was stopped) after steps ran: it undoes them now. ``reason`` is kept so a
    run resumed during its rollback finishes with the same one."""
    conn.execute(update(runs).where(runs.c.id == run.id).values(phase="undo", reason=reason[:4000], updated_at=now))
    audit.append(
        conn,
        at=now,
        kind="run.rolling_back",
        actor=run.lease_owner or "paramedic",
        incident_id=run.incident_id,
        run_id=run.id,
        data={"reason": reason},
    )


def advance(conn: Connection, run: RunRow, *, phase: str, current_step: int, now: datetime) -> None:
    conn.execute(update(runs).where(runs.c.id == run.id).values(phase=phase, current_step=current_step, updated_at=now))


def finish(
    conn: Connection,
    run: RunRow,
    *,
    status: str,
    now: datetime,
    reason: str = "",
    mitigated: bool = False,
) -> None:
    """End a run: succeeded (mitigated), failed/refused (escalated), cancelled."""
    conn.execute(
        update(runs)
        .where(runs.c.id == run.id)
        .values(
            status=status,
            reason=reason[:4000],
            finished_at=now,
            updated_at=now,
            lease_owner=None,
            lease_until=None,
            phase="done",
        )
    )
    # the run's reservation (one ledger row, taken before its first step) ends with the run
    conn.execute(
        update(ledger)
        .where(and_(ledger.c.run_id == run.id, ledger.c.outcome == "in_flight"))
        .values(finished_at=now, outcome="succeeded" if status == "succeeded" else "failed")
    )
    audit.append(
        conn,
        at=now,
        kind=f"run.{status}",
        actor=run.lease_owner or "paramedic",
        incident_id=run.incident_id,
        run_id=run.id,
        data={"reason": reason},
    )
    if mitigated and (run.plan or {}).get("recovery"):  # the way back worked: the incident stays resolved
        audit.append(
            conn, at=now, kind="recovery.done", incident_id=run.incident_id, run_id=run.id, data={"reason": reason}
        )
    elif mitigated:
        conn.execute(
            update(incidents)
            .where(and_(incidents.c.id == run.incident_id, incidents.c.mitigated_at.is_(None)))
            # never after the resolution: a service whose alert resolved while the verification was
            # still being recorded was mitigated by then at the latest
            .values(
                mitigated_at=case(
                    (
                        and_(incidents.c.resolved_at.is_not(None), incidents.c.resolved_at < now),
                        incidents.c.resolved_at,
                    ),
                    else_=now,
                )
            )
        )
        inc.set_status(conn, run.incident_id, IncidentStatus.MITIGATED)
        from paramedic.store import outbox

        outbox.enqueue(
            conn,
            incident_id=run.incident_id,
            event="mitigated",
            now=now,
            data={"runbook": run.runbook, "reason": reason},
        )
    elif status in ("failed", "refused", "expired", "denied"):
        inc.escalate(conn, run.incident_id, now=now, reason=f"{run.runbook}: {reason}", run_id=run.id)


class AlreadyDecided(ParamedicError):
    """One person decides on a run once; a second approval needs a second person."""


def record_decision(
    conn: Connection,
    run: RunRow,
    *,
    actor: str,
    decision: str,
    reason: str,
    digest: str,
    now: datetime,
) -> list[str]:
    """Store one human decision; return the distinct approvers so far. ``AlreadyDecided`` if
    ``actor`` already decided on this run (writes are serialised, so the check is exact)."""
    earlier = conn.execute(
        select(approvals.c.decision).where(and_(approvals.c.run_id == run.id, approvals.c.actor == actor))
    ).first()
    if earlier is not None:
        raise AlreadyDecided(
            f"{actor} already {'approved' if earlier.decision == 'approve' else 'denied'} run {run.id}"
        )
    conn.execute(
        approvals.insert().values(
            run_id=run.id, actor=actor, decision=decision, reason=reason, plan_digest=digest, at=now
        )
    )
    audit.append(
        conn,
        at=now,
        kind=f"approval.{decision}",
        actor=actor,
        incident_id=run.incident_id,
        run_id=run.id,
        data={"reason": reason, "plan_digest": digest},
    )
    rows = conn.execute(
        select(approvals.c.actor).where(and_(approvals.c.run_id == run.id, approvals.c.decision == "approve"))
    )
    return sorted({r.actor for r in rows})


def approvals_of(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(select(approvals).where(approvals.c.run_id == run_id).order_by(approvals.c.id))
    return [{"actor": r.actor, "decision": r.decision, "reason": r.reason, "at": r.at.isoformat()} for r in rows]


def set_run_status(conn: Connection, run_id: int, status: str, *, now: datetime) -> None:
    conn.execute(update(runs).where(runs.c.id == run_id).values(status=status, updated_at=now))


def expired_approvals(conn: Connection, *, now: datetime) -> list[RunRow]:
    q = select(runs).where(and_(runs.c.status == "awaiting_approval", runs.c.approval_expires_at < now))
    return [RunRow.of(r) for r in conn.execute(q)]


def targets_of_incident(conn: Connection, incident_id: int) -> list[tuple[str, str]]:
    """(runbook, target) of each run of the incident: what its remediation acted on."""
    rows = conn.execute(select(runs.c.runbook, runs.c.target).where(runs.c.incident_id == incident_id))
    return [(r.runbook, r.target) for r in rows]
