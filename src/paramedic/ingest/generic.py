"""The generic source: ``{"name", "labels", "annotations", "status", "starts_at", "fingerprint"?}``
or a list of them (DESIGN §5)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NotRequired, TypedDict

from paramedic.core.alerts import Alert, AlertStatus, Source, fingerprint_of
from paramedic.core.errors import PayloadError
from paramedic.ingest.common import (
    MAX_ALERTS,
    Batch,
    Problem,
    expect_mapping,
    parse_time,
    string_map,
    text,
    unreadable_alert,
)


class GenericAlert(TypedDict):
    name: str
    labels: NotRequired[dict[str, str]]
    annotations: NotRequired[dict[str, str]]
    status: NotRequired[str]
    starts_at: NotRequired[str]
    ends_at: NotRequired[str]
    fingerprint: NotRequired[str]


_FIELDS = frozenset({"name", "labels", "annotations", "status", "starts_at", "ends_at", "fingerprint"})


def _items(payload: Any) -> list[Any]:
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise PayloadError("the body holds no alert", field="body", reason=Problem.BAD_ENVELOPE)
    if len(items) > MAX_ALERTS:
        raise PayloadError(
            f"{len(items)} alerts in one body, over {MAX_ALERTS}", field="body", reason=Problem.TOO_LARGE
        )
    return items


def size(payload: Any) -> int:
    """How many alerts the body holds, after the checks of the body itself."""
    if not isinstance(payload, list | dict):
        raise PayloadError(
            "the body must be an alert object or a list of them", field="body", reason=Problem.BAD_ENVELOPE
        )
    return len(_items(payload))


def parse(payload: Any, *, now: datetime, source: str = Source.GENERIC) -> list[Alert]:
    """Parse a body strictly; ``now`` stands in for a missing ``starts_at``."""
    return [_alert(raw, _where(payload, i), now=now, source=source) for i, raw in enumerate(_items(payload))]


def read(payload: Any, *, now: datetime, source: str = Source.GENERIC) -> Batch:
    """Read a body as the webhook does: an item that fails a check is kept as an unreadable alert;
    ``PayloadError`` only for a body that is neither an object nor a list of them."""
    if not isinstance(payload, list | dict):
        raise PayloadError(
            "the body must be an alert object or a list of them", field="body", reason=Problem.BAD_ENVELOPE
        )
    out = []
    for i, raw in enumerate(_items(payload)):
        try:
            out.append(_alert(raw, _where(payload, i), now=now, source=source))
        except PayloadError as exc:
            out.append(unreadable_alert(raw, exc, source=source, now=now))
    return Batch(out)


def _where(payload: Any, i: int) -> str:
    return f"[{i}]" if isinstance(payload, list) else "body"


def _alert(raw: Any, where: str, *, now: datetime, source: str) -> Alert:
    a = expect_mapping(raw, where)
    unknown = set(a) - _FIELDS
    if unknown:
        raise PayloadError(
            f"unknown field(s) {', '.join(repr(k) for k in sorted(unknown))}",
            field=f"{where}.{sorted(unknown)[0]}",
            reason=Problem.UNKNOWN_FIELD,
        )
    if "name" not in a:
        raise PayloadError("name is required", field=f"{where}.name", reason=Problem.MISSING_ALERTNAME)
    name = text(a["name"], f"{where}.name", limit=256)
    if not name:
        raise PayloadError("name is empty", field=f"{where}.name", reason=Problem.MISSING_ALERTNAME)
    labels = string_map(a.get("labels", {}), f"{where}.labels")
    status = text(a.get("status", "firing"), f"{where}.status")
    if status not in ("firing", "resolved"):
        raise PayloadError(
            f"status must be firing or resolved, not {status!r}", field=f"{where}.status", reason=Problem.BAD_VALUE
        )
    starts = parse_time(a["starts_at"], f"{where}.starts_at") if "starts_at" in a else now
    ends = parse_time(a["ends_at"], f"{where}.ends_at") if a.get("ends_at") else None
    fp = a.get("fingerprint") or fingerprint_of(name, labels)
    return Alert(
        source=source,
        fingerprint=text(fp, f"{where}.fingerprint", limit=128),
        name=name,
        status=AlertStatus(status),
        starts_at=starts,
        ends_at=ends,
        labels={"alertname": name, **labels},
        annotations=string_map(a.get("annotations", {}), f"{where}.annotations"),
    )
