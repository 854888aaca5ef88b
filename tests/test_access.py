"""Who may do what: the roles (a sender posts, a viewer reads, neither does the other's job)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from paramedic.api.auth import sha256_hex
from paramedic.api.session import SESSION_COOKIE
from paramedic.cli.app import main
from paramedic.core.config import Token
from tests.conftest import Server
from tests.test_ui_support import (
    ADMIN,
    RESPONDER,
    VIEWER,
    approve_runbook,
    auth,
    csrf_of,
    fire,
    incident,
    paused,
    runbooks,
    sign_in,
)

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


# ---- open mode is local only, also for browsers -------------------------------------------------
EVIL = "http://evil.example"


def open_server(make_server: Callable[..., Server], tmp_path: Path) -> tuple[Server, int]:
    """An open-mode server (no auth, loopback) with one incident waiting for approval."""
    srv = make_server(runbooks(approve_runbook(tmp_path)))
    incident_id = fire(srv)
    srv.wait(lambda c: c.get(f"/api/v1/incidents/{incident_id}").json()["status"] == "awaiting_approval")
    return srv, incident_id


def awaiting(srv: Server, incident_id: int) -> bool:
    return incident(srv, incident_id)["status"] == "awaiting_approval"


# what a page on another site can send without a CORS preflight (fetch mode no-cors, or a <form>)
CROSS_SITE = [
    pytest.param({"Content-Type": "text/plain", "Origin": EVIL}, id="text-plain-from-another-origin"),
    pytest.param({"Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site"}, id="text-plain-cross-site"),
    pytest.param({"Content-Type": "text/plain"}, id="text-plain-no-origin"),
    pytest.param({"Content-Type": "application/x-www-form-urlencoded"}, id="form-encoded"),
    pytest.param({"Content-Type": "application/json", "Origin": EVIL}, id="json-from-another-origin"),
    pytest.param({"Content-Type": "application/json", "Origin": "null"}, id="json-from-an-opaque-origin"),
    pytest.param({"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, id="json-cross-site"),
    pytest.param({}, id="no-content-type"),
]


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_in_open_mode_a_cross_site_page_cannot_pause_approve_or_post(
    make_server: Callable[..., Server], tmp_path: Path, headers: dict[str, str]
) -> None:
    """Before: a cross-site ``text/plain`` POST ran a runbook, paused automation and approved."""
    srv, incident_id = open_server(make_server, tmp_path)
    with srv.client(headers=headers) as c:
        assert c.post("/api/v1/automation/pause", content=b"{}").status_code in (403, 415)
        assert c.post(f"/api/v1/incidents/{incident_id}/approve", content=b"{}").status_code in (403, 415)
        body = json.dumps({"name": "Broken", "labels": {"instance": "web-2:8080", "service": "web"}}).encode()
        assert c.post("/api/v1/alerts", content=body).status_code in (403, 415)
    assert not paused(srv)
    assert awaiting(srv, incident_id)
    with srv.client() as c:
        assert len(c.get("/api/v1/incidents").json()["incidents"]) == 1


def test_in_open_mode_json_from_this_host_or_a_tool_still_works(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    srv, _ = open_server(make_server, tmp_path)
    with srv.client(headers={"Origin": srv.url, "Sec-Fetch-Site": "same-origin"}) as c:
        assert c.post("/api/v1/automation/pause", json={}).status_code == 200
    assert paused(srv)
    with srv.client() as c:  # curl, the CLI, Alertmanager: no Origin, JSON
        assert c.post("/api/v1/automation/resume", json={}).status_code == 200
        r = c.post("/api/v1/alerts", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 422
    assert not paused(srv)


def test_with_auth_a_foreign_origin_is_refused_even_with_a_token(srv: Server) -> None:
    with srv.client(headers={**ADMIN, "Origin": EVIL}) as c:
        r = c.post("/api/v1/automation/pause", json={})
    assert r.status_code == 403
    assert "another site" in r.json()["error"]
    with srv.client(headers=ADMIN) as c:
        assert c.get("/api/v1/automation").json() == {"paused": False}


def test_the_cli_sends_json_so_resume_works(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    runner = CliRunner()
    assert runner.invoke(main, ["pause", "--url", srv.url, "--reason", "test"]).exit_code == 0
    result = runner.invoke(main, ["resume", "--url", srv.url])
    assert result.exit_code == 0, result.output
    assert not paused(srv)


# ---- logout ends the session on the server -------------------------------------------------------
SESSION_ENV = "PARAMEDIC_TEST_SESSION_SECRET"


def test_a_logout_ends_the_session_on_the_server_also_after_a_restart(
    make_server: Callable[..., Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the cookie still worked after logout (a copy in another tab, or a stolen one)."""
    monkeypatch.setenv(SESSION_ENV, "s" * 40)
    config = auth().model_copy(update={"session_secret_env": SESSION_ENV})
    srv = make_server(auth=config)
    with sign_in(srv, "responder") as browser:
        cookie = browser.cookies.get(SESSION_COOKIE)
        assert cookie
        with srv.client(cookies={SESSION_COOKIE: cookie}) as copy:
            assert copy.get("/", follow_redirects=False).status_code == 200  # the copy works while signed in
        page = browser.get("/")
        assert browser.post("/logout", data={"csrf_token": csrf_of(page.text)}).status_code == 303
    with srv.client(cookies={SESSION_COOKIE: cookie}) as copy:
        assert copy.get("/", follow_redirects=False).status_code == 303  # to /login
        assert copy.get("/api/v1/incidents").status_code == 401
    srv.__exit__(None, None, None)
    again = make_server(auth=config)  # the same database, a new process: the logout still holds
    with again.client(cookies={SESSION_COOKIE: cookie}) as copy:
        assert copy.get("/", follow_redirects=False).status_code == 303
    with sign_in(again, "responder") as fresh:  # a new sign-in works
        assert fresh.get("/", follow_redirects=False).status_code == 200
