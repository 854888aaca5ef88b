"""Runs end to end through a real server: auto runs and verifies, on_failure next is a ladder,
approve waits for a human, observe changes nothing, a hostile label is refused with a reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Server


def runbook(
    tmp: Path, *, mode: str = "auto", steps: str, verify: str, on_failure: str = "escalate", extra: str = ""
) -> str:
    return f"""
apiVersion: paramedic/v1
runbooks:
  - name: fix
    owner: team
    match: {{alertname: Broken}}
    target: "{{{{ labels.instance }}}}"
    mode: {mode}
    on_failure: {on_failure}
    steps:
{steps}
    verify:
{verify}
{extra}
"""


def touch(path: Path) -> str:
    return f'      - action: shell.run\n        with: {{argv: ["touch", "{path}"]}}\n'


def exists(path: Path, within: str = "3s") -> str:
    return f'      command: {{argv: ["test", "-f", "{path}"], within: {within}, every: 0.1s}}\n'


def fire(c: httpx.Client, instance: str = "h1") -> int:
    r = c.post("/api/v1/alerts", json={"name": "Broken", "labels": {"instance": instance}})
    assert r.status_code == 202
    return int(r.json()["alerts"][0]["incident_id"])


def incident(c: httpx.Client, i: int) -> dict[str, Any]:
    return c.get(f"/api/v1/incidents/{i}").json()  # type: ignore[no-any-return]


def settled(i: int, *statuses: str) -> Callable[[httpx.Client], bool]:
    return lambda c: incident(c, i)["status"] in statuses


def test_auto_run_executes_verifies_and_mitigates(make_server: Callable[..., Server], tmp_path: Path) -> None:
    marker = tmp_path / "fixed"
    srv = make_server(runbook(tmp_path, steps=touch(marker), verify=exists(marker)))
    with srv.client() as c:
        i = fire(c)
        srv.wait(settled(i, "mitigated"))
        data = incident(c, i)
    assert marker.exists()
    run = data["runs"][0]
    assert run["status"] == "succeeded"
    assert run["steps"][0]["status"] == "succeeded"
    assert data["acknowledged_at"]
    assert data["mitigated_at"]
    assert data["handled_by"] == "automation"
    kinds = [t["kind"] for t in data["timeline"]]
    assert kinds == ["incident.opened", "run.created", "step.started", "step.succeeded", "run.succeeded"]


def test_failed_verification_escalates(make_server: Callable[..., Server], tmp_path: Path) -> None:
    srv = make_server(runbook(tmp_path, steps=touch(tmp_path / "a"), verify=exists(tmp_path / "never", "0.5s")))
    with srv.client() as c:
        i = fire(c)
        srv.wait(settled(i, "escalated"))
        run = incident(c, i)["runs"][0]
    assert run["status"] == "failed"
    assert "verification failed" in run["reason"]


def test_on_failure_next_is_a_ladder(make_server: Callable[..., Server], tmp_path: Path) -> None:
    """Step 1 does not fix it, step 2 does, step 3 never runs."""
    fixed = tmp_path / "fixed"
    steps = touch(tmp_path / "first") + touch(fixed) + touch(tmp_path / "third")
    srv = make_server(runbook(tmp_path, steps=steps, verify=exists(fixed, "0.5s"), on_failure="next"))
    with srv.client() as c:
        i = fire(c)
        srv.wait(settled(i, "mitigated"))
        run = incident(c, i)["runs"][0]
    assert [s["status"] for s in run["steps"]] == ["succeeded", "succeeded"]
    assert not (tmp_path / "third").exists()


def test_failing_step_with_escalate_stops_the_run(make_server: Callable[..., Server], tmp_path: Path) -> None:
    steps = '      - action: shell.run\n        with: {argv: ["false"]}\n' + touch(tmp_path / "second")
    srv = make_server(runbook(tmp_path, steps=steps, verify=exists(tmp_path / "second")))
    with srv.client() as c:
        i = fire(c)
        srv.wait(settled(i, "escalated"))
        run = incident(c, i)["runs"][0]
    assert run["steps"][0]["reason"] == "exit_status"
    assert not (tmp_path / "second").exists()


def test_approve_mode_waits_for_a_human(make_server: Callable[..., Server], tmp_path: Path) -> None:
    marker = tmp_path / "fixed"
    srv = make_server(runbook(tmp_path, mode="approve", steps=touch(marker), verify=exists(marker)))
    with srv.client() as c:
        i = fire(c)
        assert incident(c, i)["status"] == "awaiting_approval"
        assert not marker.exists()
        r = c.post(f"/api/v1/incidents/{i}/approve", json={"reason": "looks right"})
        assert r.status_code == 200
        srv.wait(settled(i, "mitigated"))
        data = incident(c, i)
        assert c.post(f"/api/v1/incidents/{i}/approve", json={}).status_code == 409
    assert data["runs"][0]["approvals"][0]["actor"] == "local"
    assert "approval.approve" in [t["kind"] for t in data["timeline"]]


def test_deny_needs_a_reason_and_escalates(make_server: Callable[..., Server], tmp_path: Path) -> None:
    srv = make_server(runbook(tmp_path, mode="approve", steps=touch(tmp_path / "x"), verify=exists(tmp_path / "x")))
    with srv.client() as c:
        i = fire(c)
        assert c.post(f"/api/v1/incidents/{i}/deny", json={"reason": " "}).status_code == 422
        assert c.post(f"/api/v1/incidents/{i}/deny", json={"reason": "maintenance"}).status_code == 200
        data = incident(c, i)
    assert data["runs"][0]["status"] == "denied"
    assert data["status"] == "escalated"
    assert not (tmp_path / "x").exists()


def test_observe_mode_records_the_plan_and_runs_nothing(make_server: Callable[..., Server], tmp_path: Path) -> None:
    marker = tmp_path / "fixed"
    srv = make_server(runbook(tmp_path, mode="observe", steps=touch(marker), verify=exists(marker)))
    with srv.client() as c:
        i = fire(c)
        data = incident(c, i)
    run = data["runs"][0]
    assert run["status"] == "observed"
    assert run["plan"]["steps"][0]["args"]["argv"][1] == str(marker)
    assert not marker.exists()
    # matching is not handling: nobody acts, so a human is told, with the suggestion
    assert data["status"] == "escalated"
    reasons = [t["data"]["reason"] for t in data["timeline"] if t["kind"] == "incident.escalated"]
    assert reasons == [
        "no runbook will act on this alert: fix is in observe mode (its plan is recorded as a suggestion)"
    ]


def test_hostile_label_stops_the_run_with_an_audit_reason(make_server: Callable[..., Server], tmp_path: Path) -> None:
    marker = tmp_path / "fixed"
    steps = (
        '      - action: shell.run\n        with: {argv: ["touch", "' + str(tmp_path) + '/{{ labels.instance }}"]}\n'
    )
    srv = make_server(runbook(tmp_path, steps=steps, verify=exists(marker)))
    with srv.client() as c:
        i = fire(c, instance="$(touch /tmp/pwned)")
        data = incident(c, i)
    assert data["status"] == "escalated"
    assert data["runs"] == []
    refused = [t for t in data["timeline"] if t["kind"] == "plan.refused"]
    assert "does not match pattern" in refused[0]["data"]["reason"]
    assert list(tmp_path.glob("$(*")) == []


def test_pause_stops_actions(make_server: Callable[..., Server], tmp_path: Path) -> None:
    marker = tmp_path / "fixed"
    srv = make_server(runbook(tmp_path, steps=touch(marker), verify=exists(marker)))
    with srv.client() as c:
        c.post("/api/v1/automation/pause", json={"reason": "incident review"})
        i = fire(c)
        srv.wait(settled(i, "escalated"))
        run = incident(c, i)["runs"][0]
    assert run["status"] == "refused"
    assert run["reason"].startswith("paused")
    assert not marker.exists()


def test_paused_in_the_config_pauses_automation(make_server: Callable[..., Server], tmp_path: Path) -> None:
    from paramedic.core.config import Automation

    marker = tmp_path / "fixed"
    srv = make_server(runbook(tmp_path, steps=touch(marker), verify=exists(marker)), automation=Automation(paused=True))
    with srv.client() as c:
        assert c.get("/api/v1/automation").json() == {"paused": True}
        i = fire(c)
        srv.wait(settled(i, "escalated"))
        run = incident(c, i)["runs"][0]
    assert run["reason"].startswith("paused")
    assert not marker.exists()
