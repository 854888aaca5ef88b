"""Grafana unified alerting webhook (contact point of type "webhook", payload ``version: "1"``)
→ ``list[Alert]``.

Grafana sends Alertmanager-shaped alerts plus its own fields: ``values`` (the expression results by
refId), ``valueString``, ``dashboardURL``, ``panelURL``, ``silenceURL`` and ``imageURL`` (the panel
screenshot, when image rendering is on). Labels and annotations become the alert's; the others are
kept as annotations (``dashboard_url``, ``panel_url``, ``silence_url``, ``value_string``,
``image_url``, and ``values`` as compact JSON such as ``{"A":0.12,"B":1}``) unless the rule already
has annotations of those names, so they reach the incident's timeline and notifications.
``endsAt`` of an alert still firing is
``0001-01-01T00:00:00Z``. A group's alerts share ``groupKey``; ``truncatedAlerts`` counts the
alerts Grafana left out of an oversized group (they arrive in a later notification).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NotRequired, TypedDict

from paramedic.core.alerts import Alert, Source
from paramedic.ingest import alertmanager
from paramedic.ingest.alertmanager import parse_shaped, read_shaped
from paramedic.ingest.common import Batch

_EXTRA = {
    "dashboardURL": "dashboard_url",
    "panelURL": "panel_url",
    "silenceURL": "silence_url",
    "valueString": "value_string",
    "imageURL": "image_url",
    "values": "values",
}


class GrafanaAlert(TypedDict):
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    startsAt: str
    endsAt: NotRequired[str]
    generatorURL: NotRequired[str]
    fingerprint: NotRequired[str]
    silenceURL: NotRequired[str]
    dashboardURL: NotRequired[str]
    panelURL: NotRequired[str]
    values: NotRequired[dict[str, float | None] | None]
    valueString: NotRequired[str]
    imageURL: NotRequired[str]


class GrafanaWebhook(TypedDict):
    receiver: str
    status: str
    orgId: int
    alerts: list[GrafanaAlert]
    groupLabels: dict[str, str]
    commonLabels: dict[str, str]
    commonAnnotations: dict[str, str]
    externalURL: str
    version: str
    groupKey: str
    truncatedAlerts: int
    title: NotRequired[str]
    state: NotRequired[str]
    message: NotRequired[str]


def parse(payload: Any) -> list[Alert]:
    """Parse one webhook body; raise ``PayloadError`` naming the first bad field."""
    return parse_shaped(payload, source=Source.GRAFANA, version="1", product="Grafana ", extra_annotations=_EXTRA)


def read(payload: Any, *, now: datetime) -> Batch:
    """Read one webhook body as the webhook does: each alert that fails a check is kept as an
    unreadable alert; ``PayloadError`` only for an unreadable envelope."""
    return read_shaped(
        payload, source=Source.GRAFANA, version="1", now=now, product="Grafana ", extra_annotations=_EXTRA
    )


def size(payload: Any) -> int:
    """How many alerts the delivery holds, after the envelope checks."""
    return alertmanager.size(payload, version="1", product="Grafana ")
