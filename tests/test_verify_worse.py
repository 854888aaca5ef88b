"""'Worse after the action' is a failure: a verification compares a Prometheus metric before and
after the action. Runs against a real Prometheus scraping a real sample service."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server
from tests.support.services import Prometheus, SampleService

pytestmark = pytest.mark.integration
ERRORS = "sum(rate(http_errors_total[3s]))"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    """The sample service with steady requests, so the error rate means something."""
    with SampleService(tmp_path, name="app").started(traffic=True) as svc:
        yield svc.url


def runbook(service: str, prom: str, fault: str) -> str:
    return f"""
apiVersion: paramedic/v1
runbooks:
  - name: tune
    owner: team
    match: {{alertname: Errors}}
    target: app
    mode: auto
    guardrails:
      circuit_breaker: {{failures: 1, window: 1h, cooldown: 1h}}
    steps:
      - action: http.request
        with: {{url: "{service}/fault/{fault}", method: POST}}
    verify:
      prometheus: {{query: '{ERRORS}', url: "{prom}", compare: not_worse, worse_factor: 1.5, within: 8s, every: 1s}}
"""


def run_once(make_server: Callable[..., Server], text: str) -> dict[str, object]:
    srv = make_server(text)
    with srv.client() as c:
        i = c.post("/api/v1/alerts", json={"name": "Errors"}).json()["alerts"][0]["incident_id"]
        srv.wait(lambda c: c.get(f"/api/v1/incidents/{i}").json()["status"] in ("escalated", "mitigated"), 40)
        return c.get(f"/api/v1/incidents/{i}").json()  # type: ignore[no-any-return]


def test_an_action_that_raises_the_error_rate_fails_and_opens_the_breaker(
    service: str, tmp_path: Path, make_server: Callable[..., Server]
) -> None:
    with Prometheus(tmp_path / "prom", [service.removeprefix("http://")]) as prom:
        prom.wait_for_samples(ERRORS)
        data = run_once(make_server, runbook(service, prom.url, "errors?rate=1.0"))
    run = data["runs"][0]  # type: ignore[index]
    assert run["status"] == "failed"
    assert "worse after the action" in run["reason"]
    kinds = [t["kind"] for t in data["timeline"]]  # type: ignore[union-attr]
    assert "verify.baseline" in kinds
    assert "breaker.opened" in kinds


def test_an_action_that_lowers_the_error_rate_passes(
    service: str, tmp_path: Path, make_server: Callable[..., Server]
) -> None:
    httpx.post(f"{service}/fault/errors?rate=0.8", timeout=2)
    with Prometheus(tmp_path / "prom", [service.removeprefix("http://")]) as prom:
        prom.wait_for_samples(f"{ERRORS} > 1")
        data = run_once(make_server, runbook(service, prom.url, "clear"))
    assert data["runs"][0]["status"] == "succeeded", data["runs"]  # type: ignore[index]
    assert data["status"] == "mitigated"
