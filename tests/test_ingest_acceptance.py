"""Per-alert acceptance: one bad alert never costs the page of the others, and never breaks a read.

Alertmanager and PagerDuty never retry a ``4xx`` (Alertmanager logs "unrecoverable error" and drops
the whole group). So a delivery whose envelope is readable is answered ``202``: each valid alert is
stored as usual, each invalid one (no ``alertname``, wrong types, text that is not valid Unicode)
becomes an incident of its own, escalated to a human with the raw alert as evidence, never matched
to a runbook. Only an unreadable envelope is refused. The Alertmanager bodies are the real
Alertmanager 0.25 output in ``tests/fixtures``, changed in one alert each.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from paramedic.cli import main
from paramedic.core.alerts import Source
from paramedic.engine.metrics import METRICS
from paramedic.ingest import alertmanager, generic
from paramedic.ingest.common import UNREADABLE_NAME, storable
from tests.conftest import Server
from tests.support import FIXTURES

NOW = datetime(2026, 11, 23, 19, 10, tzinfo=UTC)
AM = json.loads((FIXTURES / "alertmanager-0.25-firing.json").read_text())

# A runbook that would act on anything: an unreadable alert must still never reach it.
CATCH_ALL = """
apiVersion: paramedic/v1
runbooks:
  - name: touch-anything
    owner: team-test
    match: {alertname: "~.*"}
    mode: auto
    steps:
      - action: shell.run
        with: {argv: ["true"]}
"""


def _am(mutate: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(json.dumps(AM))
    mutate(body)
    return body


def _count(name: str, **labels: str) -> float:
    return METRICS.registry.get_sample_value(name, labels) or 0.0


def _detail(c: httpx.Client, incident_id: int) -> dict[str, Any]:
    r = c.get(f"/api/v1/incidents/{incident_id}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_group_with_an_alert_without_alertname_is_202_and_the_bad_one_goes_to_a_human(
    make_server: Callable[..., Server],
) -> None:
    srv = make_server(CATCH_ALL)
    body = _am(lambda b: b["alerts"][1]["labels"].pop("alertname"))
    before = _count("paramedic_ingest_unreadable_alerts_total", source="alertmanager", reason="missing_alertname")
    with srv.client() as c:
        r = c.post("/api/v1/alerts/alertmanager", json=body)
        assert r.status_code == 202, r.text
        good, bad = r.json()["alerts"]
        assert good["delivery"] == "created"
        assert "unreadable" not in good
        assert bad["unreadable"]["field"] == "alerts[1].labels.alertname"
        assert r.json()["unreadable"] == 1

        ok = _detail(c, good["incident_id"])
        assert ok["alertname"] == "InstanceDown"
        assert [run["runbook"] for run in ok["runs"]] == ["touch-anything"]  # stored and handled as today

        esc = _detail(c, bad["incident_id"])
        assert esc["status"] == "escalated"
        assert esc["alertname"] == UNREADABLE_NAME
        assert esc["runs"] == []  # never automated, even by a runbook that matches everything
        (raw,) = [e for e in esc["evidence"] if e["kind"] == "raw_alert"]
        assert raw["body"].startswith("alerts[1].labels.alertname: every alert needs labels.alertname")
        assert '"instance": "127.0.0.1:18082"' in raw["body"]  # the alert as it came
        reasons = [e["data"].get("reason", "") for e in esc["timeline"] if e["kind"] == "incident.escalated"]
        assert any("could not read this alert" in reason for reason in reasons)

        metrics = c.get("/metrics").text
        assert 'paramedic_ingest_unreadable_alerts_total{reason="missing_alertname",source="alertmanager"}' in metrics
    after = _count("paramedic_ingest_unreadable_alerts_total", source="alertmanager", reason="missing_alertname")
    assert after == before + 1


def test_repeated_delivery_of_one_bad_alert_updates_its_incident(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    body = _am(lambda b: b["alerts"][0]["labels"].pop("alertname"))
    with srv.client() as c:
        first = c.post("/api/v1/alerts/alertmanager", json=body).json()["alerts"][0]
        again = c.post("/api/v1/alerts/alertmanager", json=body).json()["alerts"][0]
        assert first["delivery"] == "created"
        assert again["delivery"] == "updated"
        assert again["incident_id"] == first["incident_id"]


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        pytest.param(
            lambda b: b["alerts"][0]["labels"].__setitem__("team", ["a", "list"]),
            "alerts[0].labels.team",
            "bad_type",
            id="label-not-a-string",
        ),
        pytest.param(
            lambda b: b["alerts"][0].__setitem__("status", 3), "alerts[0].status", "bad_type", id="status-int"
        ),
        pytest.param(
            lambda b: b["alerts"][0].__setitem__("status", "exploded"), "alerts[0].status", "bad_value", id="status"
        ),
        pytest.param(
            lambda b: b["alerts"][0].__setitem__("startsAt", "yesterday"), "alerts[0].startsAt", "bad_time", id="time"
        ),
        pytest.param(lambda b: b["alerts"].__setitem__(0, "not an object"), "alerts[0]", "bad_type", id="not-object"),
    ],
)
def test_each_kind_of_bad_alert_is_its_own_escalated_incident(
    make_server: Callable[..., Server], mutate: Callable[[dict[str, Any]], object], field: str, reason: str
) -> None:
    srv = make_server()
    with srv.client() as c:
        r = c.post("/api/v1/alerts/alertmanager", json=_am(mutate))
        assert r.status_code == 202, r.text
        bad, good = r.json()["alerts"]
        assert bad["unreadable"]["field"] == field
        assert good["delivery"] == "created"
        assert _detail(c, bad["incident_id"])["status"] == "escalated"
        (raw,) = [e for e in _detail(c, bad["incident_id"])["evidence"] if e["kind"] == "raw_alert"]
        assert raw["data"]["reason"] == reason


def test_lone_surrogate_is_refused_at_the_edge_and_every_read_still_works(
    make_server: Callable[..., Server],
) -> None:
    """``"\\ud83d"`` is valid JSON but not valid Unicode text: stored as it came, it broke
    ``GET /api/v1/incidents``, the UI and ``paramedic incidents list`` for good."""
    srv = make_server()
    text = json.dumps(AM).replace('"127.0.0.1:18081 down"', '"disk \\ud83d full"')
    assert "\\ud83d" in text
    with srv.client() as c:
        r = c.post("/api/v1/alerts/alertmanager", content=text.encode(), headers={"Content-Type": "application/json"})
        assert r.status_code == 202, r.text
        bad, good = r.json()["alerts"]
        assert bad["unreadable"]["field"] == "alerts[0].annotations.summary"
        assert good["delivery"] == "created"
        listing = c.get("/api/v1/incidents")
        assert listing.status_code == 200
        assert len(listing.json()["incidents"]) == 2
        detail = _detail(c, bad["incident_id"])
        (raw,) = [e for e in detail["evidence"] if e["kind"] == "raw_alert"]
        assert "disk \\ud83d full" in raw["body"]  # kept, escaped, as evidence
        assert c.get("/").status_code == 200
        assert c.get(f"/incidents/{bad['incident_id']}").status_code == 200
    result = CliRunner().invoke(main, ["incidents", "list", "--url", srv.url])
    assert result.exit_code == 0, result.output
    assert "human" in result.output  # the escalated incident is listed


def test_generic_list_with_one_bad_item(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    body = [{"name": "DiskFull", "labels": {"instance": "web-1"}}, {"labels": {"instance": "web-2"}}]
    with srv.client() as c:
        r = c.post("/api/v1/alerts", json=body)
        assert r.status_code == 202, r.text
        good, bad = r.json()["alerts"]
        assert good["delivery"] == "created"
        assert bad["unreadable"]["field"] == "[1].name"


@pytest.mark.parametrize(
    ("path", "content", "field", "reason"),
    [
        pytest.param("/api/v1/alerts/alertmanager", b"{not json", "body", "not_json", id="not-json"),
        pytest.param(
            "/api/v1/alerts/alertmanager", b'{"version": "4", "alerts": {}}', "alerts", "bad_type", id="alerts"
        ),
        pytest.param(
            "/api/v1/alerts/alertmanager", b'{"version": "3", "alerts": []}', "version", "bad_envelope", id="v3"
        ),
        pytest.param("/api/v1/alerts/pagerduty", b'{"messages": []}', "event", "bad_envelope", id="pd-v2"),
        pytest.param("/api/v1/alerts", b'"just a string"', "body", "bad_envelope", id="generic"),
    ],
)
def test_only_an_unreadable_envelope_is_refused_and_counted(
    make_server: Callable[..., Server], path: str, content: bytes, field: str, reason: str
) -> None:
    srv = make_server()
    source = path.rsplit("/", 1)[-1].replace("alerts", "generic")
    before = _count("paramedic_ingest_rejected_total", source=source, reason=reason)
    with srv.client() as c:
        r = c.post(path, content=content, headers={"Content-Type": "application/json"})
        assert r.status_code == 422
        assert r.json()["field"] == field
        assert c.get("/api/v1/incidents").json()["incidents"] == []
    assert _count("paramedic_ingest_rejected_total", source=source, reason=reason) == before + 1


def test_body_over_the_limit_is_413_and_counted(make_server: Callable[..., Server]) -> None:
    srv = make_server(max_body_bytes=4096)
    before = _count("paramedic_ingest_rejected_total", source="alertmanager", reason="too_large")
    big = _am(lambda b: b["alerts"][0]["annotations"].__setitem__("description", "x" * 8192))
    with srv.client() as c:
        r = c.post("/api/v1/alerts/alertmanager", json=big)
        assert r.status_code == 413
        assert r.json()["field"] == "body"
        assert "max_alerts" in r.json()["error"]
    assert _count("paramedic_ingest_rejected_total", source="alertmanager", reason="too_large") == before + 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
strings = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0xFFFF), max_size=6)
alerts = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["firing", "resolved"]) | json_values,
        "labels": st.dictionaries(strings, strings | json_values, max_size=4) | json_values,
        "annotations": st.dictionaries(strings, strings, max_size=3) | json_values,
        "startsAt": st.sampled_from(["2026-11-23T19:06:20.632Z", "2021-10-12T09:51:03.157076+02:00"]) | strings,
        "endsAt": st.just("0001-01-01T00:00:00Z") | strings,
        "fingerprint": strings,
    },
)


def _texts(alert: Any) -> list[str]:
    return [
        alert.name,
        alert.fingerprint,
        alert.group_key,
        *alert.labels,
        *alert.labels.values(),
        *alert.annotations,
        *alert.annotations.values(),
    ]


@settings(max_examples=200, deadline=None)
@given(raw=st.lists(alerts | json_values, max_size=5))
def test_any_alerts_in_a_readable_envelope_are_all_kept_and_storable(raw: list[Any]) -> None:
    """Whatever the alerts hold: one result per alert, and every text can be stored and read back."""
    batch = alertmanager.read({"version": "4", "groupKey": "g", "alerts": raw}, now=NOW)
    assert len(batch.alerts) == len(raw)
    for alert in batch.alerts:
        assert all(storable(t) for t in _texts(alert))
        if alert.unreadable is not None:
            assert storable(alert.unreadable.raw)
            assert alert.unreadable.raw.isascii()
            assert alert.labels["alertname"]


@settings(max_examples=100, deadline=None)
@given(raw=st.lists(st.dictionaries(strings, json_values | strings, max_size=4) | json_values, min_size=1, max_size=4))
def test_any_generic_items_are_all_kept(raw: list[Any]) -> None:
    batch = generic.read(raw, now=NOW, source=Source.GENERIC)
    assert len(batch.alerts) == len(raw)
    assert all(storable(t) for a in batch.alerts for t in _texts(a))
