"""The inbox: a large delivery is stored as received before its ``202``, and recorded afterwards.

Recording an alert (match, plan, incident, audit, outbox) costs milliseconds; a storm's body of
thousands of alerts would be answered long after Alertmanager's (10 s) or PagerDuty's (5 s)
timeout, and a sender that times out sends again. So a delivery over ``Config.inline_alerts`` is
written here whole in one short transaction, answered ``202``, and recorded by the engine in chunks
(``Paramedic.drain_inbox``). Each chunk's incidents and the row's ``done`` count commit together,
so a crash resumes after the last recorded chunk: nothing accepted is lost, nothing recorded twice.
A row is claimed with a lease, so one replica records it at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, or_, select, update

from paramedic.store.tables import inbox


@dataclass(frozen=True, slots=True)
class Pending:
    id: int
    source: str
    body: str
    total: int
    done: int
    received_at: datetime


def put(conn: Connection, *, source: str, body: str, total: int, now: datetime) -> int:
    row = conn.execute(
        inbox.insert().values(source=source, body=body, total=total, done=0, received_at=now).returning(inbox.c.id)
    ).one()
    return int(row.id)


def claim(conn: Connection, *, now: datetime, lease: timedelta) -> Pending | None:
    """The oldest unfinished delivery no one holds, leased to the caller until ``now + lease``."""
    free = and_(inbox.c.finished_at.is_(None), or_(inbox.c.lease_until.is_(None), inbox.c.lease_until < now))
    for row in conn.execute(select(inbox.c.id).where(free).order_by(inbox.c.id).limit(5)).all():
        taken = conn.execute(
            update(inbox).where(and_(inbox.c.id == row.id, free)).values(lease_until=now + lease)
        ).rowcount
        if taken == 1:
            got = conn.execute(select(inbox).where(inbox.c.id == row.id)).one()
            return Pending(int(got.id), got.source, got.body, int(got.total), int(got.done), got.received_at)
    return None


def advance(conn: Connection, inbox_id: int, *, done: int, now: datetime, lease: timedelta) -> None:
    """Record progress (in the chunk's own transaction) and extend the lease."""
    conn.execute(update(inbox).where(inbox.c.id == inbox_id).values(done=done, lease_until=now + lease))


def finish(conn: Connection, inbox_id: int, *, now: datetime) -> None:
    conn.execute(update(inbox).where(inbox.c.id == inbox_id).values(finished_at=now, lease_until=None))


def backlog(conn: Connection) -> int:
    """Alerts accepted but not recorded yet."""
    rows = conn.execute(select(inbox.c.total, inbox.c.done).where(inbox.c.finished_at.is_(None))).all()
    return sum(int(r.total) - int(r.done) for r in rows)
