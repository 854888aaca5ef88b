"""The banner on top of an escalated incident: why a human was called, what paramedic already
tried, and what to do next. Pure: composed from the incident view (``views.incident_detail``), so
the API, the CLI and the UI all say the same thing."""

from __future__ import annotations

from typing import Any

MAX_TRIED = 12


def _why(detail: dict[str, Any]) -> str:
    reasons = [str(t["data"].get("reason", "")) for t in detail["timeline"] if t["kind"] == "incident.escalated"]
    reasons = [r for r in dict.fromkeys(reasons) if r]
    return "; ".join(reasons) or "paramedic could not handle it on its own"


def _tried(runs: list[dict[str, Any]]) -> list[str]:
    tried: list[str] = []
    for run in runs:
        head = f"run {run['id']} ({run['runbook']}, mode {run['mode']}): {run['status']}"
        tried.append(head + (f" — {run['reason']}" if run.get("reason") else ""))
        for s in run["steps"]:
            result = s.get("summary") or s.get("error") or s.get("reason") or ""
            tried.append(f"step {s['idx']} {s['action']}: {s['status']}" + (f" — {result}" if result else ""))
        for v in run["verdicts"]:
            if not v["allowed"]:
                refused = [f"{c['check']}: {c['reason']}" for c in v["checks"] if not c["allowed"]]
                tried.append(f"guardrail refused step {v['step']} ({v['code']}): " + "; ".join(refused))
    if not tried:
        tried.append("nothing: no runbook acts on this alert, so paramedic did not improvise")
    return tried[:MAX_TRIED]


def _next(detail: dict[str, Any]) -> str:
    waiting = [r for r in detail["runs"] if r["status"] == "awaiting_approval"]
    if waiting:
        return f"review run {waiting[0]['id']} and approve or deny it"
    if not detail.get("acknowledged_at"):
        return "acknowledge it (you own it now), look at the evidence, then resolve it with a reason"
    return "when it is fixed, resolve it with a reason (the alert resolving closes it too)"


def banner(detail: dict[str, Any]) -> dict[str, Any] | None:
    """``{"why", "tried", "next"}`` for an escalated, unresolved incident; None otherwise."""
    if not detail.get("escalated_at") or detail.get("status") == "resolved":
        return None
    return {"why": _why(detail), "tried": _tried(detail["runs"]), "next": _next(detail)}
