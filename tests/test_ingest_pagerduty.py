"""PagerDuty's webhook (v3) beside paramedic's PagerDuty sink (Events API v2): no paging loop,
reopened incidents, long titles.

No PagerDuty server runs here. The fake Events API below checks each request as PagerDuty's Events
API v2 documents ``POST /v2/enqueue`` (``routing_key``, ``event_action``, ``dedup_key``, and for a
trigger ``payload.summary`` ≤ 1,024 characters, ``payload.source``, ``payload.severity``) and
answers ``202``. PagerDuty makes the event's ``dedup_key`` the incident's ``incident_key``, which
its v3 webhook sends back in ``event.data.incident_key``; the webhook bodies are the documented v3
incident events in ``tests/fixtures/pagerduty-*.json``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.support import FIXTURES
from tests.test_notify_sinks import FakeProvider, Seen
from tests.test_sources import load

ROUTING_KEY = "R0UT1NGKEY0123456789012345678901"
AM = json.loads((FIXTURES / "alertmanager-0.25-firing.json").read_text())


def pd(name: str) -> dict[str, Any]:
    return copy.deepcopy(load(f"pagerduty-incident-{name}.json"))  # type: ignore[no-any-return]


def events_api(seen: Seen) -> tuple[int, Any, dict[str, str]]:
    """PagerDuty Events API v2, as documented: 400 for a malformed event, else 202."""
    body = json.loads(seen.body)
    ok = (
        seen.path == "/v2/enqueue"
        and body.get("routing_key") == ROUTING_KEY
        and body.get("event_action") in ("trigger", "acknowledge", "resolve")
        and 0 < len(body.get("dedup_key", "")) <= 255
    )
    if ok and body["event_action"] == "trigger":
        payload = body.get("payload", {})
        ok = 0 < len(payload.get("summary", "")) <= 1024 and bool(payload.get("source"))
        ok = ok and payload.get("severity") in ("critical", "error", "warning", "info")
    if not ok:
        return 400, {"status": "invalid event", "message": "Event object is invalid"}, {}
    return 202, {"status": "success", "message": "Event processed", "dedup_key": body["dedup_key"]}, {}


@pytest.fixture
def pagerduty() -> Iterator[FakeProvider]:
    fake = FakeProvider(answer=events_api)
    yield fake
    fake.close()


def triggers(fake: FakeProvider) -> list[dict[str, Any]]:
    with fake.lock:
        bodies = [json.loads(s.body) for s in fake.requests]
    return [b for b in bodies if b["event_action"] == "trigger"]


def incidents(c: httpx.Client) -> list[dict[str, Any]]:
    return c.get("/api/v1/incidents").json()["incidents"]  # type: ignore[no-any-return]


def test_own_escalation_coming_back_is_linked_not_a_new_incident(
    make_server: Callable[..., Server], pagerduty: FakeProvider
) -> None:
    """Before: each escalation came back through the webhook as a new incident that escalated again."""
    sink = {"type": "pagerduty", "routing_key": ROUTING_KEY, "url": f"{pagerduty.url}/v2/enqueue"}
    srv = make_server(sinks=[{**sink, "dedup_prefix": "pm-prod"}])
    with srv.client() as c:
        r = c.post("/api/v1/alerts/alertmanager", json={**AM, "alerts": AM["alerts"][:1]})
        (first,) = r.json()["alerts"]
        srv.wait(lambda _: len(triggers(pagerduty)) == 1)  # no runbook: escalated to PagerDuty
        (sent,) = triggers(pagerduty)
        assert sent["dedup_key"] == f"pm-prod-incident-{first['incident_id']}"

        # PagerDuty opened an incident for the event and tells its webhook subscribers
        event = pd("triggered")
        event["event"]["data"]["incident_key"] = sent["dedup_key"]
        event["event"]["data"]["title"] = sent["payload"]["summary"]
        r = c.post("/api/v1/alerts/pagerduty", json=event)
        assert r.status_code == 202, r.text
        (echo,) = r.json()["alerts"]
        assert echo["delivery"] == "linked"
        assert echo["incident_id"] == first["incident_id"]
        event["event"]["event_type"] = "incident.acknowledged"
        assert c.post("/api/v1/alerts/pagerduty", json=event).json()["alerts"][0]["delivery"] == "linked"

        assert [i["id"] for i in incidents(c)] == [first["incident_id"]]  # no second incident, no second page
        timeline = c.get(f"/api/v1/incidents/{first['incident_id']}").json()["timeline"]
        linked = [e for e in timeline if e["kind"] == "incident.linked"]
        assert [e["data"]["event"] for e in linked] == ["incident.triggered", "incident.acknowledged"]
        assert linked[0]["data"]["remote_incident"] == "Q2LAM6WSRZ1BH3"


def test_other_pagerduty_incidents_still_open_incidents(make_server: Callable[..., Server]) -> None:
    srv = make_server(sinks=[{"type": "pagerduty", "routing_key": ROUTING_KEY, "url": "http://127.0.0.1:9/v2/enqueue"}])
    with srv.client() as c:
        (a,) = c.post("/api/v1/alerts/pagerduty", json=pd("triggered")).json()["alerts"]
        assert a["delivery"] == "created"  # incident_key c1e8fa… is not paramedic's


def test_reopened_incident_opens_a_new_episode(make_server: Callable[..., Server]) -> None:
    """Before: ``incident.reopened`` carried the first ``created_at`` and was dropped as ``late``."""
    srv = make_server()
    reopened = pd("triggered")
    reopened["event"]["event_type"] = "incident.reopened"
    reopened["event"]["occurred_at"] = "2024-05-14T10:20:00.000Z"
    reopened["event"]["data"]["status"] = "triggered"
    resolved_again = pd("resolved")
    resolved_again["event"]["occurred_at"] = "2024-05-14T10:45:00.000Z"
    with srv.client() as c:
        (first,) = c.post("/api/v1/alerts/pagerduty", json=pd("triggered")).json()["alerts"]
        assert c.post("/api/v1/alerts/pagerduty", json=pd("resolved")).json()["alerts"][0]["delivery"] == "resolved"
        (again,) = c.post("/api/v1/alerts/pagerduty", json=reopened).json()["alerts"]
        assert again["delivery"] == "created"
        assert again["incident_id"] != first["incident_id"]
        (done,) = c.post("/api/v1/alerts/pagerduty", json=resolved_again).json()["alerts"]
        assert done == {**done, "delivery": "resolved", "incident_id": again["incident_id"]}


def test_title_over_1024_characters_is_cut_not_refused(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    event = pd("triggered")
    event["event"]["data"]["title"] = "Checkout latency above SLO " + "x" * 3000
    with srv.client() as c:
        r = c.post("/api/v1/alerts/pagerduty", json=event)
        assert r.status_code == 202, r.text
        (a,) = r.json()["alerts"]
        assert a["delivery"] == "created"
        assert "unreadable" not in a
        incident = c.get(f"/api/v1/incidents/{a['incident_id']}").json()
        summary = incident["annotations"]["summary"]
        assert len(summary) == 1024
        assert summary.startswith("Checkout latency above SLO x")
        assert summary.endswith("…")
