"""Telemetry is a data-quality gate, against a real Prometheus (Debian package) scraping a real
sample service: absent is never zero, ``require.telemetry`` must return data before acting, and a
"worse" check can set an absolute floor.

At 753e177 a ``not_worse`` verification on an absent metric passed ("0 → 0"), marked the incident
mitigated and counted toward trust; nothing checked that the telemetry a runbook relies on exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server
from tests.support.services import Prometheus, SampleService

pytestmark = pytest.mark.integration
ERRORS = "sum(rate(http_errors_total[3s]))"
ABSENT = 'sum(rate(no_such_metric_total{job="app"}[3s]))'


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    with SampleService(tmp_path, name="app").started(traffic=True) as svc:
        yield svc.url


@pytest.fixture
def prom(service: str, tmp_path: Path) -> Iterator[Prometheus]:
    with Prometheus(tmp_path / "prom", [service.removeprefix("http://")]) as p:
        p.wait_for_samples(ERRORS)
        yield p


def book(service: str, *, fault: str, verify: str, require: str = "") -> str:
    return f"""
apiVersion: paramedic/v1
runbooks:
  - name: tune
    owner: team
    match: {{alertname: Errors}}
    target: app
    mode: auto
{require}
    steps:
      - action: http.request
        with: {{url: "{service}/fault/{fault}", method: POST}}
    verify:
{verify}
"""


def run_once(srv: Server) -> dict[str, Any]:
    with srv.client() as c:
        i = c.post("/api/v1/alerts", json={"name": "Errors"}).json()["alerts"][0]["incident_id"]
        srv.wait(lambda c: c.get(f"/api/v1/incidents/{i}").json()["status"] in ("escalated", "mitigated"), 40)
        return c.get(f"/api/v1/incidents/{i}").json()  # type: ignore[no-any-return]


def trust_of(srv: Server) -> dict[str, Any]:
    with srv.client() as c:
        [rb] = c.get("/api/v1/runbooks").json()["runbooks"]
    return rb  # type: ignore[no-any-return]


def test_not_worse_on_an_absent_series_is_unknown_and_a_failure(
    service: str, prom: Prometheus, make_server: Callable[..., Server]
) -> None:
    verify = f"      prometheus: {{query: '{ABSENT}', compare: not_worse, within: 3s, every: 1s}}"
    srv = make_server(book(service, fault="clear", verify=verify), prometheus_url=prom.url)
    data = run_once(srv)
    run = data["runs"][0]
    assert data["status"] == "escalated"
    assert run["status"] == "failed"
    assert "unknown" in run["reason"]
    assert "absent is never read as 0" in run["reason"]
    rb = trust_of(srv)
    assert (rb["runs"], rb["successes"]) == (1, 0)


def test_required_telemetry_that_returns_no_data_refuses_before_acting(
    service: str, prom: Prometheus, make_server: Callable[..., Server]
) -> None:
    require = f"    require:\n      telemetry: ['{ERRORS}', '{ABSENT}']"
    verify = "      alert_resolved: {within: 1s}"
    srv = make_server(book(service, fault="errors?rate=1.0", require=require, verify=verify), prometheus_url=prom.url)
    data = run_once(srv)
    run = data["runs"][0]
    assert run["status"] == "refused"
    assert run["reason"].startswith("missing_telemetry: data quality: missing telemetry")
    assert ABSENT in run["reason"]
    assert ERRORS not in run["reason"]
    assert run["steps"] == []  # the fault was never injected


def test_required_telemetry_that_returns_data_lets_the_action_run(
    service: str, prom: Prometheus, make_server: Callable[..., Server]
) -> None:
    require = f"    require:\n      telemetry: ['{ERRORS}']"
    verify = "      command: {argv: ['true'], within: 2s}"
    srv = make_server(book(service, fault="clear", require=require, verify=verify), prometheus_url=prom.url)
    data = run_once(srv)
    assert data["runs"][0]["status"] == "succeeded", data["runs"][0]["reason"]
    [verdict] = data["runs"][0]["verdicts"]
    dq = next(v for v in verdict["checks"] if v["check"] == "data_quality")
    assert "1 telemetry queries returned data" in dq["reason"]


@pytest.mark.parametrize(
    ("floor", "status"),
    [
        pytest.param("", "failed", id="no-floor-any-rise-from-0-is-worse"),
        pytest.param(", worse_floor: 1000", "succeeded", id="under-the-floor-is-not-worse"),
    ],
)
def test_a_worse_check_can_set_an_absolute_floor(
    service: str, prom: Prometheus, make_server: Callable[..., Server], floor: str, status: str
) -> None:
    """Baseline 0 errors/s; the action adds a small error rate. Without a floor that is "worse"."""
    prom.wait_until(lambda: prom.value(ERRORS) == 0.0, timeout=30, what="a zero error rate", every=0.3)
    verify = f"      prometheus: {{query: '{ERRORS}', compare: not_worse{floor}, within: 8s, every: 1s}}"
    srv = make_server(book(service, fault="errors?rate=0.3", verify=verify), prometheus_url=prom.url)
    data = run_once(srv)
    run = data["runs"][0]
    assert run["status"] == status, run["reason"]
