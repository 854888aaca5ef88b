"""Alertmanager webhook (version 4) → ``list[Alert]``.

The payload is typed at the edge and converted once. Alertmanager sends ``endsAt`` as
``0001-01-01T00:00:00Z`` for alerts still firing; a group's alerts share ``groupKey``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NotRequired, TypedDict

from paramedic.core.alerts import Alert, AlertStatus, Source, fingerprint_of
from paramedic.core.errors import PayloadError
from paramedic.ingest.common import (
    MAX_ALERTS,
    Batch,
    Problem,
    clean,
    expect_list,
    expect_mapping,
    parse_time,
    string_map,
    text,
    unreadable_alert,
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
    """Parse one webhook body strictly; raise ``PayloadError`` naming the first bad field."""
    return parse_shaped(payload, source=Source.ALERTMANAGER, version="4")


def read(payload: Any, *, now: datetime) -> Batch:
    """Read one webhook body as the webhook does: ``PayloadError`` only for an unreadable envelope;
    each alert that fails a check is kept as an unreadable alert (``ingest.common``)."""
    return read_shaped(payload, source=Source.ALERTMANAGER, version="4", now=now)


def size(payload: Any, *, version: str = "4", product: str = "") -> int:
    """How many alerts the delivery holds, after the envelope checks (``PayloadError`` as ``read``)."""
    return len(_envelope(payload, version=version, product=product)[1])


def _envelope(payload: Any, *, version: str, product: str) -> tuple[str, list[Any]]:
    body = expect_mapping(payload, "body")
    got = str(body.get("version", version))
    if got != version:
        raise PayloadError(
            f"{product}webhook version {got!r} is not supported (expected {version})",
            field="version",
            reason=Problem.BAD_ENVELOPE,
        )
    group_key = body.get("groupKey", "")
    if not isinstance(group_key, str):
        raise PayloadError("groupKey must be a string", field="groupKey", reason=Problem.BAD_ENVELOPE)
    alerts = expect_list(body.get("alerts"), "alerts")
    if len(alerts) > MAX_ALERTS:
        raise PayloadError(
            f"{len(alerts)} alerts in one body, over {MAX_ALERTS}; lower max_alerts in the webhook config",
            field="alerts",
            reason=Problem.TOO_LARGE,
        )
    return clean(group_key)[:4096], alerts


def parse_shaped(
    payload: Any, *, source: str, version: str, product: str = "", extra_annotations: Mapping[str, str] | None = None
) -> list[Alert]:
    """Any Alertmanager-shaped body (Alertmanager's own, Grafana's), strictly: ``version`` is the one
    expected; ``extra_annotations`` maps per-alert fields kept as annotations unless the rule set them."""
    group_key, alerts = _envelope(payload, version=version, product=product)
    return [
        _alert(raw, f"alerts[{i}]", source=source, group_key=group_key, extra=extra_annotations)
        for i, raw in enumerate(alerts)
    ]


def read_shaped(
    payload: Any,
    *,
    source: str,
    version: str,
    now: datetime,
    product: str = "",
    extra_annotations: Mapping[str, str] | None = None,
) -> Batch:
    """Like ``parse_shaped``, but an alert that fails a check becomes an unreadable alert."""
    group_key, alerts = _envelope(payload, version=version, product=product)
    out: list[Alert] = []
    for i, raw in enumerate(alerts):
        try:
            out.append(_alert(raw, f"alerts[{i}]", source=source, group_key=group_key, extra=extra_annotations))
        except PayloadError as exc:
            out.append(unreadable_alert(raw, exc, source=source, now=now, group_key=group_key))
    return Batch(out)


def _alert(raw: Any, where: str, *, source: str, group_key: str, extra: Mapping[str, str] | None) -> Alert:
    a = expect_mapping(raw, where)
    labels = string_map(a.get("labels"), f"{where}.labels")
    name = labels.get("alertname", "")
    if not name:
        raise PayloadError(
            "every alert needs labels.alertname", field=f"{where}.labels.alertname", reason=Problem.MISSING_ALERTNAME
        )
    status = text(a.get("status"), f"{where}.status")
    if status not in ("firing", "resolved"):
        raise PayloadError(
            f"status must be firing or resolved, not {status!r}", field=f"{where}.status", reason=Problem.BAD_VALUE
        )
    annotations = string_map(a.get("annotations", {}), f"{where}.annotations")
    for key, ann in (extra or {}).items():
        value = a.get(key)
        if isinstance(value, dict):  # Grafana's ``values``: expression results by refId, kept as JSON text
            value = json.dumps(value, sort_keys=True, separators=(",", ":")) if value else ""
        if value:
            annotations.setdefault(ann, text(value, f"{where}.{key}"))
    ends = a.get("endsAt")
    ends_at = None if not ends or str(ends).startswith("0001-") else parse_time(ends, f"{where}.endsAt")
    fp = text(a.get("fingerprint") or fingerprint_of(name, labels), f"{where}.fingerprint", limit=128)
    return Alert(
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
