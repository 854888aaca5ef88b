"""Human renderings of incidents for the terminal (``paramedic incidents show``)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def render_incident(data: dict[str, Any], console: Console) -> None:
    console.print(
        f"[bold]incident {data['id']}[/]: {data['alertname']} on "
        f"{data['labels'].get('instance', data['service'])} — {data['status']}",
        highlight=False,
    )
    for key in ("detected_at", "acknowledged_at", "mitigated_at", "resolved_at"):
        if data.get(key):
            console.print(f"  {key.replace('_', ' '):<16} {data[key]}", highlight=False)
    if data.get("mttr"):
        console.print(f"  MTTR             {data['mttr']}")
    for run in data.get("runs", []):
        console.print(
            f"\n  run {run['id']} · {run['runbook']} · mode {run['mode']} · {run['status']}"
            + (f" · {escape(run['reason'])}" if run["reason"] else ""),
            highlight=False,
        )
        for s in run["steps"]:
            console.print(
                f"    step {s['idx']} {s['action']} {s['status']}: {escape(s['summary'] or s['error'])}",
                highlight=False,
            )
        for v in run["verdicts"]:
            for c in v["checks"]:
                mark = "allow " if c["allowed"] else "REFUSE"
                console.print(f"    {mark} {c['check']}: {escape(c['reason'])}", highlight=False)
    if data.get("evidence"):
        console.print("\n  evidence:")
        for e in data["evidence"]:
            console.print(f"    [{e['status']}] {e['kind']}: {escape(e['title'])}", highlight=False)
    table = Table(title="timeline", show_header=True)
    for col in ("time", "event", "by", "details"):
        table.add_column(col)
    for t in data.get("timeline", []):
        details = ", ".join(f"{k}={v}" for k, v in t["data"].items() if k not in ("labels",))[:120]
        table.add_row(t["at"][11:23], t["kind"], t["actor"], details)
    console.print(table)
