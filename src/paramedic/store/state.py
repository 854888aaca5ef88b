"""Small shared state: the global pause, known targets, trust figures and breaker states."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, and_, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from paramedic.store import audit
from paramedic.store.tables import settings, suggestion_marks, targets, trust


def _ins(conn: Connection, table: Any) -> Any:
    return (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)


def get_setting(conn: Connection, key: str, default: Any = None) -> Any:
    row = conn.execute(select(settings.c.value).where(settings.c.key == key)).first()
    return default if row is None else row.value


def put_setting(conn: Connection, key: str, value: Any, *, now: datetime, by: str) -> None:
    stmt = _ins(conn, settings).values(key=key, value=value, updated_at=now, updated_by=by)
    conn.execute(
        stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value, "updated_at": now, "updated_by": by})
    )


def delete_setting(conn: Connection, key: str) -> None:
    conn.execute(delete(settings).where(settings.c.key == key))


def paused(conn: Connection) -> bool:
    return bool(get_setting(conn, "paused", False))


def set_paused(conn: Connection, value: bool, *, now: datetime, by: str, reason: str = "") -> None:
    put_setting(conn, "paused", value, now=now, by=by)
    audit.append(
        conn,
        at=now,
        kind="automation.paused" if value else "automation.resumed",
        actor=by,
        data={"reason": reason},
    )


def note_targets(
    conn: Connection,
    scope_key: str,
    names: Iterable[tuple[str, bool]],
    *,
    origin: str,
    now: datetime,
) -> None:
    """Remember targets of a scope and whether each is healthy, from a source that knows them
    (a probe). Alerts never call this: they only ``mark_health`` of targets already known."""
    for target, healthy in names:
        stmt = _ins(conn, targets).values(
            scope_key=scope_key, target=target, healthy=healthy, origin=origin, seen_at=now
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["scope_key", "target"],
                set_={"healthy": healthy, "seen_at": now, "origin": origin},
            )
        )


def add_targets(conn: Connection, scope_key: str, names: Iterable[str], *, origin: str, now: datetime) -> None:
    """Targets an executor lists or the config declares: known from now on. A row already known
    keeps its origin and its health; a new member is assumed healthy until something says otherwise."""
    for target in names:
        stmt = _ins(conn, targets).values(scope_key=scope_key, target=target, healthy=True, origin=origin, seen_at=now)
        conn.execute(stmt.on_conflict_do_update(index_elements=["scope_key", "target"], set_={"seen_at": now}))


def mark_health(conn: Connection, scope_key: str, target: str, *, healthy: bool, origin: str, now: datetime) -> bool:
    """Set the health of a target already known in the scope; an unknown one stays unknown (an
    alert cannot make a target exist). Returns whether the target was known."""
    done = conn.execute(
        update(targets)
        .where(and_(targets.c.scope_key == scope_key, targets.c.target == target))
        .values(healthy=healthy, seen_at=now)
    )
    return bool(done.rowcount)


def replace_targets(conn: Connection, scope_key: str, names: Iterable[str], *, origin: str, now: datetime) -> None:
    """Exactly ``names`` are the targets ``origin`` knows in the scope: new ones are added, those
    it no longer lists are forgotten (a server removed from its backend stops counting)."""
    listed = list(dict.fromkeys(names))
    add_targets(conn, scope_key, listed, origin=origin, now=now)
    conn.execute(
        delete(targets).where(
            and_(targets.c.scope_key == scope_key, targets.c.origin == origin, targets.c.target.not_in(listed))
        )
    )


def forget_origin(conn: Connection, origin: str) -> None:
    """Forget every target one kind of source declared (config targets before they are re-read)."""
    conn.execute(delete(targets).where(targets.c.origin == origin))


def known_targets(conn: Connection, scope_key: str) -> list[tuple[str, bool]]:
    rows = conn.execute(select(targets.c.target, targets.c.healthy).where(targets.c.scope_key == scope_key))
    return [(r.target, bool(r.healthy)) for r in rows]


def trust_row(conn: Connection, runbook: str) -> Any:
    return conn.execute(select(trust).where(trust.c.runbook == runbook)).first()


def all_trust(conn: Connection) -> dict[str, Any]:
    return {r.runbook: r for r in conn.execute(select(trust))}


def _ensure_trust_row(conn: Connection, runbook: str, *, now: datetime) -> None:
    """A runbook's trust row, created with zero figures the first time it is needed."""
    if trust_row(conn, runbook) is None:
        conn.execute(
            _ins(conn, trust)
            .values(
                runbook=runbook,
                runs=0,
                successes=0,
                failures=0,
                runs_at_mode=0,
                successes_at_mode=0,
                last_failure="",
                updated_at=now,
            )
            .on_conflict_do_nothing()
        )


def record_outcome(conn: Connection, runbook: str, *, ok: bool, now: datetime, failure: str = "") -> Any:
    """Count one finished run toward the runbook's trust figures; returns the new row."""
    _ensure_trust_row(conn, runbook, now=now)
    values: dict[str, Any] = {
        "runs": trust.c.runs + 1,
        "runs_at_mode": trust.c.runs_at_mode + 1,
        "updated_at": now,
    }
    if ok:
        values.update(successes=trust.c.successes + 1, successes_at_mode=trust.c.successes_at_mode + 1)
    else:
        values.update(failures=trust.c.failures + 1, last_failure_at=now, last_failure=failure[:1000])
    conn.execute(update(trust).where(trust.c.runbook == runbook).values(**values))
    return trust_row(conn, runbook)


def set_mode(conn: Connection, runbook: str, mode: str, *, ceiling: str, now: datetime, by: str, reason: str) -> None:
    """Store the mode in force for ``runbook`` under the file's mode ``ceiling`` (an edit to the
    file voids it), restart the counts toward the next promotion, and audit who and why."""
    _ensure_trust_row(conn, runbook, now=now)
    before = trust_row(conn, runbook)
    conn.execute(
        update(trust)
        .where(trust.c.runbook == runbook)
        .values(mode=mode, ceiling=ceiling, mode_since=now, runs_at_mode=0, successes_at_mode=0, updated_at=now)
    )
    audit.append(
        conn,
        at=now,
        kind="runbook.mode_changed",
        actor=by,
        data={
            "runbook": runbook,
            "mode": mode,
            "from": before.mode if before is not None and before.mode else None,
            "ceiling": ceiling,
            "reason": reason,
        },
    )


class MarkSource(StrEnum):
    """Where a marked suggestion came from: an observed run, or a backtested episode."""

    OBSERVE = "observe"
    BACKTEST = "backtest"


def record_mark(
    conn: Connection,
    runbook: str,
    *,
    source: MarkSource,
    ref: str,
    right: bool,
    actor: str,
    reason: str,
    now: datetime,
    incident_id: int | None = None,
    run_id: int | None = None,
) -> None:
    """A responder's judgement of one suggestion (a later mark of the same one replaces it), audited."""
    stmt = _ins(conn, suggestion_marks).values(
        runbook=runbook, source=source.value, ref=ref, right=right, actor=actor, reason=reason, at=now
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["source", "ref"], set_={"right": right, "actor": actor, "reason": reason, "at": now}
        )
    )
    audit.append(
        conn,
        at=now,
        kind="suggestion.marked",
        actor=actor,
        incident_id=incident_id,
        run_id=run_id,
        data={"runbook": runbook, "source": source.value, "ref": ref, "right": right, "reason": reason},
    )


def marks_since(conn: Connection, runbook: str, since: datetime | None) -> tuple[int, int]:
    """(marked, marked right) suggestions of ``runbook`` marked at or after ``since`` (None: ever)."""
    q = select(suggestion_marks.c.right).where(suggestion_marks.c.runbook == runbook)
    if since is not None:
        q = q.where(suggestion_marks.c.at >= since)
    rows = [bool(r.right) for r in conn.execute(q)]
    return len(rows), sum(rows)


def marks_by_source_since(conn: Connection, runbook: str, since: datetime | None) -> dict[str, tuple[int, int]]:
    """Per source (observe, backtest): (marked, marked right) since ``since``, for the audit's "based on"."""
    q = select(suggestion_marks.c.source, suggestion_marks.c.right).where(suggestion_marks.c.runbook == runbook)
    if since is not None:
        q = q.where(suggestion_marks.c.at >= since)
    out: dict[str, tuple[int, int]] = {}
    for r in conn.execute(q):
        marked, right = out.get(r.source, (0, 0))
        out[r.source] = (marked + 1, right + int(bool(r.right)))
    return out
