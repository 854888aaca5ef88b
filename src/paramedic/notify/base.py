"""The sink protocol, the notification every sink receives, and the always-present log sink.

A sink delivers one ``Notification`` to one system (Slack, PagerDuty, a webhook, e-mail, GitHub,
Jira). Sinks run behind the durable outbox (``store.outbox``, delivered by ``engine.notifier``):
a sink only has to deliver once or raise — ``RetryableError`` for a failure worth retrying
(connection refused, timeout, 5xx, 429) and ``PermanentError`` for one that retrying cannot fix
(bad credentials, a malformed request). The outbox retries with backoff and never sends the same
(sink, event of an incident) twice once a delivery succeeded.

Sinks do not import the store: a ticket sink that must remember the issue it opened for an incident
gets a ``TicketStore`` from the engine.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("paramedic.notify")


@dataclass(frozen=True, slots=True)
class Notification:
    """One event about one incident, with the summary every sink shows.

    ``summary_markdown`` is the same text for every sink (``engine.summary``); each sink converts
    it to its own dialect. ``image`` is the incident's chart (PNG) if one was collected;
    ``image_path`` is where paramedic serves it (a signed path, no token needed), to be prefixed
    with the sink's ``public_url``; ``incident_path`` is the incident's page in the API."""

    event: str
    incident_id: int | None
    title: str
    summary_markdown: str
    severity: str = ""
    dedup_key: str = ""
    links: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    status: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    image: bytes | None = None
    image_path: str = ""
    incident_path: str = ""


class Sink(Protocol):
    name: str

    async def send(self, note: Notification) -> None:
        """Deliver; raise ``RetryableError`` or ``PermanentError`` on failure."""
        ...


class TicketStore(Protocol):
    """Durable key → value memory for ticket sinks (the issue opened for an incident)."""

    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, value: str) -> None: ...


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


def absolute(public_url: str, path: str) -> str:
    """``public_url`` + ``path``, or "" when either is missing."""
    if not public_url or not path:
        return ""
    return public_url.rstrip("/") + path


def wants(events: tuple[str, ...], event: str) -> bool:
    """Whether a sink configured with ``events`` (empty: all) takes ``event``."""
    return not events or event in events
