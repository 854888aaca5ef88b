"""More alert sources over HTTP: Grafana unified alerting and PagerDuty webhooks (v3).

Both routes work like the Alertmanager one (``api.intake``): the body is read up to the size limit
(413 beyond), authenticated as the sender does it (``api.webhook_auth``; 401 otherwise), read at
the edge (422 naming the bad field only for an unreadable envelope; an unreadable alert becomes an
escalated incident of its own), stored by ``Paramedic.ingest_batch``, and answered 202. PagerDuty
events about paramedic's own escalations (``incident_key`` with a PagerDuty sink's ``dedup_prefix``)
are linked to their incident, never a new one.
Grafana's contact point may use PUT instead of POST; both are accepted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from paramedic.api import intake, webhook_auth
from paramedic.core.config import Config
from paramedic.engine.service import Paramedic
from paramedic.ingest import grafana, pagerduty
from paramedic.notify.pagerduty import PagerDutyConfig


def own_prefixes(config: Config) -> list[str]:
    """The ``dedup_key`` prefixes of the PagerDuty sinks: PagerDuty incidents paramedic raised itself."""
    return [PagerDutyConfig.model_validate(s).dedup_prefix for s in config.sinks if s.get("type") == "pagerduty"]


def mount(app: FastAPI, pm: Paramedic) -> None:
    def authenticate(request: Request, source: str) -> Callable[[bytes], Awaitable[None]]:
        return lambda body: webhook_auth.authenticate(request, body, source=source)

    prefixes = own_prefixes(pm.config)

    @app.post("/api/v1/alerts/grafana", status_code=202, tags=["ingest"], summary="Grafana unified alerting webhook")
    async def grafana_webhook(request: Request) -> JSONResponse:
        return await intake.accept(
            request,
            pm,
            source="grafana",
            read=lambda p: grafana.read(p, now=pm.clock()),
            authenticate=authenticate(request, "grafana"),
            size=grafana.size,
        )

    @app.put(
        "/api/v1/alerts/grafana",
        status_code=202,
        tags=["ingest"],
        summary="Grafana unified alerting webhook (a contact point set to PUT)",
    )
    async def grafana_webhook_put(request: Request) -> JSONResponse:
        return await grafana_webhook(request)

    @app.post("/api/v1/alerts/pagerduty", status_code=202, tags=["ingest"], summary="PagerDuty webhook (v3)")
    async def pagerduty_webhook(request: Request) -> JSONResponse:
        return await intake.accept(
            request,
            pm,
            source="pagerduty",
            read=lambda p: pagerduty.read(p, now=pm.clock(), own_prefixes=prefixes),
            authenticate=authenticate(request, "pagerduty"),
        )
