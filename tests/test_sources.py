"""Grafana and PagerDuty alert sources: the parsers on sample payloads, and the HTTP routes.

The sample payloads in ``tests/fixtures/grafana-*.json`` and ``tests/fixtures/pagerduty-*.json``
were written from the providers' documented formats (Grafana's webhook contact point,
``version: "1"``; PagerDuty's v3 webhook ``event`` envelope), not captured from a live system.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from paramedic.api.auth import sha256_hex
from paramedic.core.alerts import AlertStatus, Source
from paramedic.core.config import Auth, Token, WebhookAuth
from paramedic.core.errors import PayloadError
from paramedic.ingest import grafana, pagerduty
from tests.conftest import Server

HERE = Path(__file__).parent / "fixtures"


def load(name: str) -> Any:
    return json.loads((HERE / name).read_text())


# ---- Grafana ---------------------------------------------------------------------------------
def test_grafana_firing_becomes_one_alert_with_grafana_links_as_annotations() -> None:
    (alert,) = grafana.parse(load("grafana-firing.json"))
    assert alert.source == Source.GRAFANA
    assert alert.name == "HighErrorRate"
    assert alert.status is AlertStatus.FIRING
    assert alert.fingerprint == "4c7d2a1e9b3f6d08"
    assert alert.starts_at == datetime(2024, 5, 14, 9, 41, 20, tzinfo=UTC)
    assert alert.ends_at is None  # 0001-01-01 means "still firing"
    assert alert.labels["service"] == "payments-api"
    assert alert.labels["severity"] == "critical"
    assert alert.annotations["summary"] == "payments-api is failing requests"
    assert alert.annotations["panel_url"].endswith("viewPanel=4")
    assert alert.annotations["value_string"].startswith("[ var='A'")
    assert "silence_url" in alert.annotations
    assert "dashboard_url" in alert.annotations
    assert alert.group_key.startswith("{}/{__grafana_receiver__")
    assert alert.generator_url.startswith("https://grafana.example.com/alerting/")


def test_grafana_resolved_has_its_end() -> None:
    (alert,) = grafana.parse(load("grafana-resolved.json"))
    assert alert.status is AlertStatus.RESOLVED
    assert alert.ends_at == datetime(2024, 5, 14, 9, 52, 40, tzinfo=UTC)
    assert alert.fingerprint == grafana.parse(load("grafana-firing.json"))[0].fingerprint


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        pytest.param(lambda d: d.update(version="2"), "version", id="version"),
        pytest.param(lambda d: d.update(alerts={}), "alerts", id="alerts-not-list"),
        pytest.param(lambda d: d["alerts"][0]["labels"].pop("alertname"), "alerts[0].labels.alertname", id="no-name"),
        pytest.param(lambda d: d["alerts"][0].update(status="pending"), "alerts[0].status", id="status"),
        pytest.param(lambda d: d["alerts"][0].update(startsAt="yesterday"), "alerts[0].startsAt", id="time"),
        pytest.param(lambda d: d["alerts"][0].update(panelURL=7), "alerts[0].panelURL", id="url-type"),
    ],
)
def test_grafana_malformed_names_the_field(mutate: Callable[[dict[str, Any]], Any], field: str) -> None:
    body = load("grafana-firing.json")
    mutate(body)
    with pytest.raises(PayloadError) as err:
        grafana.parse(body)
    assert err.value.field == field


def test_grafana_without_fingerprint_gets_a_stable_one() -> None:
    body = load("grafana-firing.json")
    del body["alerts"][0]["fingerprint"]
    assert grafana.parse(body)[0].fingerprint == grafana.parse(copy.deepcopy(body))[0].fingerprint


# ---- PagerDuty -------------------------------------------------------------------------------
def test_pagerduty_triggered_becomes_a_firing_alert_keyed_by_the_pd_incident() -> None:
    (alert,) = pagerduty.parse(load("pagerduty-incident-triggered.json"))
    assert alert.source == Source.PAGERDUTY
    assert alert.status is AlertStatus.FIRING
    assert alert.fingerprint == "pd-Q2LAM6WSRZ1BH3"
    assert alert.name == "Checkout latency above SLO"
    assert alert.starts_at == datetime(2024, 5, 14, 9, 41, 31, tzinfo=UTC)  # created_at, not occurred_at
    assert alert.labels == {
        "alertname": "Checkout latency above SLO",
        "service": "payments-api",
        "pagerduty_service_id": "PF9KMXH",
        "pagerduty_incident": "Q2LAM6WSRZ1BH3",
        "urgency": "high",
        "priority": "P1",
        "incident_number": "4127",
    }
    assert alert.annotations["pagerduty_url"] == "https://acme.pagerduty.com/incidents/Q2LAM6WSRZ1BH3"
    assert alert.generator_url == alert.annotations["pagerduty_url"]


def test_pagerduty_resolved_resolves_the_same_fingerprint() -> None:
    (fired,) = pagerduty.parse(load("pagerduty-incident-triggered.json"))
    (done,) = pagerduty.parse(load("pagerduty-incident-resolved.json"))
    assert done.status is AlertStatus.RESOLVED
    assert done.fingerprint == fired.fingerprint
    assert done.starts_at >= fired.starts_at  # applies to the open episode (a reopened one too)
    assert done.ends_at == datetime(2024, 5, 14, 9, 58, 2, 107000, tzinfo=UTC)


def test_pagerduty_events_that_change_nothing_are_ignored() -> None:
    assert pagerduty.parse(load("pagerduty-incident-annotated.json")) == []
    body = load("pagerduty-incident-triggered.json")
    body["event"]["resource_type"] = "service"
    body["event"]["event_type"] = "service.updated"
    assert pagerduty.parse(body) == []


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        pytest.param(lambda d: d.pop("event"), "event", id="no-event"),
        pytest.param(lambda d: d["event"].update(event_type=3), "event.event_type", id="type"),
        pytest.param(lambda d: d["event"]["data"].update(id=""), "event.data.id", id="no-id"),
        pytest.param(lambda d: d["event"].update(occurred_at="soon"), "event.occurred_at", id="time"),
        pytest.param(lambda d: d["event"]["data"].update(service="x"), "event.data.service", id="service"),
    ],
)
def test_pagerduty_malformed_names_the_field(mutate: Callable[[dict[str, Any]], Any], field: str) -> None:
    body = load("pagerduty-incident-triggered.json")
    mutate(body)
    with pytest.raises(PayloadError) as err:
        pagerduty.parse(body)
    assert err.value.field == field


# ---- HTTP routes -----------------------------------------------------------------------------
def test_grafana_route_stores_then_202_and_resolves(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    with srv.client() as c:
        r = c.post("/api/v1/alerts/grafana", json=load("grafana-firing.json"))
        assert r.status_code == 202, r.text
        (a,) = r.json()["alerts"]
        assert a["delivery"] == "created"
        incident = c.get(f"/api/v1/incidents/{a['incident_id']}").json()
        assert incident["source"] == "grafana"
        assert incident["alertname"] == "HighErrorRate"
        r = c.post("/api/v1/alerts/grafana", json=load("grafana-resolved.json"))
        assert r.json()["alerts"][0]["delivery"] == "resolved"
        bad = load("grafana-firing.json")
        bad["alerts"][0]["startsAt"] = "nope"
        r = c.post("/api/v1/alerts/grafana", json=bad)
        assert r.status_code == 202  # a page is never refused for one bad alert: a human gets it
        assert r.json()["alerts"][0]["unreadable"]["field"] == "alerts[0].startsAt"
        assert c.get(f"/api/v1/incidents/{r.json()['alerts'][0]['incident_id']}").json()["status"] == "escalated"


def test_pagerduty_route_accepts_its_signature_and_refuses_strangers(
    make_server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PM_TEST_HOOK_SECRET", "s3cret")
    auth = Auth(
        tokens=[Token(name="v", role="viewer", sha256=sha256_hex("viewer-token"))],
        webhook=WebhookAuth(hmac_secret_env="PM_TEST_HOOK_SECRET"),
    )
    srv = make_server(auth=auth)
    raw = json.dumps(load("pagerduty-incident-triggered.json")).encode()
    good = "v1=" + hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json"}
    with srv.client() as c:
        assert c.post("/api/v1/alerts/pagerduty", content=raw, headers=headers).status_code == 401
        wrong = {**headers, "X-PagerDuty-Signature": "v1=" + "0" * 64}
        assert c.post("/api/v1/alerts/pagerduty", content=raw, headers=wrong).status_code == 401
        rotated = {**headers, "X-PagerDuty-Signature": f"v1={'1' * 64},{good}"}
        r = c.post("/api/v1/alerts/pagerduty", content=raw, headers=rotated)
        assert r.status_code == 202, r.text
        assert r.json()["alerts"][0]["delivery"] == "created"
        note = json.dumps(load("pagerduty-incident-annotated.json")).encode()
        sig = "v1=" + hmac.new(b"s3cret", note, hashlib.sha256).hexdigest()
        r = c.post("/api/v1/alerts/pagerduty", content=note, headers={**headers, "X-PagerDuty-Signature": sig})
        assert r.status_code == 202
        assert r.json()["accepted"] == 0
        # the Grafana route takes the generic webhook auth, not PagerDuty's signature
        r = c.post("/api/v1/alerts/grafana", content=raw, headers=rotated)
        assert r.status_code == 401
