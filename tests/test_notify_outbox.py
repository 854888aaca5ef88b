"""The outbox end to end: notifications survive a restart and are delivered exactly once, in
order per incident; an alert no runbook matches still reaches a human with its evidence and with
nothing done; a run waiting for approval asks for it, evidence attached.

Slack and the generic webhook are local fakes (``tests.test_notify_sinks.FakeProvider``) that
record every request as Slack's incoming webhooks and a signed webhook receive it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from paramedic.core.alerts import Alert, AlertStatus
from paramedic.core.config import Config, Notifications
from paramedic.engine.service import Paramedic
from paramedic.store.tables import outbox
from tests.conftest import Server, write_runbooks
from tests.test_notify_sinks import FakeProvider, Seen

NO_RUNBOOKS = "apiVersion: paramedic/v1\nrunbooks: []\n"


@pytest.fixture
def slack() -> Iterator[FakeProvider]:
    f = FakeProvider()
    yield f
    f.close()


def _alert(n: int, *, status: AlertStatus = AlertStatus.FIRING, at: datetime | None = None) -> Alert:
    start = at or datetime.now(UTC) - timedelta(minutes=1)
    return Alert(
        "generic", f"fp{n}", "DiskFull", status, start, {"instance": f"db-{n}", "service": "db", "severity": "warning"},
        ends_at=datetime.now(UTC) if status is AlertStatus.RESOLVED else None,
    )  # fmt: skip


def _outbox_rows(pm: Paramedic, sink: str) -> list[Any]:
    with pm.db.read() as conn:
        return list(conn.execute(select(outbox).where(outbox.c.sink == sink).order_by(outbox.c.id)).all())


async def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout}s")
        await asyncio.sleep(0.05)


def test_a_restart_while_slack_fails_delivers_every_notification_exactly_once(
    tmp_path: Path, slack: FakeProvider
) -> None:
    """Paramedic #1 queues notifications while Slack answers 500 and is stopped; Slack recovers;
    paramedic #2 on the same SQLite database delivers each of them once, in order per incident;
    paramedic #3 sends nothing more."""
    failing = {"on": True}

    def answer(seen: Seen) -> tuple[int, Any, dict[str, str]]:
        return (500, "internal_error", {}) if failing["on"] else (200, "ok", {})

    slack.answer = answer
    rb = write_runbooks(tmp_path / "rb", NO_RUNBOOKS)
    cfg = Config(
        database=f"sqlite:///{tmp_path / 'pm.db'}",
        runbooks=[str(rb)],
        sinks=[{"type": "slack", "name": "oncall", "webhook_url": f"{slack.url}/services/T/B/X"}],
        notifications=Notifications(group_min=100),  # one message per incident here (storms: test_notify_storm)
    )

    async def first() -> int:
        pm = Paramedic.from_config(cfg)
        await pm.start()
        try:
            await pm.ingest([_alert(1), _alert(2), _alert(3)])
            await pm.ingest([_alert(3, status=AlertStatus.RESOLVED, at=_first_start(pm, "fp3"))])

            def rows() -> list[Any]:
                return _outbox_rows(pm, "oncall")

            await _until(lambda: len(rows()) == 4 and all(r.attempts >= 1 for r in rows()[:3]), 15, "failed attempts")
            assert all(r.status == "pending" for r in rows())
            assert "answered 500" in rows()[0].last_error
            return len(slack.requests)
        finally:
            await pm.stop()

    attempts = asyncio.run(first())
    assert attempts >= 3
    assert all(r.json["text"] for r in slack.requests)
    failing["on"] = False
    before = len(slack.requests)

    async def second() -> None:
        pm = Paramedic.from_config(cfg)
        await pm.start()
        try:
            await _until(lambda: all(r.status == "sent" for r in _outbox_rows(pm, "oncall")), 30, "delivery")
            await asyncio.sleep(1.5)  # give a duplicate every chance to show up
        finally:
            await pm.stop()

    asyncio.run(second())
    sent = [r.json["text"] for r in slack.requests[before:]]
    assert len(sent) == 4, sent
    assert len(set(sent)) == 4, sent
    assert sorted(sent) == sorted(
        [
            "Needs a human: DiskFull on db-1 (#1)",
            "Needs a human: DiskFull on db-2 (#2)",
            "Needs a human: DiskFull on db-3 (#3)",
            "Resolved: DiskFull on db-3 (#3)",
        ]
    )
    assert sent.index("Needs a human: DiskFull on db-3 (#3)") < sent.index("Resolved: DiskFull on db-3 (#3)")

    async def third() -> None:
        pm = Paramedic.from_config(cfg)
        await pm.start()
        await asyncio.sleep(1.5)
        await pm.stop()

    asyncio.run(third())
    assert len(slack.requests) == before + 4  # nothing is sent twice after another restart


def _first_start(pm: Paramedic, fingerprint: str) -> datetime:
    from paramedic.store.tables import incidents

    with pm.db.read() as conn:
        return conn.execute(select(incidents.c.starts_at).where(incidents.c.fingerprint == fingerprint)).scalar_one()  # type: ignore[no-any-return]


def test_an_alert_no_runbook_matches_is_enriched_and_notified_and_nothing_runs(
    make_server: Callable[..., Server], tmp_path: Path, slack: FakeProvider
) -> None:
    log = tmp_path / "db.log"
    log.write_text("INFO checkpoint\nERROR could not extend file: No space left on device\n")
    srv = make_server(
        NO_RUNBOOKS,
        sinks=[{"type": "webhook", "name": "hook", "url": f"{slack.url}/hook"}],
        enrich_defaults=[{"logs": {"file": str(log), "lines": 20}}, {"changes": {"window": "2h"}}],
    )
    with srv.client() as c:
        r = c.post("/api/v1/changes", json={"service": "db", "version": "15.4", "kind": "upgrade", "actor": "ci"})
        assert r.status_code == 201, r.text
        r = c.post("/api/v1/alerts", json={"name": "DiskFull", "labels": {"service": "db", "instance": "db-1"}})
        incident_id = r.json()["alerts"][0]["incident_id"]
        srv.wait(lambda _: len(slack.requests) >= 1)
        detail = c.get(f"/api/v1/incidents/{incident_id}").json()
    (hook,) = slack.requests
    body = hook.json
    assert body["event"] == "escalated"
    assert body["incident_id"] == incident_id
    md = body["summary_markdown"]
    assert "No runbook matches this alert, so nothing was done automatically" in md
    assert "2 lines, 1 looks like errors; last: `ERROR could not extend file: No space left on device`" in md
    assert "upgrade of db `15.4` by ci" in md
    assert "_Why this message:_ no runbook matches this alert: a human has to look" in md
    assert detail["status"] == "escalated"
    assert detail["runs"] == []
    assert {e["kind"]: e["status"] for e in detail["evidence"]} == {"logs": "ok", "changes": "ok"}
    assert not any(t["kind"].startswith(("step.", "run.")) for t in detail["timeline"])


APPROVE = """
apiVersion: paramedic/v1
runbooks:
  - name: restart-db
    owner: team-db
    match: {alertname: DbHung}
    mode: approve
    steps:
      - action: supervisor.restart
        with: {program: "db:db-1"}
"""


def test_a_run_waiting_for_approval_asks_a_human_with_the_evidence(
    make_server: Callable[..., Server], slack: FakeProvider
) -> None:
    srv = make_server(APPROVE, sinks=[{"type": "webhook", "name": "hook", "url": f"{slack.url}/hook"}])
    with srv.client() as c:
        r = c.post("/api/v1/alerts", json={"name": "DbHung", "labels": {"service": "db", "instance": "db-1"}})
        incident_id = r.json()["alerts"][0]["incident_id"]
        srv.wait(lambda _: len(slack.requests) >= 1)
        evidence = c.get(f"/api/v1/incidents/{incident_id}").json()["evidence"]
    body = slack.requests[0].json
    assert body["event"] == "approval_needed"
    assert body["title"] == f"Approval needed: DbHung on db-1 (#{incident_id})"
    md = body["summary_markdown"]
    assert re.search(r"Runbook `restart-db` \(approve\): \*\*waiting for approval\*\* until .* UTC", md)
    assert f"`paramedic approve {incident_id}`" in md
    # the target-state evidence of the planned step (no supervisord runs here: it says so)
    assert "**State of the target of supervisor.restart (program=db:db-1)** — failed: supervisor.restart:" in md
    assert {e["kind"] for e in evidence} == {"target", "changes"}


def test_two_instances_in_one_process_queue_only_for_their_own_sinks(tmp_path: Path) -> None:
    """The sinks an event is queued for belong to the paramedic whose database it is written to:
    a second instance started later in the same process (a test, an embedding) changes nothing
    for the first."""
    rb = write_runbooks(tmp_path / "rb", NO_RUNBOOKS)

    def instance(name: str, sink: str) -> Paramedic:
        return Paramedic.from_config(
            Config(
                database=f"sqlite:///{tmp_path / name}.db",
                runbooks=[str(rb)],
                sinks=[{"type": "webhook", "name": sink, "url": "http://127.0.0.1:9/hook"}],
            )
        )

    first = instance("a", "hook-a")
    second = instance("b", "hook-b")

    async def escalate_one(pm: Paramedic) -> None:
        await pm.ingest([_alert(1)])  # no runbook matches: a human hears of it

    for pm in (first, second):
        asyncio.run(escalate_one(pm))
    try:
        assert _outbox_rows(first, "hook-a")
        assert not _outbox_rows(first, "hook-b")
        assert _outbox_rows(second, "hook-b")
        assert not _outbox_rows(second, "hook-a")
    finally:
        first.db.dispose()
        second.db.dispose()
