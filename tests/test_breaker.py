"""Circuit-breaker transitions: closed → open → half-open (one trial) → closed | open."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from paramedic.core.breaker import (
    Admit,
    BreakerState,
    BreakerStatus,
    admit,
    on_result,
    reset,
    tripped,
)
from paramedic.core.runbooks import CircuitBreaker

NOW = datetime(2024, 5, 3, 14, 0, tzinfo=UTC)
M = timedelta(minutes=1)
CFG = CircuitBreaker(failures=2, window=30 * M, cooldown=60 * M)
CLOSED = BreakerState()
OPEN = BreakerState(status=BreakerStatus.OPEN, failures=(NOW - 5 * M, NOW), opened_at=NOW)


def fail(state: BreakerState, at: datetime, started_at: datetime | None = None) -> BreakerState:
    return on_result(state, CFG, succeeded=False, now=at, started_at=started_at)


def succeed(state: BreakerState, at: datetime, started_at: datetime | None = None) -> BreakerState:
    return on_result(state, CFG, succeeded=True, now=at, started_at=started_at)


@pytest.mark.parametrize(
    ("failures_ago", "status"),
    [
        pytest.param([], BreakerStatus.CLOSED, id="first-failure-stays-closed"),
        pytest.param([10], BreakerStatus.OPEN, id="second-within-window-opens"),
        pytest.param([30], BreakerStatus.CLOSED, id="failure-exactly-window-ago-has-expired"),
        pytest.param([45, 40], BreakerStatus.CLOSED, id="old-failures-do-not-count"),
    ],
)
def test_failures_within_window_open(failures_ago: list[int], status: BreakerStatus) -> None:
    before = BreakerState(failures=tuple(NOW - m * M for m in failures_ago))
    after = fail(before, NOW)
    assert after.status is status
    assert tripped(before, after) is (status is BreakerStatus.OPEN)
    assert all(t > NOW - CFG.window for t in after.failures)


def test_success_keeps_a_closed_breaker_closed() -> None:
    state = succeed(BreakerState(failures=(NOW - M,)), NOW)
    assert state.status is BreakerStatus.CLOSED
    assert state.failures == (NOW - M,)


@pytest.mark.parametrize(
    ("state", "at", "allowed", "why", "retry_at"),
    [
        pytest.param(CLOSED, NOW, True, Admit.CLOSED, None, id="closed-admits"),
        pytest.param(OPEN, NOW + 59 * M, False, Admit.OPEN, NOW + 60 * M, id="open-refuses"),
        pytest.param(OPEN, NOW + 60 * M, True, Admit.TRIAL, None, id="after-cooldown-trial"),
        pytest.param(
            replace(OPEN, status=BreakerStatus.HALF_OPEN, trial_started_at=NOW + 61 * M),
            NOW + 62 * M,
            False,
            Admit.TRIAL_IN_FLIGHT,
            None,
            id="second-trial-refused",
        ),
    ],
)
def test_admit(state: BreakerState, at: datetime, allowed: bool, why: Admit, retry_at: datetime | None) -> None:
    adm = admit(state, CFG, at)
    assert (adm.allowed, adm.why, adm.retry_at) == (allowed, why, retry_at)
    if why is Admit.TRIAL:
        assert adm.state.status is BreakerStatus.HALF_OPEN
        assert adm.state.trial_in_flight
        assert adm.state.trial_started_at == at
    else:
        assert adm.state == state


def test_half_open_admits_exactly_one_trial() -> None:
    first = admit(OPEN, CFG, NOW + 60 * M)
    second = admit(first.state, CFG, NOW + 61 * M)
    assert first.allowed
    assert not second.allowed


@pytest.mark.parametrize(
    ("succeeded", "status", "trips"),
    [
        pytest.param(True, BreakerStatus.CLOSED, False, id="trial-success-closes"),
        pytest.param(False, BreakerStatus.OPEN, True, id="trial-failure-reopens"),
    ],
)
def test_trial_result(succeeded: bool, status: BreakerStatus, trips: bool) -> None:
    trial_at = NOW + 60 * M
    half = admit(OPEN, CFG, trial_at).state
    after = on_result(half, CFG, succeeded=succeeded, now=trial_at + M, started_at=trial_at)
    assert after.status is status
    assert not after.trial_in_flight
    assert tripped(half, after) is trips
    if status is BreakerStatus.OPEN:
        # A new cooldown starts from the failed trial.
        assert after.opened_at == trial_at + M
        assert not admit(after, CFG, trial_at + 60 * M).allowed
        assert admit(after, CFG, trial_at + 61 * M).allowed
    else:
        assert after == CLOSED


def test_a_late_result_of_an_older_action_is_not_the_trial() -> None:
    trial_at = NOW + 60 * M
    half = admit(OPEN, CFG, trial_at).state
    late = succeed(half, trial_at + M, started_at=NOW - M)
    assert late.status is BreakerStatus.HALF_OPEN
    assert late.trial_in_flight
    late_failure = fail(half, trial_at + M, started_at=NOW - M)
    assert late_failure.status is BreakerStatus.HALF_OPEN
    assert not tripped(half, late_failure)


def test_results_while_open_do_not_extend_the_cooldown() -> None:
    after = fail(OPEN, NOW + 5 * M)
    assert after.status is BreakerStatus.OPEN
    assert after.opened_at == NOW
    assert not tripped(OPEN, after)
    assert succeed(OPEN, NOW + 5 * M).status is BreakerStatus.OPEN


def test_reset_closes_by_hand() -> None:
    assert reset() == CLOSED
    assert admit(reset(), CFG, NOW).allowed


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: BreakerState(status=BreakerStatus.OPEN), id="open-without-opened-at"),
        pytest.param(lambda: BreakerState(trial_started_at=NOW), id="closed-with-trial"),
    ],
)
def test_inconsistent_state_is_rejected(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_reopens_at() -> None:
    assert OPEN.reopens_at(CFG) == NOW + 60 * M
    assert CLOSED.reopens_at(CFG) is None


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(CLOSED, id="closed"),
        pytest.param(OPEN, id="open"),
        pytest.param(admit(OPEN, CFG, NOW + 60 * M).state, id="half-open-with-trial"),
    ],
)
def test_json_round_trip(state: BreakerState) -> None:
    assert BreakerState.from_json(json.loads(json.dumps(state.to_json()))) == state


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"status": "melted"}, id="unknown-status"),
        pytest.param({"status": "closed", "failures": "2024-05-03T14:00:00"}, id="failures-not-a-list"),
        pytest.param({"status": "closed", "failures": ["2024-05-03T14:00:00"]}, id="naive-instant"),
        pytest.param({"status": "open", "opened_at": None}, id="open-without-opened-at"),
    ],
)
def test_bad_json_is_rejected(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        BreakerState.from_json(data)
