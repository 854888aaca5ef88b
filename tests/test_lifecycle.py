"""The human side of an incident through the API and the CLI: acknowledge, resolve with a reason,
note, assign, snooze; each audited, each refused clearly on an unknown (404) or resolved (409)
incident; a human resolution counts in MTTR; an escalated incident says why a human was called."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import select

from paramedic.api import queries
from paramedic.cli import main
from paramedic.store import lifecycle
from paramedic.store.tables import outbox
from tests.conftest import Server
from tests.test_ui_support import ADMIN, RESPONDER, VIEWER, auth

REFUSED = """
apiVersion: paramedic/v1
runbooks:
  - name: restart-web
    owner: team-web
    match: {alertname: WebDown}
    target: "{{ labels.instance }}"
    mode: auto
    steps:
      - action: shell.run
        with: {argv: ["true", "{{ labels.instance }}"]}
    params:
      instance: {pattern: '^[a-z0-9-]{1,16}$'}
"""


def fire(srv: Server, name: str, instance: str = "web-1") -> int:
    with srv.client(headers=ADMIN) as c:
        r = c.post("/api/v1/alerts", json={"name": name, "labels": {"instance": instance, "service": "web"}})
    assert r.status_code == 202, r.text
    return int(r.json()["alerts"][0]["incident_id"])


def kinds(srv: Server, iid: int) -> list[str]:
    with srv.client(headers=ADMIN) as c:
        return [t["kind"] for t in c.get(f"/api/v1/incidents/{iid}").json()["timeline"]]


def test_acknowledge_note_assign_resolve_are_audited_and_count_in_mttr(make_server: Callable[..., Server]) -> None:
    srv = make_server(REFUSED, auth=auth())
    iid = fire(srv, "Unknown")
    with srv.client(headers=RESPONDER) as c:
        ack = c.post(f"/api/v1/incidents/{iid}/acknowledge", json={})
        assert ack.status_code == 200, ack.text
        assert ack.json()["acknowledged_by"] == "rita"
        assert ack.json()["acknowledged_at"] is not None
        assert c.post(f"/api/v1/incidents/{iid}/notes", json={"text": "disk full on web-1"}).status_code == 200
        assigned = c.post(f"/api/v1/incidents/{iid}/assign", json={"team": "team-storage"})
        assert assigned.json()["assignee"] == "team-storage"
        assert assigned.json()["assignee_kind"] == "team"
        assert c.post(f"/api/v1/incidents/{iid}/resolve", json={"reason": "  "}).status_code == 422
        done = c.post(f"/api/v1/incidents/{iid}/resolve", json={"reason": "freed 20 GB by hand"})
        assert done.status_code == 200, done.text
        again = c.post(f"/api/v1/incidents/{iid}/resolve", json={"reason": "twice"})
    body = done.json()
    assert body["status"] == "resolved"
    assert body["resolved_by"] == "rita"
    assert body["resolution"] == "freed 20 GB by hand"
    assert body["mttr_s"] is not None
    assert again.status_code == 409
    assert "resolved already" in again.json()["error"]
    assert {"incident.acknowledged", "incident.note", "incident.assigned", "incident.resolved"} <= set(kinds(srv, iid))
    with srv.pm.db.read() as conn:
        samples = {s.incident_id: s for s in queries.mttr_samples(conn)}
    assert iid in samples
    assert samples[iid].automated is False
    with srv.pm.db.read() as conn:
        events = {r.event for r in conn.execute(select(outbox.c.event).where(outbox.c.incident_id == iid))}
    assert {"assigned", "resolved"} <= events


def test_roles_and_unknown_ids(make_server: Callable[..., Server]) -> None:
    srv = make_server(REFUSED, auth=auth())
    iid = fire(srv, "Unknown")
    with srv.client(headers=VIEWER) as c:
        assert c.post(f"/api/v1/incidents/{iid}/acknowledge", json={}).status_code == 403
    with srv.client(headers=RESPONDER) as c:
        for path, body in (
            ("acknowledge", {}),
            ("resolve", {"reason": "x"}),
            ("notes", {"text": "x"}),
            ("assign", {"person": "rita"}),
            ("snooze", {"for": "30m"}),
        ):
            r = c.post(f"/api/v1/incidents/999/{path}", json=body)
            assert r.status_code == 404, (path, r.text)
            assert r.json()["error"] == "incident 999 does not exist"
        assert c.post(f"/api/v1/incidents/{iid}/assign", json={"person": "a", "team": "b"}).status_code == 422
        assert c.post(f"/api/v1/incidents/{iid}/snooze", json={"for": "3d"}).status_code == 422
    assert "incident.acknowledged" not in kinds(srv, iid)


def test_snooze_reminds_when_it_ends_if_still_open(make_server: Callable[..., Server]) -> None:
    srv = make_server(REFUSED)
    iid = fire(srv, "Unknown")
    with srv.client() as c:
        r = c.post(f"/api/v1/incidents/{iid}/snooze", json={"for": "30m"})
    assert r.status_code == 200, r.text
    assert r.json()["acknowledged_by"] is not None
    with srv.pm.db.write() as conn:
        assert lifecycle.end_snoozes(conn, now=srv.pm.clock() + timedelta(minutes=29)) == []
        assert lifecycle.end_snoozes(conn, now=srv.pm.clock() + timedelta(minutes=31)) == [iid]
    assert "incident.snooze_ended" in kinds(srv, iid)
    with srv.pm.db.read() as conn:
        events = {r.event for r in conn.execute(select(outbox.c.event).where(outbox.c.incident_id == iid))}
    assert "snooze_ended" in events


def test_escalated_incident_says_why_and_what_was_tried(make_server: Callable[..., Server]) -> None:
    srv = make_server(REFUSED)
    unknown = fire(srv, "Unknown")
    bad = fire(srv, "WebDown", instance="web-1;reboot")
    with srv.client() as c:
        first = c.get(f"/api/v1/incidents/{unknown}").json()["escalation"]
        second = c.get(f"/api/v1/incidents/{bad}").json()["escalation"]
    assert first["why"] == "no runbook matches this alert: a human has to look"
    assert first["tried"] == ["nothing: no runbook acts on this alert, so paramedic did not improvise"]
    assert first["next"].startswith("acknowledge it")
    assert "restart-web" in second["why"]
    assert "^[a-z0-9-]{1,16}$" in second["why"]

    shown = CliRunner().invoke(main, ["incidents", "show", str(unknown), "--url", srv.url], env={"COLUMNS": "200"})
    assert "a human is needed: no runbook matches this alert" in shown.output
    assert "tried: nothing: no runbook acts on this alert" in shown.output


def test_cli_lifecycle_commands(make_server: Callable[..., Server]) -> None:
    srv = make_server(REFUSED)
    iid = fire(srv, "Unknown")

    def cli(*args: str) -> str:
        result = CliRunner().invoke(main, [*args, "--url", srv.url], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return result.output

    assert "acknowledged by" in cli("incidents", "ack", str(iid))
    assert "note added" in cli("incidents", "note", str(iid), "rolled the cache by hand [/]")
    assert "assigned to person dana" in cli("incidents", "assign", str(iid), "--to", "dana")
    assert "snoozed until" in cli("incidents", "snooze", str(iid), "--for", "1h")
    assert "resolved by" in cli("incidents", "resolve", str(iid), "--reason", "cache rolled")
    shown = cli("incidents", "show", str(iid))
    assert "rolled the cache by hand [/]" in shown
    assert "cache rolled" in shown
    missing = CliRunner().invoke(main, ["incidents", "ack", "999", "--url", srv.url])
    assert missing.exit_code == 1
    assert "incident 999 does not exist" in missing.output
