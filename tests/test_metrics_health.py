"""``/metrics`` tells how paramedic itself is doing: paused, approvals waiting, refusals by reason,
the notification backlog, MTTR and time-to-mitigate histograms per runbook and service (a human
resolution counts). The example alerting rules pass ``promtool check rules``, and every metric the
rules and the Grafana dashboard use is one ``/metrics`` really exposes."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Server
from tests.support import require_binary
from tests.test_ui_support import approve_runbook, runbooks

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "paramedic-rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "paramedic-dashboard.json"
AUTO = """
  - name: restart-web
    owner: team-web
    match: {alertname: WebDown}
    target: "{{ labels.instance }}"
    mode: auto
    steps:
      - action: shell.run
        with: {argv: ["true"]}
"""


def scrape(srv: Server) -> dict[str, list[tuple[dict[str, str], float]]]:
    with srv.client() as c:
        text = c.get("/metrics").text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for ls, v in samples.get(name, []) if all(ls.get(k) == w for k, w in labels.items()))


def test_metrics_show_paramedics_own_health_and_mttr(make_server: Callable[..., Server], tmp_path: Path) -> None:
    srv = make_server(runbooks(approve_runbook(tmp_path), AUTO))
    with srv.client() as c:
        waiting = c.post("/api/v1/alerts", json={"name": "Broken", "labels": {"instance": "web-1", "service": "web"}})
        iid = waiting.json()["alerts"][0]["incident_id"]
        assert c.post("/api/v1/automation/pause", json={"reason": "maintenance"}).status_code == 200
        c.post("/api/v1/alerts", json={"name": "WebDown", "labels": {"instance": "web-2", "service": "web"}})
        assert c.post(f"/api/v1/incidents/{iid}/resolve", json={"reason": "fixed by hand"}).status_code == 200
        assert c.post("/api/v1/alerts", content=b"{not json", headers={"Content-Type": "application/json"}).status_code
    srv.wait(lambda c: "paused" in c.get("/metrics").text and 'reason="paused"' in c.get("/metrics").text)
    m = scrape(srv)
    assert value(m, "paramedic_paused") == 1
    assert value(m, "paramedic_approvals_pending") == 0  # the resolution cancelled the waiting run
    assert value(m, "paramedic_guardrail_refusals_total", reason="paused") >= 1
    assert value(m, "paramedic_incident_mttr_seconds_count", runbook="fix", service="web", handled_by="human") == 1
    assert value(m, "paramedic_incident_mttr_seconds_bucket", runbook="fix", handled_by="human", le="+Inf") == 1
    assert value(m, "paramedic_incidents_open") == 1
    assert value(m, "paramedic_ingest_rejected_total", source="generic") >= 1


def test_rules_pass_promtool_and_name_only_real_metrics(make_server: Callable[..., Server]) -> None:
    promtool = require_binary("promtool", "/usr/bin/promtool")
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout

    srv = make_server()
    with srv.client() as c:
        exposed = c.get("/metrics").text
    names = set(re.findall(r"^# (?:HELP|TYPE) (paramedic_[a-z_]+)", exposed, re.M))
    known = names | {f"{n}{suffix}" for n in names for suffix in ("_bucket", "_count", "_sum", "_total")}
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    used = set(re.findall(r"paramedic_[a-z_]+", RULES.read_text() + "\n".join(exprs)))
    assert used, "the rules and the dashboard use paramedic's metrics"
    assert used <= known, f"not exposed by /metrics: {sorted(used - known)}"
