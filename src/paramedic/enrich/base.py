"""The collector protocol and the values that cross it.

An evidence collector answers one question an on-call engineer asks when paged — what do the
metrics show, what do the logs say, what changed, what state is the target in — for one incident.
The engine (``engine.enrichment``) calls every collector of an incident concurrently under a time
budget and stores what each returns as one ``evidence`` row.

A collector takes one frozen ``EnrichRequest`` (so fields can be added later) and returns one
``Evidence``. A collector that cannot answer raises ``CollectError`` with a sentence a human can
act on; the engine records it as ``failed`` evidence, and records ``timeout`` when the collector
overran its time. Collectors never import the engine, the store or the executors: whatever they
need from those layers (rows of the ``changes`` table, an executor's ``read_state``, a supervisord
connection) is passed in as a callable by the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from paramedic.core.durations import parse_duration
from paramedic.core.errors import ParamedicError


class EvidenceStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"


class CollectError(ParamedicError):
    """A collector could not gather its evidence; the message says why, for the on-call human."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """What one collector found. ``body`` is markdown whose first line is a one-line headline
    (the incident summary shows only that line); ``data`` is JSON-able; ``image`` is a PNG."""

    kind: str
    title: str
    status: EvidenceStatus
    body: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    image: bytes | None = None

    @property
    def headline(self) -> str:
        return self.body.strip().splitlines()[0] if self.body.strip() else ""

    @classmethod
    def failed(cls, kind: str, title: str, reason: str, *, data: Mapping[str, Any] | None = None) -> Evidence:
        return cls(kind, title, EvidenceStatus.FAILED, reason, dict(data or {}))

    @classmethod
    def timed_out(cls, kind: str, title: str, seconds: float) -> Evidence:
        return cls(kind, title, EvidenceStatus.TIMEOUT, f"no answer within {seconds:g}s", {"timeout_s": seconds})


@dataclass(frozen=True, slots=True)
class Mark:
    """A moment to mark on a chart: the alert firing, an action paramedic took, a deploy."""

    at: datetime
    label: str
    kind: str  # alert | action | mitigated | change


@dataclass(frozen=True, slots=True)
class EnrichRequest:
    """One collector call: the incident's facts, the collector's own options, and the time."""

    incident_id: int
    alertname: str
    labels: Mapping[str, str]
    starts_at: datetime
    now: datetime
    options: Mapping[str, Any]
    marks: tuple[Mark, ...] = ()

    @property
    def service(self) -> str:
        return self.labels.get("service", "")


class Collector(Protocol):
    """Gathers one kind of evidence. ``kind`` is the key used in runbook ``enrich`` specs."""

    kind: str

    def title(self, request: EnrichRequest) -> str:
        """The evidence title, known before collecting (a failed collector keeps it)."""
        ...

    async def collect(self, request: EnrichRequest) -> Evidence:
        """Gather the evidence; raise ``CollectError`` when it cannot be gathered."""
        ...


def fenced(lines: list[str] | str, lang: str = "") -> str:
    """A markdown code block that the content cannot close early (untrusted log text)."""
    text = lines if isinstance(lines, str) else "\n".join(lines)
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def option_int(options: Mapping[str, Any], key: str, default: int, *, low: int, high: int) -> int:
    """An integer option within bounds, or ``CollectError`` naming it."""
    raw = options.get(key, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise CollectError(f"{key} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise CollectError(f"{key} must be between {low} and {high}, not {value}")
    return value


def number(value: float) -> str:
    """A short human form of a metric value: 0.0123, 4.2, 1.3k, 2.1M."""
    if value != value:  # NaN
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    magnitude = abs(value)
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            return f"{value / limit:.4g}{suffix}"
    return f"{value:.4g}"


def option_range(options: Mapping[str, Any], *, default: timedelta, maximum: timedelta, label: str) -> timedelta:
    """The ``range`` option, between 10s and ``maximum`` (said as ``label``), or ``CollectError``."""
    try:
        rng = parse_duration(options.get("range", default))
    except ValueError as exc:
        raise CollectError(f"range: {exc}") from None
    if not timedelta(seconds=10) <= rng <= maximum:
        raise CollectError(f"range must be between 10s and {label}")
    return rng
