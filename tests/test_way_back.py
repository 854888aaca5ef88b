"""The way back: once an alert has resolved and stayed resolved for ``recover.after``, the runbook's
``recover`` steps run as a run of their own — here a drained HAProxy server is readied — and an alert
that fires again first cancels it. Against the real HAProxy from Debian (the fixture of
``tests/test_haproxy_executor.py``) and a real paramedic server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from paramedic.core.alerts import Alert, AlertStatus
from paramedic.core.loader import parse_runbooks
from paramedic.core.plan import Plan, build_recovery_plan
from tests.conftest import Server
from tests.support import wait_for
from tests.test_haproxy_executor import Haproxy, haproxy  # noqa: F401  (the module-scoped fixture)

pytestmark = pytest.mark.integration


def runbook(after: str) -> str:
    return f"""
apiVersion: paramedic/v1
runbooks:
  - name: drain-unhealthy
    owner: team-web
    match: {{alertname: ServerUnhealthy}}
    target: "{{{{ labels.server }}}}"
    mode: auto
    params:
      server: {{pattern: '^w[0-9]$'}}
    steps:
      - action: haproxy.drain
        with: {{backend: web, server: "{{{{ labels.server }}}}"}}
    recover:
      after: {after}
      steps:
        - action: haproxy.ready
          with: {{backend: web, server: "{{{{ labels.server }}}}"}}
"""


def alert(status: str = "firing") -> dict[str, Any]:
    return {"name": "ServerUnhealthy", "labels": {"server": "w2", "service": "web"}, "status": status}


def admin_state(haproxy: Haproxy) -> str:  # noqa: F811
    return haproxy.state("web")["w2"]["srv_admin_state"]


def timeline(c: httpx.Client) -> list[str]:
    (inc, *_) = c.get("/api/v1/incidents", params={"limit": 100}).json()["incidents"][::-1]
    return [e["kind"] for e in c.get(f"/api/v1/incidents/{inc['id']}").json()["timeline"]]


def kinds(c: httpx.Client) -> list[str]:
    out: list[str] = []
    for inc in c.get("/api/v1/incidents", params={"limit": 100}).json()["incidents"]:
        out += [e["kind"] for e in c.get(f"/api/v1/incidents/{inc['id']}").json()["timeline"]]
    return out


def test_a_drained_server_is_readied_after_its_alert_stayed_resolved(
    make_server: Callable[..., Server],
    haproxy: Haproxy,  # noqa: F811
) -> None:
    assert haproxy.raw("set server web/w2 state ready").strip() == ""
    srv = make_server(runbook("1s"), executors={"haproxy": {"socket": haproxy.unix, "timeout": "3s"}})
    with srv.client() as c:
        assert c.post("/api/v1/alerts", json=alert()).status_code == 202
        wait_for(lambda: admin_state(haproxy) == "8", timeout=30)  # drained (SRV_ADMF_FDRAIN)
        wait_for(lambda: "run.succeeded" in kinds(c), timeout=30)
        assert c.post("/api/v1/alerts", json=alert("resolved")).status_code == 202
        wait_for(lambda: admin_state(haproxy) == "0", timeout=30)  # back in rotation
        wait_for(lambda: "recovery.done" in kinds(c), timeout=30)
        found = kinds(c)
        assert found.index("incident.resolved") < found.index("recovery.scheduled") < found.index("recovery.done")
        (inc,) = c.get("/api/v1/incidents").json()["incidents"]
        assert inc["status"] == "resolved"  # the way back does not reopen or "mitigate" the incident
        steps = [s["action"] for r in c.get(f"/api/v1/incidents/{inc['id']}").json()["runs"] for s in r["steps"]]
        assert sorted(steps) == ["haproxy.drain", "haproxy.ready"]


def test_an_alert_that_fires_again_before_it_stayed_resolved_cancels_the_way_back(
    make_server: Callable[..., Server],
    haproxy: Haproxy,  # noqa: F811
) -> None:
    assert haproxy.raw("set server web/w2 state ready").strip() == ""
    srv = make_server(runbook("1h"), executors={"haproxy": {"socket": haproxy.unix, "timeout": "3s"}})
    with srv.client() as c:
        assert c.post("/api/v1/alerts", json=alert()).status_code == 202
        wait_for(lambda: "run.succeeded" in kinds(c), timeout=30)
        assert c.post("/api/v1/alerts", json=alert("resolved")).status_code == 202
        wait_for(lambda: "recovery.scheduled" in kinds(c), timeout=10)
        assert c.post("/api/v1/alerts", json=alert()).status_code == 202  # a new episode, an hour too soon
        wait_for(lambda: "recovery.cancelled" in kinds(c), timeout=10)
    assert admin_state(haproxy) == "8"  # still drained: nothing readied a server that is failing again


def test_the_recovery_plan_renders_the_recover_steps_and_says_it_is_one() -> None:
    (loc,), problems = parse_runbooks(
        "apiVersion: paramedic/v1\nrunbooks:" + runbook("5m").split("runbooks:", 1)[1], "rb"
    )
    assert problems == []
    fired = Alert("generic", "fp", "ServerUnhealthy", AlertStatus.FIRING, _now(), {"server": "w2"})
    plan = build_recovery_plan(loc.runbook, fired)
    assert plan is not None
    assert plan.recovery
    assert [(s.action, dict(s.args)) for s in plan.steps] == [("haproxy.ready", {"backend": "web", "server": "w2"})]
    assert Plan.from_json(plan.to_json()) == plan


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 12, 1, tzinfo=UTC)
