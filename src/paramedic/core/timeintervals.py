"""Alertmanager's ``time_intervals``, read and evaluated as Alertmanager does, so a mute-time
interval from an Alertmanager configuration can serve as a paramedic change freeze.

One interval has optional fields; each non-empty field must be satisfied, and an instant is inside
a list of intervals when it is inside any of them (Alertmanager's documentation, "time_interval"):

- ``times``: ``[{start_time: "HH:MM", end_time: "HH:MM"}]``, start inclusive, end exclusive,
  ``24:00`` allowed as an end; a range cannot cross midnight.
- ``weekdays``: names (any case), ranges ``monday:friday`` inclusive, the week running Sunday to
  Saturday (so ``saturday:sunday`` is refused, as Alertmanager refuses it).
- ``days_of_month``: 1..31 or -31..-1 counted from the month's end (-1 is the last day); ranges
  are inclusive and clamped to the month.
- ``months``: names or numbers 1..12, ranges; ``years``: numbers, ranges.
- ``location``: an IANA zone name (default UTC) in which all of the above are read.

Deviation: ``location: Local`` (the machine's zone) is refused, because replicas may run in
different zones; give the zone's name.

YAML 1.1 reads an unquoted ``20:00`` as the sexagesimal integer 1200, which is exactly its minute of
the day, so an integer ``start_time``/``end_time`` is taken as minutes since midnight; copied
Alertmanager configurations work quoted or not.

Pure: no I/O, no clock; ``now`` is passed in.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_TIME = re.compile(r"^(?:(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")
_WEEKDAYS = {n: i for i, n in enumerate(("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"))}
_MONTHS = {n.lower(): i for i, n in enumerate(calendar.month_name) if n}
_DAY = 1440


class TimeIntervalError(ValueError):
    """An interval Alertmanager would refuse; the message says which value and why."""


@dataclass(frozen=True, slots=True)
class Range:
    """An inclusive ``begin..end`` of weekdays (0 = Sunday), days of month, months or years."""

    begin: int
    end: int

    def contains(self, n: int) -> bool:
        return self.begin <= n <= self.end


@dataclass(frozen=True, slots=True)
class TimeInterval:
    """One Alertmanager ``time_interval``; an empty tuple means "any"."""

    times: tuple[tuple[int, int], ...] = ()  # minutes of the day, [start, end)
    weekdays: tuple[Range, ...] = ()
    days_of_month: tuple[Range, ...] = ()
    months: tuple[Range, ...] = ()
    years: tuple[Range, ...] = ()
    location: str = "UTC"

    @property
    def zone(self) -> tzinfo:
        return _zone(self.location)

    def contains(self, now: datetime) -> bool:
        t = now.astimezone(self.zone)
        minute = t.hour * 60 + t.minute
        if self.times and not any(a <= minute < b for a, b in self.times):
            return False
        if self.days_of_month and not any(_day_in(r, t.date()) for r in self.days_of_month):
            return False
        if self.months and not any(r.contains(t.month) for r in self.months):
            return False
        weekday = (t.weekday() + 1) % 7  # Python's Monday=0 to Alertmanager's Sunday=0
        if self.weekdays and not any(r.contains(weekday) for r in self.weekdays):
            return False
        return not self.years or any(r.contains(t.year) for r in self.years)

    def piece(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The stretch around ``now`` during which this interval certainly holds: up to the end of
        the matched time range, or of the local day. The freeze code chains pieces."""
        if not self.contains(now):
            return None
        zone = self.zone
        t = now.astimezone(zone)
        minute = t.hour * 60 + t.minute
        start_min, end_min = (0, _DAY)
        if self.times:
            start_min, end_min = max((r for r in self.times if r[0] <= minute < r[1]), key=lambda r: r[1])
        midnight = datetime(t.year, t.month, t.day, tzinfo=zone)
        start = _wall(midnight, start_min, zone)
        end = _wall(midnight, end_min, zone)
        floor = now.replace(second=0, microsecond=0)
        return min(start, now), max(end, floor + timedelta(minutes=1))


def _wall(midnight: datetime, minutes: int, zone: tzinfo) -> datetime:
    """The UTC instant of a local wall-clock time ``minutes`` after ``midnight`` (24:00 is the next
    day's 00:00), following daylight-saving changes."""
    day = midnight.date() + timedelta(days=minutes // _DAY)
    rest = minutes % _DAY
    local = datetime(day.year, day.month, day.day, rest // 60, rest % 60, tzinfo=zone)
    return local.astimezone(UTC)


def _day_in(r: Range, d: date) -> bool:
    days = calendar.monthrange(d.year, d.month)[1]
    begin = days + r.begin + 1 if r.begin < 0 else r.begin
    end = days + r.end + 1 if r.end < 0 else r.end
    if begin > days:
        return False
    begin, end = max(-days, min(begin, days)), max(-days, min(end, days))
    return begin <= d.day <= end


def _zone(name: str) -> tzinfo:
    if name == "UTC":
        return UTC
    if name == "Local":
        raise TimeIntervalError("location: Local is not supported: replicas may differ; give a name like Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TimeIntervalError(f"unknown location {name!r}: give an IANA zone like Europe/Berlin") from exc


# ---- reading the configuration ---------------------------------------------------------------


def _clock(value: object, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= _DAY:  # YAML 1.1 sexagesimal: 20:00 → 1200, its minute of the day
            return value
        raise TimeIntervalError(f"{what} {value!r} is out of range")
    text = str(value).strip()
    if not _TIME.match(text):
        raise TimeIntervalError(f"couldn't parse {what} {text!r}: write HH:MM between 00:00 and 24:00")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _times(raw: object) -> tuple[tuple[int, int], ...]:
    out = []
    for item in _list(raw, "times"):
        if not isinstance(item, dict) or "start_time" not in item or "end_time" not in item:
            raise TimeIntervalError("times: both start_time and end_time must be provided")
        extra = set(item) - {"start_time", "end_time"}
        if extra:
            raise TimeIntervalError(f"times: unknown key {sorted(extra)[0]!r} (start_time, end_time)")
        start, end = _clock(item["start_time"], "start_time"), _clock(item["end_time"], "end_time")
        if start >= end:
            raise TimeIntervalError("times: start_time must be before end_time (a range cannot cross midnight)")
        out.append((start, end))
    return tuple(out)


def _list(raw: object, what: str) -> list[object]:
    if raw is None:
        return []
    if isinstance(raw, list):
        return raw
    raise TimeIntervalError(f"{what} is a list, e.g. {what}: [...]")


def _member(text: str, names: dict[str, int], what: str, *, numeric: bool) -> int:
    key = text.strip().lower()
    if key in names:
        return names[key]
    if numeric:
        try:
            return int(key)
        except ValueError:
            pass
    raise TimeIntervalError(f"{text.strip()} is not a valid {what}")


def _ranges(raw: object, what: str, names: dict[str, int], *, numeric: bool) -> list[Range]:
    out = []
    for item in _list(raw, what + "s"):
        text = str(item)
        parts = text.split(":")
        if len(parts) > 2:
            raise TimeIntervalError(f"couldn't parse range {text}, invalid format")
        begin = _member(parts[0], names, what, numeric=numeric)
        end = _member(parts[-1], names, what, numeric=numeric)
        out.append(Range(begin, end))
    return out


def _weekdays(raw: object) -> tuple[Range, ...]:
    out = _ranges(raw, "weekday", _WEEKDAYS, numeric=False)
    if any(r.begin > r.end for r in out):
        raise TimeIntervalError("weekdays: the week runs sunday to saturday; split a range across it in two")
    return tuple(out)


def _days_of_month(raw: object) -> tuple[Range, ...]:
    out = _ranges(raw, "day of the month", {}, numeric=True)
    for r in out:
        for n in (r.begin, r.end):
            if n == 0 or not -31 <= n <= 31:
                raise TimeIntervalError(f"{n} is not a valid day of the month: out of range")
        if r.begin < 0 < r.end:
            raise TimeIntervalError("end day must be negative if start day is negative")
        # as Alertmanager: refuse only what is wrong in every month (28 days at least)
        if (28 + r.begin if r.begin < 0 else r.begin) > (28 + r.end if r.end < 0 else r.end):
            raise TimeIntervalError(f"end day {r.end} is always before start day {r.begin}")
    return tuple(out)


def _months(raw: object) -> tuple[Range, ...]:
    out = _ranges(raw, "month", _MONTHS, numeric=True)
    for r in out:
        if not (1 <= r.begin <= 12 and 1 <= r.end <= 12):
            raise TimeIntervalError(f"{r.begin}:{r.end} is not a valid month range (1 to 12)")
        if r.begin > r.end:
            raise TimeIntervalError(f"end month {r.end} is before start month {r.begin}")
    return tuple(out)


def _years(raw: object) -> tuple[Range, ...]:
    out = _ranges(raw, "year", {}, numeric=True)
    for r in out:
        if r.begin > r.end:
            raise TimeIntervalError(f"end year {r.end} is before start year {r.begin}")
        if r.begin < 1:
            raise TimeIntervalError(f"{r.begin} is not a valid year")
    return tuple(out)


_KEYS = ("times", "weekdays", "days_of_month", "months", "years", "location")


def parse_time_interval(raw: object) -> TimeInterval:
    """One entry of an Alertmanager ``time_intervals`` list; raises ``TimeIntervalError``."""
    if not isinstance(raw, dict):
        raise TimeIntervalError("a time interval is a mapping of " + ", ".join(_KEYS))
    extra = sorted(set(raw) - set(_KEYS))
    if extra:
        raise TimeIntervalError(f"unknown key {extra[0]!r} in a time interval (known: {', '.join(_KEYS)})")
    location = raw.get("location") or "UTC"
    if not isinstance(location, str):
        raise TimeIntervalError("location is a zone name like Europe/Berlin")
    _zone(location)
    return TimeInterval(
        times=_times(raw.get("times")),
        weekdays=_weekdays(raw.get("weekdays")),
        days_of_month=_days_of_month(raw.get("days_of_month")),
        months=_months(raw.get("months")),
        years=_years(raw.get("years")),
        location=location,
    )


@dataclass(frozen=True, slots=True)
class TimeIntervals:
    """A named Alertmanager interval list as a freeze: frozen while any interval holds."""

    intervals: tuple[TimeInterval, ...]

    def occurrence(self, now: datetime) -> tuple[datetime, datetime] | None:
        pieces = [p for i in self.intervals if (p := i.piece(now)) is not None]
        if not pieces:
            return None
        return min(p[0] for p in pieces), max(p[1] for p in pieces)


def parse_time_intervals(raw: Sequence[object]) -> TimeIntervals:
    if not isinstance(raw, list) or not raw:
        raise TimeIntervalError("time_intervals is a non-empty list of intervals")
    return TimeIntervals(tuple(parse_time_interval(item) for item in raw))


__all__ = [
    "Range",
    "TimeInterval",
    "TimeIntervalError",
    "TimeIntervals",
    "parse_time_interval",
    "parse_time_intervals",
]
