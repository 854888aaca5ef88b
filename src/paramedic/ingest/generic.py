"""The generic source: ``{"name", "labels", "annotations", "status", "starts_at", "fingerprint"?}``
or a list of them (DESIGN §5)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NotRequired, TypedDict

from paramedic.core.alerts import Alert, AlertStatus, Source, fingerprint_of
from paramedic.core.errors import PayloadError
from paramedic.ingest.common import MAX_ALERTS, expect_mapping, parse_time, string_map, text


class GenericAlert(TypedDict):
    name: str
    labels: NotRequired[dict[str, str]]
    annotations: NotRequired[dict[str, str]]
    status: NotRequired[str]
    starts_at: NotRequired[str]
    ends_at: NotRequired[str]
    fingerprint: NotRequired[str]


def parse(payload: Any, *, now: datetime, source: str = Source.GENERIC) -> list[Alert]:
    """Parse a body; ``now`` stands in for a missing ``starts_at``."""
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise PayloadError("the body holds no alert", field="body")
    if len(items) > MAX_ALERTS:
        raise PayloadError(f"{len(items)} alerts in one body, over {MAX_ALERTS}", field="body")
    out = []
    for i, raw in enumerate(items):
        where = f"[{i}]" if isinstance(payload, list) else "body"
        a = expect_mapping(raw, where)
        unknown = set(a) - {
            "name",
            "labels",
            "annotations",
            "status",
            "starts_at",
            "ends_at",
            "fingerprint",
        }
        if unknown:
            raise PayloadError(
                f"unknown field(s) {', '.join(sorted(unknown))}",
                field=f"{where}.{sorted(unknown)[0]}",
            )
        if "name" not in a:
            raise PayloadError("name is required", field=f"{where}.name")
        name = text(a["name"], f"{where}.name", limit=256)
        labels = string_map(a.get("labels", {}), f"{where}.labels")
        status = text(a.get("status", "firing"), f"{where}.status")
        if status not in ("firing", "resolved"):
            raise PayloadError(f"status must be firing or resolved, not {status!r}", field=f"{where}.status")
        starts = parse_time(a["starts_at"], f"{where}.starts_at") if "starts_at" in a else now
        ends = parse_time(a["ends_at"], f"{where}.ends_at") if a.get("ends_at") else None
        fp = a.get("fingerprint") or fingerprint_of(name, labels)
        out.append(
            Alert(
                source=source,
                fingerprint=text(fp, f"{where}.fingerprint", limit=128),
                name=name,
                status=AlertStatus(status),
                starts_at=starts,
                ends_at=ends,
                labels={"alertname": name, **labels},
                annotations=string_map(a.get("annotations", {}), f"{where}.annotations"),
            )
        )
    return out
