"""Paramedic's own health probes: HTTP or TCP checks that raise and resolve alerts like any source.

``ProbeState`` is the pure part (consecutive failures → firing, successes → resolved); ``run_probe``
is the loop that performs checks and hands each transition to a callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime

import httpx

from paramedic.core.alerts import Alert, AlertStatus, Source, fingerprint_of
from paramedic.core.config import Probe


@dataclass(frozen=True, slots=True)
class ProbeState:
    failures: int = 0
    successes: int = 0
    first_failure_at: datetime | None = None
    firing_since: datetime | None = None


def step(state: ProbeState, probe: Probe, *, ok: bool, now: datetime) -> tuple[ProbeState, Alert | None]:
    """Advance the state by one check; return the alert to emit on a transition, if any."""
    labels = {"alertname": probe.labels["alertname"], "probe": probe.name, **probe.labels}
    fp = fingerprint_of(labels["alertname"], labels)
    if ok:
        new = replace(state, successes=state.successes + 1, failures=0, first_failure_at=None)
        if state.firing_since is not None and new.successes >= probe.successes:
            alert = Alert(
                source=Source.PROBE,
                fingerprint=fp,
                name=labels["alertname"],
                status=AlertStatus.RESOLVED,
                starts_at=state.firing_since,
                ends_at=now,
                labels=labels,
                annotations={"summary": f"probe {probe.name} is healthy again"},
            )
            return ProbeState(), alert
        return new, None
    first = state.first_failure_at or now
    new = replace(state, failures=state.failures + 1, successes=0, first_failure_at=first)
    if state.firing_since is None and new.failures >= probe.failures:
        target = probe.http or probe.tcp or ""
        alert = Alert(
            source=Source.PROBE,
            fingerprint=fp,
            name=labels["alertname"],
            status=AlertStatus.FIRING,
            starts_at=first,
            labels=labels,
            annotations={"summary": f"probe {probe.name} failed {new.failures} times in a row ({target})"},
        )
        return replace(new, firing_since=first), alert
    return new, None


async def check(probe: Probe, client: httpx.AsyncClient) -> bool:
    timeout = probe.timeout.total_seconds()
    if probe.http is not None:
        try:
            resp = await client.get(probe.http, timeout=timeout)
        except httpx.HTTPError:
            return False
        return 200 <= resp.status_code < 400
    host, _, port = (probe.tcp or "").rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
    except (OSError, TimeoutError, ValueError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def run_probe(
    probe: Probe,
    *,
    client: httpx.AsyncClient,
    clock: Callable[[], datetime],
    emit: Callable[[Alert], Awaitable[None]],
    on_check: Callable[[Probe, bool], Awaitable[None]] | None = None,
) -> None:
    """Check forever at ``probe.every``; emit an alert on every firing/resolved transition."""
    state = ProbeState()
    every = probe.every.total_seconds()
    while True:
        began = time.monotonic()
        ok = await check(probe, client)
        state, alert = step(state, probe, ok=ok, now=clock())
        if on_check is not None:
            await on_check(probe, ok)
        if alert is not None:
            await emit(alert)
        await asyncio.sleep(max(0.0, every - (time.monotonic() - began)))
