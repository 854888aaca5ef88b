"""Endpoints that feed and serve evidence: deploys reported by CI/CD, and the charts that
notifications link to.

- ``POST /api/v1/changes``: CI/CD reports a deploy (or a rollback, config or feature-flag change):
  ``{service, version, kind, description, actor, at?, url?}``. Authenticated like a webhook (bearer
  token, HMAC signature or an API token). The row feeds the "recent changes" evidence of later
  incidents of that service and is drawn on their charts. Answers 201 with the stored row.
- ``GET /api/v1/changes?service=&limit=``: recent changes, newest first (viewer).
- ``GET /api/v1/incidents/{id}/evidence/{eid}.png?sig=…``: one chart. With the signature that
  paramedic puts in its notifications it needs no token, so Slack, PagerDuty and GitHub can fetch
  it (the signature is an HMAC of the ids under a random key kept in the database: it opens that
  one image and nothing else); without it, the viewer role is required.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Connection, and_, select

from paramedic.api import webhook_auth
from paramedic.api.app import viewer
from paramedic.api.auth import Principal, require
from paramedic.api.errors import Id
from paramedic.api.intake import parse_json, read_body
from paramedic.core.errors import PayloadError
from paramedic.engine.enrichment import image_signature_ok
from paramedic.engine.service import Paramedic
from paramedic.store.tables import changes, evidence


class ChangeReport(BaseModel):
    """A change as CI/CD reports it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str = Field(min_length=1, max_length=256)
    version: str = Field(default="", max_length=256)
    kind: str = Field(default="deploy", min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_.-]*$")
    description: str = Field(default="", max_length=4000)
    actor: str = Field(default="", max_length=128)
    at: AwareDatetime | None = None
    url: str = Field(default="", max_length=2048, pattern=r"^(https?://.*)?$")


def _row(r: Any) -> dict[str, Any]:
    return {
        "id": int(r.id),
        "service": r.service,
        "kind": r.kind,
        "version": r.version,
        "description": r.description,
        "actor": r.actor,
        "at": r.at.isoformat(),
        "url": (r.data or {}).get("url", ""),
    }


def mount(app: FastAPI, pm: Paramedic) -> None:
    @app.post("/api/v1/changes", status_code=201, tags=["changes"], summary="Report a deploy or other change")
    async def report_change(request: Request) -> JSONResponse:
        body = await read_body(request, pm.config.max_body_bytes)
        await webhook_auth.authenticate(request, body, source="changes")
        try:
            report = ChangeReport.model_validate(parse_json(body))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "body"
            raise PayloadError(f"{field}: {first['msg']}", field=field) from None
        at = report.at or pm.clock()

        def insert(conn: Connection) -> dict[str, Any]:
            new = conn.execute(
                changes.insert()
                .values(
                    service=report.service,
                    kind=report.kind,
                    version=report.version,
                    description=report.description,
                    actor=report.actor,
                    at=at,
                    data={"url": report.url} if report.url else {},
                )
                .returning(changes.c.id)
            ).one()
            return _row(conn.execute(select(changes).where(changes.c.id == new.id)).one())

        return JSONResponse(await pm.write(insert), status_code=201)

    @app.get("/api/v1/changes", tags=["changes"], summary="Recent changes, newest first")
    async def list_changes(
        service: str | None = None,
        since: datetime | None = None,
        limit: int = Query(100, ge=1, le=1000),
        _: Principal = Depends(viewer),
    ) -> dict[str, Any]:
        def q(conn: Connection) -> list[dict[str, Any]]:
            stmt = select(changes).order_by(changes.c.at.desc(), changes.c.id.desc()).limit(limit)
            if service:
                stmt = stmt.where(changes.c.service == service)
            if since is not None:
                stmt = stmt.where(changes.c.at >= since)
            return [_row(r) for r in conn.execute(stmt)]

        return {"changes": await pm.read(q)}

    @app.get(
        "/api/v1/incidents/{incident_id}/evidence/{evidence_id}.png",
        tags=["incidents"],
        summary="One evidence chart (signed URL from a notification, or the viewer role)",
        response_class=Response,
    )
    async def evidence_png(request: Request, incident_id: Id, evidence_id: Id, sig: str = "") -> Response:
        def q(conn: Connection) -> tuple[bool, str | None]:
            signed = bool(sig) and image_signature_ok(conn, incident_id, evidence_id, sig=sig)
            row = conn.execute(
                select(evidence.c.image).where(
                    and_(evidence.c.id == evidence_id, evidence.c.incident_id == incident_id)
                )
            ).first()
            return signed, None if row is None else row.image

        signed, image = await pm.read(q)
        if not signed:
            require(request, "viewer")
        if not image:
            raise HTTPException(404, f"incident {incident_id} has no chart {evidence_id}")
        return Response(
            base64.b64decode(image),
            media_type="image/png",
            # fetched by Slack/PagerDuty/GitHub image proxies and shown on their pages
            headers={"Cache-Control": "private, max-age=300", "Cross-Origin-Resource-Policy": "cross-origin"},
        )
