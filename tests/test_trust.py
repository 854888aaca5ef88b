"""Trust: promotion one mode up once earned, demotion one mode down on a breaker trip."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from paramedic.core.runbooks import Mode, Promote
from paramedic.core.trust import TrustFigures, demoted, next_mode, promotion_reason

RULE = Promote(after=10, min_success_rate=0.9)


def figures(runs: int, successes: int) -> TrustFigures:
    return TrustFigures(runs=runs, successes=successes, failures=runs - successes)


@pytest.mark.parametrize(
    ("current", "figs", "promote", "expected"),
    [
        pytest.param(Mode.OBSERVE, figures(10, 9), RULE, Mode.APPROVE, id="observe-to-approve"),
        pytest.param(Mode.APPROVE, figures(12, 12), RULE, Mode.AUTO, id="approve-to-auto"),
        pytest.param(Mode.AUTO, figures(50, 50), RULE, None, id="auto-is-the-top"),
        pytest.param(Mode.OBSERVE, figures(9, 9), RULE, None, id="too-few-runs"),
        pytest.param(Mode.OBSERVE, figures(10, 8), RULE, None, id="success-rate-too-low"),
        pytest.param(Mode.OBSERVE, figures(100, 100), None, None, id="no-promote-rule"),
        pytest.param(
            Mode.OBSERVE,
            figures(1, 0),
            Promote(after=1, min_success_rate=0.0),
            Mode.APPROVE,
            id="zero-rate-rule",
        ),
    ],
)
def test_next_mode(current: Mode, figs: TrustFigures, promote: Promote | None, expected: Mode | None) -> None:
    assert next_mode(current, figs, promote) is expected


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        pytest.param(Mode.AUTO, Mode.APPROVE, id="auto"),
        pytest.param(Mode.APPROVE, Mode.OBSERVE, id="approve"),
        pytest.param(Mode.OBSERVE, Mode.OBSERVE, id="observe-stays"),
    ],
)
def test_demoted(mode: Mode, expected: Mode) -> None:
    assert demoted(mode) is expected


def test_success_rate() -> None:
    assert figures(4, 3).success_rate == 0.75
    assert TrustFigures().success_rate == 0.0


def test_figures_keep_the_last_failure() -> None:
    at = datetime(2024, 5, 3, tzinfo=UTC)
    assert TrustFigures(runs=1, failures=1, last_failure_at=at).last_failure_at == at


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"runs": -1}, id="negative"),
        pytest.param({"runs": 1, "successes": 1, "failures": 1}, id="more-outcomes-than-runs"),
    ],
)
def test_impossible_figures_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TrustFigures(**kwargs)


@pytest.mark.parametrize(
    ("current", "figs", "promote", "reason"),
    [
        pytest.param(
            Mode.OBSERVE,
            figures(10, 10),
            RULE,
            "promoted observe → approve: 10 of 10 suggestions marked since the last mode change,"
            " 100% marked right (needs 90%)",
            id="promoted",
        ),
        pytest.param(
            Mode.APPROVE,
            figures(3, 3),
            RULE,
            "stays approve: 3 of 10 runs since the last mode change, 100% succeeded (needs 90%)",
            id="not-yet",
        ),
        pytest.param(Mode.AUTO, figures(3, 3), RULE, "stays auto: already the highest mode", id="top"),
        pytest.param(Mode.OBSERVE, figures(3, 3), None, "stays observe: the runbook declares no promote rule"),
    ],
)
def test_promotion_reason(current: Mode, figs: TrustFigures, promote: Promote | None, reason: str) -> None:
    assert promotion_reason(current, figs, promote) == reason
