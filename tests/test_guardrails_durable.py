"""Guardrail state lives in the database: a restart of paramedic in the middle of a window keeps
every count (rate limits, breaker failures), and `paramedic test` explains refusals readably."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from paramedic.core.config import Config
from paramedic.engine.service import Paramedic
from tests.conftest import Server


def runbook(tmp: Path, *, verify_file: str) -> str:
    return f"""
apiVersion: paramedic/v1
runbooks:
  - name: restart
    owner: team
    match: {{alertname: Down}}
    target: "{{{{ labels.instance }}}}"
    mode: auto
    guardrails:
      rate_limit: {{max: 2, per: 1h, scope: target}}
      circuit_breaker: {{failures: 1, window: 1h, cooldown: 1h}}
    steps:
      - action: shell.run
        with: {{argv: ["touch", "{tmp}/acted-{{{{ alert.fingerprint }}}}"]}}
    verify:
      command: {{argv: ["test", "-f", "{verify_file}"], within: 0.3s, every: 0.1s}}
"""


def fire(c: httpx.Client, n: int) -> int:
    r = c.post("/api/v1/alerts", json={"name": "Down", "labels": {"instance": "h1", "n": str(n)}})
    return int(r.json()["alerts"][0]["incident_id"])


def status(c: httpx.Client, i: int) -> str:
    return str(c.get(f"/api/v1/incidents/{i}").json()["status"])


def test_rate_limit_survives_a_restart(tmp_path: Path, database_url: str) -> None:
    marker = tmp_path / "healthy"
    marker.touch()  # verification passes: no breaker involvement, only the rate limit counts
    rb_dir = tmp_path / "rb"
    rb_dir.mkdir()
    (rb_dir / "r.yaml").write_text(runbook(tmp_path, verify_file=str(marker)))
    cfg = Config(database=database_url, runbooks=[str(rb_dir)])

    with Server(Paramedic.from_config(cfg)) as srv, srv.client() as c:
        first = [fire(c, n) for n in (1, 2)]
        for i in first:
            srv.wait(lambda c, i=i: status(c, i) == "mitigated")
    # a new process on the same database, inside the same one-hour window
    with Server(Paramedic.from_config(cfg)) as srv, srv.client() as c:
        third = fire(c, 3)
        srv.wait(lambda c: status(c, third) == "escalated")
        run = c.get(f"/api/v1/incidents/{third}").json()["runs"][0]
    assert run["status"] == "refused"
    assert run["reason"].startswith("rate_limited: rate limit: 2 of 2 remediations on target h1 in the last 1h")
    assert "next allowed at" in run["reason"]
    assert len(list(tmp_path.glob("acted-*"))) == 2


def test_open_breaker_survives_a_restart_and_demotes(tmp_path: Path, make_server: Callable[..., Server]) -> None:
    srv = make_server(runbook(tmp_path, verify_file=str(tmp_path / "never")))
    with srv.client() as c:
        i = fire(c, 1)
        srv.wait(lambda c: status(c, i) == "escalated")
        books = c.get("/api/v1/runbooks").json()["runbooks"]
        timeline = [t["kind"] for t in c.get(f"/api/v1/incidents/{i}").json()["timeline"]]
    assert "breaker.opened" in timeline
    assert books[0]["mode"] == "approve"  # a breaker trip moves the runbook down one mode
    db_url = srv.pm.config.database
    rb_dirs = srv.pm.config.runbooks
    srv.__exit__(None, None, None)

    with Server(Paramedic.from_config(Config(database=db_url, runbooks=rb_dirs))) as again, again.client() as c:
        j = fire(c, 2)
        run = c.get(f"/api/v1/incidents/{j}").json()["runs"][0]
        assert run["mode"] == "approve"
        assert run["status"] == "awaiting_approval"
        c.post(f"/api/v1/incidents/{j}/approve", json={"reason": "try once more"})
        again.wait(lambda c: status(c, j) == "escalated")
        run = c.get(f"/api/v1/incidents/{j}").json()["runs"][0]
    assert run["status"] == "refused"
    assert run["reason"].startswith("circuit_open")
