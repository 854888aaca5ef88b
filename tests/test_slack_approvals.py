"""Approving from Slack, tested at paramedic's boundary: no Slack server runs here, so the test
sends what Slack's documentation says its Interactivity request is — a form body
``payload=<block_actions JSON>`` with ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature:
v0=HMAC-SHA256(signing secret, "v0:{timestamp}:{body}")`` — built from the button paramedic's own
Slack message carries. A correctly signed click approves (two distinct approvers when the runbook
says so); a stale or badly signed one is refused; an unmapped Slack user or a viewer is refused;
a changed plan is refused."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from paramedic.api.slack import signature
from paramedic.notify.base import Notification
from paramedic.notify.slack import APPROVE, DENY, SlackConfig, SlackSink
from tests.conftest import Server
from tests.test_ui_support import approve_runbook, runbooks

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
USERS = {
    "U0RITA": {"name": "rita", "role": "responder"},
    "U0SAM": {"name": "sam", "role": "admin"},
    "U0VERA": {"name": "vera", "role": "viewer"},
}


def block_actions(user: str, action_id: str, value: str) -> dict[str, Any]:
    """A ``block_actions`` payload shaped as Slack documents it (fields paramedic does not read kept)."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0TEAM"},
        "api_app_id": "A0APP",
        "token": "verification-token-is-deprecated",
        "container": {"type": "message", "message_ts": "1548261231.000200", "channel_id": "C0ONCALL"},
        "trigger_id": "12321423423.333649436676.d8c1bb837935619ccad0f624c448ffb3",
        "team": {"id": "T0TEAM", "domain": "example"},
        "channel": {"id": "C0ONCALL", "name": "oncall"},
        "response_url": "https://hooks.slack.com/actions/T0TEAM/1/abc",
        "actions": [
            {
                "action_id": action_id,
                "block_id": "paramedic-run-1",
                "text": {"type": "plain_text", "text": "Approve", "emoji": True},
                "value": value,
                "style": "primary",
                "type": "button",
                "action_ts": "1548426417.840180",
            }
        ],
    }


def click(
    srv: Server, user: str, action_id: str, value: str, *, secret: str = SECRET, age: float = 0.0
) -> httpx.Response:
    body = urlencode({"payload": json.dumps(block_actions(user, action_id, value))}).encode()
    ts = str(int(time.time() - age))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature(secret, ts, body),
    }
    with srv.client() as c:
        return c.post("/api/v1/slack/interactions", content=body, headers=headers)


def button_value(srv: Server, iid: int) -> str:
    """The value of the Approve button paramedic's Slack sink puts on the approval_needed message."""
    with srv.client() as c:
        run = c.get(f"/api/v1/incidents/{iid}").json()["runs"][0]
    note = Notification(
        event="approval_needed",
        incident_id=iid,
        title="Approval needed",
        summary_markdown="x",
        data={"approvals": [{"run_id": run["id"], "runbook": run["runbook"], "plan_digest": run["plan_digest"]}]},
    )
    sink = SlackSink(
        SlackConfig(webhook_url="https://hooks.slack.com/x", interactive=True), webhook_url="x", client=None
    )  # type: ignore[arg-type]
    actions = [b for b in sink.message(note)["blocks"] if b["type"] == "actions"]
    buttons = {e["action_id"]: e for e in actions[0]["elements"]}
    assert set(buttons) == {APPROVE, DENY}
    assert buttons[DENY]["confirm"]["confirm"]["text"] == "Deny"
    value: str = buttons[APPROVE]["value"]
    return value


@pytest.fixture
def srv(make_server: Callable[..., Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Server:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    return make_server(
        runbooks(approve_runbook(tmp_path, approvers=2)),
        slack={"signing_secret_env": "SLACK_SIGNING_SECRET", "users": USERS},
    )


def fire(srv: Server) -> int:
    with srv.client() as c:
        r = c.post("/api/v1/alerts", json={"name": "Broken", "labels": {"instance": "web-1", "service": "web"}})
    iid = int(r.json()["alerts"][0]["incident_id"])
    srv.wait(lambda c: c.get(f"/api/v1/incidents/{iid}").json()["runs"][0]["status"] == "awaiting_approval")
    return iid


def status(srv: Server, iid: int) -> str:
    with srv.client() as c:
        return str(c.get(f"/api/v1/incidents/{iid}").json()["runs"][0]["status"])


def test_two_signed_clicks_by_two_people_approve(srv: Server, tmp_path: Path) -> None:
    iid = fire(srv)
    value = button_value(srv, iid)
    first = click(srv, "U0RITA", APPROVE, value)
    assert first.status_code == 200, first.text
    assert first.json()["recorded"] is True
    assert first.json()["status"] == "awaiting_approval"  # one of two
    again = click(srv, "U0RITA", APPROVE, value)
    assert again.json()["recorded"] is False
    assert "a second approver is needed" in again.json()["text"]
    second = click(srv, "U0SAM", APPROVE, value)
    assert second.json()["status"] == "approved"
    srv.wait(lambda c: c.get(f"/api/v1/incidents/{iid}").json()["runs"][0]["status"] == "succeeded")
    with srv.client() as c:
        approvals = c.get(f"/api/v1/incidents/{iid}").json()["runs"][0]["approvals"]
    assert [(a["actor"], a["reason"]) for a in approvals] == [
        ("rita", "approved in Slack by U0RITA"),
        ("sam", "approved in Slack by U0SAM"),
    ]


def test_stale_or_badly_signed_clicks_are_refused(srv: Server) -> None:
    iid = fire(srv)
    value = button_value(srv, iid)
    stale = click(srv, "U0RITA", APPROVE, value, age=6 * 60)
    assert stale.status_code == 401
    assert "time window" in stale.json()["error"]
    forged = click(srv, "U0RITA", APPROVE, value, secret="not-the-secret")
    assert forged.status_code == 401
    assert "signature does not match" in forged.json()["error"]
    with srv.client() as c:
        unsigned = c.post("/api/v1/slack/interactions", content=b"payload=%7B%7D")
    assert unsigned.status_code == 401
    assert status(srv, iid) == "awaiting_approval"


def test_unmapped_user_and_viewer_are_refused(srv: Server) -> None:
    iid = fire(srv)
    value = button_value(srv, iid)
    stranger = click(srv, "U0MALLORY", APPROVE, value)
    assert stranger.status_code == 403
    assert "U0MALLORY is not mapped" in stranger.json()["error"]
    viewer = click(srv, "U0VERA", APPROVE, value)
    assert viewer.status_code == 403
    assert "vera has the viewer role" in viewer.json()["error"]
    assert status(srv, iid) == "awaiting_approval"


def test_a_changed_plan_is_refused_and_deny_denies(srv: Server) -> None:
    iid = fire(srv)
    value = json.loads(button_value(srv, iid))
    stale_plan = click(srv, "U0RITA", APPROVE, json.dumps({**value, "plan_digest": "0" * 16}))
    assert stale_plan.json()["recorded"] is False
    assert "the plan changed" in stale_plan.json()["text"]
    denied = click(srv, "U0RITA", DENY, json.dumps(value))
    assert denied.json()["status"] == "denied"
