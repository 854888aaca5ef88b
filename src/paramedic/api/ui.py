"""The web UI's pages and the partials they poll: incidents (live), an incident's timeline,
approvals, runbooks with trust and breakers, the audit log, MTTR charts and the API reference.

Server-rendered Jinja2 (``api/web/templates``) with one small script (``api/web/static/app.js``)
that refreshes ``data-poll`` regions. Reads only; every form post lives in ``api.ui_forms``.
Pages need a session when auth is configured (``api.session``); ``/login`` and ``/static`` do not.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Connection

from paramedic.api import charts, queries, ui_forms, ui_lifecycle, views
from paramedic.api.auth import Principal
from paramedic.api.csrf import CsrfRefused
from paramedic.api.errors import MAX_ID, Id
from paramedic.api.pages import STATIC, LoginRequired, error_page, login_redirect, render, ui_user
from paramedic.engine.service import Paramedic
from paramedic.store import audit as audit_repo
from paramedic.store import incidents as inc_repo

FILTERS = {
    "open": "Open",
    "awaiting_approval": "Waiting for approval",
    "escalated": "Escalated",
    "resolved": "Resolved",
    "all": "All",
}
NOTICES = {
    "approve": "Your approval is recorded.",
    "deny": "You denied the action; the incident is escalated to a human.",
    "pause": "Automation is paused: no action runs until it is resumed.",
    "resume": "Automation is resumed.",
    "reset": "The circuit breaker is closed again.",
    "acknowledge": "You acknowledged the incident: it is yours now.",
    "resolve": "The incident is resolved; your reason is in the audit trail.",
    "note": "Your note is on the timeline.",
    "assign": "The incident is assigned; the assignee is notified.",
    "snooze": "Snoozed: paramedic reminds everyone when the snooze ends, if it is still open.",
}
AUDIT_PAGE = 50


def mount(app: FastAPI, pm: Paramedic) -> None:
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _: LoginRequired) -> Response:
        return login_redirect(request)

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, exc: CsrfRefused) -> Response:
        return error_page(request, 403, f"This form post was refused and nothing changed: {exc}.", user=None)

    async def page(request: Request, template: str, *, who: Principal, **ctx: Any) -> Response:
        """A full page: the template, with the banner (pause switch, approvals waiting) filled in."""
        return render(request, template, user=who, banner=await pm.read(queries.banner), **ctx)

    def status_filter(status: str) -> str:
        return status if status in FILTERS else "open"

    async def incidents_ctx(status: str) -> dict[str, Any]:
        status = status_filter(status)
        rows = await pm.read(inc_repo.listing, status=None if status == "all" else status, limit=200)
        return {"incidents": [views.incident(r) for r in rows], "status": status, "filters": FILTERS}

    # ---- incidents ----------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index(request: Request, status: str = "open", who: Principal = Depends(ui_user)) -> Response:
        ctx = await incidents_ctx(status)
        return await page(request, "incidents.html", who=who, title="Incidents", **ctx)

    @app.get("/ui/partials/incidents", response_class=HTMLResponse, include_in_schema=False)
    async def incidents_partial(request: Request, status: str = "open", who: Principal = Depends(ui_user)) -> Response:
        return render(request, "_incidents.html", user=who, **await incidents_ctx(status))

    async def incident_ctx(incident_id: int) -> dict[str, Any] | None:
        data = await pm.read(queries.incident_detail, pm.runbooks, incident_id)
        return None if data is None else {"inc": data}

    @app.get("/incidents/{incident_id}", response_class=HTMLResponse, include_in_schema=False)
    async def incident_page(
        request: Request,
        incident_id: Id,
        done: str = "",
        who: Principal = Depends(ui_user),
    ) -> Response:
        ctx = await incident_ctx(incident_id)
        if ctx is None:
            return error_page(request, 404, f"Incident {incident_id} does not exist.", user=who)
        title = f"#{incident_id} {ctx['inc']['alertname']}"
        return await page(request, "incident.html", who=who, title=title, notice=NOTICES.get(done, ""), **ctx)

    @app.get("/ui/partials/incidents/{incident_id}", response_class=HTMLResponse, include_in_schema=False)
    async def incident_partial(request: Request, incident_id: Id, who: Principal = Depends(ui_user)) -> Response:
        ctx = await incident_ctx(incident_id)
        if ctx is None:
            return error_page(request, 404, f"Incident {incident_id} does not exist.", user=who)
        return render(request, "_incident.html", user=who, **ctx)

    # ---- approvals ----------------------------------------------------------------------------
    async def approvals_ctx() -> dict[str, Any]:
        return {"queue": await pm.read(queries.approvals_queue, pm.runbooks)}

    @app.get("/approvals", response_class=HTMLResponse, include_in_schema=False)
    async def approvals_page(request: Request, done: str = "", who: Principal = Depends(ui_user)) -> Response:
        ctx = await approvals_ctx()
        return await page(request, "approvals.html", who=who, title="Approvals", notice=NOTICES.get(done, ""), **ctx)

    @app.get("/ui/partials/approvals", response_class=HTMLResponse, include_in_schema=False)
    async def approvals_partial(request: Request, who: Principal = Depends(ui_user)) -> Response:
        return render(request, "_approvals.html", user=who, **await approvals_ctx())

    # ---- runbooks and the pause switch --------------------------------------------------------
    async def runbooks_ctx() -> dict[str, Any]:
        def q(conn: Connection) -> dict[str, Any]:
            return {"runbooks": queries.runbooks(conn, pm.runbooks), "pause": queries.pause_state(conn)}

        return await pm.read(q)

    @app.get("/runbooks", response_class=HTMLResponse, include_in_schema=False)
    async def runbooks_page(request: Request, done: str = "", who: Principal = Depends(ui_user)) -> Response:
        ctx = await runbooks_ctx()
        return await page(request, "runbooks.html", who=who, title="Runbooks", notice=NOTICES.get(done, ""), **ctx)

    @app.get("/ui/partials/runbooks", response_class=HTMLResponse, include_in_schema=False)
    async def runbooks_partial(request: Request, who: Principal = Depends(ui_user)) -> Response:
        return render(request, "_runbooks.html", user=who, **await runbooks_ctx())

    @app.get("/ui/partials/banner", response_class=HTMLResponse, include_in_schema=False)
    async def banner_partial(request: Request, who: Principal = Depends(ui_user)) -> Response:
        return render(request, "_banner.html", user=who, banner=await pm.read(queries.banner))

    # ---- audit --------------------------------------------------------------------------------
    @app.get("/audit", response_class=HTMLResponse, include_in_schema=False)
    async def audit_page(
        request: Request,
        before: int | None = Query(None, ge=1, le=MAX_ID),
        incident: int | None = Query(None, ge=1, le=MAX_ID),
        who: Principal = Depends(ui_user),
    ) -> Response:
        entries = await pm.read(audit_repo.page, before=before, limit=AUDIT_PAGE, incident_id=incident)
        return await page(
            request,
            "audit.html",
            who=who,
            title="Audit log",
            entries=entries,
            before=before,
            incident=incident,
            next_before=entries[-1].seq if len(entries) == AUDIT_PAGE else None,
        )

    # ---- MTTR ---------------------------------------------------------------------------------
    @app.get("/mttr", response_class=HTMLResponse, include_in_schema=False)
    async def mttr_page(request: Request, who: Principal = Depends(ui_user)) -> Response:
        samples = await pm.read(queries.mttr_samples)
        total = charts.totals(samples)
        return await page(
            request,
            "mttr.html",
            who=who,
            title="MTTR",
            samples=samples,
            total=total,
            saved=charts.saved_seconds(total),
            by_runbook=charts.summarize(samples, "runbook"),
            by_service=charts.summarize(samples, "service"),
        )

    @app.get("/ui/charts/mttr-{by}.png", include_in_schema=False)
    async def mttr_chart(by: Literal["runbook", "service"], _: Principal = Depends(ui_user)) -> Response:
        import asyncio

        samples = await pm.read(queries.mttr_samples)
        groups = charts.summarize(samples, by)
        png = await asyncio.to_thread(charts.mttr_png, groups, title=f"MTTR per {by}: automated vs human")
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, no-store"})

    # ---- API reference (replaces Swagger UI, which loads scripts from a CDN) ------------------
    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def api_docs(request: Request, who: Principal = Depends(ui_user)) -> Response:
        spec = app.openapi()
        endpoints = [
            {
                "method": method.upper(),
                "path": path,
                "summary": op.get("summary", ""),
                "tag": (op.get("tags") or [""])[0],
            }
            for path, ops in spec["paths"].items()
            for method, op in ops.items()
        ]
        return await page(request, "docs.html", who=who, title="API reference", endpoints=endpoints)

    ui_forms.mount(app, pm)
    ui_lifecycle.mount(app, pm)
