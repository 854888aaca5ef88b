"""The normalised alert every source is converted into, once, at the ingest edge."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Source(StrEnum):
    ALERTMANAGER = "alertmanager"
    GRAFANA = "grafana"
    PAGERDUTY = "pagerduty"
    GENERIC = "generic"
    PROBE = "probe"


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class Unreadable:
    """Why paramedic could not read an alert of a delivery, and the alert as it came.

    Such an alert is stored as an incident of its own and escalated to a human; it is never matched
    to a runbook. ``raw`` is the alert as JSON text with every non-ASCII character escaped, so it can
    be stored and read back whatever the sender put in it."""

    error: str
    field: str
    reason: str
    raw: str


@dataclass(frozen=True, slots=True)
class Echo:
    """An event about a notification paramedic itself sent, come back through a webhook (PagerDuty:
    an incident whose ``incident_key`` is the ``dedup_key`` paramedic sent,
    ``<dedup_prefix>-incident-<id>``). It is linked to that paramedic incident (``incident_id``;
    ``None`` when the key names none) and never opens an incident of its own, which would be
    escalated to the sender again: a paging loop."""

    source: str
    incident_key: str
    incident_id: int | None
    event_type: str
    pagerduty_incident: str
    url: str
    agent: str


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as paramedic sees it. Labels and annotations are untrusted text."""

    source: str
    fingerprint: str
    name: str
    status: AlertStatus
    starts_at: datetime
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    ends_at: datetime | None = None
    group_key: str = ""
    generator_url: str = ""
    unreadable: Unreadable | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen(self.labels))
        object.__setattr__(self, "annotations", _frozen(self.annotations))
        if self.starts_at.tzinfo is None:
            object.__setattr__(self, "starts_at", self.starts_at.replace(tzinfo=UTC))

    @property
    def service(self) -> str:
        return self.labels.get("service", "")

    @property
    def firing(self) -> bool:
        return self.status is AlertStatus.FIRING


def fingerprint_of(name: str, labels: Mapping[str, str]) -> str:
    """A stable fingerprint from the alert name and its sorted labels (for sources without one)."""
    h = hashlib.sha256(name.encode())
    for key in sorted(labels):
        h.update(b"\x00" + key.encode() + b"\x01" + labels[key].encode())
    return h.hexdigest()[:16]
