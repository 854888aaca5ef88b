"""PagerDuty through the Events API v2: one event per incident event, deduplicated per incident.

Config::

    - {type: pagerduty, name: pd, routing_key_env: PD_ROUTING_KEY, public_url: "https://paramedic.example.com",
       url: "https://events.pagerduty.com/v2/enqueue", source: paramedic-prod,
       actions: {escalated: trigger, approval_needed: trigger, breaker_opened: trigger,
                 mitigated: acknowledge, resolved: resolve}}

``POST /v2/enqueue`` with ``routing_key``, ``event_action`` (trigger, acknowledge, resolve) and a
``dedup_key`` that is the same for every event of one paramedic incident, so PagerDuty folds them
into one PagerDuty incident and a ``resolve`` closes it. A ``trigger`` carries ``payload``
(``summary`` ≤ 1024 characters, ``source``, ``severity`` from the alert's severity label,
``timestamp``, ``component``, ``group``, ``class``, ``custom_details`` with the full markdown
summary), ``links`` to the incident (needs ``public_url``) and ``images`` with the chart (needs an
``https://`` ``public_url``: PagerDuty only shows images served over HTTPS).
Events not in ``actions`` (or mapped to ``none``) are not sent. PagerDuty answers ``202``; ``400``
is permanent, ``429`` and ``5xx`` are retried.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict

from paramedic.notify import http
from paramedic.notify.base import Notification, absolute
from paramedic.notify.markdown import to_plain

Action = Literal["trigger", "acknowledge", "resolve", "none"]
DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
DEFAULT_ACTIONS: dict[str, Action] = {
    "escalated": "trigger",
    "approval_needed": "trigger",
    "breaker_opened": "trigger",
    "mitigated": "acknowledge",
    "resolved": "resolve",
}
_SEVERITY = {
    "critical": "critical",
    "page": "critical",
    "p1": "critical",
    "high": "critical",
    "error": "error",
    "major": "error",
    "p2": "error",
    "warning": "warning",
    "warn": "warning",
    "minor": "warning",
    "p3": "warning",
    "info": "info",
    "low": "info",
    "p4": "info",
    "p5": "info",
}


class PagerDutyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = "pagerduty"
    name: str = "pagerduty"
    routing_key: str = ""
    routing_key_env: str = ""
    url: str = DEFAULT_URL
    public_url: str = ""
    source: str = ""
    dedup_prefix: str = "paramedic"
    actions: dict[str, Action] = DEFAULT_ACTIONS


class PagerDutySink:
    """Sends Events API v2 events to one PagerDuty service (its integration's routing key)."""

    def __init__(self, cfg: PagerDutyConfig, *, routing_key: str, client: httpx.AsyncClient) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self._key = routing_key
        self._client = client

    def event(self, note: Notification) -> dict[str, Any] | None:
        action = self.cfg.actions.get(note.event, "none")
        if action == "none":
            return None
        dedup = f"{self.cfg.dedup_prefix}-incident-{note.incident_id}" if note.incident_id else note.dedup_key
        body: dict[str, Any] = {"routing_key": self._key, "event_action": action, "dedup_key": dedup[:255]}
        if action != "trigger":
            return body
        labels = note.labels
        incident_url = absolute(self.cfg.public_url, note.incident_path)
        payload: dict[str, Any] = {
            "summary": note.title[:1024],
            "source": self.cfg.source or labels.get("instance") or labels.get("service") or "paramedic",
            "severity": _severity(note),
            "class": labels.get("alertname", ""),
            "component": labels.get("instance", ""),
            "group": labels.get("service", ""),
            "custom_details": {
                "summary": to_plain(note.summary_markdown),
                "event": note.event,
                "status": note.status,
                "incident_id": note.incident_id,
                "labels": dict(labels),
            },
        }
        if note.data.get("detected_at"):
            payload["timestamp"] = str(note.data["detected_at"])
        body["payload"] = {k: v for k, v in payload.items() if v != ""}
        body["client"] = "paramedic"
        if incident_url:
            body["client_url"] = incident_url
            body["links"] = [{"href": incident_url, "text": f"Incident #{note.incident_id} in paramedic"}]
        image_url = absolute(self.cfg.public_url, note.image_path)
        if image_url.startswith("https://"):  # PagerDuty shows images served over HTTPS only
            body["images"] = [{"src": image_url, "href": incident_url or image_url, "alt": "Metrics around the alert"}]
        return body

    async def send(self, note: Notification) -> None:
        body = self.event(note)
        if body is None:
            return
        await http.call(
            self._client, "POST", self.cfg.url, what=f"PagerDuty {self.name}", json=body, ok=(200, 201, 202)
        )


def _severity(note: Notification) -> str:
    label = note.labels.get("severity", note.severity).lower()
    if label in _SEVERITY:
        return _SEVERITY[label]
    return "error" if note.event == "escalated" else "warning"
