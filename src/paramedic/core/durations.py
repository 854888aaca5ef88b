"""Durations as runbooks write them: ``30s``, ``15m``, ``1h``, ``1h30m``, ``500ms``, ``2d``."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse a duration; a bare number means seconds. Raises ``ValueError`` with an example."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, bool):
        raise ValueError("a duration is a number with a unit, like 30s, 15m or 1h")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=float(text))
    raw = text.strip()
    pos, total = 0, 0.0
    for m in _PART.finditer(raw):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(raw) or not raw:
        raise ValueError(f"cannot parse duration {text!r}: write it like 30s, 15m, 1h or 1h30m")
    return timedelta(seconds=total)


def format_duration(delta: timedelta | float) -> str:
    """A short human form: ``1h02m``, ``3m05s``, ``12.3s``, ``450ms``."""
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
