"""Silence while fixing, against the real Alertmanager (Debian package).

Alertmanager routes each alert to paramedic at once and to a human receiver after a few seconds
(``group_wait``). While paramedic's remediation is in flight, the alert is silenced through the API
v2, so the human receiver gets nothing; when the run ends the silence is expired. The action is an
``http.request`` to a loopback receiver that holds the request until the test lets it go, so the
run stays in flight for as long as the test needs.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from paramedic.core.config import Silences
from paramedic.engine.silences import silence_body
from paramedic.store.rows import IncidentRow, RunRow
from tests.conftest import Server
from tests.support import free_port, wait_for
from tests.support.services import Alertmanager

HUMAN_WAIT = 5.0  # the human route's group_wait: paramedic must have silenced the alert by then


class Receiver:
    """Records every POST; ``/action`` requests are held until ``release`` is set."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, Any]] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.hits.append((self.path, json.loads(raw) if raw else None))
                if self.path == "/action":
                    receiver.release.wait(60)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def paths(self, path: str) -> list[Any]:
        return [b for p, b in list(self.hits) if p == path]

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def alertmanager(workdir: Path, *, port: int, paramedic: str, human: str) -> Alertmanager:
    """A real Alertmanager: paramedic's route first (``continue``), then the human's."""
    config = {
        "route": {
            "receiver": "human",
            "group_by": ["alertname", "instance"],
            "group_wait": f"{HUMAN_WAIT:g}s",
            "group_interval": "1s",
            "repeat_interval": "1h",
            "routes": [
                {"receiver": "paramedic", "group_wait": "0s", "continue": True},
                {"receiver": "human"},
            ],
        },
        "receivers": [
            {"name": "paramedic", "webhook_configs": [{"url": paramedic, "send_resolved": True}]},
            {"name": "human", "webhook_configs": [{"url": human, "send_resolved": True}]},
        ],
    }
    am = Alertmanager(workdir, [], config=config, port=port)
    return am.start(am.ready)


def runbook(alertname: str, action_url: str) -> str:
    return f"""
apiVersion: paramedic/v1
runbooks:
  - name: poke
    owner: team-web
    match: {{alertname: {alertname}}}
    target: "{{{{ labels.instance }}}}"
    mode: auto
    steps:
      - action: http.request
        with: {{url: {action_url}, method: POST, json: {{instance: "{{{{ labels.instance }}}}"}}, expect_status: 200}}
        timeout: 60s
"""


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@pytest.mark.integration
def test_an_alert_paramedic_is_fixing_is_silenced_until_the_run_ends_and_no_human_is_paged(
    tmp_path: Path, make_server: Callable[..., Server], receiver: Receiver
) -> None:
    alertname = f"Hung{uuid.uuid4().hex[:8]}"
    # The silence's Alertmanager is known only once it runs; paramedic's URL only once it serves.
    am_port = free_port()
    srv = make_server(
        runbook(alertname, f"{receiver.url}/action"),
        silences=Silences(alertmanager_url=f"http://127.0.0.1:{am_port}", link="https://paramedic.example.com"),
    )
    am = alertmanager(
        tmp_path / "am", port=am_port, paramedic=f"{srv.url}/api/v1/alerts/alertmanager", human=f"{receiver.url}/human"
    )
    try:
        started = datetime.now(UTC)
        alert = {"labels": {"alertname": alertname, "instance": "web-3", "service": "web"}, "startsAt": iso(started)}
        assert httpx.post(f"{am.url}/api/v2/alerts", json=[alert], timeout=5).status_code == 200

        wait_for(lambda: len(receiver.paths("/action")) == 1, timeout=30)  # the step is in flight
        (silence,) = [s for s in am.silences() if s["status"]["state"] == "active"]
        assert silence["createdBy"] == "paramedic"
        assert "incident #" in silence["comment"]
        assert "https://paramedic.example.com/incidents/" in silence["comment"]
        assert {(m["name"], m["value"], m["isRegex"]) for m in silence["matchers"]} == {
            ("alertname", alertname, False),
            ("instance", "web-3", False),
            ("service", "web", False),
        }

        def suppressed() -> bool:
            alerts = httpx.get(f"{am.url}/api/v2/alerts", timeout=5).json()
            return any(
                a["status"]["state"] == "suppressed" and silence["id"] in a["status"]["silencedBy"] for a in alerts
            )

        wait_for(suppressed, timeout=10)
        # Hold the action past the human route's group_wait: Alertmanager flushes that group now.
        held_until = time.monotonic() + HUMAN_WAIT + 2
        wait_for(lambda: time.monotonic() > held_until, timeout=HUMAN_WAIT + 5, every=0.2)
        assert receiver.paths("/human") == [], "a human was paged for what paramedic was fixing"

        # The fix works: the alert resolves, then the action returns and the run ends.
        resolved = {**alert, "endsAt": iso(datetime.now(UTC) - timedelta(seconds=1))}
        assert httpx.post(f"{am.url}/api/v2/alerts", json=[resolved], timeout=5).status_code == 200
        receiver.release.set()

        def expired() -> bool:
            r = httpx.get(f"{am.url}/api/v2/silence/{silence['id']}", timeout=5).json()
            return bool(r["status"]["state"] == "expired")

        wait_for(expired, timeout=30)
        with srv.client() as c:
            incidents = c.get("/api/v1/incidents").json()["incidents"]
            (inc,) = [i for i in incidents if i["alertname"] == alertname]
            kinds = [e["kind"] for e in c.get(f"/api/v1/incidents/{inc['id']}").json()["timeline"]]
        assert kinds.index("silence.created") < kinds.index("step.started")
        assert "silence.expired" in kinds
        assert receiver.paths("/human") == []
    finally:
        am.stop()


# ---- the request body, as Alertmanager's API v2 documents ``postableSilence`` --------------------
def test_the_silence_matches_exactly_this_alert_and_expires_by_itself() -> None:
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    inc = IncidentRow(
        id=7, source="alertmanager", fingerprint="f", starts_at=now, group_key="", alertname="Hung",
        service="web", severity="page", labels={"alertname": "Hung", "instance": 'web-1"} or {x="y'},
        annotations={}, status="remediating", runbooks=["restart"], handled_by="", deliveries=1,
        first_seen_at=now, last_seen_at=now, acknowledged_at=None, mitigated_at=None, escalated_at=None,
        resolved_at=None, ends_at=None, generator_url="",
    )  # fmt: skip
    run = RunRow(
        id=3, incident_id=7, runbook="restart", mode="auto", status="running", plan={}, plan_digest="",
        target="web-1", service="web", current_step=0, phase="steps", attempts=1, lease_owner=None,
        lease_until=None, reason="", created_at=now, updated_at=now, approval_expires_at=None, finished_at=None,
    )  # fmt: skip
    body = silence_body(inc, run, now=now, ends=now + timedelta(minutes=30), link="")
    assert body["matchers"] == [
        {"name": "alertname", "value": "Hung", "isRegex": False, "isEqual": True},
        {"name": "instance", "value": 'web-1"} or {x="y', "isRegex": False, "isEqual": True},
    ]
    assert (body["startsAt"], body["endsAt"]) == ("2026-12-01T03:00:00Z", "2026-12-01T03:30:00Z")
    assert body["comment"].startswith("paramedic is remediating incident #7 with runbook restart")
