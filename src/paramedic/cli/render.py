"""Human renderings of incidents for the terminal (``paramedic incidents list|show``).

Everything an alert carries is untrusted: it is shown as data, never as rich markup (``[/]`` in a
label once crashed ``incidents list``) and never as terminal control (an ANSI escape in a label is
printed as ``\\x1b``). Table cells are ``Text`` objects, which rich never parses; lines that mix
paramedic's own styling with alert text pass the alert text through ``safe``.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from paramedic.core.text import printable


def safe(value: object) -> str:
    """Untrusted text for a line that also holds markup: control characters and markup escaped."""
    return escape(printable(value))


def cell(value: object) -> Text:
    """Untrusted text for one table cell, on one line."""
    return Text(printable("" if value is None else value, newlines=False))


def incidents_table(rows: list[dict[str, Any]]) -> Table:
    table = Table()
    for col in ("id", "alert", "target", "status", "owner", "detected", "handled by", "MTTR"):
        table.add_column(col)
    for i in rows:
        table.add_row(
            cell(i["id"]),
            cell(i["alertname"]),
            cell(i["labels"].get("instance", "")),
            cell(i["status"]),
            cell(i.get("assignee") or i.get("owner") or ""),
            cell((i["detected_at"] or "")[11:19]),
            cell(i["handled_by"]),
            cell(i["mttr"] or ""),
        )
    return table


def _args(args: dict[str, Any]) -> str:
    return json.dumps(args, ensure_ascii=False, sort_keys=True)


def render_approval(run: dict[str, Any], incident_id: int, console: Console) -> None:
    """What a human approves: every step with its rendered arguments, the verification, the expiry."""
    plan = run.get("plan") or {}
    console.print(
        f"    [bold yellow]awaiting approval[/] of plan {safe(run.get('plan_digest') or '')} "
        f"on target {safe(plan.get('target', run.get('target', '')))}",
        highlight=False,
    )
    for s in plan.get("steps", []):
        console.print(f"      step {s['index']}: {safe(s['action'])} {safe(_args(s.get('args', {})))}", highlight=False)
    verify = plan.get("verify")
    shown = safe(_args(verify)) if verify else "none (no verification declared)"
    console.print(f"      verify: {shown}", highlight=False)
    if plan.get("on_failure"):
        console.print(f"      on failure: {safe(plan['on_failure'])}", highlight=False)
    if run.get("approval_expires_at"):
        console.print(f"      expires at {safe(run['approval_expires_at'])} (then it escalates)", highlight=False)
    for a in run.get("approvals", []):
        console.print(f"      {safe(a['decision'])} by {safe(a['actor'])} at {safe(a['at'])}", highlight=False)
    console.print(
        f"      approve: paramedic approve {incident_id} --run {run['id']} --plan {safe(run.get('plan_digest') or '')}",
        highlight=False,
    )


def render_incident(data: dict[str, Any], console: Console) -> None:
    target = data["labels"].get("instance", data["service"])
    console.print(
        f"[bold]incident {data['id']}[/]: {safe(data['alertname'])} on {safe(target)} — {safe(data['status'])}",
        highlight=False,
    )
    banner = data.get("escalation")
    if banner:
        console.print(f"  [bold red]a human is needed:[/] {safe(banner['why'])}", highlight=False)
        for line in banner.get("tried", []):
            console.print(f"    tried: {safe(line)}", highlight=False)
        if banner.get("next"):
            console.print(f"    next: {safe(banner['next'])}", highlight=False)
    for key in ("owner", "assignee", "snoozed_until", "resolution"):
        if data.get(key):
            console.print(f"  {key.replace('_', ' '):<16} {safe(data[key])}", highlight=False)
    for key in ("detected_at", "acknowledged_at", "mitigated_at", "resolved_at"):
        if data.get(key):
            console.print(f"  {key.replace('_', ' '):<16} {safe(data[key])}", highlight=False)
    if data.get("mttr"):
        console.print(f"  MTTR             {safe(data['mttr'])}", highlight=False)
    for run in data.get("runs", []):
        console.print(
            f"\n  run {run['id']} · {safe(run['runbook'])} · mode {safe(run['mode'])} · {safe(run['status'])}"
            + (f" · {safe(run['reason'])}" if run["reason"] else ""),
            highlight=False,
        )
        if run["status"] == "awaiting_approval":
            render_approval(run, data["id"], console)
        for s in run["steps"]:
            console.print(
                f"    step {s['idx']} {safe(s['action'])} {safe(s['status'])}: {safe(s['summary'] or s['error'])}",
                highlight=False,
            )
        for v in run["verdicts"]:
            for c in v["checks"]:
                mark = "allow " if c["allowed"] else "REFUSE"
                console.print(f"    {mark} {safe(c['check'])}: {safe(c['reason'])}", highlight=False)
    if data.get("evidence"):
        console.print("\n  evidence:")
        for e in data["evidence"]:
            status = safe(f"[{e['status']}]")
            console.print(f"    {status} {safe(e['kind'])}: {safe(e['title'])}", highlight=False)
    if data.get("notes"):
        console.print("\n  notes:")
        for n in data["notes"]:
            console.print(f"    {safe(n['at'][:19])} {safe(n['by'])}: {safe(n['text'])}", highlight=False)
    table = Table(title="timeline", show_header=True)
    for col in ("time", "event", "by", "details"):
        table.add_column(col)
    for t in data.get("timeline", []):
        details = ", ".join(f"{k}={v}" for k, v in t["data"].items() if k not in ("labels",))[:120]
        table.add_row(cell(t["at"][11:23]), cell(t["kind"]), cell(t["actor"]), cell(details))
    console.print(table)
