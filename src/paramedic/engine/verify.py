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


async def verify(
    spec: Mapping[str, Any],
    *,
    client: httpx.AsyncClient,
    incident_resolved: Callable[[], Awaitable[bool]],
    within_cap: float | None = None,
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
    return VerifyResult(False, f"verification kind {v.kind!r} is not available in this build")
