"""Alert history as the backtest and ``paramedic candidates`` read it: a list of ``Episode``.

An episode is one firing interval of one alert: its labels, when it started firing, when paramedic
would first have seen it, and when it resolved (``None`` while still firing at the end of the
period). The readers turn their source into episodes — Prometheus ``ALERTS`` (``history_prometheus``),
paramedic's own incidents (``history_store``), folders of recorded payloads (``history_recorded``)
— and ``read`` picks one from a ``--from`` argument. Nothing here acts on anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from paramedic.core.alerts import Alert, AlertStatus, fingerprint_of
from paramedic.core.durations import parse_duration
from paramedic.core.errors import ParamedicError


class HistoryError(ParamedicError):
    """A history source that cannot be read; the message says which and what to do."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Episode:
    """One firing interval of one alert. Labels are untrusted text, as every alert's are.

    ``seen_at`` is when paramedic would have received the first firing delivery (``starts_at``
    plus the delivery delay for Prometheus; the recorded time for payloads and incidents).
    ``acknowledged_at`` and ``handled_by`` are known only for paramedic's own incidents.
    """

    key: str  # unique within one history, stable across runs of the same source
    source: str
    name: str
    labels: Mapping[str, str]
    starts_at: datetime
    seen_at: datetime
    ends_at: datetime | None = None
    fingerprint: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)
    ended_seen_at: datetime | None = None  # when the resolution arrived; defaults to ends_at
    acknowledged_at: datetime | None = None
    handled_by: str = ""

    def __post_init__(self) -> None:
        for what in ("starts_at", "seen_at"):
            at = getattr(self, what)
            if at.tzinfo is None:
                raise ValueError(f"Episode.{what} must be timezone-aware (UTC)")
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        object.__setattr__(self, "annotations", MappingProxyType(dict(self.annotations)))
        if self.ended_seen_at is None and self.ends_at is not None:
            object.__setattr__(self, "ended_seen_at", max(self.ends_at, self.seen_at))
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", fingerprint_of(self.name, self.labels))

    @property
    def duration(self) -> timedelta | None:
        return None if self.ends_at is None else self.ends_at - self.starts_at

    def alert(self, *, firing: bool = True) -> Alert:
        """The alert a delivery of this episode carries (firing, or its resolution)."""
        return Alert(
            source=self.source,
            fingerprint=self.fingerprint,
            name=self.name,
            status=AlertStatus.FIRING if firing else AlertStatus.RESOLVED,
            starts_at=self.starts_at,
            labels=self.labels,
            annotations=self.annotations,
            ends_at=None if firing else self.ends_at,
        )


@dataclass(frozen=True, slots=True)
class Period:
    """The half-open period ``[start, end)`` a history covers."""

    start: datetime
    end: datetime

    @classmethod
    def since(cls, since: str, *, now: datetime, until: datetime | None = None) -> Period:
        """``--since 30d`` (a duration before ``until``/now) or an ISO 8601 time."""
        end = until or now
        try:
            start = end - parse_duration(since)
        except ValueError:
            try:
                start = datetime.fromisoformat(since.replace("Z", "+00:00"))
            except ValueError:
                raise HistoryError(f"--since {since!r}: give a duration like 30d or 12h, or an ISO 8601 time") from None
            start = start if start.tzinfo else start.replace(tzinfo=UTC)
        if start >= end:
            raise HistoryError(f"--since {since!r} starts at {start.isoformat()}, not before the end {end.isoformat()}")
        return cls(start, end)

    def __contains__(self, at: object) -> bool:
        return isinstance(at, datetime) and self.start <= at < self.end


def within(episodes: list[Episode], period: Period) -> list[Episode]:
    """The episodes that started firing in the period, in order of when paramedic saw them."""
    return sorted((e for e in episodes if e.starts_at in period), key=lambda e: (e.seen_at, e.key))


@dataclass(frozen=True, slots=True)
class History:
    """What a reader found: the episodes, and one line per input it had to skip."""

    episodes: list[Episode]
    warnings: list[str] = field(default_factory=list)
