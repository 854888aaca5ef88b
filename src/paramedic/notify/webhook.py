"""A generic webhook: the notification as JSON, signed with HMAC-SHA256.

Config::

    - {type: webhook, name: chatops, url: "https://hooks.example.com/paramedic", secret_env: HOOK_SECRET,
       public_url: "https://paramedic.example.com", headers: {X-Team: payments}, events: []}

``POST url`` with ``Content-Type: application/json`` and the body below. With a secret, the header
``X-Paramedic-Signature: sha256=<hex>`` is the HMAC-SHA256 of the exact body bytes under the
secret (the same scheme paramedic accepts on its own webhooks, and GitHub's
``X-Hub-Signature-256``); compare it in constant time. ``X-Paramedic-Delivery`` is the dedup key:
the outbox sends each key once, but a receiver that must be exactly-once should remember it.
Body: ``{version, event, incident_id, title, severity, status, summary_markdown, labels, links:
{incident, chart}, data, dedup_key}``. Any ``2xx`` is success.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from paramedic.notify import http
from paramedic.notify.base import Notification, absolute, wants

SIGNATURE_HEADER = "X-Paramedic-Signature"


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = "webhook"
    name: str = "webhook"
    url: str
    secret: str = ""
    secret_env: str = ""
    public_url: str = ""
    headers: dict[str, str] = {}
    events: tuple[str, ...] = ()


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSink:
    """POSTs signed JSON to one URL."""

    def __init__(self, cfg: WebhookConfig, *, secret: str, client: httpx.AsyncClient) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self._secret = secret
        self._client = client

    def body(self, note: Notification) -> dict[str, Any]:
        return {
            "version": "1",
            "event": note.event,
            "incident_id": note.incident_id,
            "title": note.title,
            "severity": note.severity,
            "status": note.status,
            "summary_markdown": note.summary_markdown,
            "labels": dict(note.labels),
            "links": {
                "incident": absolute(self.cfg.public_url, note.incident_path),
                "chart": absolute(self.cfg.public_url, note.image_path),
            },
            "data": dict(note.data),
            "dedup_key": note.dedup_key,
        }

    async def send(self, note: Notification) -> None:
        if not wants(self.cfg.events, note.event):
            return
        raw = json.dumps(self.body(note), separators=(",", ":"), default=str).encode()
        headers = {
            **self.cfg.headers,
            "Content-Type": "application/json",
            "X-Paramedic-Event": note.event,
            "X-Paramedic-Delivery": note.dedup_key,
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, raw)
        ok = tuple(range(200, 300))
        await http.call(
            self._client, "POST", self.cfg.url, what=f"webhook {self.name}", content=raw, headers=headers, ok=ok
        )
