"""The figures ``/metrics`` reads from the database at each scrape: paramedic's own health (pause,
approvals waiting, open breakers, outbox backlog and dead rows, the inbox's alerts not recorded yet,
guardrail refusals by reason) and the resolved incidents that feed the MTTR and time-to-mitigate histograms.

Read from the database, not kept in process memory, so every replica reports the same figures and
a restart loses nothing. The histograms count every resolved incident, so they only grow, as
Prometheus counters must; one scrape reads one row per resolved incident (a few milliseconds per
ten thousand on SQLite).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from paramedic.store import inbox, state
from paramedic.store.tables import breakers, incidents, outbox, runs, verdicts


@dataclass(frozen=True, slots=True)
class Resolved:
    runbook: str
    service: str
    handled_by: str
    mttr_s: float
    ttm_s: float | None


@dataclass(frozen=True, slots=True)
class Health:
    paused: bool
    approvals_pending: int
    breakers_open: Mapping[str, int]  # runbook → open (or half-open) breakers
    outbox: Mapping[tuple[str, str], int]  # (sink, status) → rows, status pending | dead
    refusals: Mapping[str, int]  # reason code → refused verdicts
    open_incidents: int
    resolved: tuple[Resolved, ...] = field(default=())
    inbox_backlog: int = 0  # alerts of large deliveries accepted but not recorded yet


def _open_breakers(conn: Connection) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in conn.execute(select(breakers.c.runbook, breakers.c.state)):
        st: Any = row.state or {}
        if str(st.get("status", "closed")) != "closed":
            out[row.runbook] = out.get(row.runbook, 0) + 1
    return out


def read(conn: Connection) -> Health:
    pending = conn.execute(
        select(func.count()).select_from(runs).where(runs.c.status == "awaiting_approval")
    ).scalar_one()
    backlog = {
        (str(r.sink), str(r.status)): int(r.n)
        for r in conn.execute(
            select(outbox.c.sink, outbox.c.status, func.count().label("n"))
            .where(outbox.c.status.in_(("pending", "dead")))
            .group_by(outbox.c.sink, outbox.c.status)
        )
    }
    refusals = {
        str(r.code or "unknown"): int(r.n)
        for r in conn.execute(
            select(verdicts.c.code, func.count().label("n"))
            .where(verdicts.c.allowed.is_(False))
            .group_by(verdicts.c.code)
        )
    }
    still_open = conn.execute(
        select(func.count()).select_from(incidents).where(incidents.c.open_key.is_not(None))
    ).scalar_one()
    resolved = []
    q = select(
        incidents.c.runbooks,
        incidents.c.service,
        incidents.c.handled_by,
        incidents.c.starts_at,
        incidents.c.mitigated_at,
        incidents.c.resolved_at,
    ).where(incidents.c.resolved_at.is_not(None))
    for r in conn.execute(q):
        resolved.append(
            Resolved(
                runbook=r.runbooks[0] if r.runbooks else "",
                service=r.service or "",
                handled_by="automated" if r.handled_by == "automation" else "human",
                mttr_s=max(0.0, (r.resolved_at - r.starts_at).total_seconds()),
                ttm_s=max(0.0, (r.mitigated_at - r.starts_at).total_seconds()) if r.mitigated_at else None,
            )
        )
    return Health(
        paused=state.paused(conn),
        approvals_pending=int(pending),
        breakers_open=_open_breakers(conn),
        outbox=backlog,
        refusals=refusals,
        open_incidents=int(still_open),
        resolved=tuple(resolved),
        inbox_backlog=inbox.backlog(conn),
    )
