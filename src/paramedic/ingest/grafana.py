"""Grafana unified alerting webhook (contact point of type "webhook", payload ``version: "1"``)
→ ``list[Alert]``.

Grafana sends Alertmanager-shaped alerts plus its own fields: ``values`` (the expression results by
refId), ``valueString``, ``dashboardURL``, ``panelURL`` and ``silenceURL``. Labels and annotations
become the alert's; ``dashboardURL``, ``panelURL``, ``silenceURL`` and ``valueString`` are kept as
annotations (``dashboard_url``, ``panel_url``, ``silence_url``, ``value_string``) unless the rule
already has annotations of those names. ``endsAt`` of an alert still firing is
``0001-01-01T00:00:00Z``. A group's alerts share ``groupKey``; ``truncatedAlerts`` counts the
alerts Grafana left out of an oversized group (they arrive in a later notification).
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from paramedic.core.alerts import Alert, AlertStatus, Source, fingerprint_of
from paramedic.core.errors import PayloadError
from paramedic.ingest.common import MAX_ALERTS, expect_list, expect_mapping, parse_time, string_map, text

_EXTRA = {
    "dashboardURL": "dashboard_url",
    "panelURL": "panel_url",
    "silenceURL": "silence_url",
    "valueString": "value_string",
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
    body = expect_mapping(payload, "body")
    version = str(body.get("version", "1"))
    if version != "1":
        raise PayloadError(f"Grafana webhook version {version!r} is not supported (expected 1)", field="version")
    group_key = text(body.get("groupKey", ""), "groupKey", limit=4096)
    alerts = expect_list(body.get("alerts"), "alerts")
    if len(alerts) > MAX_ALERTS:
        raise PayloadError(f"{len(alerts)} alerts in one body, over {MAX_ALERTS}", field="alerts")
    out: list[Alert] = []
    for i, raw in enumerate(alerts):
        where = f"alerts[{i}]"
        a = expect_mapping(raw, where)
        labels = string_map(a.get("labels"), f"{where}.labels")
        name = labels.get("alertname", "")
        if not name:
            raise PayloadError("every alert needs labels.alertname", field=f"{where}.labels.alertname")
        status = text(a.get("status"), f"{where}.status")
        if status not in ("firing", "resolved"):
            raise PayloadError(f"status must be firing or resolved, not {status!r}", field=f"{where}.status")
        annotations = string_map(a.get("annotations", {}), f"{where}.annotations")
        for key, ann in _EXTRA.items():
            value = a.get(key)
            if value:
                annotations.setdefault(ann, text(value, f"{where}.{key}"))
        ends = a.get("endsAt")
        ends_at = None if not ends or str(ends).startswith("0001-") else parse_time(ends, f"{where}.endsAt")
        fp = text(a.get("fingerprint") or fingerprint_of(name, labels), f"{where}.fingerprint", limit=128)
        out.append(
            Alert(
                source=Source.GRAFANA,
                fingerprint=fp,
                name=name,
                status=AlertStatus(status),
                starts_at=parse_time(a.get("startsAt"), f"{where}.startsAt"),
                ends_at=ends_at,
                labels=labels,
                annotations=annotations,
                group_key=group_key,
                generator_url=text(a.get("generatorURL", ""), f"{where}.generatorURL", limit=4096),
            )
        )
    return out
