"""Load generators against a running paramedic server. Every load is bounded in count and time,
and every request goes to 127.0.0.1.

Payloads are Alertmanager version-4 webhooks, as Alertmanager sends them; each alert is unique
(its own ``instance`` and fingerprint), so each one opens an incident.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

JSON = {"Content-Type": "application/json"}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def am_alert(alertname: str, instance: str) -> dict[str, object]:
    return {
        "status": "firing",
        "labels": {"alertname": alertname, "service": "bench", "instance": instance, "severity": "page"},
        "annotations": {"summary": f"{instance} is down"},
        "startsAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up+%3D%3D+0",
        "fingerprint": hashlib.sha256(f"{alertname}/{instance}".encode()).hexdigest()[:16],
    }


def am_webhook(alertname: str, alerts: list[dict[str, object]]) -> bytes:
    return json.dumps(
        {
            "receiver": "paramedic",
            "status": "firing",
            "alerts": alerts,
            "groupLabels": {"alertname": alertname, "service": "bench"},
            "commonLabels": {"alertname": alertname, "service": "bench"},
            "commonAnnotations": {},
            "externalURL": "http://127.0.0.1:9093",
            "version": "4",
            "groupKey": f'{{}}:{{alertname="{alertname}", service="bench"}}',
            "truncatedAlerts": 0,
        }
    ).encode()


@dataclass(frozen=True, slots=True)
class LatencyResult:
    rate: float
    seconds: float
    sent: int
    accepted: int
    executed: int
    repeats: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    accept_p50_ms: float
    accept_p99_ms: float


async def latency(
    *, webhook: str, receiver: str, alertname: str, prefix: str, rate: float, seconds: float
) -> LatencyResult:
    """Open-loop load: one single-alert webhook every ``1/rate`` s, whatever the answers take.

    Latency is the receiver's arrival stamp of the runbook's ``http.request`` minus the send time
    of the webhook carrying that alert (both CLOCK_MONOTONIC).
    """
    count = int(rate * seconds)
    bodies = [(f"{prefix}-{i}", am_webhook(alertname, [am_alert(alertname, f"{prefix}-{i}")])) for i in range(count)]
    sent_at: dict[str, int] = {}
    accept_ms: list[float] = []
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        begin = time.monotonic() + 0.2

        async def one(i: int) -> None:
            key, body = bodies[i]
            await asyncio.sleep(max(0.0, begin + i / rate - time.monotonic()))
            start = time.monotonic_ns()
            sent_at[key] = start
            try:
                r = await client.post(webhook, content=body, headers=JSON)
            except httpx.HTTPError:
                return
            if r.status_code == 202:
                accept_ms.append((time.monotonic_ns() - start) / 1e6)

        await asyncio.gather(*(one(i) for i in range(count)))
        # Wait for the backlog to drain: until every accepted alert's action arrived, or nothing
        # arrived for 15 s, and never longer than 180 s.
        arrivals: dict[str, int] = {}
        repeats = 0
        hard_stop = time.monotonic() + 180
        progress_at = time.monotonic()
        while time.monotonic() < min(hard_stop, progress_at + 15):
            data = (await client.get(f"{receiver}/hits")).json()
            got = {k: v for k, v in data["arrivals"].items() if k in sent_at}
            repeats = int(data["repeats"])
            if len(got) > len(arrivals):
                progress_at = time.monotonic()
            arrivals = got
            if len(arrivals) >= len(accept_ms):
                break
            await asyncio.sleep(0.25)
    lat = [(arrivals[k] - sent_at[k]) / 1e6 for k in arrivals]
    return LatencyResult(
        rate=rate,
        seconds=seconds,
        sent=count,
        accepted=len(accept_ms),
        executed=len(lat),
        repeats=repeats,
        p50_ms=percentile(lat, 50),
        p90_ms=percentile(lat, 90),
        p99_ms=percentile(lat, 99),
        max_ms=max(lat, default=float("nan")),
        accept_p50_ms=percentile(accept_ms, 50),
        accept_p99_ms=percentile(accept_ms, 99),
    )


@dataclass(frozen=True, slots=True)
class IngestResult:
    label: str
    concurrency: int
    per_request: int
    requests: int
    alerts: int
    errors: int
    seconds: float
    alerts_per_s: float
    request_p50_ms: float
    request_p99_ms: float


async def ingest(
    *,
    webhook: str,
    label: str,
    alertname: str,
    prefix: str,
    total_alerts: int,
    per_request: int,
    concurrency: int,
    time_limit: float,
) -> IngestResult:
    """Closed-loop load: ``concurrency`` clients post webhooks of ``per_request`` alerts each,
    back to back, until ``total_alerts`` are sent or ``time_limit`` seconds have passed."""
    requests = max(1, total_alerts // per_request)
    bodies = [
        am_webhook(alertname, [am_alert(alertname, f"{prefix}-{r}-{i}") for i in range(per_request)])
        for r in range(requests)
    ]
    took_ms: list[float] = []
    errors = 0
    next_body = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        begin = time.monotonic()
        stop_at = begin + time_limit

        async def client_loop() -> None:
            nonlocal next_body, errors
            while next_body < len(bodies) and time.monotonic() < stop_at:
                body = bodies[next_body]
                next_body += 1
                start = time.monotonic()
                try:
                    r = await client.post(webhook, content=body, headers=JSON)
                    ok = r.status_code == 202
                except httpx.HTTPError:
                    ok = False
                if ok:
                    took_ms.append((time.monotonic() - start) * 1000)
                else:
                    errors += 1

        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        seconds = time.monotonic() - begin
    done = len(took_ms) * per_request
    return IngestResult(
        label=label,
        concurrency=concurrency,
        per_request=per_request,
        requests=len(took_ms),
        alerts=done,
        errors=errors,
        seconds=seconds,
        alerts_per_s=done / seconds if seconds > 0 else 0.0,
        request_p50_ms=percentile(took_ms, 50),
        request_p99_ms=percentile(took_ms, 99),
    )
