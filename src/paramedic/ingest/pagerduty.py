"""PagerDuty webhook (v3, "Generic Webhooks (v3)" subscriptions) → ``list[Alert]``.

One delivery carries one ``event``. Only incident events become alerts: ``incident.triggered``,
``incident.reopened``, ``incident.unacknowledged``, ``incident.acknowledged``,
``incident.escalated``, ``incident.delegated``, ``incident.reassigned`` and
``incident.priority_updated`` say the incident is open (firing); ``incident.resolved`` resolves it.
Other event types (annotations, responders, status updates, service events) change nothing and
give an empty list. The PagerDuty incident's id is the fingerprint, so every event of one PagerDuty
incident updates one paramedic incident; its ``created_at`` (else ``occurred_at``) is the start.
``incident.reopened`` opens a new episode (a new paramedic incident) starting at its ``occurred_at``.
A title longer than 1,024 characters is cut there (the ellipsis marks it).

Paramedic's own escalations come back here when a PagerDuty sink and this webhook serve one
PagerDuty service: their ``incident_key`` is the sink's ``dedup_key`` (``<dedup_prefix>-incident-<id>``).
``read`` returns such an event as an ``Echo``, linked to paramedic's incident, never a new incident
(which would be escalated to PagerDuty again, and come back again).

``read`` is what the webhook uses: a body that is not ``{"event": {"event_type": …}}`` is refused;
an incident event that fails a check becomes an unreadable alert (``ingest.common``).

The alert's name is the PagerDuty incident's title, so runbooks usually match on labels instead:
``service`` (the PagerDuty service's name), ``urgency``, ``priority``, ``pagerduty_service_id``.
PagerDuty signs deliveries with ``X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the body>``
(``api.sources`` checks it against the webhook HMAC secret).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NotRequired, TypedDict

from paramedic.core.alerts import Alert, AlertStatus, Echo, Source
from paramedic.core.errors import PayloadError
from paramedic.ingest.common import (
    Batch,
    Problem,
    clean,
    expect_mapping,
    parse_time,
    storable,
    text,
    unreadable_alert,
)

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
REOPENED = "incident.reopened"
MAX_TITLE = 1024


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


def _title(data: Mapping[str, Any], incident_id: str) -> str:
    """The incident's title, cut to 1,024 characters (the Events API's limit for a summary; an
    incident made through the REST API or the web may have a longer one)."""
    raw = data.get("title", "")
    if not isinstance(raw, str):
        raise PayloadError("event.data.title must be a string", field="event.data.title", reason=Problem.BAD_TYPE)
    if len(raw) > MAX_TITLE:
        raw = raw[: MAX_TITLE - 1] + "…"
    return text(raw, "event.data.title") or f"PagerDuty incident {incident_id}"


def parse(payload: Any) -> list[Alert]:
    """Parse one webhook body strictly; raise ``PayloadError`` naming the first bad field."""
    event, event_type = _envelope(payload)
    return [] if event is None else [_alert(event, event_type)]


def read(payload: Any, *, now: datetime, own_prefixes: Sequence[str] = ()) -> Batch:
    """Read one delivery as the webhook does: ``PayloadError`` only when the body is not an
    ``event`` object with an ``event_type``; an incident event that fails a check becomes an
    unreadable alert; an event about paramedic's own escalation (``incident_key`` starting with one
    of ``own_prefixes``, the PagerDuty sinks' ``dedup_prefix``) is an ``Echo``."""
    event, event_type = _envelope(payload)
    if event is None:
        return Batch()
    data = event.get("data")
    key = data.get("incident_key") if isinstance(data, Mapping) else None
    if isinstance(key, str) and (echo := _echo(event, event_type, key, own_prefixes)) is not None:
        return Batch(echoes=[echo])
    try:
        return Batch([_alert(event, event_type)])
    except PayloadError as exc:
        identity = data.get("id") if isinstance(data, Mapping) else None
        alert = unreadable_alert(
            event,
            exc,
            source=Source.PAGERDUTY,
            now=now,
            identity=f"pd-{identity}" if isinstance(identity, str) else None,
        )
        return Batch([alert])


def _echo(event: Mapping[str, Any], event_type: str, key: str, prefixes: Sequence[str]) -> Echo | None:
    prefix = next((p for p in prefixes if p and key.startswith(f"{p}-")), None)
    if prefix is None:
        return None
    rest = key[len(prefix) + 1 :]
    number = rest.removeprefix("incident-")
    data = event["data"]
    pd_id, url = data.get("id"), data.get("html_url")
    agent = event.get("agent")
    return Echo(
        source=Source.PAGERDUTY,
        incident_key=clean(key)[:255],
        incident_id=int(number) if rest.startswith("incident-") and number.isdigit() and len(number) < 18 else None,
        event_type=event_type,
        pagerduty_incident=clean(pd_id)[:64] if isinstance(pd_id, str) else "",
        url=clean(url)[:4096] if isinstance(url, str) else "",
        agent=clean(agent["summary"])[:256]
        if isinstance(agent, Mapping) and isinstance(agent.get("summary"), str)
        else "",
    )


def _envelope(payload: Any) -> tuple[Mapping[str, Any] | None, str]:
    """The incident event of a delivery, or ``None`` for an event that changes nothing."""
    body = expect_mapping(payload, "body")
    event = body.get("event")
    if not isinstance(event, Mapping):
        raise PayloadError("event must be a JSON object", field="event", reason=Problem.BAD_ENVELOPE)
    event_type = event.get("event_type")
    if not isinstance(event_type, str) or not storable(event_type) or len(event_type) > 128:
        raise PayloadError("event.event_type must be a string", field="event.event_type", reason=Problem.BAD_ENVELOPE)
    if event.get("resource_type") != "incident" or (event_type not in FIRING and event_type != RESOLVED):
        return None, event_type
    return event, event_type


def _alert(event: Mapping[str, Any], event_type: str) -> Alert:
    data = expect_mapping(event.get("data"), "event.data")
    incident_id = text(data.get("id"), "event.data.id", limit=64)
    if not incident_id:
        raise PayloadError("event.data.id is empty", field="event.data.id", reason=Problem.MISSING_ALERTNAME)
    title = _title(data, incident_id)
    occurred = parse_time(event.get("occurred_at"), "event.occurred_at")
    starts = parse_time(data["created_at"], "event.data.created_at") if data.get("created_at") else occurred
    if event_type in (REOPENED, RESOLVED):
        # A reopened incident is a new episode (a new page after it resolved); a resolution applies
        # to whichever episode is open. Later events of a reopened incident still carry the first
        # ``created_at``: older than the open episode, they change nothing (``late``).
        starts = occurred
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
    return Alert(
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
