"""An incident told with real data: a real Prometheus scrapes the lab's sample service, the
service starts failing a share of its requests after a deploy, an alert fires, paramedic collects
the evidence (the failure ratio as a chart, the service's log, the deploy), clears the fault,
and the notifications carry a summary and a chart an on-call engineer can act on.

Slack and a signed webhook are local fakes that record what they receive; the "Slack" fake then
fetches the chart from the URL in the image block without any token, as Slack's servers do.
Run with ``PARAMEDIC_UPDATE_SCREENSHOTS=1`` to refresh ``docs/screenshots/incident-chart.png``.
"""

from __future__ import annotations

import os
import shutil
import struct
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from paramedic.api.auth import sha256_hex
from paramedic.core.config import Auth, Token, WebhookAuth
from paramedic.notify.slack import SlackSink
from tests.conftest import Server
from tests.support import wait_for
from tests.support.services import Prometheus, SampleService
from tests.test_notify_sinks import FakeProvider

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "screenshots" / "incident-chart.png"
TOKEN = "pmd_test_admin_token"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[SampleService]:
    with SampleService(tmp_path).started(traffic=True) as s:
        yield s


@pytest.fixture
def prometheus(tmp_path: Path, service: SampleService) -> Iterator[Prometheus]:
    with Prometheus(tmp_path / "prom", [f"127.0.0.1:{service.port}"], job="web", labels={"service": "web"}) as p:
        yield p


@pytest.fixture
def receivers() -> Iterator[tuple[FakeProvider, FakeProvider]]:
    slack, hook = FakeProvider(), FakeProvider()
    yield slack, hook
    slack.close()
    hook.close()


RUNBOOK = """
apiVersion: paramedic/v1
runbooks:
  - name: clear-injected-errors
    owner: team-web
    description: The service answers a share of its requests with 5xx; clear the fault.
    match: {alertname: HighErrorRatio, labels: {service: web}}
    mode: auto
    enrich:
      - prometheus:
          title: "Share of requests answered 5xx on {{ labels.instance }}"
          query: >-
            sum(rate(http_errors_total{instance="{{ labels.instance }}"}[5s]))
            / sum(rate(http_requests_total{instance="{{ labels.instance }}", path="/"}[5s]))
          range: 75s
      - logs: {file: "LOGFILE", lines: 50}
    steps:
      - action: http.request
        with: {method: POST, url: "http://{{ labels.instance }}/fault/clear", expect_status: 200}
    verify:
      http: {url: "http://{{ labels.instance }}/healthz", expect_status: 200, within: 10s, every: 0.5s}
"""


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def test_an_incident_with_real_prometheus_gets_a_summary_and_a_chart_to_act_on(
    make_server: Callable[..., Server],
    service: SampleService,
    prometheus: Prometheus,
    receivers: tuple[FakeProvider, FakeProvider],
    tmp_path: Path,
) -> None:
    slack, hook = receivers
    auth = Auth(tokens=[Token(name="ci", role="admin", sha256=sha256_hex(TOKEN))], webhook=WebhookAuth())
    srv = make_server(
        RUNBOOK.replace("LOGFILE", str(service.log_path)),
        auth=auth,
        sinks=[
            {"type": "slack", "webhook_url": f"{slack.url}/services/T/B/X", "public_url": "http://placeholder.invalid"},
            {"type": "webhook", "name": "hook", "url": f"{hook.url}/hook"},
        ],
        enrich_defaults=[{"settings": {"prometheus_url": prometheus.url, "budget": "10s", "timeout": "8s"}}],
    )
    # the Slack sink needs paramedic's public URL, known only once the server has its port
    assert srv.pm.notifier is not None
    old = srv.pm.notifier.sinks["slack"]
    assert isinstance(old, SlackSink)
    srv.pm.notifier.sinks["slack"] = SlackSink(
        old.cfg.model_copy(update={"public_url": srv.url}),
        webhook_url=f"{slack.url}/services/T/B/X",
        client=srv.pm.http,
    )

    headers = {"Authorization": f"Bearer {TOKEN}"}
    wait_for(lambda: (prometheus.value(f'up{{instance="127.0.0.1:{service.port}"}}') or 0) == 1, timeout=20)
    time.sleep(20)  # a healthy baseline on the chart
    with srv.client(headers=headers) as c:
        r = c.post(
            "/api/v1/changes",
            json={"service": "web", "version": "2.3.1", "kind": "deploy", "actor": "ci", "description": "retry tweak"},
        )
        assert r.status_code == 201, r.text
        time.sleep(2)
        assert httpx.post(f"{service.url}/fault/errors?rate=0.6", timeout=5).status_code == 200  # the bad deploy
        began = datetime.now(UTC)
        ratio = f'sum(rate(http_errors_total{{instance="127.0.0.1:{service.port}"}}[5s]))'
        wait_for(lambda: (prometheus.value(ratio) or 0) > 5, timeout=20, every=0.5)
        time.sleep(15)  # the alert rule's "for: 10s"
        alert = {
            "name": "HighErrorRatio",
            "labels": {"service": "web", "instance": f"127.0.0.1:{service.port}", "severity": "critical"},
            "annotations": {"summary": "More than 20% of requests fail"},
            "starts_at": (began + timedelta(seconds=5)).isoformat(),
        }
        r = c.post("/api/v1/alerts", json=alert)
        assert r.status_code == 202, r.text
        incident_id = r.json()["alerts"][0]["incident_id"]
        srv.wait(lambda cl: cl.get(f"/api/v1/incidents/{incident_id}", headers=headers).json()["status"] == "mitigated")
        wait_for(lambda: any(h.json["event"] == "mitigated" for h in hook.requests), timeout=20)
        time.sleep(15)  # the recovery, on the chart
        r = c.post("/api/v1/alerts", json={**alert, "status": "resolved", "ends_at": datetime.now(UTC).isoformat()})
        assert r.json()["alerts"][0]["delivery"] == "resolved"
        wait_for(lambda: any(h.json["event"] == "resolved" for h in hook.requests), timeout=30)
        wait_for(lambda: any(s.json["text"].startswith("Resolved") for s in slack.requests), timeout=30)
        detail = c.get(f"/api/v1/incidents/{incident_id}").json()

    # what the on-call engineer reads: one summary, the same in every sink
    resolved = next(h.json for h in hook.requests if h.json["event"] == "resolved")
    md = resolved["summary_markdown"]
    assert md.startswith(f"**Resolved** — incident #{incident_id}: `HighErrorRatio`")
    assert "severity **critical**" in md
    assert "> More than 20% of requests fail" in md
    assert f"**Share of requests answered 5xx on 127.0.0.1:{service.port}**: now **0**, peak 0." in md
    assert "when the alert fired. (chart attached)" in md
    assert "1 line, none look like errors; last: `sample_service web-1 started pid=" in md
    assert "**deploy of web `2.3.1` by ci," in md
    assert "before the alert fired**" in md
    assert "Runbook `clear-injected-errors` (auto): **succeeded**" in md
    assert (
        f"1. `http.request` `expect_status=200` `method=POST` `url=http://127.0.0.1:{service.port}/fault/clear`" in md
    )
    assert "Guardrails: allowed" in md
    assert "Status **resolved** · handled by automation" in md
    assert "MTTR **" in md
    print("\n" + md)

    # the chart: fetched like Slack does, without a token, from the URL in the image block
    message = next(s.json for s in slack.requests if s.json["text"].startswith("Resolved"))
    image_url = next(b["image_url"] for b in message["blocks"] if b["type"] == "image")
    assert image_url.startswith(f"{srv.url}/api/v1/incidents/{incident_id}/evidence/")
    assert "sig=" in image_url
    png = httpx.get(image_url, timeout=5)
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert httpx.get(image_url.split("?")[0], timeout=5).status_code == 401  # no signature, no token
    assert httpx.get(image_url[:-4] + "0000", timeout=5).status_code == 401
    assert _png_size(png.content) == (1000, 420)
    (tmp_path / "incident-chart.png").write_bytes(png.content)
    if os.environ.get("PARAMEDIC_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "incident-chart.png", SCREENSHOT)

    # the data behind it: the failure ratio rose after the deploy and fell after the action
    metrics = next(e for e in detail["evidence"] if e["kind"] == "metrics")
    assert metrics["status"] == "ok"
    assert metrics["has_image"]
    assert {e["kind"]: e["status"] for e in detail["evidence"]} == {
        "metrics": "ok",
        "logs": "ok",
        "changes": "ok",
    }
    _assert_rise_and_fall(metrics["data"])


def _assert_rise_and_fall(data: dict[str, Any]) -> None:
    (series,) = data["series"]
    values = [v for _, v in series["points"] if v is not None and v == v]
    peak = max(values)
    assert 0.4 < peak < 0.8  # 60% of requests failed
    assert values[-1] < 0.05
    assert values[0] < 0.05
