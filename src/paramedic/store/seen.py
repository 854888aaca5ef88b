"""Keys remembered until they expire, shared by every replica: the replay guard of signed webhooks
(a delivery id is accepted once inside its window) and the list of UI sessions ended by a logout.

One insert decides: the primary key (kind, key) makes a second claim of the same key fail on
SQLite and PostgreSQL alike, so two replicas given the same replayed delivery at once accept it
once. Expired rows are deleted as new ones are claimed, so the table stays as small as the window.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from paramedic.store.tables import seen_keys


def claim(conn: Connection, *, kind: str, key: str, expires_at: datetime, now: datetime) -> bool:
    """Remember ``key`` until ``expires_at``; False when it is already remembered (a replay)."""
    conn.execute(delete(seen_keys).where(seen_keys.c.expires_at <= now))
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(seen_keys).values(kind=kind, key=key, expires_at=expires_at).on_conflict_do_nothing()
    return bool(conn.execute(stmt).rowcount)


def release(conn: Connection, *, kind: str, key: str) -> None:
    """Forget ``key`` (its delivery failed before anything was stored, so the sender's retry must pass)."""
    conn.execute(delete(seen_keys).where(and_(seen_keys.c.kind == kind, seen_keys.c.key == key)))


def remembered(conn: Connection, *, kind: str, key: str, now: datetime) -> bool:
    row = conn.execute(
        select(seen_keys.c.expires_at).where(and_(seen_keys.c.kind == kind, seen_keys.c.key == key))
    ).first()
    return row is not None and row.expires_at > now
