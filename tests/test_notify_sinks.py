"""Every sink against a local stand-in for its provider.

The HTTP fakes (stdlib ``http.server`` in a thread) record each request, and each test checks it
exactly as the provider documents it: method, path, the headers the provider requires
(``Content-Type``, ``Authorization``, ``Accept``, ``X-GitHub-Api-Version``, ``X-Atlassian-Token``,
the webhook signature) and the JSON fields of the body — Slack incoming webhooks with Block Kit,
the PagerDuty Events API v2, GitHub's REST API for issues, Jira's REST API v2. E-mail goes to a
real SMTP server (aiosmtpd) on loopback.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import hmac
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from paramedic.core.errors import ConfigError, PermanentError, RetryableError
from paramedic.notify.base import Notification, Sink
from paramedic.notify.factory import build_sinks, validate
from tests.support import free_port

Answer = tuple[int, Any, dict[str, str]]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeProvider:
    """A loopback HTTP server standing in for a provider: records requests, answers from ``answer``."""

    answer: Callable[[Seen], Answer] = lambda seen: (200, "ok", {})
    requests: list[Seen] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        fake = self
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = urlsplit(self.path)
                seen = Seen(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    raw,
                )
                with fake.lock:
                    fake.requests.append(seen)
                status, body, headers = fake.answer(seen)
                data = (
                    body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
                )
                self.send_response(status)
                ctype = "text/plain" if isinstance(body, str) else "application/json"
                for k, v in {"Content-Type": ctype, **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    f = FakeProvider()
    yield f
    f.close()


class MemoryTickets:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.data.get(key)

    async def put(self, key: str, value: str) -> None:
        self.data[key] = value


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
SUMMARY = (
    "**Needs a human** — incident #7: `HighErrorRate` on `web-1`\n\n"
    "**What fired**\n\n`HighErrorRate` from alertmanager, severity **critical**.\n"
    "> users see <!channel> errors & [click](http://evil)\n\n"
    "**What paramedic did**\n\n- Runbook `restart` (auto): **failed**: verification failed\n"
    "  1. `supervisor.restart` `program=web:web-1` — failed\n\n**Now**\n\nStatus **escalated**"
)


def note(event: str = "escalated", **kw: Any) -> Notification:
    base: dict[str, Any] = {
        "event": event,
        "incident_id": 7,
        "title": "Needs a human: HighErrorRate on web-1 (#7)",
        "summary_markdown": SUMMARY,
        "severity": "critical",
        "dedup_key": f"incident:7:{event}",
        "status": "escalated",
        "labels": {"alertname": "HighErrorRate", "instance": "web-1", "service": "web", "severity": "critical"},
        "image": PNG,
        "image_path": "/api/v1/incidents/7/evidence/3.png?sig=abc",
        "incident_path": "/api/v1/incidents/7",
        "data": {"reason": "verification failed", "detected_at": "2024-05-14T09:41:20+00:00"},
    }
    return Notification(**{**base, **kw})


def sinks(specs: list[dict[str, Any]], *, env: dict[str, str] | None = None, tickets: Any = None) -> Callable[..., Any]:
    """Run ``send`` of the one sink built from ``specs`` for each notification given."""

    def run(*notes: Notification) -> None:
        async def go() -> None:
            async with httpx.AsyncClient() as client:
                (sink,) = build_sinks(specs, client=client, tickets=tickets or MemoryTickets(), env=env or {})
                for n in notes:
                    await sink.send(n)

        asyncio.run(go())

    return run


# ---- Slack -------------------------------------------------------------------------------------
def test_slack_posts_block_kit_with_the_chart_served_by_paramedic(fake: FakeProvider) -> None:
    send = sinks(
        [
            {
                "type": "slack",
                "webhook_url_env": "SLACK_URL",
                "public_url": "https://pm.example.com/",
                "channel": "#oncall",
            }
        ],
        env={"SLACK_URL": f"{fake.url}/services/T0001/B0001/XXXXXXXX"},
    )
    send(note())
    (req,) = fake.requests
    assert (req.method, req.path) == ("POST", "/services/T0001/B0001/XXXXXXXX")
    assert req.headers["content-type"] == "application/json"
    body = req.json
    assert body["text"] == "Needs a human: HighErrorRate on web-1 (#7)"
    assert body["channel"] == "#oncall"
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds[0] == "header"
    assert kinds[-2:] == ["image", "context"]
    assert "section" in kinds
    assert body["blocks"][0]["text"] == {"type": "plain_text", "text": body["text"], "emoji": True}
    text = "\n".join(b["text"]["text"] for b in body["blocks"] if b["type"] == "section")
    assert "*Needs a human*" in text
    assert "• Runbook `restart` (auto): *failed*" in text
    assert "&lt;!channel&gt; errors &amp; [click](http://evil)" not in text  # escapes are markdown's…
    assert "<!channel>" not in text
    assert "&lt;!channel&gt;" in text
    image = body["blocks"][-2]
    assert image["image_url"] == "https://pm.example.com/api/v1/incidents/7/evidence/3.png?sig=abc"
    assert image["alt_text"]
    assert image["title"]["type"] == "plain_text"
    assert "<https://pm.example.com/api/v1/incidents/7|incident #7>" in body["blocks"][-1]["elements"][0]["text"]
    assert all(len(b["text"]["text"]) <= 3000 for b in body["blocks"] if b["type"] == "section")


def test_slack_without_public_url_sends_no_image_block(fake: FakeProvider) -> None:
    sinks([{"type": "slack", "webhook_url": f"{fake.url}/hook"}])(note())
    assert [b["type"] for b in fake.requests[0].json["blocks"]][-1] == "context"
    assert "image" not in [b["type"] for b in fake.requests[0].json["blocks"]]


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        pytest.param(500, "internal_error", RetryableError, id="500"),
        pytest.param(429, "rate_limited", RetryableError, id="429"),
        pytest.param(400, "invalid_blocks", PermanentError, id="400"),
        pytest.param(404, "no_service", PermanentError, id="404"),
        pytest.param(200, "invalid_token", PermanentError, id="200-not-ok"),
    ],
)
def test_slack_errors_carry_their_retry_meaning(fake: FakeProvider, status: int, body: str, error: type) -> None:
    fake.answer = lambda seen: (status, body, {})
    with pytest.raises(error) as err:
        sinks([{"type": "slack", "webhook_url": f"{fake.url}/services/SECRET"}])(note())
    assert "SECRET" not in str(err.value)  # the URL is the credential; it never reaches the outbox


# ---- PagerDuty ------------------------------------------------------------------------------------
def test_pagerduty_events_api_v2_trigger_acknowledge_resolve(fake: FakeProvider) -> None:
    fake.answer = lambda seen: (202, {"status": "success", "message": "Event processed", "dedup_key": "x"}, {})
    spec = {"type": "pagerduty", "routing_key": "R0UT1NGKEY0123456789012345678901", "url": f"{fake.url}/v2/enqueue",
            "public_url": "https://pm.example.com"}  # fmt: skip
    sinks([spec])(note("escalated"), note("mitigated"), note("resolved"), note("opened"))
    assert [(r.method, r.path) for r in fake.requests] == [("POST", "/v2/enqueue")] * 3
    trigger, ack, resolve = (r.json for r in fake.requests)
    assert all(r.headers["content-type"] == "application/json" for r in fake.requests)
    assert trigger["routing_key"] == spec["routing_key"]
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == ack["dedup_key"] == resolve["dedup_key"] == "paramedic-incident-7"
    payload = trigger["payload"]
    assert payload["summary"] == "Needs a human: HighErrorRate on web-1 (#7)"
    assert (payload["source"], payload["severity"]) == ("web-1", "critical")
    assert (payload["component"], payload["group"], payload["class"]) == ("web-1", "web", "HighErrorRate")
    assert payload["timestamp"] == "2024-05-14T09:41:20+00:00"
    assert "Runbook `restart`" in payload["custom_details"]["summary"]
    assert trigger["links"] == [
        {"href": "https://pm.example.com/api/v1/incidents/7", "text": "Incident #7 in paramedic"}
    ]
    assert trigger["images"][0]["src"] == "https://pm.example.com/api/v1/incidents/7/evidence/3.png?sig=abc"
    assert ack == {
        "routing_key": spec["routing_key"],
        "event_action": "acknowledge",
        "dedup_key": "paramedic-incident-7",
    }
    assert resolve["event_action"] == "resolve"
    assert "payload" not in resolve


def test_pagerduty_400_is_permanent_and_severity_defaults(fake: FakeProvider) -> None:
    fake.answer = lambda seen: (
        400,
        {"status": "invalid event", "message": "Event object is invalid", "errors": ["x"]},
        {},
    )
    spec = {"type": "pagerduty", "routing_key": "k", "url": f"{fake.url}/v2/enqueue"}
    with pytest.raises(PermanentError, match="answered 400"):
        sinks([spec])(note("approval_needed", labels={"alertname": "X"}, severity=""))
    assert fake.requests[0].json["payload"]["severity"] == "warning"
    assert fake.requests[0].json["payload"]["source"] == "paramedic"


# ---- generic webhook -------------------------------------------------------------------------
def test_webhook_body_is_signed_with_hmac_sha256(fake: FakeProvider) -> None:
    spec = {"type": "webhook", "name": "chatops", "url": f"{fake.url}/in/paramedic", "secret_env": "HOOK",
            "headers": {"X-Team": "web"}, "public_url": "https://pm.example.com"}  # fmt: skip
    sinks([spec], env={"HOOK": "topsecret"})(note())
    (req,) = fake.requests
    assert (req.method, req.path) == ("POST", "/in/paramedic")
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-team"] == "web"
    expected = "sha256=" + hmac.new(b"topsecret", req.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req.headers["x-paramedic-signature"], expected)
    assert req.headers["x-paramedic-event"] == "escalated"
    assert req.headers["x-paramedic-delivery"] == "incident:7:escalated"
    body = req.json
    assert body["version"] == "1"
    assert body["incident_id"] == 7
    assert body["summary_markdown"] == SUMMARY
    assert body["links"]["chart"] == "https://pm.example.com/api/v1/incidents/7/evidence/3.png?sig=abc"


# ---- GitHub --------------------------------------------------------------------------------------
def test_github_opens_one_issue_comments_and_closes_it(fake: FakeProvider) -> None:
    def answer(seen: Seen) -> Answer:
        if seen.method == "POST" and seen.path == "/repos/acme/payments/issues":
            return 201, {"id": 1, "number": 42, "html_url": "https://github.com/acme/payments/issues/42"}, {}
        if seen.method == "POST" and seen.path.endswith("/comments"):
            return 201, {"id": 9}, {}
        return 200, {"number": 42, "state": "closed"}, {}

    fake.answer = answer
    tickets = MemoryTickets()
    spec = {"type": "github", "repo": "acme/payments", "token_env": "GH", "api_url": fake.url, "labels": ["sev1"]}
    send = sinks([spec], env={"GH": "ghp_" + "x" * 36}, tickets=tickets)
    send(note("mitigated", incident_id=8))  # no issue for an incident paramedic handled alone
    send(note("escalated"), note("approval_needed"), note("resolved"))
    calls = [(r.method, r.path) for r in fake.requests]
    assert calls == [
        ("POST", "/repos/acme/payments/issues"),
        ("POST", "/repos/acme/payments/issues/42/comments"),
        ("PATCH", "/repos/acme/payments/issues/42"),
        ("POST", "/repos/acme/payments/issues/42/comments"),
    ]
    for r in fake.requests:
        assert r.headers["accept"] == "application/vnd.github+json"
        assert r.headers["authorization"] == "Bearer ghp_" + "x" * 36
        assert r.headers["x-github-api-version"] == "2022-11-28"
        assert r.headers["content-type"] == "application/json"
        assert r.headers["user-agent"]
    issue = fake.requests[0].json
    assert issue["title"] == "Needs a human: HighErrorRate on web-1 (#7)"
    assert issue["labels"] == ["sev1"]
    assert issue["body"].startswith(SUMMARY)
    assert fake.requests[2].json == {"state": "closed", "state_reason": "completed"}
    assert tickets.data == {"ticket:github:7": "42"}


def test_github_refusal_is_permanent(fake: FakeProvider) -> None:
    fake.answer = lambda seen: (401, {"message": "Bad credentials"}, {})
    with pytest.raises(PermanentError, match="401"):
        sinks([{"type": "github", "repo": "acme/payments", "token": "t", "api_url": fake.url}])(note())


# ---- Jira -----------------------------------------------------------------------------------------
def test_jira_creates_attaches_comments_and_transitions(fake: FakeProvider) -> None:
    def answer(seen: Seen) -> Answer:
        if seen.method == "POST" and seen.path == "/rest/api/2/issue":
            return 201, {"id": "10042", "key": "OPS-17", "self": f"{fake.url}/rest/api/2/issue/10042"}, {}
        if seen.path.endswith("/attachments"):
            return 200, [{"id": "1", "filename": "incident-chart.png"}], {}
        if seen.method == "GET" and seen.path.endswith("/transitions"):
            ts = [{"id": "11", "name": "In Progress", "to": {"name": "In Progress"}},
                  {"id": "31", "name": "Resolve", "to": {"name": "Done"}}]  # fmt: skip
            return 200, {"expand": "transitions", "transitions": ts}, {}
        if seen.method == "POST" and seen.path.endswith("/transitions"):
            return 204, b"", {}
        return 201, {"id": "100"}, {}

    fake.answer = answer
    tickets = MemoryTickets()
    spec = {"type": "jira", "url": fake.url, "project": "OPS", "issue_type": "Incident", "email": "pm@acme.com",
            "api_token_env": "JIRA"}  # fmt: skip
    sinks([spec], env={"JIRA": "atl-token"}, tickets=tickets)(note("escalated"), note("resolved"))
    calls = [(r.method, r.path) for r in fake.requests]
    assert calls == [
        ("POST", "/rest/api/2/issue"),
        ("POST", "/rest/api/2/issue/OPS-17/attachments"),
        ("GET", "/rest/api/2/issue/OPS-17/transitions"),
        ("POST", "/rest/api/2/issue/OPS-17/transitions"),
        ("POST", "/rest/api/2/issue/OPS-17/comment"),
    ]
    basic = "Basic " + __import__("base64").b64encode(b"pm@acme.com:atl-token").decode()
    assert all(r.headers["authorization"] == basic for r in fake.requests)
    fields = fake.requests[0].json["fields"]
    assert fields["project"] == {"key": "OPS"}
    assert fields["issuetype"] == {"name": "Incident"}
    assert fields["summary"] == "Needs a human: HighErrorRate on web-1 (#7)"
    assert fields["labels"] == ["paramedic"]
    assert fields["description"].startswith("*Needs a human* — incident #7: {{HighErrorRate}}")
    assert "* Runbook {{restart}} (auto): *failed*" in fields["description"]
    attach = fake.requests[1]
    assert attach.headers["x-atlassian-token"] == "no-check"
    assert attach.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="file"; filename="incident-chart.png"' in attach.body
    assert PNG in attach.body
    assert fake.requests[3].json == {"transition": {"id": "31"}}
    assert "body" in fake.requests[4].json
    assert tickets.data == {"ticket:jira:7": "OPS-17"}


# ---- e-mail (a real SMTP server) -------------------------------------------------------------
class Mailbox:
    def __init__(self, refuse: str = "") -> None:
        self.refuse = refuse
        self.envelopes: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    from aiosmtpd.controller import Controller

    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def test_email_goes_through_a_real_smtp_server_with_the_chart_inline(smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    spec = {"type": "email", "host": "127.0.0.1", "port": port, "from": "paramedic <pm@example.com>",
            "to": ["oncall@example.com", "lead@example.com"]}  # fmt: skip
    sinks([spec])(note())
    ((sender, rcpts, raw),) = box.envelopes
    assert sender == "pm@example.com"
    assert rcpts == ["oncall@example.com", "lead@example.com"]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg["Subject"] == "[paramedic] Needs a human: HighErrorRate on web-1 (#7)"
    assert msg["Message-ID"] == "<incident.7.escalated.email@paramedic.local>"
    assert msg["References"] == msg["In-Reply-To"] == "<incident.7@paramedic.local>"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert "Runbook `restart` (auto): **failed**" in plain.get_content()
    html_text = html.get_content()
    assert "<strong>Needs a human</strong>" in html_text
    assert 'src="cid:chart"' in html_text
    assert "&lt;!channel&gt;" in html_text
    assert "<!channel>" not in html_text
    images = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 1
    assert images[0]["Content-ID"] == "<chart>"
    assert images[0].get_content() == PNG


@pytest.mark.parametrize(
    ("refuse", "error"),
    [pytest.param("550 5.1.1 no such user", PermanentError, id="550"),
     pytest.param("451 4.3.0 try again later", RetryableError, id="451")],
)  # fmt: skip
def test_email_smtp_answers_carry_their_retry_meaning(smtp: tuple[Mailbox, int], refuse: str, error: type) -> None:
    box, port = smtp
    box.refuse = refuse
    with pytest.raises(error):
        sinks(
            [{"type": "email", "host": "127.0.0.1", "port": port, "from": "pm@example.com", "to": ["x@example.com"]}]
        )(note())


def test_email_server_down_is_retryable() -> None:
    spec = {
        "type": "email",
        "host": "127.0.0.1",
        "port": free_port(),
        "from": "pm@example.com",
        "to": ["x@example.com"],
    }
    with pytest.raises(RetryableError, match="SMTP server"):
        sinks([spec])(note())


# ---- configuration ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("specs", "message"),
    [
        pytest.param([{"type": "teams"}], "type must be one of", id="type"),
        pytest.param(
            [{"type": "slack", "webhook_url": "u"}, {"type": "slack", "webhook_url": "v"}], "used twice", id="dup"
        ),
        pytest.param([{"type": "slack", "name": "log", "webhook_url": "u"}], "reserved", id="log"),
        pytest.param([{"type": "slack"}], "give webhook_url or webhook_url_env", id="no-secret"),
        pytest.param([{"type": "slack", "webhook_url_env": "UNSET_VAR"}], "UNSET_VAR", id="env-unset"),
        pytest.param([{"type": "github", "repo": "nope", "token": "t"}], "repo must be owner/name", id="repo"),
        pytest.param(
            [{"type": "jira", "url": "u", "project": "P", "api_token": "t"}], "email and api_token", id="jira"
        ),
        pytest.param([{"type": "email", "from": "a@b", "to": []}], "sinks[0] (email).to", id="email-to"),
        pytest.param([{"type": "webhook", "url": "u", "colour": "red"}], "colour", id="unknown-key"),
    ],
)
def test_sink_config_errors_name_the_entry(specs: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(specs, {})


def test_every_sink_type_builds(fake: FakeProvider) -> None:
    specs: list[dict[str, Any]] = [
        {"type": "slack", "webhook_url": "http://x"},
        {"type": "pagerduty", "routing_key": "k"},
        {"type": "webhook", "url": "http://x"},
        {"type": "email", "from": "a@b", "to": ["c@d"]},
        {"type": "github", "repo": "a/b", "token": "t"},
        {"type": "jira", "url": "http://j", "project": "P", "token": "pat"},
    ]

    async def go() -> list[Sink]:
        async with httpx.AsyncClient() as client:
            return build_sinks(specs, client=client, tickets=MemoryTickets(), env={})

    assert [s.name for s in asyncio.run(go())] == ["slack", "pagerduty", "webhook", "email", "github", "jira"]
