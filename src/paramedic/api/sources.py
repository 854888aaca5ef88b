"""More alert sources over HTTP: Grafana unified alerting and PagerDuty webhooks (v3).

Both routes work like the Alertmanager one: the body is read up to the size limit (413 beyond),
authenticated (bearer token, HMAC signature or an API token; 401 otherwise), parsed at the edge
(422 naming the bad field), stored in one transaction by ``Paramedic.ingest``, and answered 202.
PagerDuty may also authenticate with its own signature: ``X-PagerDuty-Signature: v1=<hex>``, the
HMAC-SHA256 of the body under the webhook subscription's secret, which must then be the secret in
``auth.webhook.hmac_secret_env`` (during a secret rotation the header lists several signatures).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from paramedic.api.app import parse_json, read_body
from paramedic.api.auth import check_webhook
from paramedic.core.alerts import Alert
from paramedic.core.config import Config
from paramedic.engine.metrics import METRICS
from paramedic.engine.service import Paramedic
from paramedic.ingest import grafana, pagerduty


def pagerduty_signature_ok(config: Config, header: str, body: bytes) -> bool:
    """Whether one of the ``v1=`` signatures in ``X-PagerDuty-Signature`` matches the body."""
    wh = config.auth.webhook if config.auth else None
    secret = os.environ.get(wh.hmac_secret_env, "") if wh and wh.hmac_secret_env else ""
    if not secret or not header:
        return False
    expected = "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(sig.strip(), expected) for sig in header.split(","))


def mount(app: FastAPI, pm: Paramedic) -> None:
    async def accept(request: Request, source: str, parse: Callable[[Any], list[Alert]]) -> JSONResponse:
        began = time.perf_counter()
        body = await read_body(request, pm.config.max_body_bytes)
        signature = request.headers.get("x-pagerduty-signature", "")
        if not (source == "pagerduty" and pagerduty_signature_ok(pm.config, signature, body)):
            check_webhook(request, pm.config, body)
        alerts = parse(parse_json(body))
        results = await pm.ingest(alerts)
        METRICS.ingest_seconds.labels(source=source).observe(time.perf_counter() - began)
        return JSONResponse(
            {
                "accepted": len(alerts),
                "alerts": [
                    {"fingerprint": r.fingerprint, "delivery": str(r.delivery), "incident_id": r.incident_id}
                    for r in results
                ],
            },
            status_code=202,
        )

    @app.post("/api/v1/alerts/grafana", status_code=202, tags=["ingest"], summary="Grafana unified alerting webhook")
    async def grafana_webhook(request: Request) -> JSONResponse:
        return await accept(request, "grafana", grafana.parse)

    @app.post("/api/v1/alerts/pagerduty", status_code=202, tags=["ingest"], summary="PagerDuty webhook (v3)")
    async def pagerduty_webhook(request: Request) -> JSONResponse:
        return await accept(request, "pagerduty", pagerduty.parse)
