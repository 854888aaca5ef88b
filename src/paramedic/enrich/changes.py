"""Recent-changes evidence: what was deployed or changed for the service before the alert fired.

Spec::

    - changes: {window: 24h, service: "{{ labels.service }}"}

``service`` defaults to the alert's ``service`` label (no label: every service); ``window`` to 24h
before the alert's start. The rows come from the engine (the ``changes`` table, which
``POST /api/v1/changes`` fills from CI/CD, and the release executor's history file), passed in as a
callable. A change shortly before the alert is the first suspect, so the headline names it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from paramedic.core.durations import format_duration, parse_duration
from paramedic.enrich.base import CollectError, EnrichRequest, Evidence, EvidenceStatus

DEFAULT_WINDOW = timedelta(hours=24)
SUSPECT = timedelta(hours=1)
SHOWN = 10


@dataclass(frozen=True, slots=True)
class Change:
    """One deploy, rollback, config or feature-flag change of a service."""

    at: datetime
    service: str
    kind: str
    version: str = ""
    description: str = ""
    actor: str = ""
    origin: str = "api"  # api (the changes table) | release (the release history file)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "service": self.service,
            "kind": self.kind,
            "version": self.version,
            "description": self.description,
            "actor": self.actor,
            "origin": self.origin,
        }


ChangeSource = Callable[[str, datetime, datetime], Awaitable[Sequence[Change]]]


class ChangesCollector:
    """Lists changes of one service from ``window`` before the alert's start until now."""

    kind = "changes"

    def __init__(self, source: ChangeSource) -> None:
        self._source = source

    def title(self, request: EnrichRequest) -> str:
        service = str(request.options.get("service") or request.service)
        return str(request.options.get("title") or (f"Recent changes to {service}" if service else "Recent changes"))

    async def collect(self, request: EnrichRequest) -> Evidence:
        try:
            window = parse_duration(request.options.get("window", DEFAULT_WINDOW))
        except ValueError as exc:
            raise CollectError(f"window: {exc}") from None
        service = str(request.options.get("service") or request.service)
        since = request.starts_at - window
        changes = sorted(await self._source(service, since, request.now), key=lambda c: c.at, reverse=True)
        data = {"service": service, "since": since.isoformat(), "changes": [c.to_json() for c in changes[:100]]}
        title = self.title(request)
        who = service or "any service"
        if not changes:
            body = f"No recorded change to {who} in the {format_duration(window)} before the alert."
            return Evidence("changes", title, EvidenceStatus.OK, body, data)
        before = [c for c in changes if c.at <= request.starts_at]
        suspects = [c for c in before if request.starts_at - c.at <= SUSPECT]
        if suspects:
            c = suspects[0]
            head = f"**{_what(c)}, {format_duration(request.starts_at - c.at)} before the alert fired**"
            if len(suspects) > 1:
                head += f" (and {len(suspects) - 1} more in the hour before)"
        elif before:
            c = before[0]
            head = f"Latest: {_what(c)}, {format_duration(request.starts_at - c.at)} before the alert"
        else:
            head = "No change before the alert"
        during = len(changes) - len(before)
        head += f"; {len(changes)} change(s) since {since:%Y-%m-%d %H:%M} UTC"
        if during:
            head += f", {during} after the alert fired"
        lines = [f"- {c.at:%Y-%m-%d %H:%M:%S} UTC: {_what(c)}{_desc(c)}" for c in changes[:SHOWN]]
        if len(changes) > SHOWN:
            lines.append(f"- … and {len(changes) - SHOWN} older")
        return Evidence("changes", title, EvidenceStatus.OK, "\n".join([head + ".", "", *lines]), data)


def _what(c: Change) -> str:
    version = " `" + " ".join(c.version.split()).replace("`", "'") + "`" if c.version else ""
    actor = f" by {_plain(c.actor)}" if c.actor else ""
    return f"{_plain(c.kind)} of {_plain(c.service)}{version}{actor}"


def _desc(c: Change) -> str:
    return f" — {_plain(c.description)[:200]}" if c.description else ""


def _plain(text: str) -> str:
    """Untrusted text from CI as plain markdown text: no markup, no links, one line."""
    out = " ".join(text.split())
    for ch in "\\`*_[]<>|#":
        out = out.replace(ch, "\\" + ch if ch not in "`<>" else "'")
    return out
