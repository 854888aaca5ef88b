"""Each guardrail of DESIGN §4: one case that refuses, one that lets the action through, and the
edges in between. Time is always injected; nothing here waits."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from paramedic.core.breaker import BreakerState, BreakerStatus
from paramedic.core.freeze import FreezeWindow, Once, Weekday, Weekly
from paramedic.core.guardrails import (
    ActionRecord,
    AlertFacts,
    Check,
    Decision,
    GuardrailInput,
    Outcome,
    Refusal,
    TargetFacts,
    Verdict,
    action_lookback,
    decide,
    episode_lookback,
    evaluate,
    first_refusal,
    scope_key,
)
from paramedic.core.runbooks import (
    BlastRadius,
    CircuitBreaker,
    Flap,
    Guardrails,
    RateLimit,
    Require,
)

NOW = datetime(2024, 5, 3, 14, 20, 0, tzinfo=UTC)  # a Friday
T1, T2, T3 = "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"
WEB = {"service": "web"}
S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)


def act(
    target: str = T1,
    *,
    ago: timedelta,
    runbook: str = "restart-hung-worker",
    labels: dict[str, str] | None = None,
    lasted: timedelta | None = None,
    outcome: Outcome = Outcome.SUCCEEDED,
) -> ActionRecord:
    """An action that started ``ago`` before NOW; in flight unless ``lasted`` is given."""
    started = NOW - ago
    return ActionRecord(
        runbook=runbook,
        target=target,
        labels=WEB if labels is None else labels,
        started_at=started,
        finished_at=None if lasted is None else started + lasted,
        outcome=Outcome.IN_FLIGHT if lasted is None else outcome,
    )


def done(target: str = T1, *, ago: timedelta, **kw: Any) -> ActionRecord:
    return act(target, ago=ago, lasted=S, **kw)


def make(**overrides: Any) -> GuardrailInput:
    """A firing alert on T1 in service web, three known healthy targets, nothing configured."""
    base = GuardrailInput(
        now=NOW,
        runbook="restart-hung-worker",
        target=T1,
        labels={"service": "web", "instance": T1},
        alert=AlertFacts(firing=True, starts_at=NOW - 10 * M, first_seen_at=NOW - 9 * M),
        targets=TargetFacts(known=frozenset({T1, T2, T3}), healthy=frozenset({T1, T2, T3})),
    )
    return replace(base, **overrides)


def rails(**kw: Any) -> Guardrails:
    return Guardrails(**kw)


def verdict(inp: GuardrailInput, check: Check) -> Verdict:
    found = [v for v in evaluate(inp) if v.check is check]
    assert len(found) == 1
    return found[0]


# ---- the whole evaluation ------------------------------------------------------------------


def test_one_verdict_per_check_in_order() -> None:
    verdicts = evaluate(make())
    assert [v.check for v in verdicts] == list(Check)
    assert all(v.allowed and v.code is None for v in verdicts)
    assert first_refusal(verdicts) is None


def test_keeps_evaluating_after_a_refusal_and_the_first_one_wins() -> None:
    inp = make(
        paused=True,
        guardrails=rails(rate_limit=RateLimit(max=1, per=H)),
        recent_actions=[done(ago=10 * M)],
    )
    verdicts = evaluate(inp)
    assert [v.code for v in verdicts if not v.allowed] == [Refusal.PAUSED, Refusal.RATE_LIMITED]
    winner = first_refusal(verdicts)
    assert winner is not None
    assert winner.code is Refusal.PAUSED


@pytest.mark.parametrize(
    "check",
    [
        pytest.param(Check.RATE_LIMIT, id="rate_limit"),
        pytest.param(Check.BLAST_RADIUS, id="blast_radius"),
        pytest.param(Check.CIRCUIT_BREAKER, id="circuit_breaker"),
    ],
)
def test_a_check_without_configuration_allows(check: Check) -> None:
    v = verdict(make(targets=TargetFacts()), check)
    assert v.allowed
    assert v.reason.endswith("not configured")


def test_no_freeze_windows_is_not_configured() -> None:
    v = verdict(make(), Check.FROZEN)
    assert v.allowed
    assert v.reason.endswith("not configured")


# ---- pause -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("paused", "code"),
    [
        pytest.param(True, Refusal.PAUSED, id="paused-refuses"),
        pytest.param(False, None, id="running-allows"),
    ],
)
def test_pause(paused: bool, code: Refusal | None) -> None:
    v = verdict(make(paused=paused), Check.PAUSED)
    assert v.code is code
    assert v.allowed is (code is None)
    if paused:
        assert "paramedic resume" in v.reason
        assert v.retry_at is None


# ---- freeze ----------------------------------------------------------------------------------

YEAR_END = FreezeWindow(
    name="year-end",
    when=Once(start=NOW - H, end=NOW + 2 * H),
    reason="holidays",
)
FRIDAY_EVENING = FreezeWindow(
    name="friday-evening",
    when=Weekly(days=frozenset({Weekday.FRI}), start=time(14, 0), end=time(17, 59)),
)
THEN_EXTENDED = FreezeWindow(name="extended", when=Once(start=NOW + 2 * H, end=NOW + 5 * H))
LATER = FreezeWindow(name="later", when=Once(start=NOW + H, end=NOW + 2 * H))


@pytest.mark.parametrize(
    ("windows", "code", "retry_at"),
    [
        pytest.param([YEAR_END], Refusal.FROZEN, NOW + 2 * H, id="once-active-refuses"),
        pytest.param(
            [FRIDAY_EVENING],
            Refusal.FROZEN,
            datetime(2024, 5, 3, 18, 0, tzinfo=UTC),
            id="weekly-active-refuses",
        ),
        pytest.param([YEAR_END, THEN_EXTENDED], Refusal.FROZEN, NOW + 5 * H, id="chained-until-both-end"),
        pytest.param([LATER], None, None, id="future-window-allows"),
        pytest.param(
            [replace(YEAR_END, when=Once(start=NOW - 2 * H, end=NOW))],
            None,
            None,
            id="end-is-exclusive-allows",
        ),
    ],
)
def test_freeze(windows: list[FreezeWindow], code: Refusal | None, retry_at: datetime | None) -> None:
    v = verdict(make(freeze=windows), Check.FROZEN)
    assert v.code is code
    assert v.retry_at == retry_at


def test_freeze_reason_names_the_window_and_when_it_lifts() -> None:
    v = verdict(make(freeze=[YEAR_END]), Check.FROZEN)
    assert v.reason == ("change freeze 'year-end' is active (holidays); allowed again at 16:20:00 UTC (in 2h00m)")


# ---- data quality ----------------------------------------------------------------------------


def firing(*, age: timedelta, seen: timedelta | None = None, episodes: tuple[timedelta, ...] = ()) -> AlertFacts:
    return AlertFacts(
        firing=True,
        starts_at=NOW - age,
        first_seen_at=None if seen is None else NOW - seen,
        episodes=tuple(NOW - e for e in episodes),
    )


EVERY_5M = tuple(timedelta(minutes=m) for m in (3, 8, 13, 18, 23))


@pytest.mark.parametrize(
    ("alert", "require", "code", "retry_at"),
    [
        pytest.param(
            AlertFacts(firing=False, starts_at=NOW - H),
            Require(),
            Refusal.RESOLVED,
            None,
            id="resolved-cancels",
        ),
        pytest.param(
            firing(age=10 * S),
            Require(firing_for=30 * S),
            Refusal.NOT_FIRING_LONG_ENOUGH,
            NOW + 20 * S,
            id="too-young-refuses",
        ),
        pytest.param(firing(age=30 * S), Require(firing_for=30 * S), None, None, id="exactly-old-enough"),
        pytest.param(
            firing(age=-H, seen=5 * M),
            Require(firing_for=2 * M),
            None,
            None,
            id="sender-clock-ahead-uses-first-seen",
        ),
        pytest.param(
            firing(age=5 * M, episodes=EVERY_5M),
            Require(),
            Refusal.FLAPPING,
            NOW - 23 * M + 30 * M,
            id="five-episodes-in-30m-flaps",
        ),
        pytest.param(
            firing(age=5 * M, episodes=EVERY_5M[:4]),
            Require(),
            None,
            None,
            id="four-episodes-is-not-flapping",
        ),
        pytest.param(
            firing(age=5 * M, episodes=(*EVERY_5M[:4], 31 * M, 40 * M)),
            Require(),
            None,
            None,
            id="old-episodes-fall-out-of-the-window",
        ),
        pytest.param(
            firing(age=5 * M, episodes=EVERY_5M[:2]),
            Require(flap=Flap(max=1, window=10 * M)),
            Refusal.FLAPPING,
            NOW - 8 * M + 10 * M,
            id="runbook-flap-overrides-default",
        ),
        pytest.param(
            firing(age=3 * H),
            Require(max_age=2 * H),
            Refusal.STALE,
            None,
            id="older-than-max-age-is-stale",
        ),
        pytest.param(firing(age=H), Require(max_age=2 * H), None, None, id="within-max-age"),
    ],
)
def test_data_quality(alert: AlertFacts, require: Require, code: Refusal | None, retry_at: datetime | None) -> None:
    v = verdict(make(alert=alert, require=require), Check.DATA_QUALITY)
    assert v.code is code
    assert v.allowed is (code is None)
    assert v.retry_at == retry_at


def test_default_flap_comes_from_the_input() -> None:
    inp = make(alert=firing(age=5 * M, episodes=EVERY_5M[:3]), default_flap=Flap(max=2))
    assert verdict(inp, Check.DATA_QUALITY).code is Refusal.FLAPPING


def test_resolved_wins_over_flapping() -> None:
    alert = replace(firing(age=5 * M, episodes=EVERY_5M), firing=False)
    assert verdict(make(alert=alert), Check.DATA_QUALITY).code is Refusal.RESOLVED


def test_not_firing_long_enough_says_when() -> None:
    inp = make(alert=firing(age=12 * S), require=Require(firing_for=30 * S))
    assert verdict(inp, Check.DATA_QUALITY).reason == (
        "data quality: firing for 12.0s, require.firing_for is 30s; allowed at 14:20:18 UTC (in 18.0s)"
    )


# ---- rate limit ------------------------------------------------------------------------------

OTHER_RUNBOOK = "restart-other"
DB = {"service": "db"}


@pytest.mark.parametrize(
    ("scope", "actions", "code"),
    [
        pytest.param("target", [done(T1, ago=5 * M), done(T1, ago=50 * M)], Refusal.RATE_LIMITED, id="target"),
        pytest.param(
            "target",
            [done(T2, ago=5 * M), done(T3, ago=50 * M)],
            None,
            id="target-ignores-other-targets",
        ),
        pytest.param(
            "target",
            [done(T1, ago=5 * M, runbook=OTHER_RUNBOOK), act(T1, ago=M)],
            Refusal.RATE_LIMITED,
            id="target-counts-every-runbook-and-in-flight",
        ),
        pytest.param("runbook", [done(T2, ago=5 * M), done(T3, ago=6 * M)], Refusal.RATE_LIMITED, id="runbook"),
        pytest.param(
            "runbook",
            [done(T1, ago=5 * M, runbook=OTHER_RUNBOOK), done(T1, ago=6 * M, runbook=OTHER_RUNBOOK)],
            None,
            id="runbook-ignores-other-runbooks",
        ),
        pytest.param(
            "service",
            [done(T2, ago=5 * M), done(T3, ago=6 * M, runbook=OTHER_RUNBOOK)],
            Refusal.RATE_LIMITED,
            id="service",
        ),
        pytest.param(
            "service",
            [done("db-1", ago=5 * M, labels=DB), done("db-2", ago=6 * M, labels=DB)],
            None,
            id="service-ignores-other-services",
        ),
        pytest.param(
            "global",
            [done("db-1", ago=5 * M, labels=DB), done(T2, ago=6 * M, runbook=OTHER_RUNBOOK)],
            Refusal.RATE_LIMITED,
            id="global",
        ),
        pytest.param(
            "target",
            [done(T1, ago=5 * M), done(T1, ago=H)],
            None,
            id="an-action-exactly-per-ago-has-left-the-window",
        ),
        pytest.param(
            "target",
            [done(T1, ago=5 * M, outcome=Outcome.FAILED), done(T1, ago=10 * M)],
            Refusal.RATE_LIMITED,
            id="failed-actions-count",
        ),
    ],
)
def test_rate_limit(scope: Any, actions: list[ActionRecord], code: Refusal | None) -> None:
    inp = make(guardrails=rails(rate_limit=RateLimit(max=2, per=H, scope=scope)), recent_actions=actions)
    v = verdict(inp, Check.RATE_LIMIT)
    assert v.code is code
    assert v.allowed is (code is None)


def test_rate_limit_says_how_many_and_when_next() -> None:
    starts = [timedelta(minutes=47, seconds=55), 30 * M, 2 * M]  # 13:32:05, 13:50, 14:18
    inp = make(
        guardrails=rails(rate_limit=RateLimit(max=3, per=H)),
        recent_actions=[done(ago=a) for a in starts],
    )
    v = verdict(inp, Check.RATE_LIMIT)
    assert v.reason == (
        "rate limit: 3 of 3 remediations on target 10.0.0.1:80 in the last 1h; next allowed at 14:32:05 UTC (in 12m05s)"
    )
    assert v.retry_at == datetime(2024, 5, 3, 14, 32, 5, tzinfo=UTC)
    # At retry_at exactly, the oldest action has left the sliding window.
    assert verdict(replace(inp, now=v.retry_at), Check.RATE_LIMIT).allowed
    assert not verdict(replace(inp, now=v.retry_at - S), Check.RATE_LIMIT).allowed


def test_rate_limit_allowed_reason_counts_this_one() -> None:
    inp = make(guardrails=rails(rate_limit=RateLimit(max=3, per=H)), recent_actions=[done(ago=M)])
    assert verdict(inp, Check.RATE_LIMIT).reason == (
        "rate limit: 1 of 3 remediations on target 10.0.0.1:80 in the last 1h; this one makes 2"
    )


# ---- blast radius ----------------------------------------------------------------------------

SIX = frozenset(f"10.0.0.{i}:80" for i in range(1, 7))


def blast(**kw: Any) -> Guardrails:
    return rails(blast_radius=BlastRadius(**kw))


@pytest.mark.parametrize(
    ("inp", "code", "fragment"),
    [
        pytest.param(make(guardrails=blast()), None, "1 of at most 3", id="defaults-allow"),
        pytest.param(
            make(guardrails=blast(max_concurrent=1), recent_actions=[act(T2, ago=M)]),
            Refusal.BLAST_RADIUS,
            "1 of 1 concurrent actions already in flight in service=web (on 10.0.0.2:80)",
            id="max-concurrent-refuses",
        ),
        pytest.param(
            make(guardrails=blast(max_concurrent=2), recent_actions=[act(T2, ago=M)]),
            None,
            "1 of 2 concurrent",
            id="below-max-concurrent-allows",
        ),
        pytest.param(
            make(guardrails=blast(max_concurrent=1), recent_actions=[act("db-1", ago=M, labels=DB)]),
            None,
            "0 of 1 concurrent",
            id="other-scope-in-flight-is-ignored",
        ),
        pytest.param(
            make(
                guardrails=blast(max_fraction=0.34),
                targets=TargetFacts(known=SIX, healthy=SIX),
                recent_actions=[done(T2, ago=10 * M), done(T3, ago=20 * M)],
            ),
            Refusal.BLAST_RADIUS,
            "would make 3 of 6 targets of service=web touched within 1h, above max_fraction 0.34",
            id="max-fraction-refuses",
        ),
        pytest.param(
            make(
                guardrails=blast(max_fraction=0.34),
                targets=TargetFacts(known=SIX, healthy=SIX),
                recent_actions=[done(T1, ago=10 * M), done(T2, ago=20 * M)],
            ),
            None,
            "2 of at most 2 targets",
            id="retouching-a-target-does-not-grow-the-share",
        ),
        pytest.param(
            make(
                guardrails=blast(max_fraction=0.34),
                targets=TargetFacts(known=SIX, healthy=SIX),
                recent_actions=[done(T2, ago=10 * M), done(T3, ago=H)],
            ),
            None,
            "2 of at most 2 targets",
            id="touches-older-than-window-do-not-count",
        ),
        pytest.param(
            make(guardrails=blast(max_fraction=0.34), targets=TargetFacts(known=frozenset({T1, T2}))),
            Refusal.BLAST_RADIUS,
            "raise max_fraction or add targets",
            id="fraction-allowing-no-target-refuses",
        ),
        pytest.param(
            make(
                guardrails=blast(min_healthy=2),
                targets=TargetFacts(known=frozenset({T1, T2, T3}), healthy=frozenset({T1, T2})),
            ),
            Refusal.BLAST_RADIUS,
            "only 1 of 3 targets of service=web would stay healthy, min_healthy is 2",
            id="min-healthy-refuses",
        ),
        pytest.param(
            make(
                guardrails=blast(min_healthy=2),
                targets=TargetFacts(known=frozenset({T1, T2, T3}), healthy=frozenset({T2, T3})),
            ),
            None,
            "2 of 3 stay healthy",
            id="unhealthy-target-leaves-healthy-ones",
        ),
        pytest.param(
            make(
                guardrails=blast(min_healthy=2, max_concurrent=2),
                targets=TargetFacts(known=frozenset({T1, T2, T3}), healthy=frozenset({T2, T3})),
                recent_actions=[act(T2, ago=M)],
            ),
            Refusal.BLAST_RADIUS,
            "would stay healthy",
            id="target-being-acted-on-is-not-healthy",
        ),
        pytest.param(
            make(guardrails=blast(), targets=TargetFacts()),
            Refusal.BLAST_RADIUS,
            "the targets of service=web are unknown",
            id="unknown-target-set-refuses",
        ),
        pytest.param(
            make(guardrails=blast(), target="10.9.9.9:80"),
            Refusal.BLAST_RADIUS,
            "target 10.9.9.9:80 is not one of the 3 known targets of service=web",
            id="unknown-target-refuses",
        ),
        pytest.param(
            make(guardrails=blast(scope=["service", "zone"])),
            Refusal.BLAST_RADIUS,
            "the alert has no zone label",
            id="missing-scope-label-refuses",
        ),
        pytest.param(
            make(guardrails=blast(scope=[])),
            None,
            "blast radius: the whole fleet:",
            id="empty-scope-is-the-whole-fleet",
        ),
    ],
)
def test_blast_radius(inp: GuardrailInput, code: Refusal | None, fragment: str) -> None:
    v = verdict(inp, Check.BLAST_RADIUS)
    assert v.code is code
    assert v.allowed is (code is None)
    assert fragment in v.reason


def test_blast_radius_fraction_says_when_a_slot_frees() -> None:
    inp = make(
        guardrails=blast(max_fraction=0.34),
        targets=TargetFacts(known=SIX, healthy=SIX),
        recent_actions=[done(T2, ago=10 * M), done(T3, ago=20 * M), done(T3, ago=50 * M)],
    )
    v = verdict(inp, Check.BLAST_RADIUS)
    assert v.retry_at == NOW + 40 * M  # T3's latest touch leaves the 1h window first
    assert verdict(replace(inp, now=NOW + 40 * M), Check.BLAST_RADIUS).allowed


def test_blast_radius_waiting_on_an_event_has_no_retry_time() -> None:
    inp = make(guardrails=blast(max_concurrent=1), recent_actions=[act(T2, ago=M)])
    assert verdict(inp, Check.BLAST_RADIUS).retry_at is None


def test_blast_radius_reports_every_failing_rule() -> None:
    inp = make(
        guardrails=blast(max_concurrent=1, min_healthy=3),
        recent_actions=[act(T2, ago=M)],
    )
    reason = verdict(inp, Check.BLAST_RADIUS).reason
    assert "concurrent actions already in flight" in reason
    assert "min_healthy is 3" in reason


# ---- circuit breaker -------------------------------------------------------------------------

CB = CircuitBreaker(failures=2, window=30 * M, cooldown=H)
OPEN_10M = BreakerState(status=BreakerStatus.OPEN, failures=(NOW - 12 * M, NOW - 10 * M), opened_at=NOW - 10 * M)


@pytest.mark.parametrize(
    ("state", "code", "retry_at"),
    [
        pytest.param(None, None, None, id="no-state-is-closed"),
        pytest.param(BreakerState(failures=(NOW - M,)), None, None, id="closed-with-one-failure-allows"),
        pytest.param(OPEN_10M, Refusal.CIRCUIT_OPEN, NOW + 50 * M, id="open-refuses"),
        pytest.param(replace(OPEN_10M, opened_at=NOW - H), None, None, id="open-after-cooldown-admits-trial"),
        pytest.param(
            replace(OPEN_10M, status=BreakerStatus.HALF_OPEN, trial_started_at=NOW - M),
            Refusal.CIRCUIT_OPEN,
            None,
            id="trial-in-flight-refuses",
        ),
    ],
)
def test_circuit_breaker(state: BreakerState | None, code: Refusal | None, retry_at: datetime | None) -> None:
    v = verdict(make(guardrails=rails(circuit_breaker=CB), breaker=state), Check.CIRCUIT_BREAKER)
    assert v.code is code
    assert v.retry_at == retry_at


def test_decide_records_the_trial_only_when_allowed() -> None:
    ready = replace(OPEN_10M, opened_at=NOW - H)
    allowed = decide(make(guardrails=rails(circuit_breaker=CB), breaker=ready))
    assert allowed.allowed
    assert allowed.breaker is not None
    assert allowed.breaker.status is BreakerStatus.HALF_OPEN
    assert allowed.breaker.trial_started_at == NOW

    refused = decide(make(guardrails=rails(circuit_breaker=CB), breaker=ready, paused=True))
    assert not refused.allowed
    assert refused.breaker == ready  # no trial was used up by a refused action


def test_decide_without_breaker_config_keeps_state() -> None:
    d = decide(make())
    assert d.allowed
    assert d.breaker is None
    assert d.refusal is None
    assert d.retry_at is None


def test_decision_retry_at_is_the_latest_time_bound() -> None:
    inp = make(
        alert=firing(age=10 * S),
        require=Require(firing_for=30 * S),
        guardrails=rails(rate_limit=RateLimit(max=1, per=H)),
        recent_actions=[done(ago=10 * M)],
    )
    d = decide(inp)
    assert d.refusal is not None
    assert d.refusal.code is Refusal.NOT_FIRING_LONG_ENOUGH
    assert d.retry_at == NOW + 50 * M
    assert isinstance(d, Decision)


def test_decision_retry_at_is_none_when_a_refusal_waits_on_an_event() -> None:
    inp = make(paused=True, alert=firing(age=10 * S), require=Require(firing_for=30 * S))
    assert decide(inp).retry_at is None


# ---- helpers and input validation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "keys", "key"),
    [
        pytest.param({"service": "web", "zone": "a"}, ["zone", "service"], "service=web,zone=a"),
        pytest.param({"service": "web"}, [], "*", id="empty-is-the-fleet"),
        pytest.param({"service": "web,zone=a"}, ["service"], "service=web%2Czone%3Da", id="escaped"),
        pytest.param({}, ["service"], "service=", id="missing-label"),
    ],
)
def test_scope_key(labels: dict[str, str], keys: list[str], key: str) -> None:
    assert scope_key(labels, keys) == key


def test_lookbacks() -> None:
    g = rails(rate_limit=RateLimit(max=1, per=2 * H), blast_radius=BlastRadius(window=3 * H))
    assert action_lookback(g) == 3 * H
    assert action_lookback(Guardrails()) == timedelta(0)
    assert episode_lookback(Require(), Flap()) == 30 * M
    assert episode_lookback(Require(flap=Flap(window=H)), Flap()) == H


def test_service_defaults_to_the_service_label() -> None:
    assert make().service == "web"
    assert done(ago=M).service == "web"
    assert make(service="api").service == "api"


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: make(now=datetime(2024, 5, 3)), id="naive-now"),
        pytest.param(
            lambda: ActionRecord(runbook="r", target="t", started_at=NOW, outcome=Outcome.FAILED),
            id="finished-outcome-without-finished-at",
        ),
        pytest.param(
            lambda: ActionRecord(runbook="r", target="t", started_at=NOW, finished_at=NOW),
            id="in-flight-with-finished-at",
        ),
        pytest.param(lambda: AlertFacts(firing=True, starts_at=datetime(2024, 5, 3)), id="naive-starts-at"),
    ],
)
def test_inconsistent_input_is_rejected(build: Any) -> None:
    with pytest.raises(ValueError):
        build()


def test_verdict_json() -> None:
    inp = make(guardrails=rails(rate_limit=RateLimit(max=1, per=H)), recent_actions=[done(ago=10 * M)])
    assert verdict(inp, Check.RATE_LIMIT).to_json() == {
        "check": "rate_limit",
        "allowed": False,
        "code": "rate_limited",
        "reason": "rate limit: 1 of 1 remediations on target 10.0.0.1:80 in the last 1h; "
        "next allowed at 15:10:00 UTC (in 50m00s)",
        "retry_at": "2024-05-03T15:10:00+00:00",
    }
    assert verdict(inp, Check.PAUSED).to_json()["code"] is None
