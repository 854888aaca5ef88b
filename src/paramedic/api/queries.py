"""Read-side queries the REST API and the web UI share: runbooks with trust and breaker state, the
approvals queue, the pause switch, evidence images and MTTR samples.

Every function takes a connection from ``Paramedic.read`` and only reads; the shapes returned are
the JSON the API answers with, so the API and the UI show the same figures.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from paramedic.api import views
from paramedic.core.breaker import BreakerStatus
from paramedic.core.runbooks import Runbook
from paramedic.engine import guard
from paramedic.runbooks.loading import RunbookSet
from paramedic.store import incidents as inc_repo
from paramedic.store import runs as runs_repo
from paramedic.store import state
from paramedic.store.tables import evidence, settings

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _t(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def runbooks(conn: Connection, books: RunbookSet) -> list[dict[str, Any]]:
    """Every loaded runbook with its mode in force, trust figures and circuit breakers."""
    trust = state.all_trust(conn)
    breakers = guard.breaker_states(conn)
    out = []
    for rb in sorted(books.by_name.values(), key=lambda r: r.name):
        t = trust.get(rb.name)
        runs = int(t.runs) if t else 0
        cb = rb.guardrails.circuit_breaker
        scopes = []
        for key, st in sorted(breakers.get(rb.name, []), key=lambda kv: kv[0]):
            trial_at = st.opened_at + cb.cooldown if cb is not None and st.opened_at is not None else None
            scopes.append(
                {
                    "scope": key,
                    "status": st.status.value,
                    "failures": len(st.failures),
                    "opened_at": _t(st.opened_at),
                    "trial_after": _t(trial_at) if st.status is not BreakerStatus.CLOSED else None,
                }
            )
        out.append(
            {
                "name": rb.name,
                "owner": rb.owner,
                "description": rb.description,
                "mode": str(guard.mode_of(t, rb)),
                "file_mode": str(rb.mode),
                "approvers": rb.approvers,
                "runs": runs,
                "successes": int(t.successes) if t else 0,
                "success_rate": (int(t.successes) / runs) if t and runs else None,
                "last_failure_at": _t(t.last_failure_at) if t else None,
                "last_failure": t.last_failure if t else "",
                "promote": rb.promote.model_dump() if rb.promote else None,
                "circuit_breaker": (
                    {
                        "failures": cb.failures,
                        "window_s": cb.window.total_seconds(),
                        "cooldown_s": cb.cooldown.total_seconds(),
                    }
                    if cb
                    else None
                ),
                "breaker": "open"
                if any(s["status"] != BreakerStatus.CLOSED.value for s in scopes)
                else ("closed" if cb else "none"),
                "breakers": scopes,
                **what_it_does(rb, books),
            }
        )
    return out


def what_it_does(rb: Runbook, books: RunbookSet) -> dict[str, Any]:
    """What a runbook answers to, what it does and inside which limits, and where it is defined."""
    return {
        "match": rb.match.model_dump(mode="json", exclude_defaults=True),
        "target": rb.target,
        "steps": [{"action": s.action, "with": dict(s.with_)} for s in rb.steps],
        "verify": rb.verify.model_dump(mode="json", exclude_none=True) if rb.verify else None,
        "on_failure": str(rb.on_failure),
        "guardrails": rb.guardrails.model_dump(mode="json", exclude_none=True),
        "source": books.sources.get(rb.name, ""),
        "version": books.version(rb.name),
    }


def approvals_queue(conn: Connection, books: RunbookSet) -> list[dict[str, Any]]:
    """Runs waiting for a human, oldest first, each with its incident and approvals so far."""
    out = []
    for run in reversed(runs_repo.listing(conn, status="awaiting_approval", limit=500)):
        row = inc_repo.get(conn, run.incident_id)
        if row is None:
            continue
        view = views.run(conn, run)
        view["approvers_needed"] = approvers_needed(books, run.runbook)
        view["approved_by"] = [a["actor"] for a in view["approvals"] if a["decision"] == "approve"]
        out.append({"incident": views.incident(row), "run": view})
    return out


def approvers_needed(books: RunbookSet, runbook: str) -> int:
    rb = books.get(runbook)
    return rb.approvers if rb else 1


def incident_detail(conn: Connection, books: RunbookSet, incident_id: int) -> dict[str, Any] | None:
    """The API's incident view plus what the UI needs: evidence image links and approvers."""
    row = inc_repo.get(conn, incident_id)
    if row is None:
        return None
    data = views.incident_detail(conn, row)
    for ev, ref in zip(data["evidence"], evidence_refs(conn, incident_id), strict=False):
        ev.update(ref)
    for run in data["runs"]:
        run["approvers_needed"] = approvers_needed(books, run["runbook"])
        run["approved_by"] = [a["actor"] for a in run["approvals"] if a["decision"] == "approve"]
    data["pending"] = [r for r in data["runs"] if r["status"] == "awaiting_approval"]
    return data


def banner(conn: Connection) -> dict[str, Any]:
    """What every page shows on top: the pause switch and how many actions wait for a human."""
    waiting = runs_repo.listing(conn, status="awaiting_approval", limit=500)
    return {"pause": pause_state(conn), "waiting": len(waiting)}


def pause_state(conn: Connection) -> dict[str, Any]:
    row = conn.execute(
        select(settings.c.value, settings.c.updated_at, settings.c.updated_by).where(settings.c.key == "paused")
    ).first()
    if row is None:
        return {"paused": False, "by": None, "at": None}
    return {"paused": bool(row.value), "by": row.updated_by, "at": _t(row.updated_at)}


def evidence_refs(conn: Connection, incident_id: int) -> list[dict[str, Any]]:
    """Ids of an incident's evidence rows, in the order ``views.incident_detail`` lists them."""
    rows = conn.execute(
        select(evidence.c.id, evidence.c.image.is_not(None).label("has_image"))
        .where(evidence.c.incident_id == incident_id)
        .order_by(evidence.c.id)
    )
    return [
        {"id": int(r.id), "image_url": f"/api/v1/evidence/{int(r.id)}/image" if r.has_image else None} for r in rows
    ]


def evidence_image(conn: Connection, evidence_id: int) -> bytes | None:
    """The PNG of one evidence row; None when there is none or it is not a PNG."""
    row = conn.execute(select(evidence.c.image).where(evidence.c.id == evidence_id)).first()
    if row is None or not row.image:
        return None
    try:
        data = base64.b64decode(row.image, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if data.startswith(PNG_MAGIC) else None


@dataclass(frozen=True, slots=True)
class MttrSample:
    """One resolved incident as the MTTR page counts it."""

    incident_id: int
    runbook: str
    service: str
    automated: bool
    mttr_s: float
    ttm_s: float | None
    owner: str = "(no owner)"
    detected_at: datetime | None = None


def mttr_samples(
    conn: Connection, *, limit: int = 2000, since: datetime | None = None, until: datetime | None = None
) -> list[MttrSample]:
    """The most recent resolved incidents (up to ``limit``), with their MTTR (DESIGN §7); with
    ``since``/``until``, only those detected in that period. A human resolution counts: its
    ``resolved_at`` is when the human resolved it."""
    out = []
    for row in inc_repo.listing(conn, status="resolved", limit=limit):
        if row.resolved_at is None:
            continue
        if (since is not None and row.starts_at < since) or (until is not None and row.starts_at >= until):
            continue
        out.append(
            MttrSample(
                incident_id=row.id,
                runbook=row.runbooks[0] if row.runbooks else "(no runbook)",
                service=row.service or "(no service)",
                automated=row.handled_by == "automation",
                mttr_s=max(0.0, (row.resolved_at - row.starts_at).total_seconds()),
                ttm_s=(row.mitigated_at - row.starts_at).total_seconds() if row.mitigated_at else None,
                owner=row.owner or "(no owner)",
                detected_at=row.starts_at,
            )
        )
    return out
