"""A real Alertmanager delivering to a real paramedic server: one remediation per alert.

Alertmanager delivers at least once, and here it delivers every notification twice (two webhook
configs in one receiver, like an HA pair whose gossip is down). Whatever arrives, and however
concurrently, the runbook's action must run exactly once per alert (DESIGN §1). The action is an
``http.request`` to a small receiver in this process that counts the requests it gets.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.support import FIXTURES, wait_for
from tests.support.services import Alertmanager

pytestmark = pytest.mark.integration

GROUP_INTERVAL = 2.0


class Receiver:
    """A loopback HTTP server that records every POST: path, JSON body and arrival time."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                with receiver.lock:
                    receiver.hits.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def bodies(self, path: str) -> list[Any]:
        with self.lock:
            return [b for p, b in self.hits if p == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Callable[[list[str]], Alertmanager]]:
    started: list[Alertmanager] = []

    def start(receivers: list[str]) -> Alertmanager:
        am = Alertmanager(tmp_path / f"am{len(started)}", receivers, group_interval=f"{GROUP_INTERVAL:g}s")
        started.append(am)
        return am.start(am.ready)

    yield start
    for am in started:
        am.stop()


def runbook_yaml(alertname: str, action_url: str) -> str:
    return f"""
apiVersion: paramedic/v1
runbooks:
  - name: poke-{alertname.lower()}
    owner: team-web
    match: {{alertname: {alertname}, labels: {{service: web}}}}
    target: "{{{{ labels.instance }}}}"
    mode: auto
    steps:
      - action: http.request
        with:
          url: {action_url}
          method: POST
          json: {{instance: "{{{{ labels.instance }}}}", fingerprint: "{{{{ alert.fingerprint }}}}"}}
          expect_status: 200
"""


def incidents_named(srv: Server, alertname: str) -> list[dict[str, Any]]:
    with srv.client() as c:
        r = c.get("/api/v1/incidents", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return [i for i in r.json()["incidents"] if i["alertname"] == alertname]


def incident_detail(srv: Server, incident_id: int) -> dict[str, Any]:
    with srv.client() as c:
        r = c.get(f"/api/v1/incidents/{incident_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def runs_finished(srv: Server, alertname: str, count: int) -> Callable[[], bool]:
    def check() -> bool:
        found = incidents_named(srv, alertname)
        if len(found) != count:
            return False
        details = [incident_detail(srv, i["id"]) for i in found]
        return all(d["runs"] and all(r["status"] == "succeeded" for r in d["runs"]) for d in details)

    return check


def post_concurrently(url: str, body: bytes, times: int) -> list[int]:
    barrier = threading.Barrier(times)

    def send(_: int) -> int:
        with httpx.Client(timeout=30) as c:
            barrier.wait(10)
            r = c.post(url, content=body, headers={"Content-Type": "application/json"})
            return r.status_code

    with ThreadPoolExecutor(times) as pool:
        return list(pool.map(send, range(times)))


def test_real_alertmanager_runs_the_action_exactly_once(
    make_server: Callable[..., Server],
    database_url: str,
    receiver: Receiver,
    alertmanager: Callable[[list[str]], Alertmanager],
) -> None:
    alertname = f"ItestDown{uuid.uuid4().hex[:8]}"
    srv = make_server(runbook_yaml(alertname, f"{receiver.url}/action"), database=database_url)
    hook = f"{srv.url}/api/v1/alerts/alertmanager"
    # Two webhook configs to paramedic: every notification arrives twice. A third copy goes to the
    # receiver, so the test can replay exactly what Alertmanager sent.
    am = alertmanager([hook, f"{hook}?replica=b", f"{receiver.url}/capture"])

    alert = {
        "labels": {"alertname": alertname, "service": "web", "instance": "127.0.0.1:18081", "severity": "page"},
        "annotations": {"summary": "127.0.0.1:18081 down"},
        "startsAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    for _ in range(3):  # Prometheus re-sends a firing alert on every evaluation
        am.push([alert])
        time.sleep(0.5)

    wait_for(lambda: len(receiver.bodies("/action")) >= 1, timeout=30)
    wait_for(lambda: len(receiver.bodies("/capture")) >= 1, timeout=10)
    wait_for(runs_finished(srv, alertname, 1), timeout=15)
    time.sleep(2 * GROUP_INTERVAL + 1)  # any repeated notification would have arrived by now

    actions = receiver.bodies("/action")
    assert len(actions) == 1, actions
    assert actions[0]["instance"] == "127.0.0.1:18081"
    [incident] = incidents_named(srv, alertname)
    assert incident["deliveries"] >= 2, "Alertmanager's second copy should have been deduplicated"
    detail = incident_detail(srv, incident["id"])
    assert detail["labels"]["instance"] == "127.0.0.1:18081"
    assert [r["status"] for r in detail["runs"]] == ["succeeded"]
    assert [s["status"] for s in detail["runs"][0]["steps"]] == ["succeeded"]
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds.count("run.created") == 1
    assert kinds.count("step.started") == 1

    # Replaying what Alertmanager sent, five times at once, is still the same one incident.
    captured = receiver.bodies("/capture")[0]
    assert captured["version"] == "4"
    statuses = post_concurrently(hook, json.dumps(captured).encode(), 5)
    assert statuses == [202] * 5
    time.sleep(1.0)
    assert len(receiver.bodies("/action")) == 1
    assert len(incidents_named(srv, alertname)) == 1


def adapted_fixture(alertname: str) -> bytes:
    """The recorded Alertmanager 0.25 webhook, with a fresh alertname and start time."""
    body = json.loads((FIXTURES / "alertmanager-0.25-firing.json").read_text())
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    for a in body["alerts"]:
        a["labels"]["alertname"] = alertname
        a["startsAt"] = now
        a["fingerprint"] = uuid.uuid4().hex[:16]
    body["groupLabels"]["alertname"] = alertname
    body["commonLabels"]["alertname"] = alertname
    body["groupKey"] = f'{{}}:{{alertname="{alertname}", service="web"}}'
    return json.dumps(body).encode()


def test_concurrent_duplicate_webhooks_run_each_action_once(
    make_server: Callable[..., Server], database_url: str, receiver: Receiver
) -> None:
    alertname = f"ItestDup{uuid.uuid4().hex[:8]}"
    srv = make_server(runbook_yaml(alertname, f"{receiver.url}/action"), database=database_url)
    body = adapted_fixture(alertname)
    fingerprints = {a["fingerprint"] for a in json.loads(body)["alerts"]}

    statuses = post_concurrently(f"{srv.url}/api/v1/alerts/alertmanager", body, 5)
    assert statuses == [202] * 5

    wait_for(runs_finished(srv, alertname, 2), timeout=20)
    time.sleep(1.0)  # a second run, if one had been created, would have acted by now
    per_instance = Counter(b["instance"] for b in receiver.bodies("/action"))
    assert per_instance == {"127.0.0.1:18081": 1, "127.0.0.1:18082": 1}
    found = incidents_named(srv, alertname)
    assert {i["fingerprint"] for i in found} == fingerprints
    assert sorted(i["deliveries"] for i in found) == [5, 5]
    for i in found:
        detail = incident_detail(srv, i["id"])
        assert len(detail["runs"]) == 1
        assert detail["runs"][0]["status"] == "succeeded"


def test_real_alertmanager_group_with_an_alert_without_alertname(
    make_server: Callable[..., Server], receiver: Receiver, tmp_path: Path
) -> None:
    """One alert without ``alertname`` used to cost its whole group a 422, which Alertmanager logs as
    an unrecoverable error and never retries. Now the good alerts remediate, the bad one is an
    escalated incident of its own, and Alertmanager logs no error."""
    alertname = f"ItestGroup{uuid.uuid4().hex[:8]}"
    srv = make_server(runbook_yaml(alertname, f"{receiver.url}/action"))
    hook = f"{srv.url}/api/v1/alerts/alertmanager"
    config = {
        "route": {
            "receiver": "paramedic",
            "group_wait": "1s",
            "group_interval": "1h",
            "repeat_interval": "1h",
            "group_by": ["service"],  # one group for all three alerts
        },
        "receivers": [
            {
                "name": "paramedic",
                "webhook_configs": [{"url": hook, "send_resolved": True}, {"url": f"{receiver.url}/capture"}],
            }
        ],
    }
    am = Alertmanager(tmp_path / "am-group", [], config=config)
    am.start(am.ready)
    try:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        good = [
            {"labels": {"alertname": alertname, "service": "web", "instance": f"127.0.0.1:1808{n}"}, "startsAt": now}
            for n in (1, 2)
        ]
        nameless = {"labels": {"service": "web", "instance": "127.0.0.1:18083"}, "startsAt": now}
        am.push([*good, nameless])
        wait_for(lambda: len(receiver.bodies("/capture")) >= 1, timeout=30)
        (group,) = receiver.bodies("/capture")
        assert len(group["alerts"]) == 3  # Alertmanager sent the three in one delivery
        wait_for(runs_finished(srv, alertname, 2), timeout=30)
        assert sorted(b["instance"] for b in receiver.bodies("/action")) == ["127.0.0.1:18081", "127.0.0.1:18082"]
        (bad,) = incidents_named(srv, "UnreadableAlert")
        detail = incident_detail(srv, bad["id"])
        assert detail["status"] == "escalated"
        assert detail["runs"] == []
        assert detail["labels"]["instance"] == "127.0.0.1:18083"
        (raw,) = [e for e in detail["evidence"] if e["kind"] == "raw_alert"]
        assert raw["data"]["reason"] == "missing_alertname"
    finally:
        am.stop()
    log = am.log_path.read_text()
    assert "level=error" not in log, log
    assert "Notify for alerts failed" not in log, log
