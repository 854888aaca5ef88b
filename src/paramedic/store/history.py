"""Reads of past incidents for offline analysis (``paramedic backtest --from db``, ``candidates``).

Read-only and streamed in pages, so a month of incidents does not sit twice in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import Connection, and_, select

from paramedic.store.rows import IncidentRow
from paramedic.store.tables import incidents

PAGE = 5000


def incidents_between(conn: Connection, start: datetime, end: datetime) -> Iterator[IncidentRow]:
    """Incidents whose alert started firing in ``[start, end)``, oldest first."""
    last_id = 0
    while True:
        q = (
            select(incidents)
            .where(and_(incidents.c.starts_at >= start, incidents.c.starts_at < end, incidents.c.id > last_id))
            .order_by(incidents.c.id)
            .limit(PAGE)
        )
        rows = [IncidentRow.of(r) for r in conn.execute(q)]
        yield from rows
        if len(rows) < PAGE:
            return
        last_id = rows[-1].id
