"""The FastAPI application: webhooks, REST API, metrics, health, and the web UI's routes."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import generate_latest
from pydantic import BaseModel, Field

from paramedic import __version__
from paramedic.api import views
from paramedic.api.auth import Principal, check_webhook, require
from paramedic.core.alerts import Alert
from paramedic.core.errors import PayloadError, StoreUnavailable
from paramedic.engine.metrics import METRICS
from paramedic.engine.service import OperationError, Paramedic
from paramedic.ingest import alertmanager, generic
from paramedic.store import audit as audit_repo
from paramedic.store import incidents as inc_repo
from paramedic.store import runs as runs_repo
from paramedic.store import state

log = logging.getLogger("paramedic.api")


class Decision(BaseModel):
    reason: str = Field(default="", max_length=2000)
    run_id: int | None = None
    plan_digest: str | None = None


class PauseBody(BaseModel):
    reason: str = Field(default="", max_length=2000)


def viewer(request: Request) -> Principal:
    return require(request, "viewer")


def responder(request: Request) -> Principal:
    return require(request, "responder")


def admin(request: Request) -> Principal:
    return require(request, "admin")


async def read_body(request: Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes; a larger body is refused with 413 before it is stored."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body is {declared} bytes, over the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"the body is not valid JSON: {exc}", field="body") from exc


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
    )
    app.state.pm = pm
    app.state.config = pm.config

    @app.exception_handler(PayloadError)
    async def _payload(_: Request, exc: PayloadError) -> JSONResponse:
        return JSONResponse({"error": str(exc), "field": exc.field}, status_code=422)

    @app.exception_handler(StoreUnavailable)
    async def _store(_: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse(
            {"error": f"{exc}; nothing was stored, retry later"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(OperationError)
    async def _op(_: Request, exc: OperationError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    async def _accept(request: Request, source: str, parse: Any) -> JSONResponse:
        began = time.perf_counter()
        body = await read_body(request, pm.config.max_body_bytes)
        check_webhook(request, pm.config, body)
        alerts: list[Alert] = parse(parse_json(body))
        results = await pm.ingest(alerts)
        METRICS.ingest_seconds.labels(source=source).observe(time.perf_counter() - began)
        return JSONResponse(
            {
                "accepted": len(alerts),
                "alerts": [
                    {
                        "fingerprint": r.fingerprint,
                        "delivery": str(r.delivery),
                        "incident_id": r.incident_id,
                    }
                    for r in results
                ],
            },
            status_code=202,
        )

    @app.post(
        "/api/v1/alerts/alertmanager",
        status_code=202,
        tags=["ingest"],
        summary="Alertmanager webhook (version 4)",
    )
    async def alertmanager_webhook(request: Request) -> JSONResponse:
        return await _accept(request, "alertmanager", alertmanager.parse)

    @app.post("/api/v1/alerts", status_code=202, tags=["ingest"], summary="Generic alerts (one or a list)")
    async def generic_alerts(request: Request) -> JSONResponse:
        return await _accept(request, "generic", lambda p: generic.parse(p, now=pm.clock()))

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
    async def get_incident(incident_id: int, _: Principal = Depends(viewer)) -> dict[str, Any]:
        def q(conn: Any) -> dict[str, Any] | None:
            row = inc_repo.get(conn, incident_id)
            return None if row is None else views.incident_detail(conn, row)

        out = await pm.read(q)
        if out is None:
            raise HTTPException(404, f"incident {incident_id} does not exist")
        return out

    async def _pending_run(incident_id: int, run_id: int | None) -> int:
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
        incident_id: int, body: Decision | None = None, who: Principal = Depends(responder)
    ) -> dict[str, Any]:
        body = body or Decision()
        run_id = await _pending_run(incident_id, body.run_id)
        row = await pm.decide(run_id, actor=who.name, approve=True, reason=body.reason, digest=body.plan_digest)
        return {"run_id": row.id, "status": row.status}

    @app.post("/api/v1/incidents/{incident_id}/deny", tags=["approvals"])
    async def deny(incident_id: int, body: Decision, who: Principal = Depends(responder)) -> dict[str, Any]:
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

    @app.get("/api/v1/runbooks", tags=["runbooks"])
    async def runbooks(_: Principal = Depends(viewer)) -> dict[str, Any]:
        trust = await pm.read(state.all_trust)
        out = []
        for rb in pm.runbooks.by_name.values():
            t = trust.get(rb.name)
            runs = int(t.runs) if t else 0
            out.append(
                {
                    "name": rb.name,
                    "owner": rb.owner,
                    "description": rb.description,
                    "mode": (t.mode if t and t.mode else str(rb.mode)),
                    "file_mode": str(rb.mode),
                    "runs": runs,
                    "successes": int(t.successes) if t else 0,
                    "success_rate": (int(t.successes) / runs) if t and runs else None,
                    "last_failure_at": t.last_failure_at.isoformat() if t and t.last_failure_at else None,
                    "last_failure": t.last_failure if t else "",
                }
            )
        return {"runbooks": out}

    @app.get("/api/v1/audit", tags=["audit"])
    async def audit(
        before: int | None = None,
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
    async def metrics() -> Response:
        return Response(generate_latest(METRICS.registry), media_type="text/plain; version=0.0.4")

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        try:
            await pm.read(state.paused)
        except StoreUnavailable as exc:
            return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
        return JSONResponse({"status": "ready"})

    from paramedic.api import ui

    ui.mount(app, pm)
    return app
