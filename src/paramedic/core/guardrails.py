"""Guardrail decisions (DESIGN §4): may this action run now, and if not, why and until when?

Six checks run in a fixed order — pause, freeze, data quality, rate limit, blast radius, circuit
breaker — and every one is evaluated even after a refusal, so ``paramedic test`` can show each
verdict; the first refusal wins. Each verdict carries a one-line reason that says why, and when
the action would be allowed (``retry_at``, or ``None`` when that waits on an event, not time).

This module is pure. Inside ONE database transaction the store gathers the facts into a
``GuardrailInput``, calls ``decide`` and, if allowed, reserves the action and persists
``Decision.breaker``; that is what keeps the limits exact across concurrent alerts and replicas.
The store passes in, as plain data:

- ``recent_actions``: every executed action (in flight or finished) of ANY runbook started
  within ``action_lookback(guardrails)`` before ``now``, plus every action still in flight
  whatever its age. Scopes are filtered here, not in SQL.
- ``alert.episodes``: start times of earlier firing episodes of the same fingerprint, at least
  those within ``episode_lookback(require, default_flap)``.
- ``targets``: the known and healthy targets of the blast-radius scope, keyed by
  ``scope_key(labels, blast_radius.scope)``.
- ``breaker``: the state of the breaker keyed by (runbook, ``scope_key(labels, cb.scope)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import TypedDict
from urllib.parse import quote

from paramedic.core import breaker as _breaker
from paramedic.core.breaker import Admit, BreakerState, BreakerStatus
from paramedic.core.durations import format_duration
from paramedic.core.freeze import FreezeWindow, active_freeze, next_end
from paramedic.core.runbooks import BlastRadius, Flap, Guardrails, RateLimit, Require


class Check(StrEnum):
    """The guardrails, in the order they are evaluated."""

    PAUSED = "paused"
    FROZEN = "frozen"
    DATA_QUALITY = "data_quality"
    RATE_LIMIT = "rate_limit"
    BLAST_RADIUS = "blast_radius"
    CIRCUIT_BREAKER = "circuit_breaker"


class Refusal(StrEnum):
    """Reason codes written to the audit trail with a refusal."""

    PAUSED = "paused"
    FROZEN = "frozen"
    NOT_FIRING_LONG_ENOUGH = "not_firing_long_enough"
    FLAPPING = "flapping"
    STALE = "stale"
    MISSING_TELEMETRY = "missing_telemetry"
    RESOLVED = "resolved"  # the alert resolved: its pending actions are cancelled
    RATE_LIMITED = "rate_limited"
    BLAST_RADIUS = "blast_radius"
    CIRCUIT_OPEN = "circuit_open"


class Outcome(StrEnum):
    IN_FLIGHT = "in_flight"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def _aware(at: datetime, what: str) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (UTC)")


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRecord:
    """One executed action from the ledger. ``service`` defaults to ``labels["service"]``."""

    runbook: str
    target: str
    labels: Mapping[str, str] = field(default_factory=dict)
    started_at: datetime
    finished_at: datetime | None = None
    outcome: Outcome = Outcome.IN_FLIGHT
    service: str = ""

    def __post_init__(self) -> None:
        _aware(self.started_at, "ActionRecord.started_at")
        object.__setattr__(self, "outcome", Outcome(self.outcome))
        object.__setattr__(self, "labels", _frozen(self.labels))
        if not self.service:
            object.__setattr__(self, "service", self.labels.get("service", ""))
        if (self.outcome is Outcome.IN_FLIGHT) != (self.finished_at is None):
            raise ValueError("an action is in flight exactly when it has no finished_at")

    @property
    def in_flight(self) -> bool:
        return self.finished_at is None


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertFacts:
    """What the store knows about the alert the action remediates.

    ``first_seen_at`` is when paramedic first received this firing episode; ``episodes`` are
    the start times of earlier firing episodes (fired and resolved) of the same fingerprint.
    """

    firing: bool
    starts_at: datetime
    first_seen_at: datetime | None = None
    episodes: Sequence[datetime] = ()

    def __post_init__(self) -> None:
        _aware(self.starts_at, "AlertFacts.starts_at")
        object.__setattr__(self, "episodes", tuple(sorted(self.episodes)))

    @property
    def firing_since(self) -> datetime:
        """The source's ``startsAt``, but never later than when paramedic saw it firing: a
        sender's clock running ahead cannot hold the alert back forever."""
        if self.first_seen_at is None:
            return self.starts_at
        return min(self.starts_at, self.first_seen_at)


@dataclass(frozen=True, slots=True)
class TelemetryFact:
    """Whether one ``require.telemetry`` query returned data just before the decision. Absent is
    never zero: an empty result, or a Prometheus that did not answer, is missing data."""

    query: str
    has_data: bool
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetFacts:
    """Targets of the blast-radius scope. An empty ``known`` means unknown: always a refusal."""

    known: frozenset[str] = frozenset()
    healthy: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardrailInput:
    """Everything one decision needs; ``service`` defaults to ``labels["service"]``."""

    now: datetime
    runbook: str
    target: str
    alert: AlertFacts
    labels: Mapping[str, str] = field(default_factory=dict)
    service: str = ""
    paused: bool = False
    freeze: Sequence[FreezeWindow] = ()
    require: Require = field(default_factory=Require)
    guardrails: Guardrails = field(default_factory=Guardrails)
    default_flap: Flap = field(default_factory=Flap)
    recent_actions: Sequence[ActionRecord] = ()
    targets: TargetFacts = TargetFacts()
    breaker: BreakerState | None = None
    telemetry: Sequence[TelemetryFact] = ()  # one per rendered require.telemetry query
    recovery: bool = False  # the runbook's way back: its premise is that the alert resolved

    def __post_init__(self) -> None:
        _aware(self.now, "GuardrailInput.now")
        object.__setattr__(self, "telemetry", tuple(self.telemetry))
        object.__setattr__(self, "labels", _frozen(self.labels))
        object.__setattr__(self, "freeze", tuple(self.freeze))
        object.__setattr__(self, "recent_actions", tuple(self.recent_actions))
        if not self.service:
            object.__setattr__(self, "service", self.labels.get("service", ""))


class VerdictJSON(TypedDict):
    """``Verdict`` as the audit trail and the API show it."""

    check: str
    allowed: bool
    code: str | None
    reason: str
    retry_at: str | None


@dataclass(frozen=True, slots=True)
class Verdict:
    """One guardrail's answer. ``retry_at`` is the earliest time this check could allow the
    action (other checks aside); ``None`` when allowed or when it waits on an event."""

    check: Check
    allowed: bool
    code: Refusal | None
    reason: str
    retry_at: datetime | None = None

    def to_json(self) -> VerdictJSON:
        return VerdictJSON(
            check=self.check.value,
            allowed=self.allowed,
            code=self.code.value if self.code else None,
            reason=self.reason,
            retry_at=self.retry_at.isoformat() if self.retry_at else None,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """All verdicts, and the breaker state to persist when the action is reserved."""

    verdicts: tuple[Verdict, ...]
    breaker: BreakerState | None

    @property
    def refusal(self) -> Verdict | None:
        return first_refusal(self.verdicts)

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    @property
    def retry_at(self) -> datetime | None:
        """When every current refusal could have cleared, if all of them wait only on time."""
        times = [v.retry_at for v in self.verdicts if not v.allowed]
        if not times or any(t is None for t in times):
            return None
        return max(t for t in times if t is not None)


def first_refusal(verdicts: Sequence[Verdict]) -> Verdict | None:
    """The refusal that wins: the first in check order."""
    return next((v for v in verdicts if not v.allowed), None)


def scope_key(labels: Mapping[str, str], keys: Sequence[str]) -> str:
    """A stable key for a label scope, e.g. ``service=web,zone=a``; ``*`` for the whole fleet.

    Values are percent-encoded so that an untrusted label cannot forge another scope's key.
    """
    parts = [f"{quote(k, safe='')}={quote(labels.get(k, ''), safe='')}" for k in sorted(set(keys))]
    return ",".join(parts) or "*"


def action_lookback(guardrails: Guardrails) -> timedelta:
    """How far back the store must load finished actions (in-flight ones: all of them)."""
    spans = [timedelta(0)]
    if guardrails.rate_limit is not None:
        spans.append(guardrails.rate_limit.per)
    if guardrails.blast_radius is not None:
        spans.append(guardrails.blast_radius.window)
    return max(spans)


def episode_lookback(require: Require, default_flap: Flap) -> timedelta:
    """How far back the store must load earlier firing episodes of the alert."""
    return (require.flap or default_flap).window


# ---- wording ---------------------------------------------------------------------------------


def _span(delta: timedelta) -> str:
    """A configured span as people write it: ``30s``, ``1h``, ``1h30m``, ``2d``."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return format_duration(delta)
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out += f"{count}{unit}"
    return out


def _at(at: datetime, now: datetime) -> str:
    """``14:32:05 UTC (in 12m05s)``; the date is added when it is not today."""
    utc = at.astimezone(UTC)
    same_day = utc.date() == now.astimezone(UTC).date()
    clock = utc.strftime("%H:%M:%S UTC" if same_day else "%Y-%m-%d %H:%M:%S UTC")
    return f"{clock} (in {format_duration(at - now)})" if at > now else clock


def _allow(check: Check, reason: str) -> Verdict:
    return Verdict(check=check, allowed=True, code=None, reason=reason)


def _refuse(check: Check, code: Refusal, reason: str, retry_at: datetime | None = None) -> Verdict:
    return Verdict(check=check, allowed=False, code=code, reason=reason, retry_at=retry_at)


def _not_configured(check: Check, what: str) -> Verdict:
    return _allow(check, f"{what}: not configured")


# ---- the checks ------------------------------------------------------------------------------


def check_paused(inp: GuardrailInput) -> Verdict:
    if inp.paused:
        return _refuse(
            Check.PAUSED,
            Refusal.PAUSED,
            "automation is paused for every runbook (paramedic pause); allowed again after paramedic resume",
        )
    return _allow(Check.PAUSED, "automation is running (not paused)")


def check_frozen(inp: GuardrailInput) -> Verdict:
    if not inp.freeze:
        return _not_configured(Check.FROZEN, "change freeze")
    window = active_freeze(inp.freeze, inp.now)
    if window is None:
        return _allow(Check.FROZEN, f"no change freeze is active ({len(inp.freeze)} configured)")
    lifts = next_end(inp.freeze, inp.now)
    why = f" ({window.reason})" if window.reason else ""
    when = f"allowed again at {_at(lifts, inp.now)}" if lifts else "no end within a year"
    return _refuse(Check.FROZEN, Refusal.FROZEN, f"change freeze {window.name!r} is active{why}; {when}", lifts)


def check_data_quality(inp: GuardrailInput) -> Verdict:
    """Resolved, then flapping, then stale, then firing long enough: the most final first."""
    alert, now, req = inp.alert, inp.now, inp.require
    dq = Check.DATA_QUALITY
    if inp.recovery:
        return _allow(dq, "the way back: the alert resolved and stayed resolved, which is what this run waits for")
    if not alert.firing:
        return _refuse(
            dq,
            Refusal.RESOLVED,
            "data quality: the alert has already resolved, so its pending actions are cancelled",
        )
    flap = req.flap or inp.default_flap
    recent = [t for t in alert.episodes if now - flap.window < t <= now]
    if len(recent) > flap.max:
        calm_at = recent[len(recent) - flap.max - 1] + flap.window
        return _refuse(
            dq,
            Refusal.FLAPPING,
            f"data quality: flapping — the alert fired and resolved {len(recent)} times in the "
            f"last {_span(flap.window)} (more than {flap.max}); "
            f"allowed at {_at(calm_at, now)} if it stops flapping",
            calm_at,
        )
    since = alert.firing_since
    age = now - since
    if req.max_age is not None and age > req.max_age:
        return _refuse(
            dq,
            Refusal.STALE,
            f"data quality: stale — the alert has fired for {format_duration(age)}, longer than "
            f"require.max_age {_span(req.max_age)}; too old to remediate automatically",
        )
    if age < req.firing_for:
        ready = since + req.firing_for
        return _refuse(
            dq,
            Refusal.NOT_FIRING_LONG_ENOUGH,
            f"data quality: firing for {format_duration(max(age, timedelta(0)))}, "
            f"require.firing_for is {_span(req.firing_for)}; allowed at {_at(ready, now)}",
            ready,
        )
    if req.telemetry:
        missing = [t for t in inp.telemetry if not t.has_data]
        if not inp.telemetry or missing:
            what = (
                "; ".join(f"{t.query} ({t.detail or 'no data'})" for t in missing)
                if inp.telemetry
                else "the queries were not run"
            )
            return _refuse(
                dq,
                Refusal.MISSING_TELEMETRY,
                f"data quality: missing telemetry — {what}; paramedic does not act blind "
                "(absent data is never read as 0)",
            )
    max_age = f", under max_age {_span(req.max_age)}" if req.max_age is not None else ""
    return _allow(
        dq,
        f"data quality: firing for {format_duration(age)} (needs {_span(req.firing_for)}"
        f"{max_age}); {len(recent)} earlier episodes in {_span(flap.window)} "
        f"(flapping above {flap.max})"
        + (f"; {len(inp.telemetry)} telemetry queries returned data" if req.telemetry else ""),
    )


def _rate_scope(rl: RateLimit, inp: GuardrailInput) -> tuple[str, Callable[[ActionRecord], bool]]:
    if rl.scope == "runbook":
        return f"by runbook {inp.runbook}", lambda a: a.runbook == inp.runbook
    if rl.scope == "target":
        return f"on target {inp.target}", lambda a: a.target == inp.target
    if rl.scope == "service":
        return f"in service {inp.service or '(none)'}", lambda a: a.service == inp.service
    return "across all runbooks", lambda _a: True


def check_rate_limit(inp: GuardrailInput) -> Verdict:
    """At most ``max`` remediations (runs that took their reservation) in the scope within the
    sliding ``(now - per, now]``; each ledger record is one run."""
    rl = inp.guardrails.rate_limit
    if rl is None:
        return _not_configured(Check.RATE_LIMIT, "rate limit")
    what, in_scope = _rate_scope(rl, inp)
    starts = sorted(a.started_at for a in inp.recent_actions if in_scope(a) and a.started_at > inp.now - rl.per)
    head = f"rate limit: {len(starts)} of {rl.max} remediations {what} in the last {_span(rl.per)}"
    if len(starts) < rl.max:
        return _allow(Check.RATE_LIMIT, f"{head}; this one makes {len(starts) + 1}")
    # The window must shed its oldest actions until one slot is free.
    free_at = starts[len(starts) - rl.max] + rl.per
    return _refuse(
        Check.RATE_LIMIT,
        Refusal.RATE_LIMITED,
        f"{head}; next allowed at {_at(free_at, inp.now)}",
        free_at,
    )


def _fraction_limit(br: BlastRadius, known: int) -> int:
    # The epsilon keeps 0.57 * 100 from rounding down to 56 in binary floating point.
    return math.floor(br.max_fraction * known + 1e-9)


def check_blast_radius(inp: GuardrailInput) -> Verdict:
    br = inp.guardrails.blast_radius
    if br is None:
        return _not_configured(Check.BLAST_RADIUS, "blast radius")

    def refuse(reason: str, retry_at: datetime | None = None) -> Verdict:
        return _refuse(Check.BLAST_RADIUS, Refusal.BLAST_RADIUS, f"blast radius: {reason}", retry_at)

    missing = [k for k in br.scope if not inp.labels.get(k)]
    if missing:
        return refuse(f"the alert has no {', '.join(missing)} label, so the scope is unknown")
    scope = {k: inp.labels[k] for k in br.scope}
    where = ",".join(f"{k}={v}" for k, v in scope.items()) or "the whole fleet"
    known = inp.targets.known
    if not known:
        return refuse(
            f"the targets of {where} are unknown (none reported), so the share touched "
            "cannot be bounded; allowed once targets are known"
        )
    if inp.target not in known:
        return refuse(
            f"target {inp.target} is not one of the {len(known)} known targets of {where}; "
            "paramedic does not act on a target it does not know"
        )

    unhealthy = (known - inp.targets.healthy) | {inp.target}  # the alerting target counts, whatever its probe says
    allowed_unhealthy = br.unhealthy_limit(len(known))
    if allowed_unhealthy is not None and len(unhealthy) > allowed_unhealthy:
        return refuse(
            f"{len(unhealthy)} of {len(known)} targets of {where} are unhealthy at once, above "
            f"max_unhealthy {br.max_unhealthy} (at most {allowed_unhealthy}): the failure looks systemic "
            "(a shared dependency, not the instances), so nothing is remediated target by target; "
            "allowed again once fewer are unhealthy"
        )

    scoped = [a for a in inp.recent_actions if all(a.labels.get(k) == v for k, v in scope.items())]
    in_flight = [a for a in scoped if a.in_flight]
    last_touch: dict[str, datetime] = {}
    for a in scoped:
        if a.started_at > inp.now - br.window:
            last_touch[a.target] = max(a.started_at, last_touch.get(a.target, a.started_at))
    touched = set(last_touch) | {inp.target}
    limit = _fraction_limit(br, len(known))
    # A target being acted on is not counted as healthy, even if its last probe said so.
    healthy = (inp.targets.healthy & known) - {inp.target} - {a.target for a in in_flight}

    problems: list[tuple[str, datetime | None]] = []
    if len(in_flight) >= br.max_concurrent:
        busy = ", ".join(sorted({a.target for a in in_flight}))
        problems.append(
            (
                f"{len(in_flight)} of {br.max_concurrent} concurrent actions already in flight "
                f"in {where} (on {busy}); allowed once one finishes",
                None,
            )
        )
    if len(touched) > limit:
        expiries = sorted(t + br.window for tgt, t in last_touch.items() if tgt != inp.target)
        shed = len(expiries) + 1 - limit
        share = (
            f"acting on {inp.target} would make {len(touched)} of {len(known)} targets of "
            f"{where} touched within {_span(br.window)}, above max_fraction {br.max_fraction:g} "
            f"(at most {limit})"
        )
        if limit >= 1 and 0 < shed <= len(expiries):
            problems.append((f"{share}; next allowed at {_at(expiries[shed - 1], inp.now)}", expiries[shed - 1]))
        else:
            problems.append((f"{share}; raise max_fraction or add targets", None))
    if len(healthy) < br.min_healthy:
        problems.append(
            (
                f"only {len(healthy)} of {len(known)} targets of {where} would stay healthy, "
                f"min_healthy is {br.min_healthy}; allowed once more targets are healthy",
                None,
            )
        )
    if problems:
        times = [t for _, t in problems]
        retry = None if any(t is None for t in times) else max(t for t in times if t is not None)
        return refuse("; ".join(msg for msg, _ in problems), retry)
    return _allow(
        Check.BLAST_RADIUS,
        f"blast radius: {where}: {len(in_flight)} of {br.max_concurrent} concurrent in flight; "
        f"{len(touched)} of at most {limit} targets touched within {_span(br.window)} counting "
        f"this one; {len(healthy)} of {len(known)} stay healthy (min {br.min_healthy})"
        + (
            f"; {len(unhealthy)} unhealthy at once (max_unhealthy {br.max_unhealthy})"
            if br.max_unhealthy is not None
            else ""
        ),
    )


def _check_breaker(inp: GuardrailInput) -> tuple[Verdict, BreakerState | None]:
    cfg = inp.guardrails.circuit_breaker
    if cfg is None:
        return _not_configured(Check.CIRCUIT_BREAKER, "circuit breaker"), inp.breaker
    state = inp.breaker or BreakerState()
    adm = _breaker.admit(state, cfg, inp.now)
    cb, now = Check.CIRCUIT_BREAKER, inp.now
    recent = [t for t in state.failures if t > now - cfg.window]
    if adm.why is Admit.CLOSED:
        verdict = _allow(
            cb,
            f"circuit breaker closed: {len(recent)} failed verifications in the last "
            f"{_span(cfg.window)} (opens at {cfg.failures})",
        )
    elif adm.why is Admit.TRIAL:
        verdict = _allow(
            cb,
            f"circuit breaker half-open: this run is the one trial after the {_span(cfg.cooldown)} "
            "cooldown; success closes the breaker, failure re-opens it",
        )
    elif adm.why is Admit.OPEN:
        opened = _at(state.opened_at, now) if state.opened_at else "?"
        retry = adm.retry_at
        when = _at(retry, now) if retry else "?"
        verdict = _refuse(
            cb,
            Refusal.CIRCUIT_OPEN,
            f"circuit breaker open since {opened} ({len(recent)} failed verifications in the "
            f"last {_span(cfg.window)}); one trial run allowed at {when}",
            retry,
        )
    else:
        started = _at(state.trial_started_at, now) if state.trial_started_at else "?"
        verdict = _refuse(
            cb,
            Refusal.CIRCUIT_OPEN,
            f"circuit breaker half-open: its one trial run (started {started}) is still in "
            "flight; allowed once that trial succeeds",
        )
    return verdict, adm.state


def check_circuit_breaker(inp: GuardrailInput) -> Verdict:
    return _check_breaker(inp)[0]


def decide(inp: GuardrailInput) -> Decision:
    """Every verdict, plus the breaker state to persist if the action is reserved (a half-open
    breaker records its one trial; otherwise the state comes back unchanged)."""
    breaker_verdict, admitted = _check_breaker(inp)
    verdicts = (
        check_paused(inp),
        check_frozen(inp),
        check_data_quality(inp),
        check_rate_limit(inp),
        check_blast_radius(inp),
        breaker_verdict,
    )
    allowed = first_refusal(verdicts) is None
    return Decision(verdicts=verdicts, breaker=admitted if allowed else inp.breaker)


def decide_held(inp: GuardrailInput) -> Decision:
    """The verdicts for a later step of a run that already holds its reservation.

    A run reserves its budget once, before its first step: data quality, the rate limit (one
    remediation), the blast radius (one action in flight) and the breaker's admission are spent
    then, so a later step is never refused by its own run's count. Only two things stop a run
    that has started: a human's pause, and a breaker another run opened since. The runner then
    takes the same path as a failed step (undo, or name what was left). The breaker state comes
    back unchanged: a held step does not take the half-open breaker's one trial.
    """
    full = decide(inp)
    breaker_open = inp.breaker is not None and inp.breaker.status is BreakerStatus.OPEN
    verdicts = tuple(
        v
        if v.check is Check.PAUSED or (v.check is Check.CIRCUIT_BREAKER and breaker_open)
        else _allow(v.check, f"{v.check.value}: held by this run's reservation, taken before its first step")
        for v in full.verdicts
    )
    return Decision(verdicts=verdicts, breaker=inp.breaker)


def evaluate(inp: GuardrailInput) -> list[Verdict]:
    """One verdict per check, in ``Check`` order; the first refusal wins (``first_refusal``)."""
    return list(decide(inp).verdicts)
