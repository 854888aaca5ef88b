"""More alert sources over HTTP: Grafana unified alerting and PagerDuty webhooks (v3).

Both routes work like the Alertmanager one (``api.intake``): the body is read up to the size limit
(413 beyond), authenticated (bearer token, HMAC signature or an API token; 401 otherwise), read at
the edge (422 naming the bad field only for an unreadable envelope; an unreadable alert becomes an
escalated incident of its own), stored by ``Paramedic.ingest_batch``, and answered 202. PagerDuty
events about paramedic's own escalations (``incident_key`` with a PagerDuty sink's ``dedup_prefix``)
are linked to their incident, never a new one.
PagerDuty may also authenticate with its own signature: ``X-PagerDuty-Signature: v1=<hex>``, the
HMAC-SHA256 of the body under the webhook subscription's secret, which must then be the secret in
``auth.webhook.hmac_secret_env`` (during a secret rotation the header lists several signatures).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from paramedic.api import intake
from paramedic.api.auth import check_webhook
from paramedic.core.config import Config
from paramedic.engine.service import Paramedic
from paramedic.ingest import grafana, pagerduty
from paramedic.notify.pagerduty import PagerDutyConfig


def pagerduty_signature_ok(config: Config, header: str, body: bytes) -> bool:
    """Whether one of the ``v1=`` signatures in ``X-PagerDuty-Signature`` matches the body."""
    wh = config.auth.webhook if config.auth else None
    secret = os.environ.get(wh.hmac_secret_env, "") if wh and wh.hmac_secret_env else ""
    if not secret or not header:
        return False
    expected = "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(sig.strip(), expected) for sig in header.split(","))


def own_prefixes(config: Config) -> list[str]:
    """The ``dedup_key`` prefixes of the PagerDuty sinks: PagerDuty incidents paramedic raised itself."""
    return [PagerDutyConfig.model_validate(s).dedup_prefix for s in config.sinks if s.get("type") == "pagerduty"]


def mount(app: FastAPI, pm: Paramedic) -> None:
    def authenticate(request: Request, source: str) -> Callable[[bytes], None]:
        def check(body: bytes) -> None:
            signature = request.headers.get("x-pagerduty-signature", "")
            if not (source == "pagerduty" and pagerduty_signature_ok(pm.config, signature, body)):
                check_webhook(request, pm.config, body)

        return check

    prefixes = own_prefixes(pm.config)

    @app.post("/api/v1/alerts/grafana", status_code=202, tags=["ingest"], summary="Grafana unified alerting webhook")
    async def grafana_webhook(request: Request) -> JSONResponse:
        return await intake.accept(
            request,
            pm,
            source="grafana",
            read=lambda p: grafana.read(p, now=pm.clock()),
            authenticate=authenticate(request, "grafana"),
        )

    @app.post("/api/v1/alerts/pagerduty", status_code=202, tags=["ingest"], summary="PagerDuty webhook (v3)")
    async def pagerduty_webhook(request: Request) -> JSONResponse:
        return await intake.accept(
            request,
            pm,
            source="pagerduty",
            read=lambda p: pagerduty.read(p, now=pm.clock(), own_prefixes=prefixes),
            authenticate=authenticate(request, "pagerduty"),
        )
