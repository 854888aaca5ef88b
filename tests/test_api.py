"""The HTTP API as a client meets it: status codes, nothing half-written, auth, OpenAPI."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from paramedic.api.auth import sha256_hex
from paramedic.core.config import Auth, Token, WebhookAuth
from tests.conftest import Server
from tests.support import FIXTURES

AM = json.loads((FIXTURES / "alertmanager-0.25-firing.json").read_text())


def incidents(c: httpx.Client) -> list[dict[str, object]]:
    return c.get("/api/v1/incidents").json()["incidents"]  # type: ignore[no-any-return]


def test_alertmanager_webhook_is_stored_then_202(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    with srv.client() as c:
        r = c.post("/api/v1/alerts/alertmanager", json=AM)
        assert r.status_code == 202
        assert [a["delivery"] for a in r.json()["alerts"]] == ["created", "created"]
        assert len(incidents(c)) == 2
        assert {i["status"] for i in incidents(c)} == {"escalated"}  # no runbook matches: a human looks


def test_unreadable_body_is_422_naming_the_field_and_stores_nothing(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    with srv.client() as c:
        r = c.post("/api/v1/alerts", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 422
        assert r.json()["field"] == "body"
        r = c.post("/api/v1/alerts/alertmanager", json={**AM, "alerts": "not a list"})
        assert r.status_code == 422
        assert r.json()["field"] == "alerts"
        assert incidents(c) == []


def test_body_over_the_limit_is_413(make_server: Callable[..., Server]) -> None:
    srv = make_server(max_body_bytes=1024 * 1024)
    big = {"name": "Big", "annotations": {"blob": "x" * (1024 * 1024)}}
    with srv.client() as c:
        assert c.post("/api/v1/alerts", json=big).status_code == 413
        assert incidents(c) == []


def test_auth_roles_and_webhook_bearer(make_server: Callable[..., Server]) -> None:
    auth = Auth(
        tokens=[
            Token(name="v", role="viewer", sha256=sha256_hex("viewer-token")),
            Token(name="a", role="admin", sha256=sha256_hex("admin-token")),
        ],
        webhook=WebhookAuth(bearer_sha256=sha256_hex("hook-secret")),
    )
    srv = make_server(auth=auth)
    with srv.client() as c:
        assert c.get("/api/v1/incidents").status_code == 401
        assert c.post("/api/v1/alerts", json={"name": "A"}).status_code == 401
        assert (
            c.post("/api/v1/alerts", json={"name": "A"}, headers={"Authorization": "Bearer wrong"}).status_code == 401
        )
        ok = c.post("/api/v1/alerts", json={"name": "A"}, headers={"Authorization": "Bearer hook-secret"})
        assert ok.status_code == 202
        viewer = {"Authorization": "Bearer viewer-token"}
        assert c.get("/api/v1/incidents", headers=viewer).status_code == 200
        assert c.post("/api/v1/automation/pause", headers=viewer, json={}).status_code == 403
        admin = {"Authorization": "Bearer admin-token"}
        assert c.post("/api/v1/automation/pause", headers=admin, json={}).status_code == 200
        assert c.get("/api/v1/automation", headers=admin).json() == {"paused": True}
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200


def test_openapi_and_metrics(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    with srv.client() as c:
        spec = c.get("/openapi.json").json()
        for path in (
            "/api/v1/alerts/alertmanager",
            "/api/v1/alerts",
            "/api/v1/incidents/{incident_id}/approve",
            "/api/v1/automation/pause",
            "/api/v1/runbooks",
            "/api/v1/audit",
        ):
            assert path in spec["paths"]
        before = created_count(c.get("/metrics").text)
        c.post("/api/v1/alerts", json={"name": "A"})
        assert created_count(c.get("/metrics").text) == before + 1


def created_count(text: str) -> float:
    prefix = 'paramedic_alerts_total{delivery="created",source="generic"} '
    lines = [ln for ln in text.splitlines() if ln.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0.0
