"""Secrets by reference in a step's ``with:`` (resolved only at execution) and redaction of the
forms that leaked at 753e177: ``sig=``, ``X-Auth``, ``key: value`` and ``--password VALUE``."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from paramedic.core.audit import redact, redact_text
from paramedic.engine.settings import resolve_step_secrets
from tests.conftest import Server
from tests.test_engine_runs import fire, incident, settled

SECRET = "s3cr3t-v4lue-0123456789"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        pytest.param(f"https://acct.blob.example/c?sv=2020&sig={SECRET}&se=1", "sv=2020", id="sig-query"),
        pytest.param(f"X-Auth-Token: {SECRET}", "X-Auth-Token: ", id="x-auth-header"),
        pytest.param(f"X-Auth: {SECRET}", "X-Auth: ", id="x-auth-bare"),
        pytest.param(f"password: {SECRET}", "password: ", id="key-colon-value"),
        pytest.param(f'{{"api_key": "{SECRET}"}}', '"api_key"', id="json-text"),
        pytest.param(f"mysql --password {SECRET} -h db", "-h db", id="flag-space-value"),
        pytest.param(f"mysql --password={SECRET}", "mysql --password=", id="flag-equals-value"),
    ],
)
def test_redaction_covers_these_forms(text: str, kept: str) -> None:
    out = redact_text(text)
    assert SECRET not in out
    assert kept in out


def test_an_argv_list_loses_the_value_after_a_secret_flag() -> None:
    assert redact({"argv": ["mysql", "--password", SECRET, "-h", "db"]}) == {
        "argv": ["mysql", "--password", "[redacted]", "-h", "db"]
    }


@pytest.mark.parametrize("text", ["assignee: bob", "design=new", "author: alice", "signal: 9", "passed: 3 of 3"])
def test_ordinary_words_are_not_redacted(text: str) -> None:
    assert redact_text(text) == text


def test_references_are_resolved_only_when_asked(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text(SECRET + "\n")
    args = {"url": "http://h/x", "headers": {"X-Auth-Token_env": "PM_T", "X-Other_file": str(secret_file)}}
    resolved, secrets = resolve_step_secrets(args, env={"PM_T": "from-env-123"})
    assert resolved == {"url": "http://h/x", "headers": {"X-Auth-Token": "from-env-123", "X-Other": SECRET}}
    assert secrets == ("from-env-123", SECRET)


class _Capture(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:
        _Capture.seen.append(dict(self.headers))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    _Capture.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def book(url: str) -> str:
    return f"""
apiVersion: paramedic/v1
runbooks:
  - name: fix
    owner: team
    match: {{alertname: Broken}}
    target: "{{{{ labels.instance }}}}"
    mode: auto
    steps:
      - action: http.request
        with: {{url: "{url}/hook", headers: {{X-Auth-Token_env: PM_TEST_HOOK_TOKEN}}}}
    verify:
      command: {{argv: ["true"], within: 2s}}
"""


def test_a_secret_reference_reaches_the_target_and_nothing_else(
    make_server: Callable[..., Server], receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PM_TEST_HOOK_TOKEN", SECRET)
    srv = make_server(book(receiver))
    with srv.client() as c:
        i = fire(c)
        srv.wait(settled(i, "mitigated", "escalated"))
        shown = json.dumps(incident(c, i)) + json.dumps(c.get("/api/v1/audit").json())
        page = c.get(f"/incidents/{i}").text
    assert incident_status(srv, i) == "mitigated"
    assert [h.get("X-Auth-Token") for h in _Capture.seen] == [SECRET]
    assert SECRET not in shown
    assert SECRET not in page
    assert "X-Auth-Token_env" in shown  # the reference is what people see


def test_a_missing_secret_fails_the_step_and_says_which(
    make_server: Callable[..., Server], receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PM_TEST_HOOK_TOKEN", raising=False)
    srv = make_server(book(receiver))
    with srv.client() as c:
        i = fire(c)
        srv.wait(settled(i, "escalated"))
        run = incident(c, i)["runs"][0]
    assert _Capture.seen == []
    assert "environment variable PM_TEST_HOOK_TOKEN is not set" in run["reason"]


def incident_status(srv: Server, i: int) -> str:
    with srv.client() as c:
        return str(incident(c, i)["status"])
