"""The circuit breaker of DESIGN §4, as pure state transitions.

One breaker exists per (runbook, scope key); the store keeps its ``BreakerState`` in a row and
passes it in. ``failures`` failed verifications within ``window`` open the breaker. After
``cooldown`` exactly one trial run is admitted (half-open): its success closes the breaker, its
failure re-opens it for a new cooldown. ``reset()`` closes it by hand (``paramedic breaker reset``).

Nothing here reads the clock: every transition takes ``now``. The caller persists the returned
state in the same transaction as the action it admits, and uses ``tripped(before, after)`` to
know when to demote the runbook (core.trust) and notify a human.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import TypedDict

from paramedic.core.runbooks import CircuitBreaker


class BreakerStatus(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerJSON(TypedDict):
    """``BreakerState`` as the store keeps it in a JSON column (ISO 8601 instants)."""

    status: str
    failures: list[str]
    opened_at: str | None
    trial_started_at: str | None


def _instant(text: object) -> datetime:
    if not isinstance(text, str):
        raise ValueError(f"breaker state: expected an ISO 8601 instant, got {text!r}")
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise ValueError(f"breaker state: instant {text!r} has no time zone")
    return at


def _maybe_instant(text: object) -> datetime | None:
    return None if text is None else _instant(text)


@dataclass(frozen=True, slots=True)
class BreakerState:
    """The persisted state of one breaker; ``BreakerState()`` is a fresh, closed breaker.

    ``failures`` holds the times of recent failed verifications (pruned to the window).
    ``trial_started_at`` is set while the single half-open trial run is in flight; results of
    actions that started before it belong to older runs and never close the breaker.
    """

    status: BreakerStatus = BreakerStatus.CLOSED
    failures: tuple[datetime, ...] = ()
    opened_at: datetime | None = None
    trial_started_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.status is not BreakerStatus.CLOSED and self.opened_at is None:
            raise ValueError(f"a {self.status} breaker needs opened_at")
        if self.trial_started_at is not None and self.status is not BreakerStatus.HALF_OPEN:
            raise ValueError("only a half-open breaker has a trial in flight")

    @property
    def trial_in_flight(self) -> bool:
        return self.trial_started_at is not None

    def to_json(self) -> BreakerJSON:
        return BreakerJSON(
            status=self.status.value,
            failures=[t.isoformat() for t in self.failures],
            opened_at=self.opened_at.isoformat() if self.opened_at else None,
            trial_started_at=self.trial_started_at.isoformat() if self.trial_started_at else None,
        )

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> BreakerState:
        """The inverse of ``to_json``; raises ``ValueError`` on a row that does not fit."""
        failures = data.get("failures", [])
        if not isinstance(failures, list):
            raise ValueError("breaker state: failures must be a list")
        return cls(
            status=BreakerStatus(str(data.get("status", BreakerStatus.CLOSED))),
            failures=tuple(_instant(t) for t in failures),
            opened_at=_maybe_instant(data.get("opened_at")),
            trial_started_at=_maybe_instant(data.get("trial_started_at")),
        )

    def reopens_at(self, cfg: CircuitBreaker) -> datetime | None:
        """When an open breaker admits its trial run; ``None`` unless it is open."""
        if self.status is not BreakerStatus.OPEN or self.opened_at is None:
            return None
        return self.opened_at + cfg.cooldown


class Admit(StrEnum):
    """Why ``admit`` decided as it did; ``guardrails`` turns it into a sentence."""

    CLOSED = "closed"
    TRIAL = "trial"
    OPEN = "open"
    TRIAL_IN_FLIGHT = "trial_in_flight"


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of ``admit``: ``state`` is what to persist if the action is reserved."""

    allowed: bool
    why: Admit
    state: BreakerState
    retry_at: datetime | None = None


def _recent(failures: tuple[datetime, ...], cfg: CircuitBreaker, now: datetime) -> tuple[datetime, ...]:
    return tuple(sorted(t for t in failures if t > now - cfg.window))


def admit(state: BreakerState, cfg: CircuitBreaker, now: datetime) -> Admission:
    """May one more action run under this breaker at ``now``?

    A half-open breaker admits exactly one trial: the returned state records it as in flight,
    so a second ``admit`` on that state refuses until ``on_result`` reports the trial's outcome.
    """
    if state.status is BreakerStatus.CLOSED:
        return Admission(allowed=True, why=Admit.CLOSED, state=state)
    if state.trial_in_flight:
        return Admission(allowed=False, why=Admit.TRIAL_IN_FLIGHT, state=state)
    reopens = state.reopens_at(cfg)
    if reopens is not None and now < reopens:
        return Admission(allowed=False, why=Admit.OPEN, state=state, retry_at=reopens)
    trial = replace(state, status=BreakerStatus.HALF_OPEN, trial_started_at=now)
    return Admission(allowed=True, why=Admit.TRIAL, state=trial)


def on_result(
    state: BreakerState,
    cfg: CircuitBreaker,
    *,
    succeeded: bool,
    now: datetime,
    started_at: datetime | None = None,
) -> BreakerState:
    """Fold one verification result into the breaker.

    ``started_at`` is when the verified action started; pass it so that a late result of an
    action admitted before the breaker opened is not mistaken for the half-open trial.
    """
    failures = _recent((*state.failures, now) if not succeeded else state.failures, cfg, now)
    is_trial = state.trial_started_at is not None and (started_at is None or started_at >= state.trial_started_at)
    if is_trial:
        if succeeded:
            return BreakerState()
        return BreakerState(status=BreakerStatus.OPEN, failures=failures, opened_at=now)
    if state.status is BreakerStatus.CLOSED and len(failures) >= cfg.failures:
        return BreakerState(status=BreakerStatus.OPEN, failures=failures, opened_at=now)
    # Open, or half-open waiting for its trial: an older run's result only updates the record.
    return replace(state, failures=failures)


def tripped(before: BreakerState, after: BreakerState) -> bool:
    """Did this transition open the breaker (from closed, or by a failed trial)?

    A trip demotes the runbook one mode (DESIGN §3.1) and notifies a human.
    """
    return after.status is BreakerStatus.OPEN and before.status is not BreakerStatus.OPEN


def reset() -> BreakerState:
    """Close the breaker by hand and forget its failures (``paramedic breaker reset``)."""
    return BreakerState()
