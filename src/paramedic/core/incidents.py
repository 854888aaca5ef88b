"""Incident states and the pure decision of what one alert delivery does to them.

An open incident is keyed by (source, fingerprint). A repeated delivery updates it; the same alert
firing again after it resolved (a new ``starts_at``) opens a new incident; a late, out-of-order
delivery of an episode that already ended changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from paramedic.core.alerts import Alert


class IncidentStatus(StrEnum):
    OPEN = "open"  # seen, nothing decided yet or enrichment only
    AWAITING_APPROVAL = "awaiting_approval"
    REMEDIATING = "remediating"
    MITIGATED = "mitigated"  # verification passed; the alert may still be firing
    ESCALATED = "escalated"  # a human has to act
    RESOLVED = "resolved"  # the alert resolved

    @property
    def is_open(self) -> bool:
        return self is not IncidentStatus.RESOLVED


class Delivery(StrEnum):
    CREATED = "created"
    UPDATED = "updated"  # a repeated delivery of an open incident
    RESOLVED = "resolved"  # this delivery resolved an open incident
    LATE = "late"  # belongs to an episode that already ended: ignored
    UNKNOWN_RESOLVED = "unknown_resolved"  # a resolution for an alert never seen firing
    LINKED = "linked"  # an event about paramedic's own notification, linked to its incident (never a new one)


@dataclass(frozen=True, slots=True)
class Episode:
    """The stored facts the decision needs about the incident of this (source, fingerprint)."""

    incident_id: int
    starts_at: datetime
    open: bool


def decide(alert: Alert, *, open_episode: Episode | None, same_start_seen: bool) -> Delivery:
    """What a delivery of ``alert`` does, given the open incident (if any) of its fingerprint and
    whether an episode with the same ``starts_at`` was already recorded."""
    if open_episode is not None:
        if alert.starts_at < open_episode.starts_at:
            return Delivery.LATE  # an older episode's delivery arriving after a newer one opened
        return Delivery.UPDATED if alert.firing else Delivery.RESOLVED
    if same_start_seen:
        return Delivery.LATE
    return Delivery.CREATED if alert.firing else Delivery.UNKNOWN_RESOLVED
