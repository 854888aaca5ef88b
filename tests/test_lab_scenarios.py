"""The nine lab scenarios, each on its own real stack: the outcome, never the timings.

Each scenario starts Prometheus, Alertmanager, HAProxy and supervisord on loopback, injects its
fault and waits for the outcome its runbook in ``examples/runbooks/lab`` promises: the right
action (or none), the guardrail verdicts, and the state of the service afterwards. The stack is
torn down after each, and no process of it may be left behind.
"""

from __future__ import annotations

import pytest

from paramedic.lab import scenarios
from paramedic.lab.scenarios import Result
from paramedic.lab.stack import MEMORY_LIMIT
from tests.support import require_binary

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _binaries() -> None:
    for name, *alt in (("prometheus",), ("prometheus-alertmanager", "alertmanager"), ("haproxy", "/usr/sbin/haproxy")):
        require_binary(name, *alt)


def _run(key: str) -> Result:
    result = scenarios.run(scenarios.BY_KEY[key])
    assert result.problems == [], result
    assert result.detect is not None, "the alert never reached paramedic"
    return result


def test_hung_instance_is_restarted() -> None:
    r = _run("hung")
    assert r.actions == ["supervisor.restart succeeded"]
    assert r.verdicts == ["allowed"]
    assert r.statuses == ["resolved"]
    assert r.state["web-1"] == "RUNNING/serving"


def test_crash_loop_restarts_stop_at_the_rate_limit_then_escalate() -> None:
    r = _run("crashloop")
    assert 1 <= r.executed("supervisor.restart") <= 2
    assert "rate_limited" in r.verdicts or "flapping" in r.verdicts
    assert r.statuses[-1] == "escalated"
    assert r.recover is None
    assert not r.state["web-2"].startswith("RUNNING/serving")


def test_memory_leak_restarts_before_the_limit() -> None:
    r = _run("leak")
    assert r.actions == ["supervisor.restart succeeded"]
    assert r.verdicts == ["allowed"]
    assert int(r.state["web-3 peak memory MiB"]) < MEMORY_LIMIT // 2**20
    assert r.state["web-3"] == "RUNNING/serving"


def test_bad_release_is_rolled_back() -> None:
    r = _run("bad-release")
    assert r.actions == ["release.rollback succeeded"]
    assert r.verdicts == ["allowed"]
    assert r.state["current"] == "v1"
    assert r.statuses == ["resolved"]


def test_overload_scales_the_pool() -> None:
    r = _run("overload")
    assert r.actions == ["supervisor.scale succeeded"]
    assert r.state["instances"] == "5"
    assert r.state["web-5"] == "RUNNING/serving"


def test_unhealthy_instance_is_drained_and_returned() -> None:
    r = _run("unhealthy")
    assert r.actions == ["haproxy.drain succeeded", "supervisor.restart succeeded", "haproxy.ready succeeded"]
    assert r.verdicts == ["allowed", "allowed", "allowed"]
    assert r.state["web-2"] == "RUNNING/serving"


def test_flapping_alert_causes_no_remediation_storm() -> None:
    r = _run("flapping")
    assert r.executed("supervisor.restart") <= 2
    assert len(r.statuses) >= 3
    assert {"rate_limited", "flapping"} & set(r.verdicts)
    assert r.state["web-3"] == "RUNNING/serving"


def test_unknown_alert_is_escalated_with_evidence_and_not_automated() -> None:
    r = _run("unknown")
    assert r.actions == []
    assert r.verdicts == []
    assert r.statuses == ["escalated"]
    assert int(r.state["evidence"]) >= 1


def test_remediation_that_makes_it_worse_opens_the_breaker() -> None:
    r = _run("worse")
    assert r.executed("release.rollback") == 1
    assert r.statuses == ["escalated"]
    assert "open" in r.state["breaker"]
    assert r.state["mode"] == "approve"  # a breaker trip moves the runbook one mode down


def test_the_baseline_waits_for_a_human() -> None:
    r = scenarios.run(scenarios.BY_KEY["hung"], mode="baseline")
    assert r.detect is not None
    assert r.actions == []
    assert r.recover is None
    assert set(r.verdicts) <= {"paused"}
