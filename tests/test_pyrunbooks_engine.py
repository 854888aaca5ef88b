"""Python runbooks through a real server: planned at ingest, executed by the runner, and held to
the same guardrails and audit trail as a YAML step."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from paramedic.core.config import Config
from paramedic.engine.service import Paramedic
from paramedic.store.tables import changes
from tests.conftest import Server

PY = """\
from paramedic import Context, runbook


@runbook(
    match={{"alertname": "BrokenPy"}},
    owner="team",
    mode="auto",
    params={{"instance": {{"pattern": "^[a-z0-9]+$"}}}},
)
async def fix_py(ctx: Context) -> None:
    if ctx.labels.get("give_up"):
        ctx.escalate("the runbook does not know this case")
    marker = "{dir}/" + ctx.labels["instance"]
    await ctx.act("shell.run", argv=["touch", marker])
    await ctx.verify.command(["test", "-f", marker], within="3s", every="0.1s")


@runbook(match={{"alertname": "BadDeploy"}}, owner="team", mode="observe", target="{{{{ labels.service }}}}")
async def roll_back(ctx: Context) -> None:
    deploy = await ctx.changes.latest(kind="deploy", within="30m", before=ctx.alert.starts_at)
    if deploy is None:
        ctx.escalate("no recent deploy")
    await ctx.act("release.rollback", app=deploy.service)
"""

YAML = """\
apiVersion: paramedic/v1
runbooks:
  - name: fix-yaml
    owner: team
    match: {{alertname: BrokenYaml}}
    mode: auto
    steps:
      - action: shell.run
        with: {{argv: ["touch", "{dir}/{{{{ labels.instance }}}}"]}}
    verify:
      command: {{argv: ["test", "-f", "{dir}/{{{{ labels.instance }}}}"], within: 3s, every: 0.1s}}
    params:
      instance: {{pattern: '^[a-z0-9]+$'}}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    marks = tmp_path / "marks"
    marks.mkdir()
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "fix.py").write_text(PY.format(dir=marks))
    (books / "fix.yaml").write_text(YAML.format(dir=marks))
    cfg = Config(database=f"sqlite:///{tmp_path / 'paramedic.db'}", runbooks=[str(books)])
    srv = Server(Paramedic.from_config(cfg)).__enter__()
    yield srv
    srv.__exit__(None, None, None)


def fire(c: httpx.Client, name: str, **labels: str) -> int:
    r = c.post("/api/v1/alerts", json={"name": name, "labels": labels})
    assert r.status_code == 202, r.text
    return int(r.json()["alerts"][0]["incident_id"])


def incident(c: httpx.Client, i: int) -> dict[str, Any]:
    return c.get(f"/api/v1/incidents/{i}").json()  # type: ignore[no-any-return]


def settled(i: int, *statuses: str) -> Callable[[httpx.Client], bool]:
    return lambda c: incident(c, i)["status"] in statuses


def test_a_python_runbook_runs_end_to_end(server: Server, tmp_path: Path) -> None:
    with server.client() as c:
        i = fire(c, "BrokenPy", instance="h1")
        server.wait(settled(i, "mitigated"))
        data = incident(c, i)
    assert (tmp_path / "marks" / "h1").exists()
    run = data["runs"][0]
    assert run["runbook"] == "fix-py"
    assert run["status"] == "succeeded"
    assert run["plan"]["steps"][0]["args"] == {"argv": ["touch", str(tmp_path / "marks" / "h1")]}
    kinds = [t["kind"] for t in data["timeline"]]
    assert kinds == ["incident.opened", "run.created", "step.started", "step.succeeded", "run.succeeded"]


def test_pause_refuses_a_python_action_exactly_as_a_yaml_step(server: Server, tmp_path: Path) -> None:
    with server.client() as c:
        assert c.post("/api/v1/automation/pause", json={"reason": "review"}).status_code == 200
        py, yml = fire(c, "BrokenPy", instance="h2"), fire(c, "BrokenYaml", instance="h3")
        server.wait(settled(py, "escalated"))
        server.wait(settled(yml, "escalated"))
        a, b = incident(c, py), incident(c, yml)
    assert not (tmp_path / "marks" / "h2").exists()
    assert not (tmp_path / "marks" / "h3").exists()
    run_a, run_b = a["runs"][0], b["runs"][0]
    assert run_a["status"] == run_b["status"] == "refused"
    assert run_a["reason"] == run_b["reason"]
    assert run_a["reason"].startswith("paused")
    assert [t["kind"] for t in a["timeline"]] == [t["kind"] for t in b["timeline"]]
    refusals = [[t["data"] for t in x["timeline"] if t["kind"] == "guardrail.refused"] for x in (a, b)]
    assert refusals[0] == refusals[1]
    assert refusals[0][0]["code"] == "paused"


def test_a_hostile_label_and_an_escalation_refuse_the_plan_with_a_reason(server: Server) -> None:
    with server.client() as c:
        hostile = incident(c, fire(c, "BrokenPy", instance="$(reboot)"))
        declined = incident(c, fire(c, "BrokenPy", instance="h4", give_up="yes"))
    for data, reason in (
        (hostile, "does not match pattern"),
        (declined, "escalated by the runbook: the runbook does not know this case"),
    ):
        assert data["status"] == "escalated"
        assert data["runs"] == []
        refused = [t for t in data["timeline"] if t["kind"] == "plan.refused"]
        assert reason in refused[0]["data"]["reason"]
        assert refused[0]["data"]["reason"].startswith("fix-py: ")


def test_a_python_runbook_reads_recent_changes_from_the_database(server: Server) -> None:
    now = server.pm.clock()
    with server.pm.db.write() as conn:
        conn.execute(
            changes.insert().values(
                service="shop",
                kind="deploy",
                version="v7",
                description="",
                actor="ci",
                at=now - timedelta(minutes=5),
                data={},
            )
        )
    with server.client() as c:
        data = incident(c, fire(c, "BadDeploy", service="shop"))
    run = data["runs"][0]
    assert run["status"] == "observed"
    assert run["plan"]["steps"] == [
        {
            "index": 0,
            "action": "release.rollback",
            "args": {"app": "shop"},
            "idempotent": None,
            "timeout": None,
            "name": "release.rollback",
        }
    ]


def test_the_runbooks_api_lists_a_python_runbook_with_its_declared_steps(server: Server) -> None:
    with server.client() as c:
        data = c.get("/api/v1/runbooks").json()
    fix = next(rb for rb in data["runbooks"] if rb["name"] == "fix-py")
    assert fix["mode"] == "auto"
