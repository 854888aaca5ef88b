"""Who may do what: the roles (a sender posts, a viewer reads, neither does the other's job)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from click.testing import CliRunner

from paramedic.api.auth import sha256_hex
from paramedic.cli.app import main
from paramedic.core.config import Token
from tests.conftest import Server
from tests.test_ui_support import ADMIN, RESPONDER, VIEWER, auth, csrf_of

SENDER_TOKEN = "sender-token"
SENDER = {"Authorization": f"Bearer {SENDER_TOKEN}"}
ALERT = {"name": "DiskFull", "labels": {"instance": "db-1", "service": "db"}}
AM_BODY = {
    "version": "4",
    "groupKey": '{}:{alertname="DiskFull"}',
    "status": "firing",
    "receiver": "paramedic",
    "groupLabels": {"alertname": "DiskFull"},
    "commonLabels": {"alertname": "DiskFull"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "DiskFull", "instance": "db-1"},
            "annotations": {},
            "startsAt": "2026-03-01T03:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": "c0ffee00c0ffee00",
        }
    ],
}
CHANGE = {"service": "db", "version": "v2", "kind": "deploy"}


@pytest.fixture
def srv(make_server: Callable[..., Server]) -> Server:
    sender = Token(name="alertmanager", role="sender", sha256=sha256_hex(SENDER_TOKEN))
    return make_server(auth=auth(extra=(sender,)))


def stored(srv: Server) -> tuple[int, int]:
    """How many incidents and changes the server holds."""
    with srv.client(headers=ADMIN) as c:
        return len(c.get("/api/v1/incidents").json()["incidents"]), len(c.get("/api/v1/changes").json()["changes"])


POSTS = [
    pytest.param("/api/v1/alerts", ALERT, id="generic"),
    pytest.param("/api/v1/alerts/alertmanager", AM_BODY, id="alertmanager"),
    pytest.param("/api/v1/changes", CHANGE, id="changes"),
]


@pytest.mark.parametrize("headers", [pytest.param(VIEWER, id="viewer"), pytest.param(RESPONDER, id="responder")])
@pytest.mark.parametrize(("path", "body"), POSTS)
def test_a_viewer_or_responder_token_cannot_post_alerts_or_changes(
    srv: Server, headers: dict[str, str], path: str, body: object
) -> None:
    """A posted alert runs ``auto`` runbooks and a posted change steers rollbacks: only senders post."""
    with srv.client(headers=headers) as c:
        r = c.post(path, json=body)
    assert r.status_code == 403
    assert "sender" in r.text
    assert stored(srv) == (0, 0)


@pytest.mark.parametrize(("path", "body"), POSTS)
def test_a_sender_token_posts_alerts_and_changes(srv: Server, path: str, body: object) -> None:
    with srv.client(headers=SENDER) as c:
        r = c.post(path, json=body)
    assert r.status_code in (201, 202), r.text
    assert sum(stored(srv)) == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/api/v1/incidents", id="incidents"),
        pytest.param("GET", "/api/v1/changes", id="changes"),
        pytest.param("GET", "/metrics", id="metrics"),
        pytest.param("GET", "/api/v1/audit", id="audit"),
        pytest.param("POST", "/api/v1/automation/pause", id="pause"),
        pytest.param("POST", "/api/v1/incidents/1/approve", id="approve"),
    ],
)
def test_a_sender_token_does_nothing_else(srv: Server, method: str, path: str) -> None:
    with srv.client(headers=SENDER) as c:
        r = c.request(method, path, json={} if method == "POST" else None)
    assert r.status_code == 403
    with srv.client(headers=ADMIN) as c:
        assert c.get("/api/v1/automation").json() == {"paused": False}


def test_a_sender_token_cannot_sign_in_to_the_ui(srv: Server) -> None:
    with srv.client(headers={"Origin": srv.url}) as c:
        page = c.get("/login")
        r = c.post("/login", data={"token": SENDER_TOKEN, "csrf_token": csrf_of(page.text), "next": "/"})
        assert r.status_code == 403
        assert "cannot sign in" in r.text
        assert c.get("/", follow_redirects=False).status_code == 303  # still to /login


def test_admin_may_still_post_and_viewer_still_reads(srv: Server) -> None:
    with srv.client(headers=ADMIN) as c:
        assert c.post("/api/v1/alerts", json=ALERT).status_code == 202
    with srv.client(headers=VIEWER) as c:
        assert len(c.get("/api/v1/incidents").json()["incidents"]) == 1


def test_token_create_offers_the_sender_role() -> None:
    result = CliRunner().invoke(main, ["token", "create", "alertmanager", "--role", "sender"])
    assert result.exit_code == 0, result.output
    entry = result.output.strip().splitlines()[-1]
    assert re.fullmatch(r'- \{name: alertmanager, role: sender, sha256: "[0-9a-f]{64}"\}', entry.strip())
