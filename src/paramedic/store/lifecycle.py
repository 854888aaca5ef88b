"""The human side of an incident, in the store: acknowledge, resolve with a reason, note, assign,
snooze, and the end of a snooze. Each change and its audit entry are one transaction.

A human resolution closes the incident like its alert resolving does (``resolved_at`` is when the
human said so, so MTTR counts it); an incident paramedic mitigated stays counted as automated.
A snooze acknowledges the incident for a while; when it ends and the incident is still open,
``end_snoozes`` audits that and queues a reminder through the outbox, so nobody forgets it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Connection, and_, case, func, select, update

from paramedic.core.incidents import IncidentStatus
from paramedic.store import audit, outbox
from paramedic.store import incidents as inc_repo
from paramedic.store.rows import IncidentRow
from paramedic.store.tables import incidents


class AssigneeKind(StrEnum):
    PERSON = "person"
    TEAM = "team"


class IncidentMissing(LookupError):
    """No incident has this id."""


class IncidentClosed(ValueError):
    """The incident is resolved already; nothing about it can change."""


def _open(conn: Connection, incident_id: int) -> IncidentRow:
    row = inc_repo.get(conn, incident_id)
    if row is None:
        raise IncidentMissing(f"incident {incident_id} does not exist")
    if row.status == IncidentStatus.RESOLVED:
        raise IncidentClosed(f"incident {incident_id} is resolved already (at {row.resolved_at})")
    return row


def _fresh(conn: Connection, incident_id: int) -> IncidentRow:
    row = inc_repo.get(conn, incident_id)
    assert row is not None
    return row


def _ack_values(by: str, now: datetime) -> dict[str, object]:
    return {
        "acknowledged_at": func.coalesce(incidents.c.acknowledged_at, now),
        "acknowledged_by": func.coalesce(incidents.c.acknowledged_by, by),
        "handled_by": case((incidents.c.handled_by == "", "human"), else_=incidents.c.handled_by),
    }


def acknowledge(conn: Connection, incident_id: int, *, by: str, now: datetime) -> IncidentRow:
    """``by`` has seen it and is on it. A second acknowledgement is recorded, the first time kept."""
    _open(conn, incident_id)
    conn.execute(update(incidents).where(incidents.c.id == incident_id).values(**_ack_values(by, now)))
    audit.append(conn, at=now, kind="incident.acknowledged", actor=by, incident_id=incident_id, data={})
    return _fresh(conn, incident_id)


def resolve(conn: Connection, incident_id: int, *, by: str, reason: str, now: datetime) -> IncidentRow:
    """``by`` closes the incident with ``reason``; waiting runs are cancelled with that reason."""
    row = _open(conn, incident_id)
    handled = "automation" if row.mitigated_at is not None else "human"
    conn.execute(
        update(incidents)
        .where(incidents.c.id == incident_id)
        .values(
            acknowledged_at=func.coalesce(incidents.c.acknowledged_at, now),
            acknowledged_by=func.coalesce(incidents.c.acknowledged_by, by),
            handled_by=handled,
        )
    )
    inc_repo.resolve(conn, incident_id, at=now, now=now, actor=by, human=by, reason=reason)
    return _fresh(conn, incident_id)


def note(conn: Connection, incident_id: int, *, by: str, text: str, now: datetime) -> IncidentRow:
    """A note for the timeline (what was seen, what was tried by hand). Allowed on resolved ones
    too: the post-mortem is written after the fact."""
    row = inc_repo.get(conn, incident_id)
    if row is None:
        raise IncidentMissing(f"incident {incident_id} does not exist")
    audit.append(conn, at=now, kind="incident.note", actor=by, incident_id=incident_id, data={"text": text})
    return row


def assign(conn: Connection, incident_id: int, *, by: str, to: str, kind: AssigneeKind, now: datetime) -> IncidentRow:
    """Give the incident to a person or a team; the assignee is told through the outbox."""
    before = _open(conn, incident_id)
    conn.execute(update(incidents).where(incidents.c.id == incident_id).values(assignee=to, assignee_kind=kind))
    data = {
        "to": to,
        "kind": str(kind),
        "previous": before.assignee or "",
        "reason": f"assigned to {kind} {to} by {by}",
    }
    seq = audit.append(conn, at=now, kind="incident.assigned", actor=by, incident_id=incident_id, data=data)
    outbox.enqueue(conn, incident_id=incident_id, event="assigned", now=now, data=data, key=f"assign:{seq}")
    return _fresh(conn, incident_id)


def snooze(conn: Connection, incident_id: int, *, by: str, until: datetime, now: datetime) -> IncidentRow:
    """Acknowledge and set a reminder: at ``until`` an incident still open is announced again."""
    _open(conn, incident_id)
    conn.execute(
        update(incidents).where(incidents.c.id == incident_id).values(snoozed_until=until, **_ack_values(by, now))
    )
    audit.append(
        conn, at=now, kind="incident.snoozed", actor=by, incident_id=incident_id, data={"until": until.isoformat()}
    )
    return _fresh(conn, incident_id)


def end_snoozes(conn: Connection, *, now: datetime) -> list[int]:
    """Snoozes that ended: cleared, audited, and a reminder queued for each open incident."""
    q = select(incidents.c.id, incidents.c.snoozed_until).where(
        and_(incidents.c.snoozed_until.is_not(None), incidents.c.snoozed_until <= now)
    )
    ended = []
    for row in conn.execute(q).all():
        iid = int(row.id)
        conn.execute(update(incidents).where(incidents.c.id == iid).values(snoozed_until=None))
        current = _fresh(conn, iid)
        if current.status == IncidentStatus.RESOLVED:
            continue
        data = {
            "snoozed_until": row.snoozed_until.isoformat(),
            "reason": "the snooze ended and the incident is still open",
        }
        audit.append(conn, at=now, kind="incident.snooze_ended", actor="paramedic", incident_id=iid, data=data)
        outbox.enqueue(
            conn, incident_id=iid, event="snooze_ended", now=now, data=data, key=f"snooze:{iid}:{data['snoozed_until']}"
        )
        ended.append(iid)
    return ended
