"""Approve and deny from Slack: ``POST /api/v1/slack/interactions``, the Request URL of a Slack
app's Interactivity, which receives a click on the Approve / Deny buttons of an
``approval_needed`` message (``notify.slack.approval_buttons``).

Slack's request format, as its documentation describes it: a form body ``payload=<JSON>`` of type
``block_actions`` (``user.id``, ``actions[0].action_id`` and ``.value``), signed with the app's
signing secret: ``X-Slack-Signature: v0=HMAC-SHA256(secret, "v0:" + X-Slack-Request-Timestamp +
":" + raw body)``. Refused with 401: a missing or wrong signature, or a timestamp outside the
window (a replay). Refused with 403: a Slack user the config does not map to a paramedic identity,
or one whose role cannot approve. Then the decision goes through ``Paramedic.decide`` like the UI's
and the API's: distinct approvers, expiry, the plan digest the button carries, the pause. Slack
wants an answer within 3 s and shows the text of a refusal; the outbox tells the channel what
happened next (mitigated, escalated).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from paramedic.api.intake import read_body
from paramedic.core.config import ROLE_GRANTS, SlackApprovals
from paramedic.core.errors import ConfigError
from paramedic.engine.service import OperationError, Paramedic
from paramedic.notify.slack import APPROVE, DENY
from paramedic.store import runs as runs_repo

log = logging.getLogger("paramedic.api.slack")
MAX_BODY = 64 * 1024


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 request signature."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def _refuse(status: int, text: str) -> JSONResponse:
    return JSONResponse({"error": text, "text": text, "response_type": "ephemeral"}, status_code=status)


def mount(app: FastAPI, pm: Paramedic) -> None:
    cfg: SlackApprovals | None = pm.config.slack
    if cfg is None:
        return
    secret = cfg.signing_secret.get_secret_value() if cfg.signing_secret else ""  # read at config load
    if not secret:
        raise ConfigError(f"slack.signing_secret_env: the variable {cfg.signing_secret_env} is not set")

    @app.post("/api/v1/slack/interactions", tags=["approvals"], summary="Slack interactive messages (signed)")
    async def interactions(request: Request) -> JSONResponse:
        body = await read_body(request, MAX_BODY)
        ts = request.headers.get("x-slack-request-timestamp", "")
        sig = request.headers.get("x-slack-signature", "")
        now = pm.clock().timestamp()
        if not ts.isdigit() or abs(now - int(ts)) > cfg.window.total_seconds():
            log.warning("Slack interaction refused: timestamp %r outside the window", ts[:20])
            return _refuse(401, "the request is not signed within the time window (a replay, or a clock off)")
        if not hmac.compare_digest(signature(secret, ts, body), sig):
            log.warning("Slack interaction refused: bad signature")
            return _refuse(401, "the request's signature does not match the signing secret")
        try:
            payload: Any = json.loads(parse_qs(body.decode(), strict_parsing=True)["payload"][0])
            user_id = str(payload["user"]["id"])
            action = payload["actions"][0]
            value = json.loads(action["value"])
            incident_id, run_id = int(value["incident_id"]), int(value["run_id"])
            digest = str(value["plan_digest"])
            approve = {APPROVE: True, DENY: False}[action["action_id"]]
        except (KeyError, IndexError, TypeError, ValueError, UnicodeDecodeError) as exc:
            return _refuse(400, f"not a paramedic approval button ({type(exc).__name__})")
        who = cfg.users.get(user_id)
        if who is None:
            return _refuse(403, f"Slack user {user_id} is not mapped to a paramedic identity (slack.users)")
        if "responder" not in ROLE_GRANTS[who.role]:
            return _refuse(403, f"{who.name} has the {who.role} role; approving needs responder")
        runs = await pm.read(runs_repo.for_incident, incident_id)
        if not any(r.id == run_id for r in runs):
            return _refuse(404, f"run {run_id} is not part of incident {incident_id}")
        how = "approved" if approve else "denied"
        try:
            row = await pm.decide(
                run_id,
                actor=who.name,
                approve=approve,
                reason=f"{how} in Slack by {user_id}",
                digest=digest,
            )
        except OperationError as exc:
            return JSONResponse({"text": f"Not recorded: {exc}", "response_type": "ephemeral", "recorded": False})
        return JSONResponse(
            {
                "text": f"{who.name} {how} run {run_id} of incident #{incident_id}: now {row.status}",
                "response_type": "in_channel",
                "recorded": True,
                "status": row.status,
            }
        )
