"""The sink protocol and the always-present log sink."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("paramedic.notify")


@dataclass(frozen=True, slots=True)
class Notification:
    """One event about one incident, with the summary every sink shows."""

    event: str
    incident_id: int | None
    title: str
    summary_markdown: str
    severity: str = ""
    dedup_key: str = ""
    links: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)


class Sink(Protocol):
    name: str

    async def send(self, note: Notification) -> None:
        """Deliver; raise ``RetryableError`` or ``PermanentError`` on failure."""
        ...


class LogSink:
    """Writes each notification as one structured log line; always configured."""

    name = "log"

    async def send(self, note: Notification) -> None:
        log.warning(
            "notification %s",
            json.dumps(
                {
                    "event": note.event,
                    "incident": note.incident_id,
                    "title": note.title,
                    "severity": note.severity,
                }
            ),
        )
