"""Ownership routing: three teams, three sinks and a default. Each incident is delivered only to the
sinks its route names (Alertmanager's tree: first match wins, ``continue`` goes on, the root's
receiver catches the rest), with its owner and contact in the notification. The sinks are
paramedic's own webhook sink posting to a loopback receiver, so what is checked is what left."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from paramedic.core.config import Config
from paramedic.core.routing import Route, route
from paramedic.store.tables import outbox
from tests.conftest import Server

RUNBOOKS = """
apiVersion: paramedic/v1
runbooks:
  - name: web-down
    owner: team-web
    match: {alertname: WebDown}
    mode: observe
    steps:
      - action: shell.run
        with: {argv: ["true"]}
"""


class Receiver:
    """A loopback HTTP server recording each POSTed JSON body by path."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.hits.append((self.path, json.loads(raw)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def where(self, incident_id: int) -> set[str]:
        with self.lock:
            return {path for path, body in self.hits if body["incident_id"] == incident_id}

    def bodies(self, incident_id: int) -> list[Any]:
        with self.lock:
            return [body for _, body in self.hits if body["incident_id"] == incident_id]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def config(url: str) -> dict[str, Any]:
    return {
        "sinks": [{"type": "webhook", "name": n, "url": f"{url}/{n}"} for n in ("web", "db", "queue", "default")],
        "owners": {
            "team-web": {"contact": "#web-oncall", "services": ["web"]},
            "team-db": {"contact": "db-oncall@example.com", "services": ["db"]},
            "team-queue": {"contact": "+49 30 1234", "services": ["queue"]},
        },
        "route": {
            "receiver": "default",
            "routes": [
                {"matchers": ['owner="team-web"'], "receiver": "web"},
                {"matchers": ['owner="team-db"'], "receiver": "db", "continue": True},
                {"matchers": ['owner=~"team-(db|queue)"', 'severity="critical"'], "receiver": "queue"},
                {"matchers": ["owner=team-queue"], "receiver": "queue"},
            ],
        },
    }


def test_incidents_land_only_where_their_routes_say(make_server: Callable[..., Server], receiver: Receiver) -> None:
    srv = make_server(RUNBOOKS, **config(receiver.url))

    def fire(name: str, **labels: str) -> int:
        with srv.client() as c:
            r = c.post("/api/v1/alerts", json={"name": name, "labels": labels})
        assert r.status_code == 202, r.text
        return int(r.json()["alerts"][0]["incident_id"])

    expected = {
        fire("WebDown", service="checkout", instance="web-1"): {"/web"},  # the runbook's owner
        fire("DbSlow", service="db", severity="warning"): {"/db"},  # the service's owner
        fire("DbDown", service="db", severity="critical"): {"/db", "/queue"},  # continue: true
        fire("QueueStuck", service="queue"): {"/queue"},
        fire("Mystery", service="billing"): {"/default"},  # no owner known
        fire("Forged", service="billing", owner="team-web"): {"/default"},  # an alert cannot name its owner
    }
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(receiver.where(i) != want for i, want in expected.items()):
        time.sleep(0.05)
    assert {i: receiver.where(i) for i in expected} == expected
    # nothing else is queued for any other sink, so nothing else can arrive later
    with srv.pm.db.read() as conn:
        queued: dict[int, set[str]] = {}
        for row in conn.execute(select(outbox.c.incident_id, outbox.c.sink)):
            queued.setdefault(int(row.incident_id), set()).add(f"/{row.sink}")
    assert queued == {i: {*want, "/log"} for i, want in expected.items()}

    web = receiver.bodies(next(iter(expected)))[0]
    assert web["data"]["owner"] == "team-web"
    assert web["data"]["contact"] == "#web-oncall"
    assert "_Owner:_ `team-web` — contact: \\#web-oncall" in web["summary_markdown"]
    mystery = next(i for i, want in expected.items() if want == {"/default"})
    with srv.client() as c:  # assigned to a team, the incident is routed as that team's from now on
        assert c.post(f"/api/v1/incidents/{mystery}/assign", json={"team": "team-db"}).status_code == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "assigned" not in {b["event"] for b in receiver.bodies(mystery)}:
        time.sleep(0.05)
    assert {(b["event"], b["data"]["owner"]) for b in receiver.bodies(mystery)} == {
        ("escalated", ""),
        ("assigned", "team-db"),
    }
    assert receiver.where(mystery) == {"/default", "/db"}
    queue = next(b for i, want in expected.items() if want == {"/queue"} for b in receiver.bodies(i))
    assert queue["data"]["contact"] == "+49 30 1234"


@pytest.mark.parametrize(
    ("labels", "want"),
    [
        pytest.param({"owner": "a"}, ["sa"], id="first-match-wins"),
        pytest.param({"owner": "b", "severity": "page"}, ["sb", "pager"], id="continue"),
        pytest.param({"owner": "b"}, ["sb"], id="continue-without-second-match"),
        pytest.param({"owner": "c"}, ["fallback"], id="default"),
        pytest.param({"owner": "a", "service": "x"}, ["nested"], id="nested-child-first"),
        pytest.param({"owner": "d"}, ["fallback"], id="child-inherits-receiver"),
    ],
)
def test_the_routing_tree_follows_alertmanager(labels: dict[str, str], want: list[str]) -> None:
    tree = Route.model_validate(
        {
            "receiver": "fallback",
            "routes": [
                {
                    "matchers": ['owner="a"'],
                    "receiver": "sa",
                    "routes": [{"matchers": ["service=x"], "receiver": "nested"}],
                },
                {"matchers": ['owner="b"'], "receiver": "sb", "continue": True},
                {"matchers": ['severity="page"'], "receiver": "pager"},
                {"matchers": ['owner="d"']},
            ],
        }
    )
    assert route(tree, labels) == want


def test_a_route_naming_no_sink_is_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="receiver\\(s\\) nowhere name no sink"):
        Config(sinks=[{"type": "webhook", "name": "web", "url": "http://x"}], route={"receiver": "nowhere"})
    with pytest.raises(ValidationError, match="does not compile"):
        Config(route={"receiver": "log", "routes": [{"matchers": ['owner=~"("'], "receiver": "log"}]})
