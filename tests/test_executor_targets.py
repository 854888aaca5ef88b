"""Known targets from executors: the blast-radius guardrail learns a supervisord group's members
from supervisord itself, so a target outside the group is refused as unknown, never assumed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from paramedic.lab.supervisord import SupervisorHarness
from tests.conftest import Server

pytestmark = pytest.mark.integration

RUNBOOK = """
apiVersion: paramedic/v1
runbooks:
  - name: restart-member
    owner: team-web
    match: {alertname: Hung, labels: {service: web}}
    target: "{{ labels.program }}"
    mode: auto
    guardrails:
      blast_radius: {scope: [service], max_concurrent: 1, max_fraction: 0.5, min_healthy: 1}
    steps:
      - action: supervisor.restart
        with: {program: "{{ labels.program }}"}
    params:
      program: {pattern: '^web:web-[0-9]+$'}
"""


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[SupervisorHarness]:
    with SupervisorHarness(tmp_path / "sv", numprocs=3) as h:
        yield h


def test_group_members_become_known_targets(harness: SupervisorHarness, make_server: Callable[..., Server]) -> None:
    """With max_fraction 0.5, one of the group's 3 members may be touched. Without the executor's
    list, only the alert's own target would be known, and floor(0.5 x 1) = 0 would refuse it."""
    srv = make_server(RUNBOOK, executors={"supervisor": harness.executor_config()})
    listed = asyncio.run(srv.pm.refresh_executor_targets())
    assert listed == 3

    def fire(c: httpx.Client, program: str, status: str) -> dict[str, object]:
        r = c.post("/api/v1/alerts", json={"name": "Hung", "labels": {"service": "web", "program": program}})
        i = r.json()["alerts"][0]["incident_id"]
        srv.wait(lambda c: c.get(f"/api/v1/incidents/{i}").json()["status"] == status)
        return c.get(f"/api/v1/incidents/{i}").json()["runs"][0]  # type: ignore[no-any-return]

    with srv.client() as c:
        first = fire(c, "web:web-2", "mitigated")
        second = fire(c, "web:web-3", "escalated")
    assert first["status"] == "succeeded"
    assert second["status"] == "refused"
    assert "2 of 3 targets of service=web touched" in second["reason"]


def test_without_the_executor_list_the_share_cannot_be_bounded(make_server: Callable[..., Server]) -> None:
    """The alert's own target does not become known by alerting: nothing that knows the group
    listed it, so the set is unknown and the run is refused, never "all"."""
    srv = make_server(RUNBOOK)  # no supervisord: nothing lists the group
    with srv.client() as c:
        r = c.post("/api/v1/alerts", json={"name": "Hung", "labels": {"service": "web", "program": "web:web-2"}})
        i = r.json()["alerts"][0]["incident_id"]
        srv.wait(lambda c: c.get(f"/api/v1/incidents/{i}").json()["status"] == "escalated")
        run = c.get(f"/api/v1/incidents/{i}").json()["runs"][0]
    assert run["status"] == "refused"
    assert "the targets of service=web are unknown" in run["reason"]
