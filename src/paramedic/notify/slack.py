"""Slack through an incoming webhook: one Block Kit message per event.

Config::

    - {type: slack, name: slack-oncall, webhook_url_env: SLACK_WEBHOOK_URL,
       public_url: "https://paramedic.example.com", events: [escalated, approval_needed, resolved]}

The message: a header block with the title, the summary (converted to Slack mrkdwn) in section
blocks of at most 3000 characters, the chart as an image block, and a context block linking the
incident. An incoming webhook cannot upload files, so the image block points Slack at paramedic's
own ``GET /api/v1/incidents/{id}/evidence/{eid}.png?sig=…``: Slack's servers fetch it, so
``public_url`` must be reachable from the internet. Without ``public_url`` the image block is left
out (Slack rejects a message whose image it cannot download). ``channel``, ``username`` and
``icon_emoji`` are sent when given (legacy webhooks honour them; app webhooks post to their own
channel). Slack answers ``200 ok``; ``400 invalid_blocks``, ``403``, ``404`` and ``410`` are
permanent, ``429`` and ``5xx`` are retried.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from paramedic.core.errors import PermanentError
from paramedic.notify import http
from paramedic.notify.base import Notification, absolute, wants
from paramedic.notify.markdown import slack_escape, to_slack

SECTION_LIMIT = 3000
HEADER_LIMIT = 150
MAX_BLOCKS = 50


class SlackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = "slack"
    name: str = "slack"
    webhook_url: str = Field(default="", description="the incoming webhook URL (a secret)")
    webhook_url_env: str = ""
    public_url: str = ""
    channel: str = ""
    username: str = ""
    icon_emoji: str = ""
    events: tuple[str, ...] = ()
    interactive: bool = False  # Approve / Deny buttons on approval_needed (needs `slack:` in the config)


class SlackSink:
    """Posts Block Kit messages to one incoming webhook."""

    def __init__(self, cfg: SlackConfig, *, webhook_url: str, client: httpx.AsyncClient) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self._url = webhook_url
        self._client = client

    async def send(self, note: Notification) -> None:
        if not wants(self.cfg.events, note.event):
            return
        resp = await http.call(
            self._client, "POST", self._url, what=f"Slack webhook {self.name}", json=self.message(note)
        )
        if resp.text.strip() not in ("", "ok"):
            # a 200 with a body other than "ok" is a refusal worth seeing in the outbox
            raise PermanentError(f"Slack webhook {self.name} answered: {resp.text[:200]}", reason="refused")

    def message(self, note: Notification) -> dict[str, Any]:
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": _clip(note.title, HEADER_LIMIT), "emoji": True}}
        ]
        for chunk in _chunks(to_slack(note.summary_markdown), SECTION_LIMIT)[: MAX_BLOCKS - 3]:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
        image_url = absolute(self.cfg.public_url, note.image_path)
        if image_url:
            blocks.append(
                {
                    "type": "image",
                    "image_url": image_url,
                    "alt_text": _clip(f"Metrics chart of incident #{note.incident_id}", 2000),
                    "title": {"type": "plain_text", "text": "Metrics around the alert", "emoji": True},
                }
            )
        if self.cfg.interactive and note.event == "approval_needed":
            blocks.extend(approval_buttons(note))
        incident_url = absolute(self.cfg.public_url, note.incident_path)
        context = f"paramedic · {note.event}" + (
            f" · <{incident_url}|incident #{note.incident_id}>" if incident_url else ""
        )
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
        # the fallback text (notifications, screen readers) is mrkdwn too: escaped like the sections, so
        # an alert named "<!channel>" cannot ping a channel
        message: dict[str, Any] = {"text": slack_escape(note.title), "blocks": blocks}
        extras: Mapping[str, str] = {
            "channel": self.cfg.channel,
            "username": self.cfg.username,
            "icon_emoji": self.cfg.icon_emoji,
        }
        message.update({k: v for k, v in extras.items() if v})
        return message


APPROVE, DENY = "paramedic.approve", "paramedic.deny"


def approval_buttons(note: Notification) -> list[dict[str, Any]]:
    """One actions block per waiting run: Approve and Deny, each carrying the incident, the run and
    the plan digest it shows, so a click on a plan that changed since is refused (``api.slack``)."""
    blocks = []
    for a in list(note.data.get("approvals", []))[:10]:
        value = json.dumps(
            {"incident_id": note.incident_id, "run_id": a["run_id"], "plan_digest": a["plan_digest"]},
            separators=(",", ":"),
        )
        blocks.append(
            {
                "type": "actions",
                "block_id": f"paramedic-run-{a['run_id']}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": APPROVE,
                        "style": "primary",
                        "text": {"type": "plain_text", "text": f"Approve run {a['run_id']}"},
                        "value": value,
                    },
                    {
                        "type": "button",
                        "action_id": DENY,
                        "style": "danger",
                        "text": {"type": "plain_text", "text": "Deny"},
                        "value": value,
                        "confirm": {
                            "title": {"type": "plain_text", "text": "Deny this action?"},
                            "text": {"type": "plain_text", "text": "The incident is escalated to a human."},
                            "confirm": {"type": "plain_text", "text": "Deny"},
                            "deny": {"type": "plain_text", "text": "Cancel"},
                        },
                    },
                ],
            }
        )
    return blocks


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _chunks(text: str, limit: int) -> list[str]:
    """Paragraphs packed into pieces of at most ``limit`` characters."""
    out: list[str] = []
    current = ""
    for para in text.split("\n\n"):
        while len(para) > limit:
            cut = para.rfind("\n", 0, limit)
            cut = cut if cut > 0 else limit
            if current:
                out.append(current)
                current = ""
            out.append(para[:cut])
            para = para[cut:].lstrip("\n")
        candidate = f"{current}\n\n{para}" if current else para
        if len(candidate) > limit:
            out.append(current)
            current = para
        else:
            current = candidate
    if current:
        out.append(current)
    return [c for c in out if c.strip()]
