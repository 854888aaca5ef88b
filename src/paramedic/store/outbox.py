"""The durable notification outbox: rows written in the same transaction as the event they tell
of, delivered later by ``engine.notifier`` with retries, each (sink, dedup key) sent once.

Rows are claimed escalations and approval requests first (``URGENT``), then in order. In an alert
storm, ``claim_group`` takes the other pending rows of one sink, event and alert group into the
message of one of them (``grouped_into``), and ``messages_since`` counts what a sink actually
sent, for its rate limit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, and_, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from paramedic.core.routing import Owner, Route, owner_of_service, route, routing_labels
from paramedic.store.tables import incidents, outbox


@dataclass(frozen=True, slots=True)
class Routing:
    """The sinks, the routing tree that picks among them and the owners' contacts, from the
    configuration. Without a tree every event goes to every sink; ``log`` always hears."""

    sinks: tuple[str, ...] = ("log",)
    tree: Route | None = None
    owners: Mapping[str, Owner] = field(default_factory=dict)

    @classmethod
    def of(
        cls, sink_names: Sequence[str], *, tree: Route | None = None, owners: Mapping[str, Owner] | None = None
    ) -> Routing:
        return cls(("log", *[s for s in sink_names if s != "log"]), tree, dict(owners or {}))


# Each database is bound to the routing of the paramedic that opened it (as ``store.audit``
# binds its key), so two instances in one process never send to each other's sinks.
_BOUND: WeakKeyDictionary[Engine, Routing] = WeakKeyDictionary()
_DEFAULT = Routing()


def bind(engine: Engine, routing: Routing) -> None:
    """Route every event enqueued through ``engine`` with ``routing``."""
    _BOUND[engine] = routing


def routing_of(conn: Connection) -> Routing:
    return _BOUND.get(conn.engine, _DEFAULT)


def _who(conn: Connection, incident_id: int | None) -> tuple[list[str], dict[str, str]]:
    """The sinks that hear of this incident (``log`` always does) and its owner and contact.
    An incident assigned to a team is routed as that team's."""
    routing = routing_of(conn)
    if incident_id is None:
        return list(routing.sinks), {}
    row = conn.execute(
        select(
            incidents.c.labels, incidents.c.service, incidents.c.owner, incidents.c.assignee, incidents.c.assignee_kind
        ).where(incidents.c.id == incident_id)
    ).first()
    if row is None:
        return list(routing.sinks), {}
    owners = routing.owners
    owner = (row.assignee if row.assignee_kind == "team" else None) or row.owner or ""
    if not owner:
        owner = owner_of_service(owners, row.service)
    who = {"owner": owner, "contact": owners[owner].contact if owner in owners else ""}
    if routing.tree is None:
        return list(routing.sinks), who
    chosen = route(routing.tree, routing_labels(dict(row.labels), owner=owner, service=row.service))
    return ["log", *[s for s in chosen if s != "log" and s in routing.sinks]], who


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
    """Queue ``event`` for the sinks its incident routes to (every sink without a routing tree),
    with its owner and contact; a repeat of the same key is ignored."""
    dedup = key or f"incident:{incident_id}:{event}"
    ins = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    sinks, who = _who(conn, incident_id)
    data = {**data, **who}
    for sink in sinks:
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


# sent before anything else: a human is waiting on these
URGENT = ("escalated", "approval_needed", "breaker_opened")


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
        .order_by(case((outbox.c.event.in_(URGENT), 0), else_=1), outbox.c.id)
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


def pending(conn: Connection, item_id: int) -> bool:
    row = conn.execute(select(outbox.c.status).where(outbox.c.id == item_id)).first()
    return row is not None and row.status == "pending"


def mark_sent(conn: Connection, item_id: int, *, now: datetime, carried: Sequence[int] = ()) -> None:
    """``item_id`` was sent; so were the ``carried`` rows, inside its grouped message."""
    conn.execute(update(outbox).where(outbox.c.id == item_id).values(status="sent", sent_at=now, lease_until=None))
    if carried:
        conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(list(carried)))
            .values(status="sent", sent_at=now, lease_until=None, grouped_into=item_id)
        )


def release(conn: Connection, ids: Sequence[int]) -> None:
    """Give rows taken into a group back (its message was not sent): they are claimed again later."""
    if ids:
        conn.execute(
            update(outbox)
            .where(and_(outbox.c.id.in_(list(ids)), outbox.c.status == "pending"))
            .values(lease_until=None)
        )


def messages_since(conn: Connection, sink: str, since: datetime) -> int:
    """Messages ``sink`` sent since ``since``: rows sent on their own or as a group's lead."""
    n = conn.execute(
        select(func.count())
        .select_from(outbox)
        .where(
            and_(
                outbox.c.sink == sink,
                outbox.c.status == "sent",
                outbox.c.sent_at >= since,
                outbox.c.grouped_into.is_(None),
            )
        )
    ).scalar_one()
    return int(n)


@dataclass(frozen=True, slots=True)
class GroupMember:
    row_id: int
    incident_id: int
    alertname: str
    instance: str
    service: str


def claim_group(
    conn: Connection,
    item: OutboxItem,
    *,
    now: datetime,
    lease: timedelta,
    interval: timedelta,
    minimum: int,
    limit: int = 10_000,  # one message for a whole Alertmanager group (max_alerts caps it)
) -> list[GroupMember]:
    """The incidents whose rows go in ``item``'s message: ``item``'s own first, then the other
    pending rows of its sink and event whose incidents share its alert group (Alertmanager's
    ``groupKey``, else source and alertname), created within ``interval`` of it, claimed or not
    (a row checks it is still pending before it is sent). The others are leased to this caller.
    Fewer than ``minimum`` in all: no group, nothing leased, ``[]``."""
    if item.incident_id is None:
        return []
    lead = conn.execute(
        select(
            incidents.c.group_key,
            incidents.c.source,
            incidents.c.alertname,
            incidents.c.labels,
            incidents.c.service,
            outbox.c.created_at,
        )
        .select_from(outbox.join(incidents, incidents.c.id == outbox.c.incident_id))
        .where(outbox.c.id == item.id)
    ).first()
    if lead is None:
        return []
    same = (
        incidents.c.group_key == lead.group_key
        if lead.group_key
        else and_(
            incidents.c.group_key == "", incidents.c.source == lead.source, incidents.c.alertname == lead.alertname
        )
    )
    q = (
        select(outbox.c.id, outbox.c.incident_id, incidents.c.alertname, incidents.c.labels, incidents.c.service)
        .select_from(outbox.join(incidents, incidents.c.id == outbox.c.incident_id))
        .where(
            and_(
                outbox.c.sink == item.sink,
                outbox.c.event == item.event,
                outbox.c.status == "pending",
                outbox.c.id != item.id,  # leased rows too: the same batch holds them (each checks it is still pending)
                outbox.c.created_at >= lead.created_at - interval,
                outbox.c.created_at <= lead.created_at + interval,
                same,
            )
        )
        .order_by(outbox.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(of=outbox, skip_locked=True)
    rows = conn.execute(q).all()
    if len(rows) + 1 < minimum:
        return []
    conn.execute(update(outbox).where(outbox.c.id.in_([r.id for r in rows])).values(lease_until=now + lease))
    first = GroupMember(
        item.id, item.incident_id, lead.alertname, str((lead.labels or {}).get("instance", "")), lead.service
    )
    return [first] + [
        GroupMember(int(r.id), int(r.incident_id), r.alertname, str((r.labels or {}).get("instance", "")), r.service)
        for r in rows
    ]


def mark_failed(conn: Connection, item_id: int, *, now: datetime, error: str, retry_at: datetime | None) -> None:
    values: dict[str, Any] = {
        "attempts": outbox.c.attempts + 1,
        "last_error": error[:2000],
        "lease_until": None,
    }
    values.update({"next_at": retry_at} if retry_at else {"status": "dead"})
    conn.execute(update(outbox).where(outbox.c.id == item_id).values(**values))
