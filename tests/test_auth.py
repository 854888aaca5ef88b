"""Authentication at the edges: webhooks signed with HMAC, and the UI's signed session cookies."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from paramedic.api.session import SESSION_TTL, SessionCodec, session_secret
from paramedic.core.config import Auth, Config, WebhookAuth
from paramedic.core.errors import ConfigError
from paramedic.engine.settings import resolve_secrets
from tests.conftest import Server
from tests.test_ui_support import ADMIN, auth

SECRET_ENV = "PARAMEDIC_TEST_WEBHOOK_SECRET"
BODY = json.dumps({"name": "DiskFull", "labels": {"instance": "db-1", "service": "db"}}).encode()


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def hmac_server(make_server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch) -> Server:
    monkeypatch.setenv(SECRET_ENV, "s3cret-shared-with-alertmanager")
    return make_server(auth=auth(webhook=WebhookAuth(hmac_secret_env=SECRET_ENV)))


def stored(srv: Server) -> tuple[list[object], list[str]]:
    """The incidents and the audit entries on the server (nothing half-written may hide in either)."""
    with srv.client(headers=ADMIN) as c:
        incidents: list[object] = c.get("/api/v1/incidents").json()["incidents"]
        kinds = [str(e["kind"]) for e in c.get("/api/v1/audit").json()["entries"]]
    return incidents, kinds


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Paramedic-Signature": sign(BODY, "wrong secret")}, id="wrong-secret"),
        pytest.param({"X-Paramedic-Signature": sign(BODY + b" ", "s3cret-shared-with-alertmanager")}, id="other-body"),
        pytest.param({"X-Paramedic-Signature": "sha256=" + "0" * 64}, id="zeros"),
        pytest.param({"X-Hub-Signature-256": "garbage"}, id="garbage"),
        pytest.param({}, id="unsigned"),
        pytest.param({"Authorization": "Bearer not-a-token"}, id="bad-bearer"),
    ],
)
def test_webhook_with_a_bad_hmac_signature_is_401_and_stores_nothing(
    hmac_server: Server, headers: dict[str, str]
) -> None:
    with hmac_server.client() as c:
        r = c.post("/api/v1/alerts", content=BODY, headers={"Content-Type": "application/json", **headers})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert "signature" in r.json()["error"]
    assert stored(hmac_server) == ([], [])


def test_webhook_with_a_valid_hmac_signature_is_accepted(hmac_server: Server) -> None:
    with hmac_server.client() as c:
        for header in ("X-Paramedic-Signature", "X-Hub-Signature-256"):
            r = c.post(
                "/api/v1/alerts",
                content=BODY,
                headers={"Content-Type": "application/json", header: sign(BODY, "s3cret-shared-with-alertmanager")},
            )
            assert r.status_code == 202
    incidents, kinds = stored(hmac_server)
    assert len(incidents) == 1
    assert kinds.count("incident.opened") == 1


NOW = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def test_session_cookie_is_signed_and_expires() -> None:
    codec = SessionCodec(b"k" * 32)
    cookie = codec.issue(name="rita", role="responder", token_sha256="ab" * 32, now=NOW)
    session = codec.read(cookie, now=NOW)
    assert session is not None
    assert (session.name, session.role, session.key) == ("rita", "responder", "ab" * 8)
    assert codec.read(cookie, now=NOW + SESSION_TTL + timedelta(seconds=1)) is None
    assert SessionCodec(b"x" * 32).read(cookie, now=NOW) is None  # another process's secret
    body, sig = cookie.split(".")
    assert codec.read(body + "x." + sig, now=NOW) is None
    assert codec.read(None, now=NOW) is None
    assert codec.read("a.b.c", now=NOW) is None


def test_csrf_tokens_bind_cookie_and_session() -> None:
    codec = SessionCodec(b"k" * 32)
    token = codec.csrf_token("browser-a", "sid-1")
    assert codec.csrf_ok(token, "browser-a", "sid-1")
    assert not codec.csrf_ok(token, "browser-b", "sid-1")
    assert not codec.csrf_ok(token, "browser-a", "sid-2")
    assert not codec.csrf_ok("", "", "")


def test_session_secret_from_the_environment() -> None:
    """Read once when the config is loaded (``resolve_secrets``), never again afterwards."""
    config = Config(auth=Auth(session_secret_env="PARAMEDIC_TEST_SESSION_SECRET"))
    with pytest.raises(ConfigError, match="at least 32 characters"):
        session_secret(resolve_secrets(config, env={"PARAMEDIC_TEST_SESSION_SECRET": "short"}))
    config = resolve_secrets(config, env={"PARAMEDIC_TEST_SESSION_SECRET": "r" * 40})
    a, b = SessionCodec(session_secret(config)), SessionCodec(session_secret(config))
    cookie = a.issue(name="n", role="viewer", token_sha256="0" * 64, now=NOW)
    assert b.read(cookie, now=NOW) is not None  # replicas behind one load balancer share sessions
    assert session_secret(Config()) != session_secret(Config())  # random per process otherwise
