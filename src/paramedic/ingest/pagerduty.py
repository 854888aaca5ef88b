"""PagerDuty webhook (v3, "Generic Webhooks (v3)" subscriptions) → ``list[Alert]``.

One delivery carries one ``event``. Only incident events become alerts: ``incident.triggered``,
``incident.reopened``, ``incident.unacknowledged``, ``incident.acknowledged``,
``incident.escalated``, ``incident.delegated``, ``incident.reassigned`` and
``incident.priority_updated`` say the incident is open (firing); ``incident.resolved`` resolves it.
Other event types (annotations, responders, status updates, service events) change nothing and
give an empty list. The PagerDuty incident's id is the fingerprint, so every event of one PagerDuty
incident updates one paramedic incident; its ``created_at`` (else ``occurred_at``) is the start.

The alert's name is the PagerDuty incident's title, so runbooks usually match on labels instead:
``service`` (the PagerDuty service's name), ``urgency``, ``priority``, ``pagerduty_service_id``.
PagerDuty signs deliveries with ``X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the body>``
(``api.sources`` checks it against the webhook HMAC secret).
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from paramedic.core.alerts import Alert, AlertStatus, Source
from paramedic.core.errors import PayloadError
from paramedic.ingest.common import expect_mapping, parse_time, text

FIRING = frozenset(
    {
        "incident.triggered",
        "incident.reopened",
        "incident.unacknowledged",
        "incident.acknowledged",
        "incident.escalated",
        "incident.delegated",
        "incident.reassigned",
        "incident.priority_updated",
    }
)
RESOLVED = "incident.resolved"


class Reference(TypedDict):
    id: str
    type: str
    summary: NotRequired[str]
    html_url: NotRequired[str]
    self: NotRequired[str]


class IncidentData(TypedDict):
    id: str
    type: str
    html_url: str
    number: int
    status: str
    incident_key: NotRequired[str | None]
    title: str
    urgency: str
    created_at: NotRequired[str]
    service: Reference
    priority: NotRequired[Reference | None]
    escalation_policy: NotRequired[Reference]


class Event(TypedDict):
    id: str
    event_type: str
    resource_type: str
    occurred_at: str
    agent: NotRequired[Reference | None]
    data: IncidentData


class PagerDutyWebhook(TypedDict):
    event: Event


def _ref_summary(value: Any, field: str) -> str:
    if value is None:
        return ""
    return text(expect_mapping(value, field).get("summary", ""), f"{field}.summary", limit=256)


def parse(payload: Any) -> list[Alert]:
    """Parse one webhook body; raise ``PayloadError`` naming the first bad field."""
    event = expect_mapping(expect_mapping(payload, "body").get("event"), "event")
    event_type = text(event.get("event_type"), "event.event_type", limit=128)
    if event.get("resource_type") != "incident" or (event_type not in FIRING and event_type != RESOLVED):
        return []
    data = expect_mapping(event.get("data"), "event.data")
    incident_id = text(data.get("id"), "event.data.id", limit=64)
    if not incident_id:
        raise PayloadError("event.data.id is empty", field="event.data.id")
    title = text(data.get("title", ""), "event.data.title", limit=1024) or f"PagerDuty incident {incident_id}"
    occurred = parse_time(event.get("occurred_at"), "event.occurred_at")
    starts = parse_time(data["created_at"], "event.data.created_at") if data.get("created_at") else occurred
    service = expect_mapping(data.get("service"), "event.data.service")
    labels = {
        "alertname": " ".join(title.split())[:256],
        "service": _ref_summary(service, "event.data.service"),
        "pagerduty_service_id": text(service.get("id", ""), "event.data.service.id", limit=64),
        "pagerduty_incident": incident_id,
        "urgency": text(data.get("urgency", ""), "event.data.urgency", limit=32),
        "priority": _ref_summary(data.get("priority"), "event.data.priority"),
    }
    number = data.get("number")
    if isinstance(number, int) and not isinstance(number, bool):
        labels["incident_number"] = str(number)
    annotations = {
        "summary": title,
        "pagerduty_url": text(data.get("html_url", ""), "event.data.html_url", limit=4096),
        "pagerduty_event": event_type,
        "incident_key": text(data.get("incident_key") or "", "event.data.incident_key", limit=1024),
        "agent": _ref_summary(event.get("agent"), "event.agent"),
    }
    resolved = event_type == RESOLVED
    return [
        Alert(
            source=Source.PAGERDUTY,
            fingerprint=f"pd-{incident_id}",
            name=labels["alertname"],
            status=AlertStatus.RESOLVED if resolved else AlertStatus.FIRING,
            starts_at=starts,
            ends_at=occurred if resolved else None,
            labels={k: v for k, v in labels.items() if v},
            annotations={k: v for k, v in annotations.items() if v},
            group_key=f"pagerduty:{labels['pagerduty_service_id']}",
            generator_url=annotations["pagerduty_url"],
        )
    ]
