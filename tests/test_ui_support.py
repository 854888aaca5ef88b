"""Helpers shared by the web UI tests (no tests here): tokens and roles, runbooks, signing in, forms."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from paramedic.api.auth import sha256_hex
from paramedic.core.config import Auth, Token, WebhookAuth
from tests.conftest import Server

TOKENS = {"viewer": "viewer-token", "responder": "responder-token", "admin": "admin-token"}
NAMES = {"viewer": "vera", "responder": "rita", "admin": "adam"}
ADMIN = {"Authorization": f"Bearer {TOKENS['admin']}"}
VIEWER = {"Authorization": f"Bearer {TOKENS['viewer']}"}
RESPONDER = {"Authorization": f"Bearer {TOKENS['responder']}"}


def auth(*, webhook: WebhookAuth | None = None, extra: tuple[Token, ...] = ()) -> Auth:
    tokens = [Token(name=NAMES[r], role=r, sha256=sha256_hex(t)) for r, t in TOKENS.items()]  # type: ignore[arg-type]
    return Auth(tokens=[*tokens, *extra], webhook=webhook)


def approve_runbook(tmp: Path, *, approvers: int = 1, name: str = "fix", alertname: str = "Broken") -> str:
    """A runbook in mode approve whose step touches a file and whose verification checks it."""
    marker = tmp / f"{name}-fixed"
    return f"""
  - name: {name}
    owner: team-web
    description: Touch a marker file, then check it exists.
    match: {{alertname: {alertname}}}
    target: "{{{{ labels.instance }}}}"
    mode: approve
    approvers: {approvers}
    guardrails:
      circuit_breaker: {{failures: 2, window: 30m, cooldown: 1h, scope: [service]}}
    steps:
      - action: shell.run
        with: {{argv: ["touch", "{marker}"]}}
    verify:
      command: {{argv: ["test", "-f", "{marker}"], within: 5s, every: 0.1s}}
"""


def runbooks(*bodies: str) -> str:
    return "apiVersion: paramedic/v1\nrunbooks:\n" + "".join(bodies)


def fire(srv: Server, name: str = "Broken", **fields: object) -> int:
    body = {"name": name, "labels": {"instance": "web-1:8080", "service": "web"}, **fields}
    with srv.client(headers=ADMIN) as c:
        r = c.post("/api/v1/alerts", json=body)
    assert r.status_code == 202, r.text
    return int(r.json()["alerts"][0]["incident_id"])


def incident(srv: Server, incident_id: int) -> dict[str, object]:
    with srv.client(headers=ADMIN) as c:
        data: dict[str, object] = c.get(f"/api/v1/incidents/{incident_id}").json()
    return data


def paused(srv: Server) -> bool:
    with srv.client(headers=ADMIN) as c:
        return bool(c.get("/api/v1/automation").json()["paused"])


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = _CSRF.search(html)
    assert m, "the page has no form with a CSRF token"
    return m.group(1)


@contextmanager
def sign_in(srv: Server, role: str) -> Iterator[httpx.Client]:
    """A client holding a UI session (and CSRF cookie) for ``role``, like a browser after login."""
    with srv.client(headers={"Origin": srv.url}) as c:
        page = c.get("/login")
        assert page.status_code == 200
        r = c.post("/login", data={"token": TOKENS[role], "csrf_token": csrf_of(page.text), "next": "/"})
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/", r.text
        yield c
