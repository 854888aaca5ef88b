"""Properties of the guardrails under any sequence of alerts, outcomes and clock steps.

A simulated loop plays the store's part: gather the facts the way DESIGN §4 says (only the
actions within ``action_lookback`` plus those in flight), ``decide``, reserve the action if
allowed, later finish it with a random outcome and fold that into the breaker. Whatever
hypothesis throws at it, the executed actions must respect every limit in every window.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from hypothesis import given, settings
from hypothesis import strategies as st

from paramedic.core import breaker
from paramedic.core.breaker import BreakerState, BreakerStatus
from paramedic.core.guardrails import (
    ActionRecord,
    AlertFacts,
    Check,
    GuardrailInput,
    Outcome,
    Refusal,
    TargetFacts,
    action_lookback,
    decide,
    evaluate,
    first_refusal,
    scope_key,
)
from paramedic.core.runbooks import BlastRadius, CircuitBreaker, Guardrails, RateLimit

T0 = datetime(2024, 5, 3, 12, 0, tzinfo=UTC)
SERVICES = {
    "web": tuple(f"web-{i}" for i in range(1, 6)),
    "db": ("db-1", "db-2"),
}
TARGETS = tuple((svc, t) for svc, ts in SERVICES.items() for t in ts)
RUNBOOKS = ("restart", "drain")
EPSILON = 1e-9

minutes = st.integers(min_value=1, max_value=120).map(lambda m: timedelta(minutes=m))


@st.composite
def guardrails(draw: st.DrawFn) -> Guardrails:
    return Guardrails(
        rate_limit=RateLimit(
            max=draw(st.integers(1, 4)),
            per=draw(minutes),
            scope=draw(st.sampled_from(["runbook", "target", "service", "global"])),
        ),
        blast_radius=BlastRadius(
            scope=["service"],
            max_concurrent=draw(st.integers(1, 3)),
            max_fraction=draw(st.sampled_from([0.2, 0.34, 0.5, 0.6, 0.67, 0.8, 1.0])),
            min_healthy=draw(st.integers(0, 2)),
            window=draw(minutes),
        ),
        circuit_breaker=CircuitBreaker(failures=draw(st.integers(1, 3)), window=draw(minutes), cooldown=draw(minutes)),
    )


@dataclass(frozen=True)
class Alert:
    runbook: int
    target: int
    healthy: tuple[bool, ...]


@dataclass(frozen=True)
class Tick:
    seconds: int


@dataclass(frozen=True)
class Finish:
    which: int
    succeeded: bool


Event = Alert | Tick | Finish

mostly_healthy = st.sampled_from([True, True, True, False])
events = st.lists(
    st.one_of(
        st.builds(
            Alert,
            runbook=st.integers(0, len(RUNBOOKS) - 1),
            target=st.integers(0, len(TARGETS) - 1),
            healthy=st.tuples(*[mostly_healthy] * max(len(ts) for ts in SERVICES.values())),
        ),
        st.builds(Tick, seconds=st.integers(0, 5 * 60) | st.integers(0, 45 * 60)),
        st.builds(Finish, which=st.integers(0, 50), succeeded=st.booleans()),
    ),
    min_size=15,
    max_size=120,
)


@dataclass
class World:
    """The store's side of the loop: the action ledger, the breaker rows and what happened."""

    rails: Guardrails
    paused: bool = False
    now: datetime = T0
    ledger: list[ActionRecord] = field(default_factory=list)
    breakers: dict[str, BreakerState] = field(default_factory=dict)
    trips: list[tuple[str, datetime]] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)

    def in_flight(self) -> list[int]:
        return [i for i, a in enumerate(self.ledger) if a.in_flight]

    def gather(self) -> list[ActionRecord]:
        """What the store's query returns: recent enough, or still in flight."""
        since = self.now - action_lookback(self.rails)
        return [a for a in self.ledger if a.started_at >= since or a.in_flight]

    def alert(self, ev: Alert) -> None:
        service, target = TARGETS[ev.target]
        runbook = RUNBOOKS[ev.runbook]
        known = SERVICES[service]
        healthy = frozenset(t for t, ok in zip(known, ev.healthy, strict=False) if ok)
        labels = {"service": service, "instance": target}
        assert self.rails.circuit_breaker is not None
        key = f"{runbook}/{scope_key(labels, self.rails.circuit_breaker.scope)}"
        inp = GuardrailInput(
            now=self.now,
            runbook=runbook,
            target=target,
            labels=labels,
            alert=AlertFacts(firing=True, starts_at=self.now - timedelta(hours=1)),
            paused=self.paused,
            guardrails=self.rails,
            recent_actions=self.gather(),
            targets=TargetFacts(known=frozenset(known), healthy=healthy),
            breaker=self.breakers.get(key),
        )
        decision = decide(inp)
        if not decision.allowed:
            assert decision.refusal is not None
            assert decision.refusal.code is not None
            self.refusals.append(decision.refusal.code)
            return
        self._check_live(inp, healthy)
        cb = self.rails.circuit_breaker
        # Circuit breaker: nothing of a runbook starts during the cooldown after it tripped.
        assert not any(r == runbook and self.now < at + cb.cooldown for r, at in self.trips)
        self.ledger.append(ActionRecord(runbook=runbook, target=target, labels=labels, started_at=self.now))
        assert decision.breaker is not None
        self.breakers[key] = decision.breaker

    def _check_live(self, inp: GuardrailInput, healthy: frozenset[str]) -> None:
        """Limits that are about the moment of admission rather than a window."""
        br = self.rails.blast_radius
        assert br is not None
        busy = [a for a in self.ledger if a.in_flight and a.service == inp.service]
        assert len(busy) + 1 <= br.max_concurrent
        remaining = healthy - {inp.target} - {a.target for a in busy}
        assert len(remaining) >= br.min_healthy

    def finish(self, ev: Finish) -> None:
        flying = self.in_flight()
        if not flying:
            return
        i = flying[ev.which % len(flying)]
        a = self.ledger[i]
        outcome = Outcome.SUCCEEDED if ev.succeeded else Outcome.FAILED
        self.ledger[i] = replace(a, finished_at=self.now, outcome=outcome)
        cfg = self.rails.circuit_breaker
        assert cfg is not None
        key = f"{a.runbook}/{scope_key(a.labels, cfg.scope)}"
        before = self.breakers.get(key, BreakerState())
        after = breaker.on_result(before, cfg, succeeded=ev.succeeded, now=self.now, started_at=a.started_at)
        self.breakers[key] = after
        if breaker.tripped(before, after):
            self.trips.append((a.runbook, self.now))

    def play(self, evs: list[Event]) -> World:
        for ev in evs:
            if isinstance(ev, Tick):
                self.now += timedelta(seconds=ev.seconds)
            elif isinstance(ev, Finish):
                self.finish(ev)
            else:
                self.alert(ev)
        return self


RateScope = Literal["runbook", "target", "service", "global"]


def same_rate_scope(scope: RateScope, a: ActionRecord, b: ActionRecord) -> bool:
    if scope == "runbook":
        return a.runbook == b.runbook
    if scope == "target":
        return a.target == b.target
    if scope == "service":
        return a.service == b.service
    return True


@settings(deadline=None, max_examples=200)
@given(rails=guardrails(), evs=events)
def test_executed_actions_stay_within_every_limit_in_every_window(rails: Guardrails, evs: list[Event]) -> None:
    world = World(rails=rails).play(evs)
    rl, br = rails.rate_limit, rails.blast_radius
    assert rl is not None
    assert br is not None
    for a in world.ledger:
        s = a.started_at
        # Rate limit: any sliding window (s - per, s] holds at most `max` actions of a scope;
        # the fullest windows end at an action's start, so checking those covers every window.
        in_rate_window = [b for b in world.ledger if same_rate_scope(rl.scope, a, b) and s - rl.per < b.started_at <= s]
        assert len(in_rate_window) <= rl.max
        # Blast radius: distinct targets touched per window within the fraction of known ones.
        touched = {b.target for b in world.ledger if b.service == a.service and s - br.window < b.started_at <= s}
        known = len(SERVICES[a.service])
        assert len(touched) <= br.max_fraction * known + EPSILON


@settings(deadline=None, max_examples=200)
@given(rails=guardrails(), evs=events)
def test_a_paused_system_runs_nothing(rails: Guardrails, evs: list[Event]) -> None:
    world = World(rails=rails, paused=True).play(evs)
    assert world.ledger == []
    assert set(world.refusals) <= {Refusal.PAUSED}


@settings(deadline=None, max_examples=200)
@given(
    rails=guardrails(),
    alert=st.builds(
        AlertFacts,
        firing=st.booleans(),
        starts_at=st.integers(-7200, 600).map(lambda s: T0 + timedelta(seconds=s)),
    ),
)
def test_pause_always_wins(rails: Guardrails, alert: AlertFacts) -> None:
    inp = GuardrailInput(now=T0, runbook="restart", target="web-1", alert=alert, paused=True, guardrails=rails)
    verdicts = evaluate(inp)
    assert [v.check for v in verdicts] == list(Check)
    assert all(v.allowed is (v.code is None) for v in verdicts)
    winner = first_refusal(verdicts)
    assert winner is not None
    assert winner.code is Refusal.PAUSED
    assert not decide(inp).allowed


@settings(deadline=None, max_examples=200)
@given(
    cfg=st.builds(
        CircuitBreaker,
        failures=st.integers(1, 5),
        window=minutes,
        cooldown=minutes,
    ),
    opened_ago=st.integers(0, 240).map(lambda m: timedelta(minutes=m)),
    steps=st.lists(st.integers(0, 3600).map(lambda s: timedelta(seconds=s)), min_size=1),
)
def test_a_half_open_breaker_lets_exactly_one_trial_through(
    cfg: CircuitBreaker, opened_ago: timedelta, steps: list[timedelta]
) -> None:
    state = BreakerState(status=BreakerStatus.OPEN, failures=(T0 - opened_ago,), opened_at=T0 - opened_ago)
    now, admitted, reached = T0, 0, False
    for step in steps:
        now += step
        reached = reached or now >= T0 - opened_ago + cfg.cooldown
        adm = breaker.admit(state, cfg, now)
        admitted += adm.allowed
        state = adm.state
    assert admitted == (1 if reached else 0)
    assert state.trial_in_flight is reached


@settings(deadline=None, max_examples=200)
@given(
    per=minutes,
    limit=st.integers(1, 5),
    ages=st.lists(st.integers(0, 7200).map(lambda s: timedelta(seconds=s)), max_size=10),
)
def test_rate_limit_retry_at_is_exact(per: timedelta, limit: int, ages: list[timedelta]) -> None:
    """Allowed at ``retry_at`` and not a microsecond before, all else equal."""
    actions = [
        ActionRecord(
            runbook="restart",
            target="web-1",
            started_at=T0 - age,
            finished_at=T0 - age,
            outcome=Outcome.SUCCEEDED,
        )
        for age in ages
    ]
    base = GuardrailInput(
        now=T0,
        runbook="restart",
        target="web-1",
        alert=AlertFacts(firing=True, starts_at=T0 - timedelta(hours=3)),
        guardrails=Guardrails(rate_limit=RateLimit(max=limit, per=per)),
        recent_actions=actions,
    )
    v = evaluate(base)[3]
    assert v.check is Check.RATE_LIMIT
    if v.allowed:
        assert sum(T0 - per < a.started_at for a in actions) < limit
        return
    assert v.retry_at is not None
    assert v.retry_at > T0
    assert evaluate(replace(base, now=v.retry_at))[3].allowed
    assert not evaluate(replace(base, now=v.retry_at - timedelta(microseconds=1)))[3].allowed
