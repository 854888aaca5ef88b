"""The FastAPI application: webhooks, REST API, metrics, health, and the web UI's routes.

With ``auth`` configured every route needs a token or a UI session except ``/healthz``,
``/readyz``, ``/login`` and the static CSS/JS: ``/metrics`` and ``/openapi.json`` need the
viewer role (Prometheus scrapes with a bearer token). Swagger UI is not served, because it loads
its scripts from a CDN; ``/docs`` is a server-rendered API reference in the UI instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import generate_latest
from pydantic import BaseModel, Field

from paramedic import __version__
from paramedic.api import csrf, errors, intake, queries, views, webhook_auth
from paramedic.api import metrics as db_metrics
from paramedic.api.auth import Principal, require
from paramedic.api.intake import BodyTooLarge
from paramedic.api.session import SessionCodec, session_secret
from paramedic.core.config import is_loopback
from paramedic.core.errors import PayloadError, StoreUnavailable
from paramedic.core.runbooks import Mode
from paramedic.engine import guard
from paramedic.engine.metrics import METRICS
from paramedic.engine.service import OperationError, Paramedic
from paramedic.ingest import alertmanager, generic
from paramedic.store import audit as audit_repo
from paramedic.store import health, state
from paramedic.store import incidents as inc_repo
from paramedic.store import runs as runs_repo

log = logging.getLogger("paramedic.api")


SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


class Decision(BaseModel):
    reason: str = Field(default="", max_length=2000)
    run_id: errors.BodyId | None = None
    plan_digest: str | None = None


class PauseBody(BaseModel):
    reason: str = Field(default="", max_length=2000)


class ModeBody(BaseModel):
    mode: Literal["observe", "approve", "auto"]
    reason: str = Field(default="", max_length=2000)


class MarkBody(BaseModel):
    right: bool
    reason: str = Field(default="", max_length=2000)


class EpisodeMark(BaseModel):
    episode: str = Field(min_length=1, max_length=180)
    right: bool
    reason: str = Field(default="", max_length=2000)


class BacktestMarksBody(BaseModel):
    backtest: str = Field(min_length=1, max_length=500)  # what was replayed: command, source, period
    marks: list[EpisodeMark] = Field(min_length=1, max_length=10_000)


def viewer(request: Request) -> Principal:
    return require(request, "viewer")


def responder(request: Request) -> Principal:
    return require(request, "responder")


def admin(request: Request) -> Principal:
    return require(request, "admin")


def host_of(header: str) -> str:
    """The host part of a Host header: ``[::1]:8080`` → ``::1``, ``localhost:8080`` → ``localhost``."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def create_app(pm: Paramedic, *, manage_lifecycle: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await pm.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await pm.stop()

    app = FastAPI(
        title="paramedic",
        version=__version__,
        lifespan=lifespan,
        description="Self-healing runbooks that fire on alerts, inside explicit guardrails.",
        openapi_url=None,  # served below, behind the viewer role
        docs_url=None,  # Swagger UI needs a CDN; the UI serves its own /docs
        redoc_url=None,
    )
    app.state.pm = pm
    app.state.config = pm.config
    app.state.sessions = SessionCodec(session_secret(pm.config))
    errors.install(app)

    @app.exception_handler(PayloadError)
    async def _payload(_: Request, exc: PayloadError) -> JSONResponse:
        status = 413 if isinstance(exc, BodyTooLarge) else 422
        return JSONResponse({"error": str(exc), "field": exc.field}, status_code=status)

    @app.exception_handler(StoreUnavailable)
    async def _store(_: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse(
            errors.error_body(f"{exc}; nothing was stored, retry later"),
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(webhook_auth.DuplicateDelivery)
    async def _duplicate(_: Request, exc: webhook_auth.DuplicateDelivery) -> JSONResponse:
        return JSONResponse({"accepted": 0, "duplicate": True, "alerts": []}, status_code=200)

    @app.exception_handler(OperationError)
    async def _op(_: Request, exc: OperationError) -> JSONResponse:
        return JSONResponse(errors.error_body(str(exc)), status_code=exc.status)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        if pm.config.auth is None and not is_loopback(host_of(request.headers.get("host", ""))):
            # open only on loopback: a page on another site that rebinds its DNS name to 127.0.0.1
            # reaches this port with its own Host header; refuse it
            response = JSONResponse(
                errors.error_body("no auth is configured, so paramedic answers only requests addressed to loopback"),
                status_code=403,
            )
        elif (problem := csrf.request_problem(request)) is not None:
            response = JSONResponse(errors.error_body(problem[1]), status_code=problem[0])
        else:
            try:
                response = await call_next(request)
            except BaseException:
                await webhook_auth.release_claim(request, 500)
                raise
            await webhook_auth.release_claim(request, response.status_code)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if response.headers.get("content-type", "").startswith("text/html"):
            # pages: forms must carry the real Origin (no-referrer would send "Origin: null")
            response.headers["Referrer-Policy"] = "same-origin"
            response.headers.setdefault("Cache-Control", "no-store")
        else:
            response.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.url.scheme == "https":
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    def _authenticate(request: Request, source: str) -> Callable[[bytes], Awaitable[None]]:
        return lambda body: webhook_auth.authenticate(request, body, source=source)

    @app.post(
        "/api/v1/alerts/alertmanager",
        status_code=202,
        tags=["ingest"],
        summary="Alertmanager webhook (version 4)",
    )
    async def alertmanager_webhook(request: Request) -> JSONResponse:
        return await intake.accept(
            request,
            pm,
            source="alertmanager",
            read=lambda p: alertmanager.read(p, now=pm.clock()),
            authenticate=_authenticate(request, "alertmanager"),
            size=alertmanager.size,
        )

    @app.post("/api/v1/alerts", status_code=202, tags=["ingest"], summary="Generic alerts (one or a list)")
    async def generic_alerts(request: Request) -> JSONResponse:
        return await intake.accept(
            request,
            pm,
            source="generic",
            read=lambda p: generic.read(p, now=pm.clock()),
            authenticate=_authenticate(request, "generic"),
            size=generic.size,
        )

    @app.get("/api/v1/incidents", tags=["incidents"])
    async def list_incidents(
        status: str | None = None,
        limit: int = Query(100, ge=1, le=1000),
        before: int | None = None,
        _: Principal = Depends(viewer),
    ) -> dict[str, Any]:
        rows = await pm.read(inc_repo.listing, status=status, limit=limit, before=before)
        return {"incidents": [views.incident(r) for r in rows]}

    @app.get("/api/v1/incidents/{incident_id}", tags=["incidents"])
    async def get_incident(incident_id: errors.Id, _: Principal = Depends(viewer)) -> dict[str, Any]:
        def q(conn: Any) -> dict[str, Any] | None:
            row = inc_repo.get(conn, incident_id)
            if row is None:
                return None
            out = views.incident_detail(conn, row)
            for ev, ref in zip(out["evidence"], queries.evidence_refs(conn, incident_id), strict=False):
                ev.update(ref)
            return out

        out = await pm.read(q)
        if out is None:
            raise HTTPException(404, f"incident {incident_id} does not exist")
        return out

    async def _pending_run(incident_id: int, run_id: int | None) -> int:
        if await pm.read(inc_repo.get, incident_id) is None:
            raise HTTPException(404, f"incident {incident_id} does not exist")
        rows = await pm.read(runs_repo.for_incident, incident_id)
        if run_id is not None:
            if not any(r.id == run_id for r in rows):
                raise HTTPException(404, f"run {run_id} is not part of incident {incident_id}")
            return run_id
        waiting = [r for r in rows if r.status == "awaiting_approval"]
        if not waiting:
            raise HTTPException(409, f"incident {incident_id} has no action waiting for approval")
        return waiting[0].id

    @app.post("/api/v1/incidents/{incident_id}/approve", tags=["approvals"])
    async def approve(
        incident_id: errors.Id, body: Decision | None = None, who: Principal = Depends(responder)
    ) -> dict[str, Any]:
        body = body or Decision()
        run_id = await _pending_run(incident_id, body.run_id)
        row = await pm.decide(run_id, actor=who.name, approve=True, reason=body.reason, digest=body.plan_digest)
        return {"run_id": row.id, "status": row.status}

    @app.post("/api/v1/incidents/{incident_id}/deny", tags=["approvals"])
    async def deny(incident_id: errors.Id, body: Decision, who: Principal = Depends(responder)) -> dict[str, Any]:
        if not body.reason.strip():
            raise HTTPException(422, "a denial needs a reason")
        run_id = await _pending_run(incident_id, body.run_id)
        row = await pm.decide(run_id, actor=who.name, approve=False, reason=body.reason)
        return {"run_id": row.id, "status": row.status}

    @app.post("/api/v1/automation/pause", tags=["automation"])
    async def pause(body: PauseBody | None = None, who: Principal = Depends(admin)) -> dict[str, Any]:
        await pm.set_paused(True, actor=who.name, reason=(body or PauseBody()).reason)
        return {"paused": True}

    @app.post("/api/v1/automation/resume", tags=["automation"])
    async def resume(who: Principal = Depends(admin)) -> dict[str, Any]:
        await pm.set_paused(False, actor=who.name)
        return {"paused": False}

    @app.get("/api/v1/automation", tags=["automation"])
    async def automation(_: Principal = Depends(viewer)) -> dict[str, Any]:
        return {"paused": await pm.read(state.paused)}

    @app.get("/api/v1/runbooks", tags=["runbooks"], summary="Runbooks with mode, trust figures and breaker state")
    async def runbooks(_: Principal = Depends(viewer)) -> dict[str, Any]:
        return {"runbooks": await pm.read(queries.runbooks, pm.runbooks)}

    @app.post("/api/v1/runbooks/{name}/breaker/reset", tags=["runbooks"], summary="Close a runbook's breakers")
    async def breaker_reset(name: str, who: Principal = Depends(admin)) -> dict[str, Any]:
        opened = await pm.reset_breaker(name, actor=who.name)
        return {"runbook": name, "reset": opened}

    @app.put("/api/v1/runbooks/{name}/mode", tags=["runbooks"], summary="Set a runbook's mode by hand (admin)")
    async def set_mode(name: str, body: ModeBody, who: Principal = Depends(admin)) -> dict[str, Any]:
        mode = await pm.set_mode(name, Mode(body.mode), actor=who.name, reason=body.reason)
        return {"runbook": name, "mode": mode.value}

    @app.post(
        "/api/v1/runs/{run_id}/mark",
        tags=["runbooks"],
        summary="Mark an observed run's suggestion right or wrong (counts toward promotion)",
    )
    async def mark(run_id: int, body: MarkBody, who: Principal = Depends(responder)) -> dict[str, Any]:
        mode = await pm.mark_suggestion(run_id, right=body.right, actor=who.name, reason=body.reason)
        return {"run_id": run_id, "right": body.right, "mode": mode.value}

    @app.post(
        "/api/v1/runbooks/{name}/backtest-marks",
        tags=["runbooks"],
        summary="Mark backtested episodes right or wrong (count toward promotion from observe)",
    )
    async def backtest_marks(name: str, body: BacktestMarksBody, who: Principal = Depends(responder)) -> dict[str, Any]:
        marks = [guard.BacktestMark(m.episode, m.right, m.reason) for m in body.marks]
        mode = await pm.mark_backtest(name, marks, actor=who.name, backtest=body.backtest)
        return {"runbook": name, "marked": len(marks), "right": sum(m.right for m in marks), "mode": mode.value}

    @app.get(
        "/api/v1/evidence/{evidence_id}/image",
        tags=["incidents"],
        summary="The PNG chart of one evidence row",
        response_class=Response,
    )
    async def evidence_image(evidence_id: errors.Id, _: Principal = Depends(viewer)) -> Response:
        png = await pm.read(queries.evidence_image, evidence_id)
        if png is None:
            raise HTTPException(404, f"evidence {evidence_id} has no image")
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/v1/audit", tags=["audit"])
    async def audit(
        before: int | None = Query(None, ge=1, le=errors.MAX_ID),
        limit: int = Query(100, ge=1, le=1000),
        _: Principal = Depends(viewer),
    ) -> dict[str, Any]:
        entries = await pm.read(audit_repo.page, before=before, limit=limit)
        return {
            "entries": [
                {
                    "seq": e.seq,
                    "at": e.at.isoformat(),
                    "kind": e.kind,
                    "actor": e.actor,
                    "incident_id": e.incident_id,
                    "run_id": e.run_id,
                    "data": dict(e.data),
                    "hash": e.hash,
                }
                for e in entries
            ],
            "next_before": entries[-1].seq if len(entries) == limit else None,
        }

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def metrics(_: Principal = Depends(viewer)) -> Response:
        def read() -> Any:
            with pm.db.read() as conn:
                return health.read(conn)

        stored = await asyncio.to_thread(db_metrics.exposition, read)
        return Response(generate_latest(METRICS.registry) + stored, media_type="text/plain; version=0.0.4")

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        """Ready when the database answers, takes a write and (SQLite) its disk has room; else 503
        with every reason, so a load balancer stops sending alerts to a replica that cannot store them."""
        reasons = await pm.readiness()
        if reasons:
            return JSONResponse({"status": "unavailable", "error": "; ".join(reasons), "reasons": reasons}, 503)
        return JSONResponse({"status": "ready"})

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(_: Principal = Depends(viewer)) -> JSONResponse:
        return JSONResponse(app.openapi())

    from paramedic.api import changes, lifecycle, reload, slack, sources, ui

    changes.mount(app, pm)
    lifecycle.mount(app, pm)
    reload.mount(app, pm)
    slack.mount(app, pm)
    sources.mount(app, pm)
    ui.mount(app, pm)
    return app
