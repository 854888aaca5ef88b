"""Checks shared by every alert source: typed extraction with the failing field named."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from paramedic.core.errors import PayloadError

MAX_ALERTS = 10_000
MAX_LABELS = 128
MAX_KEY = 256
MAX_VALUE = 64 * 1024  # stored as received; templates apply the strict per-use limits


def expect_mapping(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadError(f"{field} must be a JSON object", field=field)
    return value


def expect_list(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise PayloadError(f"{field} must be a JSON array", field=field)
    return value


def text(value: Any, field: str, *, limit: int = MAX_VALUE) -> str:
    if not isinstance(value, str):
        raise PayloadError(f"{field} must be a string", field=field)
    if len(value) > limit:
        raise PayloadError(f"{field} is {len(value)} characters, over {limit}", field=field)
    if "\x00" in value:
        raise PayloadError(f"{field} contains a NUL character", field=field)
    return value


def string_map(value: Any, field: str) -> dict[str, str]:
    m = expect_mapping(value if value is not None else {}, field)
    if len(m) > MAX_LABELS:
        raise PayloadError(f"{field} has {len(m)} entries, over {MAX_LABELS}", field=field)
    out: dict[str, str] = {}
    for k, v in m.items():
        key = text(k, f"{field} key", limit=MAX_KEY)
        if isinstance(v, int | float) and not isinstance(v, bool):
            v = str(v)
        out[key] = text(v, f"{field}.{key}")
    return out


def parse_time(value: Any, field: str) -> datetime:
    """RFC 3339 time; Go's nanosecond fractions are cut to microseconds."""
    raw = text(value, field, limit=64)
    s = raw.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if "." in s:
        head, _, rest = s.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits) :]
        s = f"{head}.{digits[:6].ljust(6, '0')}{tz}"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise PayloadError(f"{field} is not an RFC 3339 time: {raw[:40]!r}", field=field) from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
