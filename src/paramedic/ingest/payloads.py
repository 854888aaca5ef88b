"""Recorded webhook payloads → alerts, with the same parsers as the webhooks (``ingest``).

Used by ``paramedic test`` (a payload file or a test case), ``paramedic record`` (which checks each
payload it saves) and the case skeletons. A payload's source is given, taken from a recorded
file's name (``20240501T120000Z-alertmanager-001.json``), or recognised from its shape. Grafana and
PagerDuty payloads are understood when their ingest modules are installed.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from paramedic.core.alerts import Alert
from paramedic.core.errors import PayloadError
from paramedic.ingest import alertmanager, generic

Parser = Callable[[Any, datetime], list[Alert]]

# webhook path → source, as paramedic's API serves them (DESIGN §5)
WEBHOOK_PATHS: Mapping[str, str] = {
    "/api/v1/alerts/alertmanager": "alertmanager",
    "/api/v1/alerts/grafana": "grafana",
    "/api/v1/alerts/pagerduty": "pagerduty",
    "/api/v1/alerts": "generic",
}
_OPTIONAL = ("grafana", "pagerduty")


def _optional(name: str) -> Parser | None:
    """The parser of an ingest module that may not exist yet, adapted to ``(payload, now)``."""
    try:
        module = importlib.import_module(f"paramedic.ingest.{name}")
    except ImportError:
        return None
    parse = getattr(module, "parse", None)
    if parse is None:
        return None
    takes_now = "now" in inspect.signature(parse).parameters

    def call(payload: Any, now: datetime) -> list[Alert]:
        return list(parse(payload, now=now) if takes_now else parse(payload))

    return call


def parsers() -> dict[str, Parser]:
    """Every source paramedic can parse here, by name."""
    found: dict[str, Parser] = {
        "alertmanager": lambda payload, _now: alertmanager.parse(payload),
        "generic": lambda payload, now: generic.parse(payload, now=now),
    }
    for name in _OPTIONAL:
        if (parser := _optional(name)) is not None:
            found[name] = parser
    return found


def detect(data: Any) -> str:
    """The source a payload most likely came from, by its shape."""
    if isinstance(data, dict):
        if isinstance(data.get("event"), dict) and "event_type" in data["event"]:
            return "pagerduty"
        if "alerts" in data and ("orgId" in data or "state" in data):
            return "grafana"
        if "alerts" in data and ("groupKey" in data or "version" in data):
            return "alertmanager"
    return "generic"


def source_from_name(path: Path) -> str | None:
    """The source written into a recorded payload's file name, if any."""
    for name in WEBHOOK_PATHS.values():
        if re.search(rf"(^|[-_.]){name}([-_.]|$)", path.stem):
            return name
    return None


def parse(data: Any, *, now: datetime, source: str | None = None) -> list[Alert]:
    """Parse a recorded payload; ``now`` stands in for a missing start time. Raises
    ``PayloadError`` for a payload that does not fit, or a source paramedic cannot parse."""
    name = source or detect(data)
    known = parsers()
    if name not in known:
        raise PayloadError(f"cannot parse {name} payloads here (known: {', '.join(sorted(known))})", field="source")
    return known[name](data, now)
