"""Verification after a remediation: an HTTP probe, a command, or the alert resolving."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from paramedic.actions.shell import run_argv
from paramedic.core.errors import ActionError
from paramedic.core.runbooks import Verify


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    detail: str
    worse: bool = False  # the action made things measurably worse
    unknown: bool = False  # the telemetry to judge by was absent: a failure for trust, never a success


async def _poll(check: Callable[[], Awaitable[tuple[bool, str]]], *, within: float, every: float) -> VerifyResult:
    deadline = time.monotonic() + within
    last = "not checked"
    while True:
        ok, last = await check()
        if ok:
            return VerifyResult(True, last)
        if time.monotonic() + every > deadline:
            return VerifyResult(False, f"{last} (gave up after {within:g}s)")
        await asyncio.sleep(every)


async def prometheus_value(client: httpx.AsyncClient, url: str, query: str) -> float | None:
    """The value of an instant query: the sum of a vector, a scalar, or None when the result is
    empty (a PromQL comparison that is false). Raises ``httpx.HTTPError`` or ``ValueError``."""
    r = await client.get(f"{url.rstrip('/')}/api/v1/query", params={"query": query}, timeout=5.0)
    r.raise_for_status()
    data = r.json()
    if data.get("status") != "success":
        raise ValueError(f"Prometheus answered {data.get('errorType')}: {data.get('error')}")
    result = data["data"]
    if result["resultType"] in ("scalar", "string"):
        return float(result["result"][1])
    samples = result["result"]
    if not samples:
        return None
    return sum(float(s["value"][1]) for s in samples)


def baseline_query(spec: Mapping[str, Any] | None) -> str | None:
    """The query whose value must not get worse, if the plan's verification compares one."""
    if not spec or "prometheus" not in spec:
        return None
    p = spec["prometheus"]
    return str(p["query"]) if p.get("compare") == "not_worse" else None


async def verify(
    spec: Mapping[str, Any],
    *,
    client: httpx.AsyncClient,
    incident_resolved: Callable[[], Awaitable[bool]],
    within_cap: float | None = None,
    prometheus_url: str = "",
    baseline: float | None = None,
) -> VerifyResult:
    """Run the plan's verification. ``within_cap`` shortens it (a quick check on resume)."""
    v = Verify.model_validate(spec)

    def within(value: float) -> float:
        return min(value, within_cap) if within_cap is not None else value

    if v.http is not None:
        h = v.http
        stable = h.stable_for.total_seconds()
        healthy_since: list[float] = []

        async def http_check() -> tuple[bool, str]:
            try:
                r = await client.request(h.method, h.url, timeout=max(0.5, min(5.0, h.every.total_seconds() * 2)))
            except httpx.HTTPError as exc:
                healthy_since.clear()
                return False, f"{h.url}: {type(exc).__name__}"
            if r.status_code != h.expect_status:
                healthy_since.clear()
                return False, f"{h.url} answered {r.status_code}"
            if not healthy_since:
                healthy_since.append(time.monotonic())
            held = time.monotonic() - healthy_since[0]
            if held < stable:
                return False, f"{h.url} answered {r.status_code} but has been healthy only {held:.1f}s of {stable:g}s"
            return True, f"{h.url} answered {r.status_code}" + (f", stable for {stable:g}s" if stable else "")

        return await _poll(http_check, within=within(h.within.total_seconds()), every=h.every.total_seconds())
    if v.command is not None:
        c = v.command

        async def cmd_check() -> tuple[bool, str]:
            try:
                done = await run_argv(c.argv, timeout=max(1.0, c.every.total_seconds() * 5))
            except ActionError as exc:
                return False, str(exc)
            return done.code == c.expect_exit, f"{c.argv[0]} exited {done.code}"

        return await _poll(cmd_check, within=within(c.within.total_seconds()), every=c.every.total_seconds())
    if v.alert_resolved is not None:

        async def resolved() -> tuple[bool, str]:
            return (True, "the alert resolved") if await incident_resolved() else (False, "the alert is still firing")

        return await _poll(resolved, within=within(v.alert_resolved.within.total_seconds()), every=0.5)
    if v.prometheus is not None:
        return await _verify_prometheus(
            v,
            client=client,
            default_url=prometheus_url,
            baseline=baseline,
            within=within(v.prometheus.within.total_seconds()),
        )
    return VerifyResult(False, f"verification kind {v.kind!r} is not available in this build")


async def _verify_prometheus(
    v: Verify, *, client: httpx.AsyncClient, default_url: str, baseline: float | None, within: float
) -> VerifyResult:
    p = v.prometheus
    assert p is not None
    url = p.url or default_url
    if not url:
        return VerifyResult(False, "no Prometheus to ask: set verify.prometheus.url or prometheus_url in the config")
    if p.compare == "not_worse":
        if baseline is None:
            return VerifyResult(
                False,
                f"unknown: {p.query} had no value before the action (absent, or Prometheus did not"
                " answer), so 'not worse' cannot be judged; absent is never read as 0",
                unknown=True,
            )
        return await _watch_not_worse(
            p.query,
            client=client,
            url=url,
            baseline=baseline,
            factor=p.worse_factor,
            floor=p.worse_floor,
            within=within,
            every=p.every.total_seconds(),
        )

    async def check() -> tuple[bool, str]:
        try:
            value = await prometheus_value(client, url, p.query)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            return False, f"Prometheus query failed: {exc}"
        return value is not None, f"{p.query} holds ({value:g})" if value is not None else f"{p.query} does not hold"

    return await _poll(check, within=within, every=p.every.total_seconds())


async def _watch_not_worse(
    query: str,
    *,
    client: httpx.AsyncClient,
    url: str,
    baseline: float,
    factor: float,
    floor: float | None,
    within: float,
    every: float,
) -> VerifyResult:
    """Watch the metric for the whole window (a rate needs time to show the action's effect):
    fail as soon as it exceeds ``factor`` times its value before the action (and ``floor``, under
    which nothing is worse), pass at the end. A series that vanishes is unknown, not 0."""
    deadline = time.monotonic() + within
    last: float | None = None
    while True:
        try:
            value = await prometheus_value(client, url, query)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            return VerifyResult(False, f"Prometheus query failed: {exc}", unknown=True)
        if value is None:
            return VerifyResult(
                False, f"unknown: {query} returned no data after the action (absent is never read as 0)", unknown=True
            )
        last = value
        if last > baseline * factor and last > baseline and (floor is None or last > floor):
            return VerifyResult(
                False,
                f"worse after the action: {query} went from {baseline:g} to {last:g} (more than {factor:g}x)",
                worse=True,
            )
        if time.monotonic() + every > deadline:
            return VerifyResult(
                True,
                f"{query} stayed at or under {factor:g}x its value before the action "
                f"({baseline:g} → {last:g}) for {within:g}s",
            )
        await asyncio.sleep(every)
