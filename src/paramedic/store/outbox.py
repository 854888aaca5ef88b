"""The durable notification outbox: rows written in the same transaction as the event they tell
of, delivered later by ``engine.notifier`` with retries, each (sink, dedup key) sent once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from paramedic.store.tables import outbox

# The sinks every event goes to; set once at start-up from the configuration.
_SINKS: list[str] = ["log"]


def configure(sink_names: Sequence[str]) -> None:
    _SINKS[:] = ["log", *[s for s in sink_names if s != "log"]]


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    sink: str
    dedup_key: str
    incident_id: int | None
    event: str
    payload: Mapping[str, Any]
    attempts: int


def enqueue(
    conn: Connection,
    *,
    incident_id: int | None,
    event: str,
    now: datetime,
    data: Mapping[str, Any],
    key: str | None = None,
) -> None:
    """Queue ``event`` for every configured sink; a repeat of the same key is ignored."""
    dedup = key or f"incident:{incident_id}:{event}"
    ins = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    for sink in _SINKS:
        conn.execute(
            ins(outbox)
            .values(
                sink=sink,
                dedup_key=dedup,
                incident_id=incident_id,
                event=event,
                payload=dict(data),
                status="pending",
                attempts=0,
                next_at=now,
                last_error="",
                created_at=now,
            )
            .on_conflict_do_nothing()
        )


def claim(conn: Connection, *, now: datetime, lease: timedelta, limit: int = 20) -> list[OutboxItem]:
    q = (
        select(outbox)
        .where(
            and_(
                outbox.c.status == "pending",
                outbox.c.next_at <= now,
                or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now),
            )
        )
        .order_by(outbox.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    rows = conn.execute(q).all()
    if rows:
        conn.execute(update(outbox).where(outbox.c.id.in_([r.id for r in rows])).values(lease_until=now + lease))
    return [
        OutboxItem(int(r.id), r.sink, r.dedup_key, r.incident_id, r.event, r.payload, int(r.attempts)) for r in rows
    ]


def mark_sent(conn: Connection, item_id: int, *, now: datetime) -> None:
    conn.execute(update(outbox).where(outbox.c.id == item_id).values(status="sent", sent_at=now, lease_until=None))


def mark_failed(conn: Connection, item_id: int, *, now: datetime, error: str, retry_at: datetime | None) -> None:
    values: dict[str, Any] = {
        "attempts": outbox.c.attempts + 1,
        "last_error": error[:2000],
        "lease_until": None,
    }
    values.update({"next_at": retry_at} if retry_at else {"status": "dead"})
    conn.execute(update(outbox).where(outbox.c.id == item_id).values(**values))
