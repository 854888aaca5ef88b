"""Incidents in the store: dedup by (source, fingerprint), concurrent and out-of-order deliveries,
resolution, new episodes — on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from paramedic.core.alerts import Alert, AlertStatus
from paramedic.core.incidents import Delivery
from paramedic.core.plan import build_plan
from paramedic.core.runbooks import Mode, Runbook
from paramedic.store import incidents as inc
from paramedic.store import migrate
from paramedic.store.db import Database, make_engine
from paramedic.store.incidents import RunSeed
from paramedic.store.tables import incidents, runs

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
RB = Runbook.model_validate(
    {
        "name": "restart",
        "owner": "t",
        "match": {"alertname": "Down"},
        "mode": "approve",
        "steps": [{"action": "shell.run", "with": {"argv": ["true"]}}],
    }
)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    d = Database(make_engine(database_url))
    migrate.upgrade(d)
    yield d
    d.dispose()


def alert(status: str = "firing", starts: datetime = T0, fp: str = "fp1") -> Alert:
    return Alert(
        source="alertmanager",
        fingerprint=fp,
        name="Down",
        status=AlertStatus(status),
        starts_at=starts,
        labels={"alertname": "Down", "instance": "h1", "service": "web"},
        ends_at=starts + timedelta(minutes=1) if status == "resolved" else None,
    )


def deliver(db: Database, a: Alert, now: datetime = T0, seeds: list[RunSeed] | None = None) -> inc.IngestResult:
    with db.write() as conn:
        return inc.record(conn, a, seeds or [], now=now)


def seeds_for(a: Alert) -> list[RunSeed]:
    return [RunSeed("restart", Mode.APPROVE, build_plan(RB, a))]


def count(db: Database, table: object) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_repeated_delivery_updates_one_incident(db: Database) -> None:
    first = deliver(db, alert(), seeds=seeds_for(alert()))
    again = [deliver(db, alert(), seeds=seeds_for(alert())) for _ in range(3)]
    assert first.delivery is Delivery.CREATED
    assert len(first.runs) == 1
    assert {r.delivery for r in again} == {Delivery.UPDATED}
    assert count(db, incidents) == 1
    assert count(db, runs) == 1
    with db.read() as conn:
        assert inc.get(conn, first.incident_id or 0).deliveries == 4  # type: ignore[union-attr]


def test_concurrent_deliveries_create_one_incident_and_one_run(db: Database) -> None:
    barrier = threading.Barrier(8)
    results: list[inc.IngestResult] = []
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(deliver(db, alert(), seeds=seeds_for(alert())))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.delivery for r in results).count(Delivery.CREATED) == 1
    assert count(db, incidents) == 1
    assert count(db, runs) == 1


def test_resolution_resolves_and_cancels_pending_approval(db: Database) -> None:
    created = deliver(db, alert(), seeds=seeds_for(alert()))
    res = deliver(db, alert("resolved"), now=T0 + timedelta(minutes=2))
    assert res.delivery is Delivery.RESOLVED
    with db.read() as conn:
        row = inc.get(conn, created.incident_id or 0)
        run_status = conn.execute(select(runs.c.status, runs.c.reason)).one()
    assert row is not None
    assert row.status == "resolved"
    assert row.resolved_at == T0 + timedelta(minutes=1)
    assert run_status.status == "cancelled"
    assert "resolved" in run_status.reason


def test_mitigated_is_never_later_than_resolved(db: Database) -> None:
    """The alert resolves (probe healthy again) before the run records its passed verification."""
    from paramedic.core.runbooks import Mode as M
    from paramedic.store import runs as runs_repo

    a = alert()
    created = deliver(db, a, seeds=[RunSeed("restart", M.AUTO, build_plan(RB, a, mode=M.AUTO))])
    with db.write() as conn:
        run = runs_repo.for_incident(conn, created.incident_id or 0)[0]
        conn.execute(runs.update().where(runs.c.id == run.id).values(status="running"))
    deliver(db, alert("resolved"), now=T0 + timedelta(minutes=2))  # resolved at T0 + 1m
    with db.write() as conn:
        run = runs_repo.for_incident(conn, created.incident_id or 0)[0]
        runs_repo.finish(conn, run, status="succeeded", now=T0 + timedelta(minutes=3), mitigated=True)
    with db.read() as conn:
        row = inc.get(conn, created.incident_id or 0)
    assert row is not None
    assert row.resolved_at == T0 + timedelta(minutes=1)
    assert row.mitigated_at == row.resolved_at


def test_out_of_order_late_firing_after_resolution_is_ignored(db: Database) -> None:
    deliver(db, alert())
    deliver(db, alert("resolved"))
    late = deliver(db, alert())  # same startsAt, delivered late by the other HA peer
    assert late.delivery is Delivery.LATE
    assert count(db, incidents) == 1


def test_resolution_before_firing_is_recorded_but_opens_nothing(db: Database) -> None:
    assert deliver(db, alert("resolved")).delivery is Delivery.UNKNOWN_RESOLVED
    assert count(db, incidents) == 0


def test_firing_again_with_new_start_opens_a_new_incident(db: Database) -> None:
    deliver(db, alert())
    deliver(db, alert("resolved"))
    again = deliver(db, alert(starts=T0 + timedelta(minutes=5)), now=T0 + timedelta(minutes=5))
    assert again.delivery is Delivery.CREATED
    assert count(db, incidents) == 2
    with db.read() as conn:
        starts = inc.episodes(conn, source="alertmanager", fingerprint="fp1", since=T0 - timedelta(hours=1))
    assert sorted(starts) == [T0, T0 + timedelta(minutes=5)]


def test_unmatched_alert_escalates_with_a_notification(db: Database) -> None:
    from paramedic.store.tables import outbox

    r = deliver(db, alert(fp="unknown"))
    with db.read() as conn:
        row = inc.get(conn, r.incident_id or 0)
        events = [x.event for x in conn.execute(select(outbox.c.event))]
    assert row is not None
    assert row.status == "escalated"
    assert events == ["escalated"]
