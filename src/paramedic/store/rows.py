"""Typed rows the repositories return (never bare dicts past the store boundary)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class IncidentRow:
    id: int
    source: str
    fingerprint: str
    starts_at: datetime
    group_key: str
    alertname: str
    service: str
    severity: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    status: str
    runbooks: list[str]
    handled_by: str
    deliveries: int
    first_seen_at: datetime
    last_seen_at: datetime
    acknowledged_at: datetime | None
    mitigated_at: datetime | None
    escalated_at: datetime | None
    resolved_at: datetime | None
    ends_at: datetime | None
    generator_url: str
    acknowledged_by: str | None = None
    assignee: str | None = None
    assignee_kind: str | None = None
    snoozed_until: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None
    owner: str | None = None

    @classmethod
    def of(cls, row: Any) -> IncidentRow:
        m = row._mapping
        return cls(**{k: m[k] for k in cls.__slots__ if k != "__weakref__"})


@dataclass(frozen=True, slots=True)
class RunRow:
    id: int
    incident_id: int
    runbook: str
    mode: str
    status: str
    plan: Mapping[str, Any]
    plan_digest: str
    target: str
    service: str
    current_step: int
    phase: str
    attempts: int
    lease_owner: str | None
    lease_until: datetime | None
    reason: str
    created_at: datetime
    updated_at: datetime
    approval_expires_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> RunRow:
        m = row._mapping
        return cls(**{k: m[k] for k in cls.__slots__})


@dataclass(frozen=True, slots=True)
class StepRow:
    id: int
    run_id: int
    idx: int
    action: str
    args: Mapping[str, Any]
    idempotent: bool
    status: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    summary: str
    output: str
    error: str
    reason: str
    undo: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, row: Any) -> StepRow:
        m = row._mapping
        return cls(**{k: m[k] for k in cls.__slots__})


@dataclass(frozen=True, slots=True)
class IngestResult:
    fingerprint: str
    delivery: str
    incident_id: int | None
    runs: list[int] = field(default_factory=list)
