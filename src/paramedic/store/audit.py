"""Append to and read the hash-chained audit trail, inside the caller's transaction.

The chain's key is bound to an engine once (``bind_key``), by whoever built it from the config, so
every writer of that database links its entries with the key without passing it around.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from paramedic.core.audit import (
    GENESIS,
    AuditKey,
    Checkpoint,
    StoredEntry,
    canonical,
    chain_hash,
    redact,
    sign_checkpoint,
)
from paramedic.store.tables import audit, audit_head

# Built once: every action writes several entries, and building a statement with .values(...)
# costs several times more than executing a prebuilt one with parameters (~570 µs → ~160 µs
# per entry on SQLite).
_HEAD = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
_HEAD_LOCKED = _HEAD.with_for_update()
_INSERT = audit.insert()
_ADVANCE = update(audit_head).where(audit_head.c.id == 1).values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
_KEYS: WeakKeyDictionary[Engine, AuditKey] = WeakKeyDictionary()


def bind_key(engine: Engine, key: AuditKey | None) -> None:
    """Link every entry appended through ``engine`` with ``key`` (``None``: unkeyed SHA-256)."""
    if key is None:
        _KEYS.pop(engine, None)
    else:
        _KEYS[engine] = key


def bound_key(engine: Engine) -> AuditKey | None:
    return _KEYS.get(engine)


def append(
    conn: Connection,
    *,
    at: datetime,
    kind: str,
    actor: str = "paramedic",
    incident_id: int | None = None,
    run_id: int | None = None,
    data: Mapping[str, Any] | None = None,
) -> int:
    """Append one entry, redacted, chained to the current head. Returns its sequence number."""
    head_q = _HEAD_LOCKED if conn.dialect.name == "postgresql" else _HEAD
    head = conn.execute(head_q).first()
    if head is None:
        ins = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(audit_head)
        conn.execute(ins.values(id=1, seq=0, hash=GENESIS).on_conflict_do_nothing())
        head = conn.execute(head_q).one()
    prev_seq, prev_hash = int(head.seq), str(head.hash)
    seq = prev_seq + 1
    clean = json.loads(json.dumps(redact(dict(data or {})), default=str))
    body = canonical(seq=seq, at=at, kind=kind, actor=actor, incident_id=incident_id, run_id=run_id, data=clean)
    key = _KEYS.get(conn.engine)
    digest = chain_hash(prev_hash, body, key)
    conn.execute(
        _INSERT,
        {
            "seq": seq,
            "at": at,
            "kind": kind,
            "actor": actor,
            "incident_id": incident_id,
            "run_id": run_id,
            "data": json.dumps(clean, sort_keys=True, ensure_ascii=False),
            "prev_hash": prev_hash,
            "hash": digest,
            "key_id": None if key is None else key.key_id,
        },
    )
    conn.execute(_ADVANCE, {"new_seq": seq, "new_hash": digest})
    return seq


def _entry(row: Any) -> StoredEntry:
    return StoredEntry(
        seq=int(row.seq),
        at=row.at,
        kind=row.kind,
        actor=row.actor,
        incident_id=row.incident_id,
        run_id=row.run_id,
        data=json.loads(row.data),
        prev_hash=row.prev_hash,
        hash=row.hash,
        key_id=row.key_id,
    )


def iter_entries(conn: Connection, *, batch: int = 1000) -> Iterator[StoredEntry]:
    last = 0
    while True:
        rows = conn.execute(select(audit).where(audit.c.seq > last).order_by(audit.c.seq).limit(batch)).all()
        if not rows:
            return
        for row in rows:
            yield _entry(row)
        last = int(rows[-1].seq)


def head(conn: Connection) -> tuple[int | None, str | None]:
    row = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).first()
    return (None, None) if row is None else (int(row.seq), str(row.hash))


def checkpoint(conn: Connection, key: AuditKey, *, now: datetime) -> Checkpoint:
    """A signed checkpoint of the current head (an empty chain's head is entry 0, the genesis)."""
    seq, digest = head(conn)
    return sign_checkpoint(key, seq=seq or 0, hash_=digest or GENESIS, at=now)


def page(
    conn: Connection,
    *,
    before: int | None = None,
    limit: int = 100,
    incident_id: int | None = None,
) -> list[StoredEntry]:
    q = select(audit).order_by(audit.c.seq.desc()).limit(limit)
    if before is not None:
        q = q.where(audit.c.seq < before)
    if incident_id is not None:
        q = q.where(audit.c.incident_id == incident_id)
    return [_entry(r) for r in conn.execute(q)]


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(audit)).scalar_one())
