"""Alertmanager webhook (version 4) → ``list[Alert]``.

The payload is typed at the edge and converted once. Alertmanager sends ``endsAt`` as
``0001-01-01T00:00:00Z`` for alerts still firing; a group's alerts share ``groupKey``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

from paramedic.core.alerts import Alert, AlertStatus, Source, fingerprint_of
from paramedic.core.errors import PayloadError
from paramedic.ingest.common import (
    MAX_ALERTS,
    expect_list,
    expect_mapping,
    parse_time,
    string_map,
    text,
)


class AMAlert(TypedDict):
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    startsAt: str
    endsAt: NotRequired[str]
    generatorURL: NotRequired[str]
    fingerprint: NotRequired[str]


class AMWebhook(TypedDict):
    version: str
    groupKey: str
    status: str
    receiver: str
    alerts: list[AMAlert]


def parse(payload: Any) -> list[Alert]:
    """Parse one webhook body; raise ``PayloadError`` naming the first bad field."""
    return parse_shaped(payload, source=Source.ALERTMANAGER, version="4")


def parse_shaped(
    payload: Any, *, source: str, version: str, product: str = "", extra_annotations: Mapping[str, str] | None = None
) -> list[Alert]:
    """Any Alertmanager-shaped body (Alertmanager's own, Grafana's): ``version`` is the one expected;
    ``extra_annotations`` maps per-alert fields kept as annotations unless the rule set them."""
    body = expect_mapping(payload, "body")
    got = str(body.get("version", version))
    if got != version:
        raise PayloadError(f"{product}webhook version {got!r} is not supported (expected {version})", field="version")
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
        for key, ann in (extra_annotations or {}).items():
            value = a.get(key)
            if value:
                annotations.setdefault(ann, text(value, f"{where}.{key}"))
        ends = a.get("endsAt")
        ends_at = None if not ends or str(ends).startswith("0001-") else parse_time(ends, f"{where}.endsAt")
        fp = text(a.get("fingerprint") or fingerprint_of(name, labels), f"{where}.fingerprint", limit=128)
        out.append(
            Alert(
                source=source,
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
