"""Webhook authentication as each sender does it: Standard Webhooks (with a replay window remembered
in the database), PagerDuty v1, GitHub-style ``sha256=``, Grafana's header, bearer and Basic; one
secret per source.

No PagerDuty or Grafana server runs here: the tests sign requests exactly as their documentation and
source describe (Standard Webhooks' published test vector; Grafana's ``HMACRoundTripper``, which
signs ``timestamp:body`` in hex; PagerDuty's ``v1=`` hex HMAC of the body, several during a
rotation) and check paramedic's answer at its HTTP boundary.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from paramedic.api.auth import sha256_hex
from paramedic.core.config import Auth, Config, WebhookCredential
from paramedic.core.errors import ConfigError
from paramedic.core.signatures import (
    SignatureRefused,
    sign_grafana,
    sign_standard,
    verify_grafana,
    verify_pagerduty,
    verify_standard,
)
from paramedic.engine.settings import load_config, resolve_secrets
from tests.conftest import Server
from tests.test_ui_support import ADMIN

HERE = Path(__file__).parent / "fixtures"
JSON = {"Content-Type": "application/json"}

# Standard Webhooks' published test vector (spec repository, "sign function works")
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
VECTOR_NOW = datetime.fromtimestamp(VECTOR_TS, tz=UTC)
FIVE_MIN = timedelta(minutes=5)


def vector_headers(**over: str) -> dict[str, str]:
    return {"webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TS), "webhook-signature": VECTOR_SIG} | over


# ---- the signature schemes, pure ----------------------------------------------------------------
def test_standard_webhooks_reference_vector() -> None:
    assert sign_standard(VECTOR_SECRET, msg_id=VECTOR_ID, timestamp=VECTOR_TS, body=VECTOR_BODY) == VECTOR_SIG
    v = verify_standard(vector_headers(), VECTOR_BODY, VECTOR_SECRET, now=VECTOR_NOW, tolerance=FIVE_MIN)
    assert v.replay_key == f"id:{VECTOR_ID}"
    assert v.until == VECTOR_NOW + FIVE_MIN
    rotated = vector_headers(**{"webhook-signature": "v1,bm90IHRoaXMgb25l " + VECTOR_SIG})
    assert verify_standard(rotated, VECTOR_BODY, VECTOR_SECRET, now=VECTOR_NOW, tolerance=FIVE_MIN)


@pytest.mark.parametrize(
    ("headers", "body", "now", "why"),
    [
        pytest.param(vector_headers(), VECTOR_BODY + b" ", VECTOR_NOW, "no webhook-signature", id="tampered-body"),
        pytest.param(
            vector_headers(**{"webhook-id": "msg_other"}),
            VECTOR_BODY,
            VECTOR_NOW,
            "no webhook-signature",
            id="other-id",
        ),
        pytest.param(vector_headers(), VECTOR_BODY, VECTOR_NOW + timedelta(seconds=301), "away", id="too-old"),
        pytest.param(vector_headers(), VECTOR_BODY, VECTOR_NOW - timedelta(seconds=301), "away", id="from-the-future"),
        pytest.param({"webhook-id": VECTOR_ID}, VECTOR_BODY, VECTOR_NOW, "missing", id="missing-headers"),
        pytest.param(
            vector_headers(**{"webhook-signature": VECTOR_SIG.replace("v1,", "v2,")}),
            VECTOR_BODY,
            VECTOR_NOW,
            "no webhook-signature",
            id="unknown-version",
        ),
    ],
)
def test_standard_webhooks_refusals(headers: dict[str, str], body: bytes, now: datetime, why: str) -> None:
    with pytest.raises(SignatureRefused, match=why):
        verify_standard(headers, body, VECTOR_SECRET, now=now, tolerance=FIVE_MIN)


def grafana_reference(secret: str, body: bytes, ts: int | None) -> str:
    """Grafana's HMACRoundTripper: hex HMAC-SHA256 of ``<unix seconds>:<body>``, or of the body."""
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    if ts is not None:
        mac.update(f"{ts}".encode())
        mac.update(b":")
    mac.update(body)
    return mac.hexdigest()


def test_grafana_signature_with_and_without_its_timestamp_header() -> None:
    body, now = b'{"status":"firing"}', datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    ts = int(now.timestamp())
    assert sign_grafana("s", body, timestamp=ts) == grafana_reference("s", body, ts)
    signed = {"x-grafana-alerting-signature": grafana_reference("s", body, ts), "x-grafana-alerting-timestamp": str(ts)}
    v = verify_grafana(
        signed,
        body,
        "s",
        header="X-Grafana-Alerting-Signature",
        timestamp_header="X-Grafana-Alerting-Timestamp",
        now=now,
        tolerance=FIVE_MIN,
    )
    assert v.replay_key is not None
    body_only = {"x-grafana-alerting-signature": grafana_reference("s", body, None)}
    assert verify_grafana(
        body_only, body, "s", header="X-Grafana-Alerting-Signature", timestamp_header=None, now=now, tolerance=FIVE_MIN
    )
    with pytest.raises(SignatureRefused, match="away"):
        verify_grafana(
            signed,
            body,
            "s",
            header="X-Grafana-Alerting-Signature",
            timestamp_header="X-Grafana-Alerting-Timestamp",
            now=now + timedelta(minutes=6),
            tolerance=FIVE_MIN,
        )


def test_pagerduty_signature_accepts_any_of_several() -> None:
    body = b'{"event": {}}'
    good = "v1=" + hmac.new(b"pd", body, hashlib.sha256).hexdigest()
    assert verify_pagerduty({"x-pagerduty-signature": f"v1={'0' * 64},{good}"}, body, "pd")
    with pytest.raises(SignatureRefused):
        verify_pagerduty({"x-pagerduty-signature": good}, body, "other")


# ---- at the HTTP boundary -----------------------------------------------------------------------
STANDARD_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
ALERT = json.dumps({"name": "DiskFull", "labels": {"instance": "db-1", "service": "db"}}).encode()


def standard(body: bytes, *, msg_id: str, ts: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    return JSON | {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_standard(STANDARD_SECRET, msg_id=msg_id, timestamp=ts, body=body),
    }


def deliveries(srv: Server) -> int:
    with srv.client(headers=ADMIN) as c:
        return sum(int(i["deliveries"]) for i in c.get("/api/v1/incidents").json()["incidents"])


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Auth:
    """Each source with its own credentials; two PagerDuty subscriptions with two secrets."""
    monkeypatch.setenv("PM_TEST_STANDARD", STANDARD_SECRET)
    monkeypatch.setenv("PM_TEST_PD_A", "pd-secret-a")
    monkeypatch.setenv("PM_TEST_GRAFANA", "grafana-secret")
    monkeypatch.setenv("PM_TEST_GITHUB", "ci-secret")
    (tmp_path / "pd-b").write_text("pd-secret-b\n")
    from tests.test_ui_support import auth

    base = auth()
    creds = [
        WebhookCredential(source="generic", scheme="standard", secret_env="PM_TEST_STANDARD"),
        WebhookCredential(source="alertmanager", scheme="basic", username="am", sha256=sha256_hex("am-password")),
        WebhookCredential(source="pagerduty", scheme="pagerduty", secret_env="PM_TEST_PD_A"),
        WebhookCredential(source="pagerduty", scheme="pagerduty", secret_file=str(tmp_path / "pd-b")),
        WebhookCredential(
            source="grafana",
            scheme="grafana",
            secret_env="PM_TEST_GRAFANA",
            timestamp_header="X-Grafana-Alerting-Timestamp",
        ),
        WebhookCredential(source="changes", scheme="github", secret_env="PM_TEST_GITHUB"),
    ]
    return base.model_copy(update={"webhooks": creds})


def test_standard_webhooks_replay_is_refused_across_a_restart(
    make_server: Callable[..., Server], secrets: Auth
) -> None:
    srv = make_server(auth=secrets)
    headers = standard(ALERT, msg_id="msg_1")
    with srv.client() as c:
        assert c.post("/api/v1/alerts", content=ALERT, headers=headers).status_code == 202
        replay = c.post("/api/v1/alerts", content=ALERT, headers=headers)
        assert replay.status_code == 200
        assert replay.json()["duplicate"] is True
    assert deliveries(srv) == 1
    srv.__exit__(None, None, None)
    again = make_server(auth=secrets)  # another process (or replica) on the same database
    with again.client() as c:
        assert c.post("/api/v1/alerts", content=ALERT, headers=headers).json().get("duplicate") is True
        assert c.post("/api/v1/alerts", content=ALERT, headers=standard(ALERT, msg_id="msg_2")).status_code == 202
    assert deliveries(again) == 2


def test_standard_webhooks_outside_the_window_or_unsigned_is_401(
    make_server: Callable[..., Server], secrets: Auth
) -> None:
    srv = make_server(auth=secrets)
    with srv.client() as c:
        old = c.post("/api/v1/alerts", content=ALERT, headers=standard(ALERT, msg_id="m", ts=int(time.time()) - 600))
        assert old.status_code == 401
        assert "window" in old.json()["error"]
        assert c.post("/api/v1/alerts", content=ALERT, headers=JSON).status_code == 401
        tampered = standard(ALERT, msg_id="m2")
        assert c.post("/api/v1/alerts", content=ALERT + b" ", headers=tampered).status_code == 401
    assert deliveries(srv) == 0


def test_a_delivery_that_fails_gives_its_id_back_for_the_retry(
    make_server: Callable[..., Server], secrets: Auth
) -> None:
    srv = make_server(auth=secrets)
    bad = b"{not json"  # an unreadable envelope: the one thing answered 4xx
    headers = standard(bad, msg_id="msg_bad")
    with srv.client() as c:
        first = c.post("/api/v1/alerts", content=bad, headers=headers)
        assert first.status_code == 422
        retry = c.post("/api/v1/alerts", content=bad, headers=headers)
        assert retry.status_code == 422  # processed again, not answered "duplicate"


def test_two_pagerduty_subscriptions_each_with_its_own_secret(
    make_server: Callable[..., Server], secrets: Auth
) -> None:
    srv = make_server(auth=secrets)
    raw = (HERE / "pagerduty-incident-triggered.json").read_bytes()

    def signed(secret: bytes) -> dict[str, str]:
        return JSON | {"X-PagerDuty-Signature": "v1=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()}

    with srv.client() as c:
        assert c.post("/api/v1/alerts/pagerduty", content=raw, headers=signed(b"pd-secret-a")).status_code == 202
        assert c.post("/api/v1/alerts/pagerduty", content=raw, headers=signed(b"pd-secret-b")).status_code == 202
        assert c.post("/api/v1/alerts/pagerduty", content=raw, headers=signed(b"pd-secret-c")).status_code == 401
        # one secret per source: PagerDuty's secret does not open another source
        other = JSON | {"X-Hub-Signature-256": "sha256=" + hmac.new(b"pd-secret-a", ALERT, hashlib.sha256).hexdigest()}
        assert c.post("/api/v1/changes", content=ALERT, headers=other).status_code == 401


def test_grafana_signed_put_is_accepted_once(make_server: Callable[..., Server], secrets: Auth) -> None:
    """Grafana's contact point set to PUT, with HMAC and a timestamp header (was 405, then 401)."""
    srv = make_server(auth=secrets)
    raw = (HERE / "grafana-firing.json").read_bytes()
    ts = int(time.time())
    headers = JSON | {
        "X-Grafana-Alerting-Signature": grafana_reference("grafana-secret", raw, ts),
        "X-Grafana-Alerting-Timestamp": str(ts),
    }
    with srv.client() as c:
        assert c.put("/api/v1/alerts/grafana", content=raw, headers=headers).status_code == 202
        assert c.put("/api/v1/alerts/grafana", content=raw, headers=headers).json().get("duplicate") is True
        unsigned = c.put("/api/v1/alerts/grafana", content=raw, headers=JSON)
        assert unsigned.status_code == 401


def test_alertmanager_basic_auth(make_server: Callable[..., Server], secrets: Auth) -> None:
    srv = make_server(auth=secrets)
    raw = (HERE / "alertmanager-0.25-firing.json").read_bytes()
    with srv.client() as c:
        assert c.post("/api/v1/alerts/alertmanager", content=raw, headers=JSON, auth=("am", "wrong")).status_code == 401
        assert (
            c.post("/api/v1/alerts/alertmanager", content=raw, headers=JSON, auth=("x", "am-password")).status_code
            == 401
        )
        assert (
            c.post("/api/v1/alerts/alertmanager", content=raw, headers=JSON, auth=("am", "am-password")).status_code
            == 202
        )


def test_github_style_signature_on_changes(make_server: Callable[..., Server], secrets: Auth) -> None:
    srv = make_server(auth=secrets)
    body = json.dumps({"service": "web", "version": "v2"}).encode()
    sig = "sha256=" + hmac.new(b"ci-secret", body, hashlib.sha256).hexdigest()
    with srv.client() as c:
        assert c.post("/api/v1/changes", content=body, headers=JSON | {"X-Hub-Signature-256": sig}).status_code == 201


def test_secrets_are_read_once_at_load_not_per_request(
    make_server: Callable[..., Server], secrets: Auth, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = make_server(auth=secrets)
    monkeypatch.delenv("PM_TEST_STANDARD")  # the request path never reads the environment
    with srv.client() as c:
        assert c.post("/api/v1/alerts", content=ALERT, headers=standard(ALERT, msg_id="m")).status_code == 202


def test_a_named_secret_that_is_missing_fails_at_start(tmp_path: Path) -> None:
    cred = WebhookCredential(source="pagerduty", scheme="pagerduty", secret_env="PM_TEST_NOT_SET")
    with pytest.raises(ConfigError, match=r"auth.webhooks\[0\]: secret_env names PM_TEST_NOT_SET"):
        resolve_secrets(Config(auth=Auth(webhooks=[cred])), env={})
    cfg = tmp_path / "paramedic.yaml"
    cfg.write_text(
        "auth:\n  webhooks:\n    - {source: grafana, scheme: grafana, secret_file: " + str(tmp_path / "nope") + "}\n"
    )
    with pytest.raises(ConfigError, match=r"secret_file .* cannot be read"):
        load_config(cfg, env={})


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param({"source": "grafana", "scheme": "grafana"}, id="no-secret"),
        pytest.param({"source": "grafana", "scheme": "grafana", "sha256": "0" * 64}, id="hash-for-a-signature"),
        pytest.param({"source": "alertmanager", "scheme": "basic", "sha256": "0" * 64}, id="basic-without-username"),
        pytest.param({"source": "nagios", "scheme": "bearer", "sha256": "0" * 64}, id="unknown-source"),
    ],
)
def test_bad_credential_entries_are_config_errors(tmp_path: Path, entry: dict[str, str]) -> None:
    cfg = tmp_path / "paramedic.yaml"
    cfg.write_text(json.dumps({"auth": {"webhooks": [entry]}}))
    with pytest.raises(ConfigError, match=r"auth.webhooks.0"):
        load_config(cfg, env={})
