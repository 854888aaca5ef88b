"""Target-state evidence: what the executor that would act sees of its target right now.

The engine adds one spec per distinct step of the incident's plans, so the on-call engineer sees
the process, backend server or deployment the runbook is about to touch (or touched)::

    - target: {action: supervisor.restart, args: {program: "web:web-1"}}

A runbook may list such specs itself. The reading comes from the executor's ``read_state`` through
a callable the engine passes in (``enrich`` does not import ``actions``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from paramedic.enrich.base import CollectError, EnrichRequest, Evidence, EvidenceStatus


@dataclass(frozen=True, slots=True)
class TargetReading:
    """An executor's read-back of one target (``actions.base.TargetState``, without the import)."""

    target: str
    healthy: bool | None
    detail: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)


StateReader = Callable[[str, Mapping[str, Any]], Awaitable[TargetReading]]


class TargetCollector:
    """Reads the state of the target of one action through its executor."""

    kind = "target"

    def __init__(self, reader: StateReader) -> None:
        self._reader = reader

    def title(self, request: EnrichRequest) -> str:
        o = request.options
        args = o.get("args") if isinstance(o.get("args"), Mapping) else {}
        brief = ", ".join(f"{k}={v}" for k, v in sorted(dict(args or {}).items()))
        return str(
            o.get("title") or f"State of the target of {o.get('action', '?')}" + (f" ({brief})" if brief else "")
        )

    async def collect(self, request: EnrichRequest) -> Evidence:
        o = request.options
        action, args = o.get("action"), o.get("args", {})
        if not isinstance(action, str) or not action:
            raise CollectError("a target spec needs an action, like supervisor.restart")
        if not isinstance(args, Mapping):
            raise CollectError("args must be a mapping")
        reading = await self._reader(action, args)
        health = {True: "healthy", False: "unhealthy", None: "health unknown"}[reading.healthy]
        head = f"`{reading.target}`: {reading.detail or 'no detail'} ({health})"
        lines = [f"- {k}: {v}" for k, v in sorted(reading.fields.items())]
        data = {
            "action": action,
            "args": dict(args),
            "target": reading.target,
            "healthy": reading.healthy,
            "detail": reading.detail,
            "fields": dict(reading.fields),
        }
        body = "\n".join([head, "", *lines]) if lines else head
        return Evidence("target", self.title(request), EvidenceStatus.OK, body, data)
