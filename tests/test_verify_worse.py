"""'Worse after the action' is a failure: a verification compares a Prometheus metric before and
after the action. Runs against a real Prometheus scraping a real sample service."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server
from tests.prom import Prometheus
from tests.support import free_port, wait_for

pytestmark = pytest.mark.integration
ERRORS = "sum(rate(http_errors_total[3s]))"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "paramedic.lab.sample_service", "--port", str(port), "--name", "app"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up)
    stop = threading.Event()

    def traffic() -> None:  # steady requests, so the error rate means something
        with httpx.Client(timeout=1) as c:
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    c.get(f"{url}/")
                stop.wait(0.02)

    t = threading.Thread(target=traffic, daemon=True)
    t.start()
    yield url
    stop.set()
    t.join(5)
    proc.terminate()
    proc.wait(10)


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
