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
        raise PayloadError(f"{field} is not an RFC 3339 time: {raw[:40]!r}", field=field) from None
