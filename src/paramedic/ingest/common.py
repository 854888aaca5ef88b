"""Checks shared by every alert source: typed extraction with the failing field named, and the
unreadable alert that stands in for one that fails them.

A delivery whose envelope is readable is accepted whole: each alert that fails a check becomes an
alert of its own, marked ``unreadable`` with what is wrong and the raw alert (``unreadable_alert``),
which paramedic escalates to a human and never automates (DESIGN §1). Text that could not be stored
and read back (a lone UTF-16 surrogate such as ``"\\ud83d"``, a NUL) fails the checks, so it never
reaches the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from paramedic.core.alerts import Alert, AlertStatus, Echo, Unreadable
from paramedic.core.errors import PayloadError

MAX_ALERTS = 10_000
MAX_LABELS = 128
MAX_KEY = 256
MAX_VALUE = 64 * 1024  # stored as received; templates apply the strict per-use limits
MAX_RAW = 64 * 1024  # the raw alert kept as evidence of an unreadable one
UNREADABLE_NAME = "UnreadableAlert"


class Problem(StrEnum):
    """Why an alert (or a delivery) could not be read: the ``reason`` of metrics and logs."""

    MISSING_ALERTNAME = "missing_alertname"
    BAD_TYPE = "bad_type"
    BAD_VALUE = "bad_value"
    BAD_TIME = "bad_time"
    INVALID_UNICODE = "invalid_unicode"
    TOO_LARGE = "too_large"
    UNKNOWN_FIELD = "unknown_field"
    NOT_JSON = "not_json"
    BAD_ENVELOPE = "bad_envelope"


@dataclass(frozen=True, slots=True)
class Batch:
    """One delivery as read: its alerts (the unreadable ones marked, ``Alert.unreadable``) and the
    echoes of paramedic's own notifications."""

    alerts: list[Alert] = field(default_factory=list)
    echoes: list[Echo] = field(default_factory=list)

    @property
    def unreadable(self) -> list[Alert]:
        return [a for a in self.alerts if a.unreadable is not None]


def expect_mapping(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadError(f"{field} must be a JSON object", field=field, reason=Problem.BAD_TYPE)
    return value


def expect_list(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise PayloadError(f"{field} must be a JSON array", field=field, reason=Problem.BAD_TYPE)
    return value


def storable(value: str) -> bool:
    """Whether text can be stored and read back: valid Unicode (no lone surrogate) without NUL."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def clean(value: str) -> str:
    """``value`` with what could not be stored and read back replaced by U+FFFD (for envelope text,
    which is kept rather than refused)."""
    if storable(value):
        return value
    return "".join("\ufffd" if c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF else c for c in value)


def text(value: Any, field: str, *, limit: int = MAX_VALUE) -> str:
    if not isinstance(value, str):
        raise PayloadError(f"{field} must be a string", field=field, reason=Problem.BAD_TYPE)
    if len(value) > limit:
        raise PayloadError(f"{field} is {len(value)} characters, over {limit}", field=field, reason=Problem.TOO_LARGE)
    if not storable(value):
        raise PayloadError(
            f"{field} is not valid Unicode text (a lone surrogate or a NUL character)",
            field=field,
            reason=Problem.INVALID_UNICODE,
        )
    return value


def string_map(value: Any, field: str) -> dict[str, str]:
    m = expect_mapping(value if value is not None else {}, field)
    if len(m) > MAX_LABELS:
        raise PayloadError(f"{field} has {len(m)} entries, over {MAX_LABELS}", field=field, reason=Problem.TOO_LARGE)
    out: dict[str, str] = {}
    for k, v in m.items():
        key = text(k, f"{field} key", limit=MAX_KEY)
        if isinstance(v, int | float) and not isinstance(v, bool):
            v = str(v)
        out[key] = text(v, f"{field}.{key}")
    return out


def raw_json(raw: Any) -> str:
    """The raw alert as JSON text that can always be stored: non-ASCII escaped, capped at ``MAX_RAW``."""
    dumped = json.dumps(raw, ensure_ascii=True, sort_keys=True, default=repr)
    return dumped if len(dumped) <= MAX_RAW else dumped[:MAX_RAW] + f"... ({len(dumped)} characters in all)"


def _readable_strings(value: Any) -> dict[str, str]:
    """The string entries of a would-be label map that can be kept as they are."""
    if not isinstance(value, Mapping):
        return {}
    out = {}
    for k, v in list(value.items())[:MAX_LABELS]:
        if isinstance(k, str) and isinstance(v, str) and len(k) <= MAX_KEY and len(v) <= 1024 and storable(k + v):
            out[k] = v
    return out


def unreadable_alert(
    raw: Any,
    error: PayloadError,
    *,
    source: str,
    now: datetime,
    group_key: str = "",
    identity: str | None = None,
) -> Alert:
    """The alert that stands for one paramedic could not read: firing, never matched to a runbook.

    Its labels are the readable string labels of the raw alert (``alertname`` is ``UnreadableAlert``
    when the alert has no readable name); its fingerprint comes from the sender's own fingerprint or
    from the raw labels (or ``identity``, what the source knows identifies it), so repeated
    deliveries of one bad alert update one incident."""
    mapping = raw if isinstance(raw, Mapping) else {}
    labels = _readable_strings(mapping.get("labels"))
    name = labels.get("alertname") or (mapping.get("name") if isinstance(mapping.get("name"), str) else "")
    if not isinstance(name, str) or not name or not storable(name) or len(name) > 256:
        name = UNREADABLE_NAME
    labels["alertname"] = name
    sender_fp = mapping.get("fingerprint")
    if identity is not None:
        basis = identity
    elif isinstance(sender_fp, str) and storable(sender_fp):
        basis = sender_fp
    else:
        basis = raw_json(mapping.get("labels", raw))
    fingerprint = "unreadable-" + hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    starts_at = now
    for key in ("startsAt", "starts_at"):
        if isinstance(mapping.get(key), str):
            with contextlib.suppress(PayloadError):
                starts_at = parse_time(mapping[key], key)
            break
    # the error names fields, and a field name may be the sender's text: made storable too
    message, where = clean(str(error))[:4096], clean(error.field)[:256]
    return Alert(
        source=source,
        fingerprint=fingerprint,
        name=name,
        status=AlertStatus.FIRING,
        starts_at=starts_at,
        labels=labels,
        annotations={
            "summary": f"paramedic could not read this alert from {source}: {message}",
            "unreadable_field": where,
        },
        group_key=group_key,
        unreadable=Unreadable(error=message, field=where, reason=error.reason, raw=raw_json(raw)),
    )


def parse_time(value: Any, field: str) -> datetime:
    """An RFC 3339 time with any UTC offset, as UTC.

    ``datetime.fromisoformat`` does the parsing (Python 3.11 reads every RFC 3339 form: ``Z`` or an
    offset, and a fraction of any length, such as Go's nanoseconds, cut to microseconds); RFC 3339
    also allows a lower-case ``t`` and ``z``, so the text is upper-cased first. A time without an
    offset is taken as UTC. A time that cannot be expressed in UTC (``0001-01-01T00:00:00+02:00``)
    is refused like any malformed one.
    """
    raw = text(value, field, limit=64)
    try:
        dt = datetime.fromisoformat(raw.strip().upper())
        return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    except (ValueError, OverflowError):
        raise PayloadError(
            f"{field} is not an RFC 3339 time: {raw[:40]!r}", field=field, reason=Problem.BAD_TIME
        ) from None
