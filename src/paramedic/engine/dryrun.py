"""``paramedic test``: match a recorded payload against runbooks and show the rendered plan, each
step's own dry-run description and every guardrail verdict. Nothing is executed: steps go through
``DryRunExecutor`` and the guardrails run against a throw-away in-memory database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from paramedic.actions.dryrun import DryRunExecutor
from paramedic.actions.registry import ExecutorRegistry, build_registry
from paramedic.core.alerts import Alert
from paramedic.core.errors import ConfigError, PayloadError, TemplateError
from paramedic.core.plan import build_plan
from paramedic.engine import guard
from paramedic.engine import runbooks as loader
from paramedic.ingest import alertmanager, generic
from paramedic.store import migrate
from paramedic.store.db import Database, make_engine


def parse_payload(data: Any, *, now: datetime) -> list[Alert]:
    """Recognise the source of a recorded payload and parse it."""
    if isinstance(data, dict) and "alerts" in data and ("groupKey" in data or "version" in data):
        return alertmanager.parse(data)
    return generic.parse(data, now=now)


def _dry_registry(real: ExecutorRegistry) -> ExecutorRegistry:
    return ExecutorRegistry(DryRunExecutor(ex) for ex in real.executors())


async def dry_run(path: str, alert_file: Path, *, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    real = build_registry({})
    result = loader.load([path], real, lint=False)
    if result.errors:
        raise ConfigError("runbooks are invalid:\n" + "\n".join(str(p) for p in result.errors))
    try:
        payload = json.loads(alert_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PayloadError(f"{alert_file}: cannot read the payload: {exc}") from exc
    alerts = parse_payload(payload, now=now)
    books = loader.RunbookSet(result.runbooks)
    dry = _dry_registry(real)
    db = Database(make_engine("sqlite:///:memory:", pool_size=1))
    migrate.upgrade(db)
    report: dict[str, Any] = {"alerts": []}
    for alert in alerts:
        entry: dict[str, Any] = {
            "alertname": alert.name,
            "status": str(alert.status),
            "labels": dict(alert.labels),
            "matches": [],
        }
        for rb in books.match(alert):
            m: dict[str, Any] = {"runbook": rb.name, "mode": str(rb.mode), "owner": rb.owner}
            try:
                plan = build_plan(rb, alert)
            except TemplateError as exc:
                m["refused"] = f"template: {exc}"
                entry["matches"].append(m)
                continue
            m["target"] = plan.target
            m["steps"] = []
            for step in plan.steps:
                s: dict[str, Any] = {"action": step.action, "args": dict(step.args)}
                try:
                    req = dry.request(step.action, step.args, timeout=step.timeout)
                    s["would"] = (await dry.executor(step.action).execute(req)).summary
                except Exception as exc:
                    s["would"] = f"cannot run: {exc}"
                m["steps"].append(s)
            m["verify"] = plan.verify
            with db.write() as conn:
                decision = guard.evaluate_for_alert(
                    conn, runbook=rb, plan=plan, alert=alert, now=now, policy=guard.Policy()
                )
            m["verdicts"] = [dict(v.to_json()) for v in decision.verdicts]
            m["would_run"] = decision.allowed and rb.mode != "observe"
            entry["matches"].append(m)
        if not entry["matches"]:
            entry["unmatched"] = "no runbook matches: paramedic escalates to a human with the evidence"
        report["alerts"].append(entry)
    db.dispose()
    return report


def render_report(report: dict[str, Any], console: Console) -> None:
    for a in report["alerts"]:
        labels = ", ".join(f"{k}={v}" for k, v in a["labels"].items() if k != "alertname")
        console.print(f"[bold]{a['alertname']}[/] ({a['status']}) {escape(labels)}", highlight=False)
        if "unmatched" in a:
            console.print(f"  [yellow]{escape(a['unmatched'])}[/]")
        for m in a["matches"]:
            console.print(
                f"  runbook [cyan]{m['runbook']}[/] (mode {m['mode']}, owner {m['owner']})",
                highlight=False,
            )
            if "refused" in m:
                console.print(f"    [red]refused: {escape(m['refused'])}[/]", highlight=False)
                continue
            console.print(f"    target: {m['target']}", highlight=False)
            for i, s in enumerate(m["steps"]):
                console.print(f"    step {i}: {s['action']} {escape(json.dumps(s['args']))}", highlight=False)
                console.print(f"            {escape(s['would'])}", highlight=False)
            for v in m["verdicts"]:
                mark = "[green]allow[/]" if v["allowed"] else "[red]REFUSE[/]"
                console.print(f"    {mark} {v['check']:<16} {escape(v['reason'])}", highlight=False)
            verdict = (
                "would run"
                if m["would_run"]
                else ("observe only: nothing runs" if m["mode"] == "observe" else "would NOT run")
            )
            console.print(f"    → {verdict}")
