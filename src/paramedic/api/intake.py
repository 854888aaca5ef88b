"""The ingest edge over HTTP, shared by every webhook: read, authenticate, read the alerts, store, answer.

No page is lost at the edge (DESIGN §1): Alertmanager and PagerDuty never retry a ``4xx``, so only
a delivery that cannot be read at all is refused — a body over the size limit (``413``), one that is
not JSON, or one whose envelope is not the sender's shape (``422``, ``{"error", "field"}``). Every
other delivery is answered ``202`` once stored: each valid alert as usual, and each alert that fails
a check as an incident of its own, escalated to a human with the raw alert as evidence
(``ingest.common.unreadable_alert``). Refused deliveries and unreadable alerts are counted on
``/metrics`` by source and reason and logged as structured lines.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse

from paramedic.api.errors import MAX_JSON_DEPTH, json_too_deep
from paramedic.core.errors import PayloadError
from paramedic.engine.metrics import METRICS
from paramedic.engine.service import Paramedic
from paramedic.ingest.common import Batch, Problem, clean

log = logging.getLogger("paramedic.ingest")

Reader = Callable[[Any], Batch]


class BodyTooLarge(PayloadError):
    """A body over ``max_body_bytes`` (HTTP 413)."""


async def read_body(request: Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes; a larger body is refused before it is stored (``BodyTooLarge``)."""
    declared = request.headers.get("content-length")
    hint = "raise max_body_bytes, or lower max_alerts in the sender's webhook config"
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(
            f"body is {declared} bytes, over the limit of {limit}; {hint}", field="body", reason=Problem.TOO_LARGE
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(
                f"body is over the limit of {limit} bytes; {hint}", field="body", reason=Problem.TOO_LARGE
            )
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    if json_too_deep(body):  # before parsing: the parser must never reach the recursion limit
        raise PayloadError(f"the body nests deeper than {MAX_JSON_DEPTH} levels", field="body", reason=Problem.NOT_JSON)
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"the body is not valid JSON: {exc}", field="body", reason=Problem.NOT_JSON) from exc
    except ValueError as exc:  # an integer of more than 4,300 digits (CPython's int_max_str_digits)
        raise PayloadError(
            f"the body holds a number too long to read: {exc}", field="body", reason=Problem.NOT_JSON
        ) from exc


def refuse(source: str, exc: PayloadError) -> JSONResponse:
    """Count, log and answer a delivery refused whole."""
    status = 413 if isinstance(exc, BodyTooLarge) else 422
    METRICS.rejected.labels(source=source, reason=exc.reason).inc()
    log.warning(
        "%s delivery refused (%s): %s",
        source,
        exc.reason,
        clean(str(exc)),
        extra={
            "fields": {
                "event": "ingest.rejected",
                "source": source,
                "reason": exc.reason,
                "field": exc.field,
                "status": status,
            }
        },
    )
    return JSONResponse({"error": clean(str(exc)), "field": clean(exc.field)}, status_code=status)


async def accept(
    request: Request,
    pm: Paramedic,
    *,
    source: str,
    read: Reader,
    authenticate: Callable[[bytes], Awaitable[None]],
    size: Callable[[Any], int] | None = None,
) -> JSONResponse:
    """One webhook delivery, from the body to the ``202`` (or the ``4xx`` of an unreadable one).

    With ``size`` (the source's envelope check), a delivery of more than ``inline_alerts`` alerts
    is stored as received and answered at once (``"queued"``: its inbox id); its alerts are
    recorded right after, in chunks (``store.inbox``)."""
    began = time.perf_counter()
    try:
        body = await read_body(request, pm.config.max_body_bytes)
    except BodyTooLarge as exc:
        return refuse(source, exc)
    try:
        await authenticate(body)
    except HTTPException as exc:
        reason = "unauthenticated" if exc.status_code == 401 else "forbidden"
        METRICS.rejected.labels(source=source, reason=reason).inc()
        raise
    try:
        payload = parse_json(body)
        total = size(payload) if size is not None else 0
        batch = Batch() if total > pm.config.inline_alerts else read(payload)
    except PayloadError as exc:
        return refuse(source, exc)
    if total > pm.config.inline_alerts:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:  # JSON in UTF-16 or UTF-32: kept as ASCII JSON instead
            text = json.dumps(payload)
        inbox_id = await pm.enqueue(source=source, body=text, total=total)
        METRICS.ingest_seconds.labels(source=source).observe(time.perf_counter() - began)
        log.info(
            "%s delivery of %s alerts stored as received (inbox %s), recorded next",
            source,
            total,
            inbox_id,
            extra={"fields": {"event": "ingest.queued", "source": source, "alerts": total, "inbox": inbox_id}},
        )
        return JSONResponse({"accepted": total, "queued": inbox_id, "alerts": []}, status_code=202)
    results = await pm.ingest_batch(batch)
    for i, alert in enumerate(batch.alerts):
        problem = alert.unreadable
        if problem is None:
            continue
        METRICS.unreadable.labels(source=source, reason=problem.reason).inc()
        log.warning(
            "%s alert could not be read, escalated as incident %s (%s): %s",
            source,
            results[i].incident_id,
            problem.reason,
            clean(problem.error),
            extra={
                "fields": {
                    "event": "ingest.unreadable",
                    "source": source,
                    "reason": problem.reason,
                    "field": problem.field,
                    "incident_id": results[i].incident_id,
                    "delivery": str(results[i].delivery),
                }
            },
        )
    METRICS.ingest_seconds.labels(source=source).observe(time.perf_counter() - began)
    out = []
    for alert, r in zip(batch.alerts, results, strict=False):
        item: dict[str, Any] = {"fingerprint": r.fingerprint, "delivery": str(r.delivery), "incident_id": r.incident_id}
        if alert.unreadable is not None:
            item["unreadable"] = {"error": alert.unreadable.error, "field": alert.unreadable.field}
        out.append(item)
    for r in results[len(batch.alerts) :]:  # echoes of paramedic's own notifications
        out.append({"fingerprint": r.fingerprint, "delivery": str(r.delivery), "incident_id": r.incident_id})
    return JSONResponse(
        {"accepted": len(batch.alerts), "unreadable": len(batch.unreadable), "alerts": out}, status_code=202
    )
